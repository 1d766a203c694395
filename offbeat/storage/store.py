"""Content-addressed artifact store: Zarr arrays for large data, an index (`offbeat.storage.index`) for the rest.

Why two parts: Zarr holds chunked arrays so a long mix never has to sit in memory, but it has no atomic
multi-file commit. The index (diskcache on one host, Redis for many) is the commit record: an entry exists
only once its index record is added, and that happens after every array chunk is written. A writer killed
mid-way leaves an unreferenced data folder (swept later), never an entry that reads as complete; two writers
of one key both finish, the first commit wins, the other discards its copy. An entry whose data went missing
or unreadable fails validation and is recomputed. `produce` adds a lease per entry (`offbeat.storage.lease`),
so processes and hosts sharing the store compute each entry once: the others wait for its commit.

Cache keys are computed in `offbeat.storage.keys`; entries and their writer are in `offbeat.storage.entries`;
where the data lives (a folder, or object storage every host reaches) in `offbeat.storage.location`;
the job ledger and the export records keep their small records in the same index, behind their own APIs
(`offbeat.storage.ledger`, `offbeat.storage.exports`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import zarr

from offbeat.storage.entries import CorruptEntryError, Entry, EntryWriter
from offbeat.storage.index import DiskIndex, Index, open_index
from offbeat.storage.keys import canonical
from offbeat.storage.lease import once
from offbeat.storage.location import DataLocation, is_local

log = logging.getLogger("offbeat.store")
# What a store handle is made from: root, index folder, index URL, host name, lease seconds, storage options
# (JSON). Hashable, so a process can keep one handle per configuration (`flows.tasks`).
StoreConfig = tuple[str, str, str, str, float, str]


class ArtifactStore:
    """The Zarr root (local path or fsspec URL, opened with the fsspec storage `options`) plus its index (a
    diskcache folder, or any `Index`); `host` names this machine in commit records, `lease_sec` bounds how long
    others wait for a holder that died (`produce`)."""

    DATA = "data"

    def __init__(
        self,
        root: str | Path,
        index: Path | Index,
        *,
        host: str = "",
        lease_sec: float = 60.0,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.root = str(root)
        self.location = DataLocation(self.root, options)
        self.index = index if isinstance(index, Index) else DiskIndex(Path(index))
        self.host, self.lease_sec = host or socket.gethostname(), lease_sec
        # Entries validated by this handle (key -> data folder, entry): stages read the same large entries many
        # times (every track reads the audio and stems), and listing every chunk each time costs more than a read.
        self._validated: dict[str, tuple[str | None, Entry]] = {}
        self._touched: dict[str, float] = {}

    def close(self) -> None:
        self.index.close()

    def alive(self) -> bool:
        """Whether the index is still the store's (`DiskIndex.alive`); else replace the handle (`flows.tasks`)."""
        return self.index.alive()

    def record(self, name: str) -> Any:
        """An index record, or None when absent or unreadable: a damaged record ("pickle data was truncated")
        is deleted, so whatever it described is recomputed instead of failing every run."""
        try:
            return self.index.get(name)
        except self.index.unavailable:
            raise
        except Exception:
            with suppress(Exception):
                self.index.delete(name)
            return None

    # -- reading -------------------------------------------------------------------------------------

    def get(self, key: str, *, verify: bool = False) -> Entry | None:
        """The committed entry for `key`, or None when absent, incomplete or damaged (then forgotten).

        Validation checks structure (metadata, shapes, every chunk stored); `verify=True` also reads
        every chunk so its checksum is tested.
        """
        record = self.record(f"entry:{key}")
        if record is None:
            return None
        known = self._validated.get(key)
        if known is not None and known[0] == record.get("data") and not verify:
            self._touch(key)
            return known[1]
        try:
            entry = self._open(record)
            if verify:
                for name in entry.array_specs:
                    self._read_all(entry[name])
        except Exception:
            self.invalidate(key, record.get("data"))
            return None
        self._validated[key] = (record.get("data"), entry)
        self._touch(key)
        return entry

    def _open(self, record: dict[str, Any]) -> Entry:
        group = None
        if record["arrays"]:
            group = self.location.open_group(record["data"], mode="r")
            for name, (shape, dtype) in record["arrays"].items():
                array = group[name]
                if not isinstance(array, zarr.Array) or list(array.shape) != shape or str(array.dtype) != dtype:
                    raise CorruptEntryError(f"array {name} does not match its record")
                if array.nchunks_initialized != array.nchunks:
                    raise CorruptEntryError(f"array {name} is missing chunks")
        specs = {k: (v[0], v[1]) for k, v in record["arrays"].items()}
        return Entry(
            key=record["key"],
            stage=record["stage"],
            attrs=record["attrs"],
            array_specs=specs,
            created=record["created"],
            nbytes=record["nbytes"],
            _group=group,
        )

    @staticmethod
    def _read_all(array: zarr.Array) -> None:
        step = array.chunks[0] * 16
        for start in range(0, max(array.shape[0], 1), step):
            array[start : start + step]

    def verify(self, key: str) -> bool:
        """Whether the entry is present and every chunk reads back with a valid checksum."""
        return self.get(key, verify=True) is not None

    # -- writing -------------------------------------------------------------------------------------

    def produce(self, key: str, stage: str, compute: Callable[[EntryWriter], None], *, source: str = "") -> bool:
        """Make sure entry `key` exists, computing it with `compute` (through `write`) at most once among every
        process sharing this store's index: True when this process computed it, False when it was found, or
        another process computed it while this one waited for its lease (`offbeat.storage.lease.once`)."""

        def work() -> None:
            with self.write(key, stage, source=source) as out:
                compute(out)

        holder = f"{self.host}:{os.getpid()}"
        return once(self.index, f"lease:{key}", self.lease_sec, holder, lambda: self.get(key) is not None, work)

    @contextmanager
    def write(self, key: str, stage: str, *, source: str = "") -> Iterator[EntryWriter]:
        """Stage an entry; it is committed when the block exits cleanly, discarded when it raises.

        Commit uses the index's add-if-absent, so of two concurrent writers exactly one record wins. The record
        says which host (and process) computed the entry.
        """
        data_path = f"{self.DATA}/{key[:2]}/{key}.{uuid.uuid4().hex[:12]}"
        group = self.location.open_group(data_path, mode="w")
        writer = EntryWriter(group)
        try:
            yield writer
        except BaseException:
            self.location.remove(data_path)
            raise
        arrays = writer.specs()
        record = {
            "key": key,
            "stage": stage,
            "source": source,
            "data": data_path if arrays else None,
            "arrays": arrays,
            "attrs": json.loads(canonical(writer.attrs)),
            "created": time.time(),
            "nbytes": self.location.size(data_path) if arrays else 0,
            "host": self.host,
            "pid": os.getpid(),
        }
        if not arrays:
            self.location.remove(data_path)
        # Another writer committed first (unless a retried add found its own record): keep one copy.
        if not self.index.add(f"entry:{key}", record) and arrays and self._data_of(key) != data_path:
            self.location.remove(data_path)
        self._touch(key)

    def invalidate(self, key: str, data_path: str | None = None) -> None:
        """Forget an entry (only if it still points at `data_path`, when given) and delete its data."""
        self._validated.pop(key, None)
        if self.record(f"entry:{key}") is None:  # absent, or unreadable (and deleted now)
            return
        record = self.index.pop_if(f"entry:{key}", lambda r: data_path in (None, r.get("data")))
        if record is None:  # gone, or already recomputed by another process: leave its new data alone
            return
        self.index.delete(f"used:{key}")
        if record.get("data"):
            self.location.remove(record["data"])

    # -- use and eviction ----------------------------------------------------------------------------

    TOUCH_EVERY_SEC = 60.0  # last-use times are this coarse, so reading an entry rarely writes the index
    # The shortest grace `offbeat cache gc` takes: an entry read all along may show a use time this old.
    MIN_GRACE_SEC = 2 * TOUCH_EVERY_SEC

    def _touch(self, key: str) -> None:
        now = time.time()
        if now - self._touched.get(key, 0.0) >= self.TOUCH_EVERY_SEC:
            self.index.set(f"used:{key}", now)
            self._touched[key] = now

    def last_used(self, record: dict[str, Any]) -> float:
        used = self.record(f"used:{record['key']}")
        return float(record["created"] if used is None else used)

    def collect_garbage(
        self,
        *,
        max_bytes: int | None = None,
        older_than_sec: float | None = None,
        grace_sec: float = 3600.0,
        keep_stages: tuple[str, ...] = (),
    ) -> list[dict[str, Any]]:
        """Remove least recently used entries: those unused for `older_than_sec`, then more until the store
        holds at most `max_bytes`. Entries used within `grace_sec` are kept whatever the size, because a
        running analysis may be reading them (a reader renews the use time every minute); removal takes the
        index record first, so a process that looks the entry up afterwards recomputes it. Returns the
        records removed; also sweeps data folders no record points at."""
        now = time.time()
        records = sorted(self.entries(), key=self.last_used)
        total = sum(record["nbytes"] for record in records)
        removed = []
        for record in records:
            idle = now - self.last_used(record)
            if idle < grace_sec:
                break  # sorted by last use: every later entry is in use too
            if record["stage"] in keep_stages:
                continue
            stale = older_than_sec is not None and idle > older_than_sec
            oversize = max_bytes is not None and total > max_bytes
            if not (stale or oversize):
                continue
            self.invalidate(record["key"])
            total -= record["nbytes"]
            removed.append(record)
        self.sweep_orphans(older_than_sec=grace_sec)
        return removed

    def source_names(self) -> dict[str, str]:
        """Content digest -> the last path it was read from (for listings)."""
        names: dict[str, str] = {}
        for name in self.index.names("digest:"):
            digest = self.record(name)
            if digest is not None:
                names[digest] = name.removeprefix("digest:").rsplit(":", 3)[0]
        return names

    # -- small records -------------------------------------------------------------------------------

    def source_digest(self, path: Path) -> str:
        """Content digest of a source file, remembered per (path, size, mtime, inode) to skip re-reading. A file
        that changes while it is hashed is hashed again (a few times), so a digest is remembered only for content
        the file held as a whole."""
        for _ in range(3):
            stat = path.stat()
            memo = f"digest:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"
            digest = self.record(memo)
            if digest is not None:
                return str(digest)
            with path.open("rb") as fh:
                digest = hashlib.file_digest(fh, lambda: hashlib.blake2b(digest_size=16)).hexdigest()
            after = path.stat()
            if (after.st_size, after.st_mtime_ns, after.st_ino) == (stat.st_size, stat.st_mtime_ns, stat.st_ino):
                self.index.set(memo, digest)
                break
        return digest

    def entries(self) -> Iterator[dict[str, Any]]:
        for name in self.index.names("entry:"):
            record = self.record(name)
            if record is not None:
                yield record

    # -- helpers -------------------------------------------------------------------------------------

    def _data_of(self, key: str) -> str | None:
        return (self.record(f"entry:{key}") or {}).get("data")

    def sweep_orphans(self, older_than_sec: float = 3600.0) -> int:
        """Delete data folders no index record points at (left by killed writers); returns how many.

        Only folders older than `older_than_sec` go, so a writer still staging its entry is left alone.
        """
        referenced = {record["data"] for record in self.entries() if record.get("data")}
        removed = 0
        for data_path, age in self.location.folders(f"{self.DATA}/*/*"):
            if data_path not in referenced and age >= older_than_sec:
                self.location.remove(data_path)
                removed += 1
        return removed


def store_config(settings: Any = None) -> StoreConfig:
    """What a store handle is made from (hashable, so a process can keep one handle per configuration)."""
    from offbeat.settings import get_settings

    s = settings or get_settings()
    options = json.dumps(s.store_options, sort_keys=True)
    return s.artifact_store, str(s.index_path), s.index_url, s.host_name, s.entry_lease_sec, options


def open_store(settings: Any = None, config: StoreConfig | None = None) -> ArtifactStore:
    """The store configured by settings (`OFFBEAT_ARTIFACT_STORE`, `OFFBEAT_INDEX_URL`, ...), or by `config`.

    Data on a URL other hosts may reach with the index in a local diskcache works, for this host only: another
    host using the same data would neither see these entries nor keep its own from this host's orphan sweep.
    That is said in the log; sharing takes `OFFBEAT_INDEX_URL`."""
    root, index_path, index_url, host, lease_sec, options = config or store_config(settings)
    if not index_url and not is_local(root):
        log.warning(
            "artifact store %s has its index in a local diskcache (%s): for this host only; hosts sharing "
            "the store need a shared index, OFFBEAT_INDEX_URL=redis://...",
            root,
            index_path,
        )
    index = open_index(index_url, Path(index_path))
    return ArtifactStore(root, index, host=host, lease_sec=lease_sec, options=json.loads(options))


def open_existing_store(settings: Any = None) -> ArtifactStore | None:
    """The configured store for reading, or None when it holds nothing yet: its local index folder does not
    exist. Opening the index creates that folder (and the store's), which a command that only reads (`offbeat
    cache ls`) must not do."""
    config = store_config(settings)
    if not config[2] and not Path(config[1]).exists():
        return None
    return open_store(config=config)
