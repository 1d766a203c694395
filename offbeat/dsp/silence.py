"""Silence trimming: frame levels of the mono analysis copy and where the music starts and ends."""

from __future__ import annotations

import numpy as np

from offbeat.dsp import levels

TRIM_FRAME = 512  # samples at the analysis rate per level frame (23 ms at 22.05 kHz)


def frame_levels_db(mono: np.ndarray, frame: int = TRIM_FRAME) -> np.ndarray:
    """RMS level in dBFS of consecutive non-overlapping frames (a partial last frame counts)."""
    return levels.db(levels.frame_rms(mono, frame, dtype=np.float64)).astype(np.float32)


def silence_bounds(
    levels_db: np.ndarray, threshold_db: float, frame_sec: float, duration_sec: float
) -> tuple[float, float] | None:
    """(leading silence, trailing silence) in seconds, or None when every frame is silent."""
    loud = np.flatnonzero(levels_db > threshold_db)
    if len(loud) == 0:
        return None
    start = float(loud[0]) * frame_sec
    end = min(duration_sec, float(loud[-1] + 1) * frame_sec)
    return round(start, 3), round(max(0.0, duration_sec - end), 3)
