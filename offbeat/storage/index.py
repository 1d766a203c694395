"""The store's index: commit records, last-use times, the job ledger, export records and entry leases.

Why an abstraction: the Zarr data can live on any fsspec location several hosts reach, but the index must be as
shared as the data, and SQLite (diskcache) is unsafe on a network file system. So the index is one small
interface with two implementations: `DiskIndex` (diskcache beside the store, the zero-configuration default for
one host) and `RedisIndex` (`offbeat.storage.redis_index`, for many hosts), chosen by `OFFBEAT_INDEX_URL`
through `open_index`. Both give what the store relies on: atomic put-if-absent (the first commit wins), an atomic
conditional delete (forget an entry only if it still points at the data that failed), expiring keys, and leases
owned by a token (`offbeat.storage.lease`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import diskcache


class Index(ABC):
    """Small records by name. Values are plain data (dicts, lists, strings, numbers)."""

    # Errors meaning the index did not answer (nothing is known about the record), as opposed to a record that
    # cannot be read (which the store deletes, `ArtifactStore.record`).
    unavailable: tuple[type[BaseException], ...] = ()

    @abstractmethod
    def get(self, name: str) -> Any:
        """The value, or None when absent or expired; raises when the stored value cannot be read."""

    @abstractmethod
    def set(self, name: str, value: Any, expire: float | None = None) -> None:
        """Store `value`, forgotten after `expire` seconds when given."""

    @abstractmethod
    def add(self, name: str, value: Any, expire: float | None = None) -> bool:
        """Store `value` only when `name` holds nothing (atomic: of concurrent adds exactly one wins)."""

    @abstractmethod
    def delete(self, name: str) -> bool:
        """Forget `name`; whether it was there."""

    @abstractmethod
    def pop_if(self, name: str, condition: Callable[[Any], bool]) -> Any:
        """Delete `name` when its value meets `condition`, atomically (nothing can change it in between);
        the value deleted, or None."""

    @abstractmethod
    def names(self, prefix: str) -> Iterator[str]:
        """Every name starting with `prefix`."""

    # -- leases: a token held under a name until it expires, renewed and dropped only by its holder -------

    def take_lease(self, name: str, token: str, ttl_sec: float) -> bool:
        return self.add(name, token, expire=ttl_sec)

    @abstractmethod
    def renew_lease(self, name: str, token: str, ttl_sec: float) -> bool:
        """Extend the lease when `token` still holds it; False when it was lost (expired, taken over)."""

    @abstractmethod
    def drop_lease(self, name: str, token: str) -> None:
        """Let go of the lease when `token` holds it; someone else's lease is left alone."""

    def lease_holder(self, name: str) -> str | None:
        holder = self.get(name)
        return None if holder is None else str(holder)

    def alive(self) -> bool:
        """Whether this handle still reaches the index the store uses (see `DiskIndex.alive`)."""
        return True

    @abstractmethod
    def close(self) -> None:
        """Release the handle's resources."""

    @property
    def location(self) -> str:
        """Where the index lives, for the operator."""
        return type(self).__name__


class DiskIndex(Index):
    """diskcache (SQLite) in a local folder: transactional across the processes of one host, nothing more."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.cache = diskcache.Cache(str(path))
        self._file = self.path / "cache.db"
        self._id = self._file_id()

    def _file_id(self) -> tuple[int, int] | None:
        try:
            info = self._file.stat()
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def alive(self) -> bool:
        """Whether the database this handle has open is still the one on disk. A store folder deleted (or
        replaced) under a long-lived process leaves its handle on an unlinked database, where it would keep
        finding entries whose data is gone; such a handle must be replaced (`flows.tasks.store`)."""
        return self._id is not None and self._file_id() == self._id

    def get(self, name: str) -> Any:
        return self.cache.get(name)

    def set(self, name: str, value: Any, expire: float | None = None) -> None:
        self.cache.set(name, value, expire=expire)

    def add(self, name: str, value: Any, expire: float | None = None) -> bool:
        return bool(self.cache.add(name, value, expire=expire))  # an expired key counts as absent

    def delete(self, name: str) -> bool:
        return bool(self.cache.delete(name))

    def pop_if(self, name: str, condition: Callable[[Any], bool]) -> Any:
        with self.cache.transact():
            value = self.cache.get(name)
            if value is None or not condition(value):
                return None
            self.cache.delete(name)
            return value

    def names(self, prefix: str) -> Iterator[str]:
        for name in self.cache.iterkeys():
            if isinstance(name, str) and name.startswith(prefix):
                yield name

    def renew_lease(self, name: str, token: str, ttl_sec: float) -> bool:
        with self.cache.transact():
            if self.cache.get(name) != token:
                return False
            self.cache.set(name, token, expire=ttl_sec)
            return True

    def drop_lease(self, name: str, token: str) -> None:
        with self.cache.transact():
            if self.cache.get(name) == token:
                self.cache.delete(name)

    def close(self) -> None:
        self.cache.close()

    @property
    def location(self) -> str:
        return str(self.path)


def open_index(url: str, path: Path) -> Index:
    """The index `OFFBEAT_INDEX_URL` names: empty for the local diskcache at `path`, `redis://...` (or
    `rediss://`, `unix://`) for one shared by every host using that Redis."""
    if not url:
        return DiskIndex(path)
    if url.split("://", 1)[0] in ("redis", "rediss", "unix"):
        from offbeat.storage.redis_index import RedisIndex

        return RedisIndex(url)
    raise ValueError(f"unsupported index URL {url!r}: leave it empty (local diskcache) or give redis://...")
