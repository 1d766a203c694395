"""Levels: the one place for dB conversion and RMS, so every stage measures loudness the same way.

Why a module of its own: trim, beats, segmentation, the per-track features and the UI picture all turn
amplitudes into decibels or frames into RMS; each used to carry its own copy, with its own floor.
"""

from __future__ import annotations

import numpy as np

AMPLITUDE_FLOOR = 1e-10  # -200 dBFS: stands in for digital silence, so log10 never sees zero


def db(amplitude: np.ndarray, floor: float = AMPLITUDE_FLOOR) -> np.ndarray:
    """Amplitude (RMS or peak, 1.0 = full scale) to dBFS, clamped at `floor` (keeps the input's dtype)."""
    return 20 * np.log10(np.maximum(amplitude, floor))


def amplitude(level_db: float) -> float:
    """dBFS to linear amplitude (the inverse of `db`), e.g. a silence threshold as an RMS floor."""
    return float(10 ** (level_db / 20))


def rms(x: np.ndarray) -> float:
    """Root mean square of all values."""
    return float(np.sqrt(np.mean(x**2)))


def frame_rms(x: np.ndarray, frame: int, dtype: type | None = None) -> np.ndarray:
    """RMS of consecutive non-overlapping frames of a 1-D signal; a partial last frame is zero-padded.

    `dtype`: precision of the squares and their mean (float64 where tiny levels near a threshold matter)."""
    if len(x) == 0:
        return np.zeros(0, dtype=dtype or np.float32)
    padded = np.pad(x, (0, -len(x) % frame))
    return np.sqrt(np.mean(np.square(padded.reshape(-1, frame), dtype=dtype), axis=1))


def voiced_seconds(frame_rms_values: np.ndarray, frame_rate: float, seconds: int, threshold_db: float) -> np.ndarray:
    """Which whole seconds hold at least one frame louder than `threshold_db` (frames past the end count for the
    last second)."""
    rms_db = db(frame_rms_values)
    frame_second = np.minimum((np.arange(len(rms_db)) / frame_rate).astype(int), seconds - 1)
    loudest = np.full(seconds, -np.inf)
    np.maximum.at(loudest, frame_second, rms_db)
    return loudest > threshold_db
