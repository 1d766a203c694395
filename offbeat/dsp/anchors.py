"""Where a mix plays tracks the library knows, before any boundary is found: the whole mix searched window by
window, windows on one reference's timeline joined into stretches, and the boundary between two stretches of
different references placed where the first's matches give way to the second's.

The mix's query quads are looked up once (`fingerprint.lookup`); each window votes over its own matches
(`matching.vote`). A window's match is a line, reference time = offset + tempo ratio x mix time; two windows whose
lines agree (same reference, predicted reference times within SAME_TIMELINE_SEC) are one play, even with
unidentified windows between them (a breakdown with few peaks). Between two plays the boundary is the time that
best splits the matches fitting the first play's line (before it) from those fitting the second's (after it): in
a blend both tracks sound and both have matches, and the split falls where the outgoing track's give way.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from offbeat.dsp import matching
from offbeat.dsp.fingerprint import Index, Quads, concat, fingerprint, lookup

WINDOW_SEC = 20.0  # each window of the whole-mix search
HOP_SEC = 10.0  # between window starts
SAME_TIMELINE_SEC = 2.0  # two windows' lines predicting reference times this close are one play
FIT_SEC = 0.2  # a match fits a play's line when its reference time is within this of the line's
MIN_WINDOWS = 2  # a play needs this many identified windows (one alone may be a chance match or a blend's tail)
BLOCK_SEC = 60.0  # the mix is fingerprinted this much at a time (memory), each block with MARGIN_SEC each side
MARGIN_SEC = 4.0  # longer than a query box, so quads rooted near a block's edge are whole
NOT_TUNING = ("BLOCK_SEC",)
DENSITY_SEC = 4.0  # a play's matches are counted over this long when placing a handover
REFERENCE_SEC = 20.0  # and compared with their density over this long where the play is heard alone
STEP_SEC = 0.25  # handovers are placed on a grid this fine
HEARD_SHARE = 0.25  # a play is heard while its matches reach this share of their density where it plays alone
MIN_COVER = 0.5  # a play names a detected track when it covers at least this share of the track's steady part
ADJACENT_SEC = 15.0  # two plays this close hand over to each other; further apart, a track nobody knows may lie between


@dataclass(frozen=True)
class WindowMatch:
    """One window of the mix and the library track it matched (a `matching.Identification`), if any."""

    start: float
    end: float
    found: matching.Identification | None


@dataclass(frozen=True)
class Play:
    """A stretch of the mix on one reference's timeline: reference time = offset_sec + tempo_ratio x mix time."""

    track: int  # the library index's track id
    start: float  # mix seconds: the first identified window's start
    end: float  # and the last one's end
    tempo_ratio: float
    pitch_ratio: float
    offset_sec: float
    confidence: float  # the best window's
    windows: int  # identified windows on this timeline

    def reference_at(self, mix_sec: float) -> float:
        """The reference's own time heard at `mix_sec`."""
        return self.offset_sec + self.tempo_ratio * mix_sec


def windows(
    lo: float, hi: float, window_sec: float = WINDOW_SEC, hop_sec: float = HOP_SEC
) -> list[tuple[float, float]]:
    """Windows of `window_sec` every `hop_sec` over [lo, hi); the last one ends at `hi` (one window when shorter)."""
    if hi - lo <= window_sec:
        return [(lo, hi)]
    starts = np.arange(lo, hi - window_sec, hop_sec)
    return [(float(s), float(s) + window_sec) for s in starts] + [(hi - window_sec, hi)]


def mix_quads(mono: Any, sr: int, lo: float, hi: float) -> Quads:
    """The query quads of [lo, hi) seconds of `mono` (an array read in slices), on the mix's clock, computed
    block by block: each block's quads rooted inside it, from its audio and MARGIN_SEC each side."""
    parts = []
    for start in np.arange(lo, hi, BLOCK_SEC):
        end = min(start + BLOCK_SEC, hi)
        a, b = int(max(lo, start - MARGIN_SEC) * sr), int(min(hi, end + MARGIN_SEC) * sr)
        if b - a < sr:
            continue
        found = fingerprint(np.asarray(mono[a:b], np.float32), sr)
        root = found.root_sec + np.float32(a / sr)
        keep = (root >= start) & (root < end)
        parts.append(
            Quads(found.hashes[keep], root[keep], found.root_hz[keep], found.width_sec[keep], found.height_hz[keep])
        )
    return concat(parts)


@dataclass(frozen=True)
class MixMatches:
    """The mix's quads and their matches in the index (`lookup`'s pairs), in the order of the mix's time."""

    index: Index
    query: Quads
    q: np.ndarray
    i: np.ndarray

    @classmethod
    def of(cls, index: Index, query: Quads) -> MixMatches:
        q, i = lookup(index, query)
        order = np.argsort(query.root_sec[q], kind="stable")
        return cls(index, query, q[order], i[order])


def search(matches: MixMatches, spans: list[tuple[float, float]]) -> list[WindowMatch]:
    """Each span of the mix matched against the index: one vote per span over the matches of its own quads."""
    q, i, q_sec = matches.q, matches.i, matches.query.root_sec[matches.q]
    found = []
    for start, end in spans:
        a, b = np.searchsorted(q_sec, start, "left"), np.searchsorted(q_sec, end, "left")
        match = matching.vote(matches.index, matches.query, q[a:b], i[a:b]) if b > a else None
        found.append(WindowMatch(start, end, match))
    return found


def _same_timeline(play: Play, found: matching.Identification, at: float, tolerance: float) -> bool:
    predicted = found.offset_sec + found.tempo_ratio * at
    return found.track == play.track and abs(play.reference_at(at) - predicted) <= tolerance


def plays(
    matches: list[WindowMatch],
    min_confidence: float,
    same_timeline_sec: float = SAME_TIMELINE_SEC,
    min_windows: int = MIN_WINDOWS,
) -> list[Play]:
    """The mix's plays of library tracks, in order: confident windows on one timeline joined (windows between
    them that matched nothing or another track weakly do not break a play; a confident window of another track
    does). Plays of fewer than `min_windows` windows (or than there are, in a mix that short) are dropped."""
    found: list[Play] = []
    current: Play | None = None
    for window in matches:
        match = window.found
        if match is None or match.confidence < min_confidence:
            continue
        middle = (window.start + window.end) / 2
        if current is not None and _same_timeline(current, match, middle, same_timeline_sec):
            current = Play(
                current.track,
                current.start,
                window.end,
                current.tempo_ratio,
                current.pitch_ratio,
                current.offset_sec,
                max(current.confidence, match.confidence),
                current.windows + 1,
            )
            continue
        if current is not None:
            found.append(current)
        current = Play(
            match.track,
            window.start,
            window.end,
            match.tempo_ratio,
            match.pitch_ratio,
            match.offset_sec,
            match.confidence,
            1,
        )
    if current is not None:
        found.append(current)
    # a mix too short for min_windows windows (one track analyzed alone) needs them all
    return [p for p in found if p.windows >= min(min_windows, len(matches))]


def fitting(matches: MixMatches, play: Play, fit_sec: float = FIT_SEC) -> np.ndarray:
    """Mix times of the matches that lie on `play`'s line."""
    mine = matches.index.track[matches.i] == play.track
    q_sec = matches.query.root_sec[matches.q[mine]].astype(np.float64)
    r_sec = matches.index.quads.root_sec[matches.i[mine]].astype(np.float64)
    return q_sec[np.abs(r_sec - play.reference_at(q_sec)) <= fit_sec]


def split_time(before: np.ndarray, after: np.ndarray, lo: float, hi: float) -> float:
    """The time in [lo, hi] where the events of `before` (matches on the outgoing play's line) give way to those
    of `after` (the incoming one's): the middle between the last time the outgoing play is still heard and the
    first time the incoming one is. A play is heard while its matches over DENSITY_SEC reach HEARD_SHARE of their
    density where it plays alone (the REFERENCE_SEC before `lo`, after `hi`). Mid-blend, where both tracks are as
    loud, their peaks make quads of both and neither matches: the middle of that silence is the blend's."""
    grid = np.arange(lo, hi + STEP_SEC / 2, STEP_SEC)

    def heard(times: np.ndarray, alone: tuple[float, float]) -> np.ndarray:
        times = np.sort(times)
        count = np.searchsorted(times, grid + DENSITY_SEC / 2) - np.searchsorted(times, grid - DENSITY_SEC / 2)
        solo = np.searchsorted(times, alone[1]) - np.searchsorted(times, alone[0])
        reference = max(solo / (alone[1] - alone[0]), 1.0 / DENSITY_SEC)
        return count / DENSITY_SEC >= HEARD_SHARE * reference

    outgoing = np.flatnonzero(heard(before, (lo - REFERENCE_SEC, lo)))
    incoming = np.flatnonzero(heard(after, (hi, hi + REFERENCE_SEC)))
    last = grid[outgoing[-1]] if len(outgoing) else lo
    first = grid[incoming[0]] if len(incoming) else hi
    return float((last + first) / 2)


def boundaries(matches: MixMatches, found: list[Play], fit_sec: float = FIT_SEC) -> list[float | None]:
    """Where each play gives way to the next, one entry per pair of neighbours: searched from half a window
    before the first play's evidence ends to half a window after the second's begins; None where the two are
    more than ADJACENT_SEC apart (what lies between is for the boundary finder to cut)."""
    times: list[float | None] = []
    for a, b in itertools.pairwise(found):
        if b.start - a.end > ADJACENT_SEC:
            times.append(None)
            continue
        lo = max(a.start, min(a.end, b.start) - WINDOW_SEC / 2)
        hi = min(b.end, max(a.end, b.start) + WINDOW_SEC / 2)
        times.append(split_time(fitting(matches, a, fit_sec), fitting(matches, b, fit_sec), lo, hi))
    return times


def interior(play: Play, window_sec: float = WINDOW_SEC) -> tuple[float, float]:
    """The part of a play no track change can lie in: from its first window's middle to its last one's (its
    first and last windows may reach into the blends around it)."""
    return play.start + window_sec / 2, play.end - window_sec / 2


def named_by(spans: list[tuple[float, float]], lo: float, hi: float) -> int | None:
    """Which play (by index; `spans`: each play's (start, end)) names the track whose steady part is [lo, hi]: the
    one covering most of it, when that covers at least MIN_COVER of it; None otherwise."""
    cover = [max(0.0, min(hi, end) - max(lo, start)) for start, end in spans]
    if not cover:
        return None
    best = int(np.argmax(cover))
    return best if cover[best] >= MIN_COVER * (hi - lo) else None
