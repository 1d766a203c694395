"""Export records: which store entry each exported file was written from, so a repeat run leaves it alone.

A file is reused only when its size and modification time are still what they were right after writing;
anything else (edited, truncated, replaced) is written again. Records live in the store's index as
`export:<absolute path>`.
"""

from __future__ import annotations

from pathlib import Path

from offbeat.storage.store import ArtifactStore


class ExportRecords:
    """The entry key behind each exported file, with the file's size and mtime when it was written."""

    def __init__(self, store: ArtifactStore) -> None:
        self._store, self._index = store, store.index

    @staticmethod
    def _name(path: Path) -> str:
        return f"export:{path.resolve()}"

    @staticmethod
    def _record(path: Path, entry_key: str) -> dict[str, object]:
        stat = path.stat()
        return {"entry": entry_key, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def holds(self, path: Path, entry_key: str) -> bool:
        """Whether `path` still holds exactly what was exported from entry `entry_key`."""
        record = self._store.record(self._name(path))
        return record is not None and path.exists() and record == self._record(path, entry_key)

    def written(self, path: Path, entry_key: str) -> None:
        """Record that `path` was just written (atomically) from entry `entry_key`."""
        self._index.set(self._name(path), self._record(path, entry_key))
