"""Track boundaries inside a mix, from per-second features. Numpy in, numpy out.

DJs blend tracks over 8-60 s, so a boundary is a region. Each second is described by its harmonic
(chroma), timbral (brightness, level), rhythmic (onset density) and tempo content; the novelty at a
second is the distance between the mean description of the stretch before it and of the stretch after
it. A crossfade makes that distance peak at its middle, and the peak's width tells the transition's
extent. Running means keep this linear in the length of the mix (no full self-similarity matrix).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks, peak_widths

from offbeat.dsp import levels

NOVELTY_WINDOW_SEC = 20  # seconds compared on each side of a candidate boundary (capped by min track / 2)
PEAK_PROMINENCE = 0.35  # of the novelty's robust range: smaller peaks are changes within a track
MAX_TRANSITION_SEC = 60.0


@dataclass(frozen=True)
class Segments:
    starts: np.ndarray  # track starts, seconds from the start of the file
    ends: np.ndarray
    transition_starts: np.ndarray  # (len - 1,) transition window before each boundary between tracks
    transition_ends: np.ndarray


def per_second(values: np.ndarray, frame_rate: float, seconds: int) -> np.ndarray:
    """Mean of frame-rate values (frames, ...) over each second."""
    index = np.minimum((np.arange(len(values)) / frame_rate).astype(int), seconds - 1)
    flat = values.reshape(len(values), -1).astype(np.float64)
    sums = np.zeros((seconds, flat.shape[1]))
    np.add.at(sums, index, flat)
    counts = np.bincount(index, minlength=seconds)[:, None]
    return sums / np.maximum(counts, 1)


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
    columns = []
    for group in groups:
        group = group.reshape(len(group), -1)
        z = (group - group.mean(axis=0)) / np.maximum(group.std(axis=0), 1e-9)
        columns.append(z / np.sqrt(group.shape[1]))
    return np.concatenate(columns, axis=1)


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


def find_boundaries(
    curve: np.ndarray, music_start: float, music_end: float, min_track_sec: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boundary, transition start, transition end) seconds of each track change: peaks of the per-second
    novelty `curve`."""
    lo, hi = int(np.ceil(music_start + min_track_sec / 2)), int(music_end - min_track_sec / 2)
    if hi <= lo:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    # Only the music counts: the jump from leading silence into the first track is no boundary, and
    # must not hide a real one nearby from the minimum-distance rule.
    inside = np.zeros(len(curve), dtype=bool)
    inside[lo : hi + 1] = True
    curve = np.where(inside, curve, 0.0)
    span = np.percentile(curve[inside], 95) - np.percentile(curve[inside], 5)
    peaks, _ = find_peaks(curve, distance=max(1, int(min_track_sec)), prominence=PEAK_PROMINENCE * span)
    if len(peaks) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    _, _, left, right = peak_widths(curve, peaks, rel_height=0.5)
    half = np.minimum((right - left) / 2, MAX_TRANSITION_SEC / 2)
    centres = peaks + 0.5  # the value of second k describes [k, k + 1)
    return centres.astype(float), centres - half, centres + half


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
