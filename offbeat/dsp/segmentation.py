"""Per-second descriptions of a mix, the novelty curve drawn in its picture, and tracks from boundaries.
Numpy in, numpy out.

Each second is described by its harmonic (chroma), timbral (brightness, level), rhythmic (onset density)
and tempo content; the novelty at a second is the distance between the mean description of the stretch
before it and of the stretch after it (running means: linear in the length of the mix). The boundaries
themselves come from `offbeat.dsp.track_boundaries`: novelty peaks also mark every chorus and drop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offbeat.dsp import levels
from offbeat.dsp.series import standardized

NOVELTY_WINDOW_SEC = 20  # seconds compared on each side of a candidate boundary (capped by min track / 2)


@dataclass(frozen=True)
class Segments:
    starts: np.ndarray  # track starts, seconds from the start of the file
    ends: np.ndarray
    transition_starts: np.ndarray  # (len - 1,) transition window before each boundary between tracks
    transition_ends: np.ndarray


def describe(
    chroma: np.ndarray, centroid: np.ndarray, rms: np.ndarray, onset: np.ndarray, tempo: np.ndarray
) -> np.ndarray:
    """(seconds, dims) standardized description; every group (harmonic, timbral, rhythmic, tempo) weighs alike."""
    chroma = chroma / np.maximum(chroma.sum(axis=1, keepdims=True), 1e-9)
    groups = [
        chroma,
        np.log(np.maximum(centroid, 1.0)),
        levels.db(rms, floor=1e-6),
        np.log(np.maximum(onset, 1e-6)),
        np.log2(tempo)[:, None],
    ]
    return np.concatenate([standardized(group.reshape(len(group), -1)) for group in groups], axis=1)


def novelty(features: np.ndarray, window: int) -> np.ndarray:
    """Distance between the mean of the `window` seconds before and after each second."""
    n = len(features)
    csum = np.vstack([np.zeros((1, features.shape[1])), np.cumsum(features, axis=0)])
    t = np.arange(n)
    lo, hi = np.maximum(t - window, 0), np.minimum(t + window, n)
    before = (csum[t] - csum[lo]) / np.maximum(t - lo, 1)[:, None]
    after = (csum[hi] - csum[t]) / np.maximum(hi - t, 1)[:, None]
    curve = np.linalg.norm(after - before, axis=1)
    full = (t - lo == window) & (hi - t == window)
    return np.where(full, curve, curve * np.minimum(t - lo, hi - t) / window)  # damp the edges


def novelty_window(min_track_sec: float) -> int:
    """Seconds compared on each side: shorter for short tracks, so two boundaries never share a window."""
    return int(max(4, min(NOVELTY_WINDOW_SEC, min_track_sec / 2)))


def snap_cues(cues: np.ndarray, detected: np.ndarray, tolerance: float) -> np.ndarray:
    """Each cue moved to the nearest detected boundary within `tolerance`, else kept as it is."""
    if len(detected) == 0:
        return cues.astype(float)
    nearest = detected[np.abs(detected[None, :] - cues[:, None]).argmin(axis=1)]
    return np.where(np.abs(nearest - cues) <= tolerance, nearest, cues).astype(float)


def segments_from_boundaries(
    boundaries: np.ndarray, windows: tuple[np.ndarray, np.ndarray], music_start: float, music_end: float
) -> Segments:
    """Tracks between consecutive boundaries: the first starts with the music, the last ends with it."""
    inside = (boundaries > music_start) & (boundaries < music_end)
    bounds = boundaries[inside]
    order = np.argsort(bounds)
    bounds = bounds[order]
    t_start, t_end = windows[0][inside][order], windows[1][inside][order]
    return Segments(
        starts=np.concatenate([[music_start], bounds]),
        ends=np.concatenate([bounds, [music_end]]),
        transition_starts=np.maximum(t_start, music_start),
        transition_ends=np.minimum(t_end, music_end),
    )
