"""Content-addressed artifact store: Zarr arrays for large data, a diskcache index for the rest.

Why two parts: Zarr holds chunked arrays so a long mix never has to sit in memory, but it has no atomic
multi-file commit. The diskcache index (SQLite, transactional across processes) is the commit record: an
entry exists only once its index record is written, and that happens after every array chunk is on
disk. A writer killed mid-way leaves an unreferenced data folder (swept later), never an entry that
reads as complete; two writers of one key both finish, the first commit wins, the other discards its
copy. An entry whose data went missing or unreadable fails validation and is recomputed.

`entry_key` is the one place cache keys are computed.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diskcache
import fsspec
import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec
from zarr.codecs.numcodecs import FixedScaleOffset

KEY_LENGTH = 32  # hex digits of blake2b: 128 bits, ample for content addressing
_COMPRESSORS = (ZstdCodec(level=1), Crc32cCodec())  # crc32c makes a damaged chunk fail loudly on read
# Audio arrays (decoded mix, stems, their analysis copies) are stored as 24-bit fixed point: lossless for
# 16- and 24-bit sources, the precision of the exported stem files, a noise floor 144 dB below full scale
# for float sources, and room for peaks up to 256x full scale. With the bytes of each sample shuffled into
# planes, zstd then finds the always-equal top byte and the structure of the others: about half the size
# of zstd on float32, at the same speed. Readers get float32 back.
warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr version 3 specification")
_AUDIO_FILTERS = (FixedScaleOffset(offset=0, scale=2**23, dtype="<f4", astype="<i4"),)
_AUDIO_COMPRESSORS = (BloscCodec(cname="zstd", clevel=1, shuffle="shuffle"), Crc32cCodec())


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def entry_key(
    source_digest: str, stage: str, version: int, params: Mapping[str, Any], upstream: Mapping[str, str]
) -> str:
    """Key of a stage's output: change the source, stage version, parameters or any input, get a new key."""
    material = _canonical(
        {"source": source_digest, "stage": stage, "version": version, "params": params, "upstream": upstream}
    )
    return hashlib.blake2b(material.encode(), digest_size=KEY_LENGTH // 2).hexdigest()


class CorruptEntryError(RuntimeError):
    """Stored data that cannot be read back as it was written."""


@dataclass(frozen=True)
class Entry:
    """A committed store entry: small attributes inline, arrays opened lazily from Zarr."""

    key: str
    stage: str
    attrs: dict[str, Any]
    array_specs: dict[str, tuple[list[int], str]]
    created: float
    nbytes: int
    _group: zarr.Group | None = field(default=None, repr=False, compare=False)

    def __getitem__(self, name: str) -> zarr.Array:
        if self._group is None or name not in self.array_specs:
            raise KeyError(f"entry {self.key} ({self.stage}) has no array {name!r}")
        return self._group[name]  # type: ignore[return-value]


class EntryWriter:
    """Stages an entry's arrays in a private data folder; `ArtifactStore.write` commits it."""

    def __init__(self, group: zarr.Group) -> None:
        self._group = group
        self.attrs: dict[str, Any] = {}
        self._arrays: dict[str, zarr.Array] = {}

    def create_array(
        self, name: str, *, shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...], audio: bool = False
    ) -> zarr.Array:
        """A chunked array; create it with a zero first dimension and `append` to stream into it.

        `audio`: float32 samples, stored as 24-bit fixed point (see _AUDIO_FILTERS)."""
        array = self._group.create_array(
            name,
            shape=shape,
            dtype="float32" if audio else dtype,
            chunks=chunks,
            filters=_AUDIO_FILTERS if audio else None,
            compressors=_AUDIO_COMPRESSORS if audio else _COMPRESSORS,
            config={"write_empty_chunks": True},  # a missing chunk must mean damage, never silence
        )
        self._arrays[name] = array
        return array

    def put_array(self, name: str, data: np.ndarray, chunk_len: int | None = None) -> None:
        """Store a whole (small) array in one go."""
        chunks = (max(1, min(chunk_len or len(data), len(data))), *data.shape[1:])
        self.create_array(name, shape=data.shape, dtype=data.dtype, chunks=chunks)[...] = data

    def array(self, name: str) -> zarr.Array:
        """An array created earlier in this entry (to read back what was streamed into it)."""
        return self._arrays[name]

    def specs(self) -> dict[str, tuple[list[int], str]]:
        return {name: (list(a.shape), str(a.dtype)) for name, a in self._arrays.items()}


class ChunkAppender:
    """Buffers streamed blocks and appends whole chunks, so each Zarr chunk is written exactly once."""

    def __init__(self, array: zarr.Array) -> None:
        self._array = array
        self._chunk = array.chunks[0]
        self._pending: list[np.ndarray] = []
        self._pending_len = 0

    def append(self, block: np.ndarray) -> None:
        if len(block) == 0:
            return
        self._pending.append(block)
        self._pending_len += len(block)
        if self._pending_len >= self._chunk:
            data = np.concatenate(self._pending)
            whole = len(data) - len(data) % self._chunk
            self._array.append(data[:whole], axis=0)
            rest = data[whole:]
            self._pending, self._pending_len = ([rest] if len(rest) else []), len(rest)

    def close(self) -> None:
        if self._pending_len:
            self._array.append(np.concatenate(self._pending), axis=0)
        self._pending, self._pending_len = [], 0


class ArtifactStore:
    """The Zarr root (local path or fsspec URL) plus its diskcache index."""

    DATA = "data"

    def __init__(self, root: str | Path, index_path: Path) -> None:
        self.root = str(root)
        self.fs, self._fs_root = fsspec.core.url_to_fs(self.root)
        self.fs.makedirs(self._fs_root, exist_ok=True)
        self.index = diskcache.Cache(str(index_path))
        # Entries validated by this handle, by key, with the data folder they were validated at: stages
        # read the same large entries many times (every track reads the decoded audio and the stems),
        # and listing every chunk again each time costs more than the read itself.
        self._validated: dict[str, tuple[str | None, Entry]] = {}
        self._touched: dict[str, float] = {}

    def close(self) -> None:
        self.index.close()

    # -- reading -------------------------------------------------------------------------------------

    def get(self, key: str, *, verify: bool = False) -> Entry | None:
        """The committed entry for `key`, or None when absent, incomplete or damaged (then forgotten).

        Validation checks structure (metadata, shapes, every chunk stored); `verify=True` also reads
        every chunk so its checksum is tested.
        """
        record = self.index.get(f"entry:{key}")
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
            group = zarr.open_group(self._url(record["data"]), mode="r")
            for name, (shape, dtype) in record["arrays"].items():
                array = group[name]
                if not isinstance(array, zarr.Array) or list(array.shape) != shape or str(array.dtype) != dtype:
                    raise CorruptEntryError(f"array {name} does not match its record")
                if array.nchunks_initialized != array.nchunks:
                    raise CorruptEntryError(f"array {name} is missing chunks")
        return Entry(
            key=record["key"],
            stage=record["stage"],
            attrs=record["attrs"],
            array_specs={k: (v[0], v[1]) for k, v in record["arrays"].items()},
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

    @contextmanager
    def write(self, key: str, stage: str, *, source: str = "") -> Iterator[EntryWriter]:
        """Stage an entry; it is committed when the block exits cleanly, discarded when it raises.

        Commit uses the index's add-if-absent, so of two concurrent writers exactly one record wins.
        """
        data_path = f"{self.DATA}/{key[:2]}/{key}.{uuid.uuid4().hex[:12]}"
        group = zarr.open_group(self._url(data_path), mode="w")
        writer = EntryWriter(group)
        try:
            yield writer
        except BaseException:
            self._remove_data(data_path)
            raise
        arrays = writer.specs()
        record = {
            "key": key,
            "stage": stage,
            "source": source,
            "data": data_path if arrays else None,
            "arrays": arrays,
            "attrs": json.loads(_canonical(writer.attrs)),
            "created": time.time(),
            "nbytes": self._size(data_path) if arrays else 0,
        }
        if not arrays:
            self._remove_data(data_path)
        if not self.index.add(f"entry:{key}", record) and arrays:
            # Another writer committed first; its entry is equivalent, keep one copy.
            self._remove_data(data_path)
        self._touch(key)

    def invalidate(self, key: str, data_path: str | None = None) -> None:
        """Forget an entry (only if it still points at `data_path`, when given) and delete its data."""
        self._validated.pop(key, None)
        with self.index.transact():
            record = self.index.get(f"entry:{key}")
            if record is None or (data_path is not None and record.get("data") != data_path):
                return
            del self.index[f"entry:{key}"]
            self.index.delete(f"used:{key}")
        if record.get("data"):
            self._remove_data(record["data"])

    # -- use and eviction ----------------------------------------------------------------------------

    TOUCH_EVERY_SEC = 60.0  # last-use times are this coarse, so reading an entry rarely writes the index

    def _touch(self, key: str) -> None:
        now = time.time()
        if now - self._touched.get(key, 0.0) >= self.TOUCH_EVERY_SEC:
            self.index.set(f"used:{key}", now)
            self._touched[key] = now

    def last_used(self, record: dict[str, Any]) -> float:
        return float(self.index.get(f"used:{record['key']}", record["created"]))

    def collect_garbage(
        self, *, max_bytes: int | None = None, older_than_sec: float | None = None, grace_sec: float = 3600.0
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
        for name in self.index.iterkeys():
            if isinstance(name, str) and name.startswith("digest:"):
                digest = self.index.get(name)
                if digest is not None:
                    names[digest] = name.removeprefix("digest:").rsplit(":", 3)[0]
        return names

    # -- small records -------------------------------------------------------------------------------

    def source_digest(self, path: Path) -> str:
        """Content digest of a source file, remembered per (path, size, mtime, inode) to skip re-reading."""
        stat = path.stat()
        memo = f"digest:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"
        digest = self.index.get(memo)
        if digest is None:
            with path.open("rb") as fh:
                digest = hashlib.file_digest(fh, lambda: hashlib.blake2b(digest_size=16)).hexdigest()
            self.index.set(memo, digest)
        return digest

    def answered(self, job_id: int) -> dict[str, Any] | None:
        """The job ledger's record of a completed job id: {"job": its message, "result": the document}."""
        return self.index.get(f"job:{job_id}")  # type: ignore[no-any-return]

    def record_answer(self, job_id: int, job: str, result: dict[str, Any]) -> None:
        self.index.set(f"job:{job_id}", {"job": job, "result": result, "at": time.time()})

    def entries(self) -> Iterator[dict[str, Any]]:
        for name in self.index.iterkeys():
            if isinstance(name, str) and name.startswith("entry:"):
                record = self.index.get(name)
                if record is not None:
                    yield record

    # -- helpers -------------------------------------------------------------------------------------

    def _url(self, data_path: str) -> str:
        return f"{self.root.rstrip('/')}/{data_path}"

    def _fs_path(self, data_path: str) -> str:
        return f"{self._fs_root.rstrip('/')}/{data_path}"

    def _size(self, data_path: str) -> int:
        return int(self.fs.du(self._fs_path(data_path), total=True))

    def _remove_data(self, data_path: str) -> None:
        with suppress(FileNotFoundError):
            self.fs.rm(self._fs_path(data_path), recursive=True)

    def sweep_orphans(self, older_than_sec: float = 3600.0) -> int:
        """Delete data folders no index record points at (left by killed writers); returns how many.

        Only folders older than `older_than_sec` go, so a writer still staging its entry is left alone.
        """
        referenced = {record["data"] for record in self.entries() if record.get("data")}
        removed = 0
        now = time.time()
        for folder in self.fs.glob(self._fs_path(f"{self.DATA}/*/*")):
            data_path = f"{self.DATA}/{'/'.join(folder.rstrip('/').split('/')[-2:])}"
            if data_path in referenced:
                continue
            modified = self.fs.modified(f"{folder}/zarr.json") if self.fs.exists(f"{folder}/zarr.json") else None
            age = now - modified.timestamp() if modified is not None else float("inf")
            if age >= older_than_sec:
                self._remove_data(data_path)
                removed += 1
        return removed


def open_store(settings: Any = None) -> ArtifactStore:
    """The store configured by settings."""
    from offbeat.settings import get_settings

    settings = settings or get_settings()
    return ArtifactStore(settings.artifact_store, settings.index_path)
