"""Channel layouts: any width to stereo, stereo to mono (numpy in, numpy out). No constants, so a stage that
only folds channels adds nothing to its cache key."""

from __future__ import annotations

import numpy as np


def to_stereo(block: np.ndarray) -> np.ndarray:
    """(frames, channels) of any width to (frames, 2): mono is duplicated, wider layouts are folded
    evenly (even-indexed channels left, odd right), since libsndfile does not report speaker layouts."""
    if block.ndim == 1:
        block = block[:, None]
    channels = block.shape[1]
    if channels == 2:
        return block
    if channels == 1:
        return np.repeat(block, 2, axis=1)
    return np.stack([block[:, 0::2].mean(axis=1), block[:, 1::2].mean(axis=1)], axis=1)


def to_mono(stereo: np.ndarray) -> np.ndarray:
    """(frames, 2) to (frames,): the mean of the channels (as a sum of two columns: `mean(axis=1)` over
    the short rows of a (frames, 2) array is several times slower)."""
    return 0.5 * (stereo[:, 0] + stereo[:, 1])
