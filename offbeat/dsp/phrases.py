"""Phrases and sections of a track from its bar grid: the cue points a DJ sets by hand. Numpy in, numpy out.

Dance music is built in phrases of 8, 16 and 32 bars counted from the track's first downbeat, and its
sections (intro, breakdown, drop, outro) change on phrase lines. Each 8-bar phrase is rated by its level
and by how strongly its beats are marked (drums); a phrase well below the track's loudest ones in both is
"low" (an intro, a breakdown, an outro, by where it sits), and the first full phrase after a low one in
the middle of the track is a drop.
"""

from __future__ import annotations

import numpy as np

PHRASE_BARS = (8, 16, 32)
LOW_LEVEL_DB = 4.0  # a phrase this far below the track's loud phrases (75th percentile) is low in level
LOW_DRUMS = 0.6  # ... or with beats marked less than this share of the loud phrases' beats


def phrase_starts(downbeats: np.ndarray, bars: int) -> np.ndarray:
    """Every `bars`-th downbeat, from the first."""
    return downbeats[::bars]


def sections(
    downbeats: np.ndarray, end: float, level_db: np.ndarray, drums: np.ndarray
) -> list[tuple[str, float, float]]:
    """(label, start, end) of each run of 8-bar phrases with one label. `level_db` and `drums` hold one
    value per phrase (mean level, mean beat strength)."""
    starts = phrase_starts(downbeats, 8)
    if len(starts) == 0:
        return []
    bounds = np.append(starts, end)
    loud_level = np.percentile(level_db, 75)
    loud_drums = np.percentile(drums, 75)
    low = (level_db < loud_level - LOW_LEVEL_DB) | (drums < LOW_DRUMS * loud_drums)
    full = np.flatnonzero(~low)
    labels = []
    for i, is_low in enumerate(low):
        if len(full) == 0:
            labels.append("breakdown")
        elif i < full[0]:
            labels.append("intro")
        elif i > full[-1]:
            labels.append("outro")
        elif is_low:
            labels.append("breakdown")
        else:
            labels.append("drop" if labels and labels[-1] == "breakdown" else "main")
    runs: list[tuple[str, float, float]] = []
    for i, label in enumerate(labels):
        if runs and runs[-1][0] == label and label != "drop":
            runs[-1] = (label, runs[-1][1], float(bounds[i + 1]))
        else:
            runs.append((label, float(bounds[i]), float(bounds[i + 1])))
    return runs


def per_phrase(values: np.ndarray, times: np.ndarray, starts: np.ndarray, end: float) -> np.ndarray:
    """Mean of `values` (sampled at `times`) within each phrase [starts[i], starts[i + 1])."""
    bounds = np.append(starts, end)
    out = np.zeros(len(starts))
    for i in range(len(starts)):
        inside = (times >= bounds[i]) & (times < bounds[i + 1])
        out[i] = float(values[inside].mean()) if inside.any() else 0.0
    return out
