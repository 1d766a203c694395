"""What one store entry is made of: lazily opened Zarr arrays plus small attributes, and the writer that
streams arrays into a private folder before `ArtifactStore.write` commits them.

Audio arrays get their own codec chain (24-bit fixed point, byte shuffle, zstd); every chunk carries a CRC32C.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec
from zarr.codecs.numcodecs import FixedScaleOffset

_COMPRESSORS = (ZstdCodec(level=1), Crc32cCodec())  # crc32c makes a damaged chunk fail loudly on read
# Audio arrays (decoded mix, stems, their analysis copies) are stored as 24-bit fixed point: lossless for
# 16- and 24-bit sources, the precision of the exported stem files, a noise floor 144 dB below full scale
# for float sources, and room for peaks up to 256x full scale. With the bytes of each sample shuffled into
# planes, zstd then finds the always-equal top byte and the structure of the others: about half the size
# of zstd on float32, at the same speed. Readers get float32 back.
warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr version 3 specification")
_AUDIO_FILTERS = (FixedScaleOffset(offset=0, scale=2**23, dtype="<f4", astype="<i4"),)
# The largest sample magnitude an audio array holds: beyond it the cast to 32-bit integers overflows and the
# stored samples are garbage (a float file reaching 1000.0 read back as +48 LUFS noise), so decode refuses it.
AUDIO_PEAK_LIMIT = 2.0**31 / 2**23
_AUDIO_COMPRESSORS = (BloscCodec(cname="zstd", clevel=1, shuffle="shuffle"), Crc32cCodec())


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
