"""Cue hints: the tracks a DJ's cue list names, snapped to the boundaries the novelty curve found."""

from __future__ import annotations

import numpy as np

from offbeat.dsp import segmentation


def tracks_from_cues(
    cues: list[tuple[str, float]],
    found: np.ndarray,
    windows: tuple[np.ndarray, np.ndarray],
    music_start: float,
    music_end: float,
    tolerance: float,
) -> tuple[segmentation.Segments, list[str | None]]:
    """One track per cue (the first cue starts the music); a cue within `tolerance` of a detected boundary moves
    there and takes its transition window, one kept as given has none (zero width). Returns the segments and
    the cue titles, in time order."""
    ordered = sorted(cues, key=lambda cue: cue[1])
    times = np.array([t for _, t in ordered[1:]], dtype=float)
    bounds = segmentation.snap_cues(times, found, tolerance)
    match = {float(b): (float(lo), float(hi)) for b, lo, hi in zip(found, *windows, strict=True)}
    spans = np.array([match.get(float(b), (b, b)) for b in bounds]).reshape(-1, 2)
    segments = segmentation.segments_from_boundaries(bounds, (spans[:, 0], spans[:, 1]), music_start, music_end)
    return segments, [title for title, _ in ordered][: len(segments.starts)]
