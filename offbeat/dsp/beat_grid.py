"""Beat grid from the beat activations. Numpy in, numpy out. (The bar grid is in `offbeat.dsp.bars`.)

Beats come from madmom's dynamic Bayesian network tracker (Krebs, Böck & Widmer 2015), which infers
tempo and phase jointly from the network's beat activation and so settles on the metrical level the
network was trained to mark. Its Viterbi pass keeps a back-pointer per frame and tempo state (about 5000
states at 100 frames/s), so a whole mix cannot go through it at once: it runs over overlapping windows,
and the windows are joined in their overlaps where both agree. Windows also let the tempo of a mix change
from track to track, which a single pass would resist.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from scipy.ndimage import median_filter

from offbeat.dsp.beat_activation import FPS, import_madmom

WINDOW_SEC = 40.0  # frames per tracker window
OVERLAP_SEC = 10.0  # windows overlap by this much; they are joined in its middle
MIN_BPM, MAX_BPM = 55.0, 215.0  # madmom's defaults: covers downtempo to drum and bass
MIDPOINT_RATIO = 0.35  # a skipped beat is this strong relative to the tracked ones: double the tempo
PHASE_WINDOW_BEATS = 32  # beats over which the backbeat's crack is weighed on and between the beats
PHASE_RATIO = 0.85  # crack on the beats below this share of the crack between them: the grid is half a beat off
MIN_SHIFT_BEATS = 8  # shorter stretches that look half a beat off are left as they are
STEADY_TOLERANCE = 0.12  # a beat interval this close (share) to the median of its neighbours' is steady
STEADY_CONTEXT_BEATS = 17  # intervals in that median
MIN_STEADY_BEATS = 8  # a run of steady intervals at least this long anchors the grid (see `bridged`)
BRIDGE_MAX_BEATS = 64  # the longest stretch re-gridded between two anchors
BRIDGE_TEMPO_TOLERANCE = 0.03  # two anchors of one track agree on the beat interval within this share...
BRIDGE_PHASE_TOLERANCE = 0.25  # ...and lie a whole number of beats apart, within this share of a beat
BRIDGE_FIT_BEATS = 16  # beats at an anchor's end that give its beat interval
BRIDGE_LOOKAHEAD = 3  # anchors after one that are tried as its partner


@cache
def _tracker() -> Any:
    import_madmom()
    from madmom.features.beats import DBNBeatTrackingProcessor

    return DBNBeatTrackingProcessor(min_bpm=MIN_BPM, max_bpm=MAX_BPM, fps=FPS)


def beat_strength(act: np.ndarray) -> np.ndarray:
    """A frame's probability of being any beat (beat or downbeat) from the network's two outputs."""
    return np.clip(act[:, 0] + act[:, 1], 0.0, 1.0)


def track_beats(strength: np.ndarray, first_sec: float = 0.0, last_sec: float | None = None) -> np.ndarray:
    """Beat times (s, frame i at i / FPS) between first_sec and last_sec, windowed and joined."""
    n = len(strength)
    first = max(0, int(first_sec * FPS))
    last = n if last_sec is None else min(n, int(np.ceil(last_sec * FPS)))
    window, step = int(WINDOW_SEC * FPS), int((WINDOW_SEC - OVERLAP_SEC) * FPS)
    beats = np.zeros(0)
    start = first
    while last - start > 0:
        stop = min(last, start + window)
        found = _tracker()(strength[start:stop].astype(np.float64)) + start / FPS
        beats = _join(beats, _at_beat_level(found, strength), start / FPS + OVERLAP_SEC / 2)
        if stop >= last:
            break
        start += step
    return beats


def _join(before: np.ndarray, after: np.ndarray, middle: float) -> np.ndarray:
    """Beats of two overlapping windows as one sequence. The switch is made at a beat both windows
    found (within 50 ms), the one nearest the overlap's middle; without one, at the middle, dropping
    a beat that would come sooner than half a beat after the last one kept."""
    if len(before) == 0 or len(after) == 0:
        return after if len(before) == 0 else before
    nearest = np.abs(before[:, None] - after[None, :])
    i, j = np.nonzero(nearest <= 0.05)
    if len(i):
        best = int(np.argmin(np.abs(before[i] - middle)))
        return np.concatenate([before[: i[best] + 1], after[j[best] + 1 :]])
    head = before[before < middle]
    gap = 0.5 * float(np.median(np.diff(after))) if len(after) > 1 else 0.0
    tail = after[after >= max(middle, (head[-1] + gap) if len(head) else -np.inf)]
    return np.concatenate([head, tail])


def _at_beat_level(beats: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """The beats, with the midpoints added where the network marks those as strongly as the beats.

    The tracker sometimes settles on half the tempo of fast rock and metal (95 for 190 BPM): its
    path through every other beat scores nearly as well. The network itself tells the levels apart:
    between two tracked beats at the right level it is quiet (a fifth of the beats' activation or less
    on every song checked), while at half tempo the skipped beat is marked almost as strongly."""
    if len(beats) < 4 or 120.0 / float(np.median(np.diff(beats))) > MAX_BPM:
        return beats
    mids = (beats[1:] + beats[:-1]) / 2
    if np.mean(at_beats(strength, mids)) < MIDPOINT_RATIO * np.mean(at_beats(strength, beats)):
        return beats
    return np.sort(np.concatenate([beats, mids]))


def backbeat_phase(beats: np.ndarray, crack: np.ndarray, fps: float, offset: float) -> np.ndarray:
    """The beats, moved half a beat where the snare or clap sits between them instead of on them.

    With loud off-beat hats or a kick on the "and" (jungle, trap, UK garage, deep house), the network marks the
    off-beats about as readily as the beats, and then its tracker may follow the wrong phase for a whole track:
    a good share of a track's steady beats can sit half a beat off, and nothing in the network's output
    tells. The backbeat does: in nearly every style a snare or clap lands on beats (2 and 4, or 3 in half-time),
    never between them, and its crack (`crack`: onset envelope of 1.5-5 kHz, frame i at i / fps + offset) stands
    above the kick and below the hats. Where the crack over PHASE_WINDOW_BEATS beats is clearly stronger between
    the beats, for at least MIN_SHIFT_BEATS beats in a row, those beats become the midpoints. PHASE_RATIO and
    PHASE_WINDOW_BEATS weigh fixing off-phase tracks against moving beats that were right: a stricter ratio or a
    shorter window moves more of real songs' right beats, a looser one fixes fewer off-phase tracks."""
    if len(beats) < MIN_SHIFT_BEATS + 1 or len(crack) == 0:
        return beats
    mids = (beats[1:] + beats[:-1]) / 2
    window = np.ones(PHASE_WINDOW_BEATS)
    on = np.convolve(_at_frames(crack, beats[:-1], fps, offset), window, "same")
    off = np.convolve(_at_frames(crack, mids, fps, offset), window, "same")
    shift = on < PHASE_RATIO * off
    # runs of equal decisions: [start, stop) of each
    edges = np.flatnonzero(np.diff(shift.astype(np.int8))) + 1
    starts, stops = np.concatenate([[0], edges]), np.concatenate([edges, [len(shift)]])
    kept, moved = [], False
    for a, b in zip(starts, stops, strict=True):
        moved = bool(shift[a]) and b - a >= MIN_SHIFT_BEATS
        kept.append(mids[a:b] if moved else beats[a:b])
    if not moved:  # the last beat has no midpoint after it: it ends an unmoved stretch only
        kept.append(beats[-1:])
    return np.concatenate(kept)


def steady_runs(beats: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) beat index of each run of at least MIN_STEADY_BEATS intervals that keep the local beat
    interval (within STEADY_TOLERANCE of the median of the STEADY_CONTEXT_BEATS around them)."""
    intervals = np.diff(beats)
    if len(intervals) < MIN_STEADY_BEATS:
        return []
    local = median_filter(intervals, size=STEADY_CONTEXT_BEATS, mode="nearest")
    steady = np.abs(intervals - local) <= STEADY_TOLERANCE * local
    edges = np.flatnonzero(np.diff(np.concatenate([[0], steady.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= MIN_STEADY_BEATS]


def bridged(beats: np.ndarray) -> np.ndarray:
    """The beats, evenly re-gridded between two steady runs that agree on tempo and phase.

    The tracker decides each window on its own, and in some of them it follows the off-beat hats or, through a
    breakdown without drums, drifts away and back: a stretch of up to half a minute half a beat off, between
    stretches that are right. A track keeps its tempo and its phase; so where a steady run is followed, within
    BRIDGE_MAX_BEATS, by another with the same beat interval a whole number of beats later, the beats between
    them are that whole number of even steps. A new track that comes in at another tempo or phase is no
    partner, and stays as found; one beat-matched to the last keeps its phase, so the grid is right across the
    blend as well. The result is not delicate: tempo and phase tolerances of half or twice as much, or half or
    twice BRIDGE_MAX_BEATS, change it little."""
    runs = steady_runs(beats)
    bridges = []
    i = 0
    while i < len(runs) - 1:
        first, last = runs[i]
        interval = float(np.median(np.diff(beats[max(first, last - BRIDGE_FIT_BEATS) : last + 1])))
        partner = None
        for j in range(i + 1, min(len(runs), i + 1 + BRIDGE_LOOKAHEAD)):
            start, stop = runs[j]
            theirs = float(np.median(np.diff(beats[start : min(stop, start + BRIDGE_FIT_BEATS) + 1])))
            if abs(interval - theirs) > BRIDGE_TEMPO_TOLERANCE * min(interval, theirs):
                continue
            steps = float(beats[start] - beats[last]) / ((interval + theirs) / 2)
            whole = round(steps)
            if whole < 1 or whole > BRIDGE_MAX_BEATS:
                break
            if abs(steps - whole) <= BRIDGE_PHASE_TOLERANCE:
                partner = (j, whole)
                break
        if partner is None:
            i += 1
            continue
        j, whole = partner
        bridges.append((last, runs[j][0], np.linspace(beats[last], beats[runs[j][0]], whole + 1)))
        i = j
    if not bridges:
        return beats
    pieces, kept_from = [], 0
    for last, start, grid in bridges:
        pieces += [beats[kept_from:last], grid[:-1]]
        kept_from = start
    pieces.append(beats[kept_from:])
    return np.concatenate(pieces)


def _at_frames(values: np.ndarray, times: np.ndarray, fps: float, offset: float, radius: int = 2) -> np.ndarray:
    """The largest value within `radius` frames of each time, for frame i at i / fps + offset."""
    idx = np.round((times - offset) * fps).astype(int)
    frames = np.clip(idx[:, None] + np.arange(-radius, radius + 1)[None, :], 0, max(0, len(values) - 1))
    return values[frames].max(axis=1) if len(values) else np.zeros(len(times))


def at_beats(values: np.ndarray, beats: np.ndarray, radius: int = 2) -> np.ndarray:
    """The largest activation within `radius` frames of each beat."""
    return _at_frames(values, beats, FPS, 0.0, radius)


def bpm_of(beats: np.ndarray) -> float | None:
    """The tempo of a stretch of beats: 60 / the median beat interval (robust to a skipped beat)."""
    if len(beats) < 4:
        return None
    return float(60.0 / np.median(np.diff(beats)))
