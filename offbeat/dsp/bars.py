"""Bar grid: each beat's place in the bar and the meter, from the downbeat network and chord changes. Numpy in,
numpy out.

Every beat gets its position in the bar from the downbeat activation by a small Viterbi pass over the
beats (states: meter 3 or 4, position in bar). madmom's own bar tracker only changes meter at bar lines;
in a mix the bar phase itself jumps where the next track comes in, so here a jump to any position is
allowed at a small cost.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

METERS = (4, 3)
PHASE_JUMP_PROB = 1e-5  # per beat: a new track may start its bars anywhere
METER_CHANGE_PROB = 1e-4  # per beat
DOWNBEAT_WEIGHT = 0.5  # how strongly the downbeat activation speaks against the bar's regularity
HARMONY_WEIGHT = 1.0  # how strongly a chord change (in standard deviations of its neighbours') marks a downbeat
HARMONY_SPAN_BEATS = 2  # the chroma of this many beats before and after a beat is compared
HARMONY_CONTEXT_BEATS = 16  # chord changes are weighed against those of this many beats around them


def chroma_at_beats(chroma: np.ndarray, times: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """(beats, 12) chroma summed over each beat's interval (from it to the next beat); `times` are the chroma
    frames' centres."""
    held = np.searchsorted(beats, times, side="right") - 1  # the beat whose interval holds each frame
    inside = (held >= 0) & (held < len(beats))
    out = np.zeros((len(beats), chroma.shape[1]))
    np.add.at(out, held[inside], chroma[inside])
    return out


def chord_changes(beat_chroma: np.ndarray) -> np.ndarray:
    """How much more the harmony changes at each beat than at the beats around it, in standard deviations:
    1 - cosine of the chroma of the HARMONY_SPAN_BEATS beats before and after it, less the mean of that over
    HARMONY_CONTEXT_BEATS beats, over their standard deviation."""
    n, span = len(beat_chroma), HARMONY_SPAN_BEATS
    if n < 2:
        return np.zeros(n)
    pitches = beat_chroma.shape[1]
    padded = np.concatenate([np.repeat(beat_chroma[:1], span, axis=0), beat_chroma, np.zeros((span, pitches))])
    sums = np.concatenate([np.zeros((1, pitches)), np.cumsum(padded, axis=0)])
    k = np.arange(n) + span
    before, after = sums[k] - sums[k - span], sums[k + span] - sums[k]
    norms = np.linalg.norm(before, axis=1) * np.linalg.norm(after, axis=1)
    change = 1 - np.sum(before * after, axis=1) / np.maximum(norms, 1e-9)
    mean = uniform_filter1d(change, HARMONY_CONTEXT_BEATS, mode="nearest")
    spread = np.sqrt(np.maximum(uniform_filter1d(change**2, HARMONY_CONTEXT_BEATS, mode="nearest") - mean**2, 1e-6))
    return (change - mean) / spread


def bar_positions(downbeat: np.ndarray, chord_change: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(position in bar from 1, meter) of each beat, from each beat's downbeat activation (0..1) and, where
    given, how much the harmony changes there (`chord_changes`).

    Chords change on bar lines, and the downbeat network misses that in whole songs: alone, it may start the bars
    on the second beat through a whole song, or a beat or two off through a track. So a chord change counts
    towards a downbeat too, by HARMONY_WEIGHT: weighed much more, the harmony overrules the network on songs
    where it was right; compared over spans (HARMONY_SPAN_BEATS) of one or three beats, it marks bar lines less
    well."""
    states = [(m, p) for m in METERS for p in range(m)]
    n, k = len(downbeat), len(states)
    if n == 0:
        return np.zeros(0, int), np.zeros(0, int)
    d = np.clip(downbeat, 1e-4, 1 - 1e-4)
    is_down = np.array([p == 0 for _, p in states])
    emit = DOWNBEAT_WEIGHT * np.where(is_down[None, :], np.log(d)[:, None], np.log1p(-d)[:, None])
    if chord_change is not None:
        emit += HARMONY_WEIGHT * np.where(is_down[None, :], chord_change[:, None], 0.0)
    trans = np.full((k, k), np.log(PHASE_JUMP_PROB / k))
    for i, (m, p) in enumerate(states):
        for j, (m2, p2) in enumerate(states):
            if p2 == (p + 1) % m2 and (m2 == m or p2 == 0):
                trans[i, j] = np.log(1 - PHASE_JUMP_PROB) if m2 == m else np.log(METER_CHANGE_PROB)
    score = emit[0] + np.log(1.0 / k)
    back = np.zeros((n, k), dtype=np.int16)
    for t in range(1, n):
        total = score[:, None] + trans
        back[t] = total.argmax(axis=0)
        score = total.max(axis=0) + emit[t]
    path = np.zeros(n, dtype=int)
    path[-1] = int(score.argmax())
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    meter = np.array([states[s][0] for s in path])
    position = np.array([states[s][1] for s in path]) + 1
    return position, meter
