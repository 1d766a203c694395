"""Block streaming: read stored arrays a bounded piece at a time, so no stage holds a whole mix in memory.

`frame_blocks` cuts audio into blocks of analysis frames with enough context on each side that every frame
comes out exactly as from one pass over the whole signal (tested in tests/test_blocks.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from offbeat.dsp import rhythm

FRAMES_PER_BLOCK = 4096  # ~95 s of analysis frames per block


def read_padded(array: Any, start: int, stop: int) -> np.ndarray:
    """array[start:stop] along the first axis, zero-filled where the range leaves the array."""
    n = array.shape[0]
    data = array[max(0, start) : max(0, min(n, stop))]
    before, after = max(0, -start), max(0, stop - max(n, start))
    if before or after:
        data = np.pad(data, [(before, after)] + [(0, 0)] * (data.ndim - 1))
    return data


def blocks(array: Any, start: float, stop: float, step: int | None = None) -> Iterator[np.ndarray]:
    """array[int(start):int(stop)] `step` items (default: one stored chunk) at a time."""
    step = step or array.chunks[0]
    for first in range(int(start), int(stop), step):
        yield array[first : min(int(stop), first + step)]


def frame_blocks(array: Any) -> Iterator[tuple[np.ndarray, slice]]:
    """(samples, keep) per block of analysis frames: the samples cover the block's frames plus
    BLOCK_CONTEXT frames each side, and `keep` picks the block's own frames from the result."""
    total = rhythm.frame_count(array.shape[0])
    ctx = rhythm.BLOCK_CONTEXT
    for first in range(0, total, FRAMES_PER_BLOCK):
        last = min(total, first + FRAMES_PER_BLOCK)
        samples = read_padded(array, (first - ctx) * rhythm.HOP, (last + ctx - 1) * rhythm.HOP + rhythm.N_FFT)
        yield samples, slice(ctx, ctx + last - first)


def chroma_slice(keep: slice) -> slice:
    """The chroma frames of a block whose analysis frames are `keep` (blocks start on the chroma grid)."""
    first = keep.start // rhythm.CHROMA_STEP
    return slice(first, first + -(-(keep.stop - keep.start) // rhythm.CHROMA_STEP))
