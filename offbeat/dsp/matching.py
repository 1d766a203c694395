"""Which library track an excerpt comes from, and how it is played, from the matches of its quads in an index
(`offbeat.dsp.fingerprint`). Numpy in, numpy out.

Matching needs no search over speeds: a matched quad's box, compared with the reference's, *measures* the tempo
ratio (reference box width over query box width) and the pitch ratio (query box height over reference box
height), and with them where in the reference the excerpt starts. Votes over (track, tempo ratio, pitch ratio,
start) pile up for the true track and scatter for chance matches; the winning clusters' matches are then fitted
by least squares (reference time against query time, reference frequency against query frequency), which pins the
ratios far more tightly than any one box does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from offbeat.dsp.fingerprint import MAX_RATIO, Index, Quads, concat, lookup

RATIO_BIN = 0.03  # width of a vote's tempo and pitch ratio bins, in natural log (3 %)
OFFSET_BIN_SEC = 0.5  # width of a vote's start-time bin
VOTE_WINDOW_SEC = 10.0  # votes are binned per window of the query this long (see `identify`)
CANDIDATES = 64  # this many of the fullest vote bins are fitted (see `identify`)
FIT_GROW_SEC = (0.5, 0.2)  # a line fitted to one bin's matches takes in the track's matches this close, then refits
FIT_TIME_SEC = 0.07  # a match fits the track's line when its reference time is within this of it
FIT_FREQ_SHARE = 0.02  # and its reference frequency is within this share of the fitted one
CONFIDENCE_PRIOR = 10.0  # votes every track is assumed to get by chance (keeps a 3-vote win unconfident)


@dataclass(frozen=True)
class Identification:
    """The track an excerpt comes from and how it was played."""

    track: int  # id of the best track
    confidence: float  # 0..1: the winner's consistent votes against the runner-up's and chance
    votes: int  # query quads whose match fits the winner's line
    runner_up_votes: int  # the same for the best other track
    tempo_ratio: float  # excerpt speed over reference speed (1.05: played 5 % faster)
    pitch_ratio: float  # excerpt frequencies over reference frequencies (1.0 with key lock)
    offset_sec: float  # where in the reference the excerpt starts


def identify_until_sure(index: Index, windows: Iterable[Quads], sure: float) -> tuple[Identification | None, int]:
    """The track a run of windows of one excerpt (their quads on one clock, made as they are asked for) comes from,
    voting over the windows so far and stopping at the first after which the confidence reaches `sure`: (the
    match, windows used). Each window is looked up once, so the whole costs what one `identify` of the windows
    used would; a track identified from its first window costs that window alone."""
    parts: list[Quads] = []
    q_all: list[np.ndarray] = []
    i_all: list[np.ndarray] = []
    rows, match = 0, None
    for parts_used, window in enumerate(windows, start=1):
        q, i = lookup(index, window)
        parts.append(window)
        q_all.append(q + rows)
        i_all.append(i)
        rows += len(window.root_sec)
        match = vote(index, concat(parts), np.concatenate(q_all), np.concatenate(i_all))
        if match is not None and match.confidence >= sure:
            return match, parts_used
    return match, len(parts)


def identify(index: Index, query: Quads) -> Identification | None:
    """The track `query` (an excerpt's quads, from `fingerprint`) comes from, or None when no quad matches
    (`lookup`, then `vote`)."""
    return vote(index, query, *lookup(index, query))


def vote(index: Index, query: Quads, q: np.ndarray, i: np.ndarray) -> Identification | None:
    """The track the matches (query row `q`, index row `i`: `lookup`'s pairs) of `query` point at, or None.

    Each match votes for (track, tempo ratio, pitch ratio, window of the query, reference time of the window's
    start) as its boxes measure them. The CANDIDATES fullest bins are each fitted: starting from the matches
    near the bin, reference root time against query root time (a line whose slope is the tempo ratio and whose
    intercept is the start) and reference root frequency against query root frequency (a line through 0 Hz
    whose slope is the pitch ratio), refitted on all the track's matches near the line, narrowing down to
    FIT_TIME_SEC and FIT_FREQ_SHARE. A track's votes are the query quads that fit its best line."""
    ref = index.quads
    log_tempo = np.log(ref.width_sec[i].astype(np.float64) / query.width_sec[q])
    log_pitch = np.log(query.height_hz[q] / ref.height_hz[i].astype(np.float64))
    plausible = (np.abs(log_tempo) < np.log(MAX_RATIO)) & (np.abs(log_pitch) < np.log(MAX_RATIO))
    q, i, log_tempo, log_pitch = q[plausible], i[plausible], log_tempo[plausible], log_pitch[plausible]
    if len(q) == 0:
        return None
    track = index.track[i].astype(np.int64)
    q_sec = query.root_sec[q].astype(np.float64)
    r_sec = ref.root_sec[i].astype(np.float64)
    window = np.floor(q_sec / VOTE_WINDOW_SEC)
    # the reference time of the window's start: a box's tempo is a few % off under a phase vocoder, which
    # moves this by a few % of at most VOTE_WINDOW_SEC, not of the whole query
    offset = r_sec - np.exp(log_tempo) * (q_sec - window * VOTE_WINDOW_SEC)
    t_bin = np.round(log_tempo / RATIO_BIN).astype(np.int64)
    p_bin = np.round(log_pitch / RATIO_BIN).astype(np.int64)
    o_bin = np.round(offset / OFFSET_BIN_SEC).astype(np.int64)
    span = 2 * int(np.ceil(np.log(MAX_RATIO) / RATIO_BIN)) + 1
    cell = ((track * span + t_bin + span // 2) * span + p_bin + span // 2) * (1 << 20) + (o_bin + (1 << 19))
    cell = cell * 4096 + window.astype(np.int64)
    _, first, counts = np.unique(cell, return_index=True, return_counts=True)
    top = first[np.argsort(-counts, kind="stable")[:CANDIDATES]]
    q_hz, r_hz = query.root_hz[q].astype(np.float64), ref.root_hz[i].astype(np.float64)
    best: dict[int, tuple[int, float, float, float]] = {}
    by_track = np.argsort(track, kind="stable")
    sorted_track = track[by_track]
    for j in top:
        tid = int(track[j])
        mine = by_track[np.searchsorted(sorted_track, tid, "left") : np.searchsorted(sorted_track, tid, "right")]
        seed = (
            (np.abs(t_bin[mine] - t_bin[j]) <= 1)
            & (np.abs(p_bin[mine] - p_bin[j]) <= 1)
            & (np.abs(o_bin[mine] - o_bin[j]) <= 1)
            & (window[mine] == window[j])
        )
        fit = _fit(q_sec[mine], r_sec[mine], q_hz[mine], r_hz[mine], seed)
        if fit is not None and fit[0] > best.get(tid, (0,))[0]:
            best[tid] = fit
    if not best:
        return None
    ranked = sorted(best.items(), key=lambda kv: -kv[1][0])
    tid, (votes, t_ratio, p_ratio, start) = ranked[0]
    second = ranked[1][1][0] if len(ranked) > 1 else 0
    confidence = (votes - second) / (votes + CONFIDENCE_PRIOR)
    return Identification(tid, float(max(confidence, 0.0)), votes, second, t_ratio, p_ratio, start)


def _fit(
    q_sec: np.ndarray, r_sec: np.ndarray, q_hz: np.ndarray, r_hz: np.ndarray, seed: np.ndarray
) -> tuple[int, float, float, float] | None:
    """(distinct query roots that fit, tempo ratio, pitch ratio, start) of one track's matches: a line fitted
    to the `seed` matches, then refitted to all the matches within FIT_GROW_SEC of it, then within FIT_TIME_SEC
    (see `identify`); None when fewer than two fit or when the fitted ratios are beyond MAX_RATIO."""
    keep = seed
    for tol in (*FIT_GROW_SEC, FIT_TIME_SEC, FIT_TIME_SEC):
        if keep.sum() < 2 or np.ptp(q_sec[keep]) == 0:
            return None
        slope, start = np.polyfit(q_sec[keep], r_sec[keep], 1)
        pitch = float(np.sum(q_hz[keep] * r_hz[keep]) / np.sum(r_hz[keep] ** 2))
        keep = (np.abs(r_sec - (slope * q_sec + start)) <= tol) & (np.abs(q_hz - pitch * r_hz) <= FIT_FREQ_SHARE * q_hz)
    if keep.sum() < 2 or max(abs(np.log(max(slope, 1e-9))), abs(np.log(max(pitch, 1e-9)))) > np.log(MAX_RATIO):
        return None  # a line through chance matches, at a speed no DJ plays
    return len(np.unique(q_sec[keep])), float(slope), pitch, float(start)
