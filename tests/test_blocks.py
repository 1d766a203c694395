"""Block streaming over stored arrays: every read is bounded, and blocks put back together equal the whole."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from offbeat.dsp import rhythm
from offbeat.pipeline.blocks import FRAMES_PER_BLOCK, blocks, chroma_slice, frame_blocks, read_padded


def _stored(data: np.ndarray, chunk: int) -> zarr.Array:
    array = zarr.create_array(store={}, shape=data.shape, chunks=(chunk, *data.shape[1:]), dtype=data.dtype)
    array[...] = data
    return array


def test_read_padded_zero_fills_outside_the_array() -> None:
    data = np.arange(1, 11, dtype=np.float32)
    np.testing.assert_array_equal(read_padded(data, -3, 2), [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(read_padded(data, 8, 13), [9, 10, 0, 0, 0])
    np.testing.assert_array_equal(read_padded(data, 12, 14), [0, 0])
    stereo = np.ones((4, 2), np.float32)
    assert read_padded(stereo, -1, 5).shape == (6, 2)


@pytest.mark.parametrize(("start", "stop", "step"), [(0, 1000, None), (5.7, 733.2, None), (100, 900, 64)])
def test_blocks_cover_the_range_a_chunk_at_a_time(start: float, stop: float, step: int | None) -> None:
    data = np.random.default_rng(1).standard_normal((1000, 2)).astype(np.float32)
    array = _stored(data, 128)
    pieces = list(blocks(array, start, stop, step))
    assert all(len(piece) <= (step or 128) for piece in pieces)
    np.testing.assert_array_equal(np.concatenate(pieces), data[int(start) : int(stop)])


def test_frame_blocks_cover_every_frame_once_with_context() -> None:
    samples = (FRAMES_PER_BLOCK * 2 + 300) * rhythm.HOP
    y = np.arange(samples, dtype=np.float32)
    total = rhythm.frame_count(samples)
    kept = 0
    for first_block, (block, keep) in enumerate(frame_blocks(y)):
        assert keep.start == rhythm.BLOCK_CONTEXT
        frames = keep.stop - keep.start
        # Each block reads its own frames plus BLOCK_CONTEXT frames each side (zeros before the start).
        assert len(block) == (frames + 2 * rhythm.BLOCK_CONTEXT - 1) * rhythm.HOP + rhythm.N_FFT
        first_sample = (first_block * FRAMES_PER_BLOCK - rhythm.BLOCK_CONTEXT) * rhythm.HOP
        expected = np.clip(np.arange(first_sample, first_sample + len(block)), -1, samples)
        np.testing.assert_array_equal(block, np.where((expected < 0) | (expected >= samples), 0, expected))
        kept += frames
    assert kept == total


def test_chroma_slices_tile_the_chroma_frames() -> None:
    total = FRAMES_PER_BLOCK * 3 + 77
    covered = []
    for first in range(0, total, FRAMES_PER_BLOCK):
        last = min(total, first + FRAMES_PER_BLOCK)
        part = chroma_slice(slice(first, last))
        covered.extend(range(part.start, part.stop))
    assert covered == list(range(-(-total // rhythm.CHROMA_STEP)))
