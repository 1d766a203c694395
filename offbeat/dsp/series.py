"""Small helpers on time series that several signal modules share: means over fixed steps, gaps filled from the
nearest good row, standardized columns. Numpy in, numpy out.

A module of its own, with no tunable constants, so a stage that uses one of them does not take in the constants
(and the cache key) of whichever signal module happened to define it first.
"""

from __future__ import annotations

import numpy as np


def means(values: np.ndarray, frame_rate: float, step_sec: float = 1.0, count: int | None = None) -> np.ndarray:
    """Mean of frame-rate values (frames, ...) over each `step_sec`, as (steps, columns); `count` steps (the last
    one takes every frame after it), or as many as the frames reach."""
    if count is None:
        count = int(np.ceil(len(values) / frame_rate / step_sec))
    index = np.minimum((np.arange(len(values)) / frame_rate / step_sec).astype(int), max(count - 1, 0))
    flat = values.reshape(len(values), -1).astype(np.float64)
    sums = np.zeros((count, flat.shape[1]))
    np.add.at(sums, index, flat)
    return sums / np.maximum(np.bincount(index, minlength=count), 1)[:, None]


def carried(values: np.ndarray, good: np.ndarray) -> np.ndarray:
    """`values` with each row where `good` is False replaced by the nearest good row (the earlier on a tie)."""
    idx = np.flatnonzero(good)
    if len(idx) == 0 or good.all():
        return values
    t = np.arange(len(values))
    right = np.clip(np.searchsorted(idx, t), 0, len(idx) - 1)
    left = np.clip(right - 1, 0, len(idx) - 1)
    pick = np.where(np.abs(idx[left] - t) <= np.abs(idx[right] - t), idx[left], idx[right])
    return values[pick]


def filled(curve: np.ndarray, default: float = 120.0) -> np.ndarray:
    """A per-second tempo curve with its gaps (NaN: silence, no beat) filled from the nearest known second,
    for what needs some tempo everywhere (the drum grid follows it); `default` where no second has one."""
    known = np.isfinite(curve)
    if not known.any():
        return np.full(len(curve), default)
    return carried(curve, known).astype(np.float64)


def standardized(group: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """Each column of (rows, dims) `group` as z-scores, the whole group scaled by `weight` / sqrt(dims), so that a
    group weighs `weight` in a distance however many columns it has."""
    z = (group - group.mean(axis=0)) / np.maximum(group.std(axis=0), 1e-9)
    return z * weight / np.sqrt(group.shape[1])
