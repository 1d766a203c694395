"""Where the store's Zarr data lives: a local folder, a shared mount, or any fsspec URL (`s3://bucket/prefix` on
S3-compatible object storage through s3fs).

Why a class of its own: the store must treat every location alike, and object storage differs from a folder in
ways that matter to it. There are no directories (a "folder" is a key prefix, gone with its last object), and
fsspec caches directory listings per filesystem handle, which on a store that other hosts write to would hide
their new data from `sweep` and sizes (a listing seen once would be believed forever). So a URL location is
opened with listing caches off, and the same options reach Zarr, which opens its own (asynchronous) handle.

Credentials and endpoint come from the filesystem's own standard places (for S3: `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, `~/.aws`), or from `OFFBEAT_STORE_OPTIONS` (fsspec storage options
as JSON, e.g. `{"endpoint_url": "http://minio:9000"}`), which a `.env` file can hold.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import suppress
from typing import Any, Literal

import fsspec
import zarr


def is_local(root: str) -> bool:
    """Whether `root` is a path on this host (plain, or file://) rather than a location other hosts may reach."""
    return "://" not in root or root.startswith(("file://", "local://"))


class DataLocation:
    """The data root: URLs of entry groups for Zarr, and the listing, sizing and removal of their folders."""

    def __init__(self, root: str, options: dict[str, Any] | None = None) -> None:
        # file:// is a local folder: opened as a plain path, so Zarr uses its LocalStore (which makes folders).
        self.root = str(root).removeprefix("file://")
        # Listings never cached (see the module docstring); a plain path needs no options (Zarr's LocalStore).
        self.options = {"use_listings_cache": False, **(options or {})} if "://" in self.root else {}
        self.fs, self._fs_root = fsspec.core.url_to_fs(self.root, **self.options)
        self.fs.makedirs(self._fs_root, exist_ok=True)

    def url(self, data_path: str) -> str:
        return f"{self.root.rstrip('/')}/{data_path}"

    def open_group(self, data_path: str, mode: Literal["r", "w"]) -> zarr.Group:
        """The Zarr group of an entry's data folder (`mode` "w" creates it empty, "r" reads it)."""
        return zarr.open_group(self.url(data_path), mode=mode, storage_options=self.options or None)

    def _fs_path(self, data_path: str) -> str:
        return f"{self._fs_root.rstrip('/')}/{data_path}"

    def size(self, data_path: str) -> int:
        """Bytes stored under a data folder."""
        return int(self.fs.du(self._fs_path(data_path), total=True))

    def remove(self, data_path: str) -> None:
        """Delete a data folder and everything in it; nothing happens when it is absent."""
        with suppress(FileNotFoundError):
            self.fs.rm(self._fs_path(data_path), recursive=True)

    def folders(self, pattern: str) -> Iterator[tuple[str, float]]:
        """Every data folder matching `pattern` (e.g. "data/*/*"), as (data path, age in seconds). The age is
        that of its group metadata, written first; a folder without it is infinitely old (nothing is staging it:
        a writer creates the metadata as it opens the folder)."""
        depth = pattern.count("/") + 1
        now = time.time()
        for folder in self.fs.glob(self._fs_path(pattern)):
            data_path = "/".join(folder.rstrip("/").split("/")[-depth:])
            try:  # one request per folder: on object storage each is a round trip
                modified = self.fs.modified(f"{folder.rstrip('/')}/zarr.json").timestamp()
            except FileNotFoundError:
                modified = None
            yield data_path, now - modified if modified is not None else float("inf")
