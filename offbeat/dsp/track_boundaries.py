"""Where one track of a mix ends and the next begins: optimal partition of a self-similarity matrix.
Numpy in, numpy out.

Looking for local change (a novelty peak) finds every chorus, drop and breakdown, because a song's own
sections differ more from each other over 20 s than two tracks of one genre do. What sets tracks apart is
that a song stays *like itself* for its whole length: its sections repeat, and it keeps its tempo, key and
sound palette, while the next track is unlike all of it. So the mix is cut into the partition whose parts
are, on average, most self-similar (kernel change-point detection, Arlot, Celisse & Harchaoui 2019),
with a fixed price per cut: a cut pays off only where the audio on both sides differs more than a song
differs from itself.

Each stretch of `FRAME_SEC` seconds is described by its sound (mel-band shape), harmony (chroma), level
and tempo; similarity is a Gaussian kernel of the distance between descriptions. The optimal partition
is found by dynamic programming over cut positions, with parts between `min_sec` and `MAX_TRACK_SEC`
long (O(frames x longest part), a fraction of a second for three hours). ruptures (the field's
change-point library) implements the same criterion, but only over the full matrix and without a bound on
part length, which costs minutes and gigabytes on a three-hour mix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import median_filter, uniform_filter1d

from offbeat.dsp import series

FRAME_SEC = 2.0  # seconds per described stretch (the partition's resolution)
SMOOTH_SEC = 8.0  # descriptions are averaged over this long, so a single bar's fill does not count
KEY_SEC = 32.0  # the harmony averaged over this long is the track's key, apart from its chord changes
TONAL_QUANTILE = 0.25  # this share of seconds, whose chroma peaks least, take their neighbours' chroma
MIN_TRANSITION_SEC = 16.0  # transition windows are at least this wide (8 bars at 120 BPM)
MAX_FRAMES = 2400  # 80 minutes at FRAME_SEC; longer mixes are described in longer stretches
MAX_TRACK_SEC = 900.0  # no track in a mix is longer than 15 minutes
PENALTY = 4.5  # price of a cut, in frames of self-similarity it must gain (see `partition`)
SAME_HARMONY = 0.5  # chroma distance (1 - correlation of mean chroma) under which two parts share their harmony
RETURNING = 0.3  # contrast (see `contrast`) under which a part comes back after the next one
RETURNS_ITSELF = 0.1  # contrast under which it comes back as itself: a song's breakdown, whatever its harmony
SAME_KEY = 0.4  # key distance (see `join_one_key_and_tempo`) under which two parts are in one key
SAME_TEMPO = 0.02  # octaves (about 1.4 %) under which two parts' median tempi are one tempo
MIXED_SHARE = 0.25  # a stretch is in the blend while its likeness to both sides differs by less than this share
ABRUPT_SEC = 8.0  # seconds each side of a cut whose change counts as sudden (see `abruptness`)
GRADUAL_SEC = (24.0, 40.0)  # seconds before and after a cut between which the whole change is measured
CONFIDENT_ABRUPTNESS = 1.415  # abruptness of a cut as likely true as not (see `confidence`)
CONFIDENCE_SLOPE = 1.418  # how fast a cut's confidence falls as it grows more abrupt
UNKNOWN_BPM = 120.0  # the tempo of a mix where no stretch has one (only its log differences count)

WEIGHTS = {"timbre": 1.0, "chroma": 1.0, "level": 0.5, "tempo": 1.0, "key": 0.25}
APART_ONLY = ("key",)  # groups that can only tell parts apart (see `similarity`)


@dataclass(frozen=True)
class Description:
    """Per-second descriptions of the mix; each row is one second."""

    mel_db: np.ndarray  # (seconds, bands) mean log-mel power
    chroma: np.ndarray  # (seconds, 12)
    bpm: np.ndarray  # (seconds,) local tempo, nan where unknown


def standardized(grouped: dict[str, np.ndarray]) -> np.ndarray:
    """The groups (see `groups`) side by side, each column standardized and each group weighted by WEIGHTS."""
    return np.concatenate([series.standardized(group, WEIGHTS[name]) for name, group in grouped.items()], axis=1)


def groups(desc: Description, frame_sec: float = FRAME_SEC) -> dict[str, np.ndarray]:
    """Each group of the description (WEIGHTS' names) as (frames, dims), smoothed over SMOOTH_SEC and averaged
    over `frame_sec`-second stretches; chroma sums to 1 per second before that."""
    step = max(1, round(frame_sec))
    smooth = max(1, round(SMOOTH_SEC))
    mel = desc.mel_db.astype(np.float64)
    level = mel.mean(axis=1, keepdims=True)
    shape = mel - level  # the spectrum's shape, apart from how loud it is
    chroma = desc.chroma / np.maximum(desc.chroma.sum(axis=1, keepdims=True), 1e-9)
    # Two tracks of one tempo and style (jungle into drum and bass at 170) differ most in key; over SMOOTH_SEC a
    # song's own chord changes hide that, over KEY_SEC they average out.
    key = uniform_filter1d(chroma, size=max(1, round(KEY_SEC)), axis=0, mode="nearest")
    # Where the harmony is unclear it takes the value of the nearest clear second, so a drum-only intro or
    # a noisy riser does not look like another track.
    tonal = chroma.max(axis=1)
    chroma = series.carried(chroma, tonal >= np.quantile(tonal, TONAL_QUANTILE) if len(tonal) else tonal > 0)
    bpm = desc.bpm.astype(np.float64)
    known = np.isfinite(bpm) & (bpm > 0)
    log_bpm = np.log2(series.carried(np.where(known, bpm, UNKNOWN_BPM), known))
    log_bpm = median_filter(log_bpm, size=smooth * 2 + 1, mode="nearest")
    out = {}
    described = {"timbre": shape, "chroma": chroma, "level": level, "tempo": log_bpm[:, None], "key": key}
    for name, group in described.items():
        if name != "key":
            group = uniform_filter1d(group, size=smooth, axis=0, mode="nearest")
        n = len(group) // step * step
        out[name] = group[:n].reshape(-1, step, group.shape[1]).mean(axis=1) if n else group[:0]
    return out


def similarity(x: np.ndarray, apart: np.ndarray | None = None) -> np.ndarray:
    """Gaussian-kernel self-similarity of `x`, bandwidth from its median pairwise distance; the distances in
    `apart` (same rows) are added after the bandwidth is set, so they only lower the similarity of rows that
    differ there. Added to `x` instead, the key made two tracks that share it (DJs mix in one key) look alike:
    the wider bandwidth hid their other differences; a larger weight cuts real songs at their own key changes."""

    def squared_distances(v: np.ndarray) -> np.ndarray:
        sq = np.sum(v * v, axis=1)
        return np.maximum(sq[:, None] + sq[None, :] - 2 * v @ v.T, 0.0)

    d2 = squared_distances(x)
    scale = float(np.median(d2[np.triu_indices(len(x), 1)])) if len(x) > 1 else 1.0
    if apart is not None:
        d2 += squared_distances(apart)
    return np.exp(-d2 / max(scale, 1e-9)).astype(np.float64)


def partition(sim: np.ndarray, min_len: int, max_len: int, penalty: float) -> np.ndarray:
    """Frame indices where parts start (excluding 0), minimizing the sum over parts of
    (length - sum of within-part similarity / length) plus `penalty` per part."""
    n = len(sim)
    if n == 0:
        return np.zeros(0, int)
    integral = np.zeros((n + 1, n + 1))
    integral[1:, 1:] = sim.cumsum(axis=0).cumsum(axis=1)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    back = np.zeros(n + 1, dtype=int)
    for end in range(1, n + 1):
        starts = np.arange(max(0, end - max_len), end - min_len + 1)
        if len(starts) == 0 and end == n:
            starts = np.array([0])  # a mix shorter than min_len is one part
        if len(starts) == 0:
            # No part is shorter than min_len, the first one included: a first part of any length gave long mixes
            # a cut 16-20 s into their intro.
            continue
        length = end - starts
        inside = integral[end, end] - integral[starts, end] - integral[end, starts] + integral[starts, starts]
        cost = best[starts] + length - inside / length + penalty
        i = int(np.argmin(cost))
        best[end], back[end] = cost[i], starts[i]
    cuts = []
    end = n
    while end > 0:
        end = back[end]
        if end > 0:
            cuts.append(end)
    return np.array(sorted(cuts), dtype=int)


@dataclass(frozen=True)
class Boundaries:
    """The track changes found in a mix, one entry per boundary, in time order."""

    times: np.ndarray  # seconds of the file where the next track takes over
    transition_starts: np.ndarray  # the blend around each boundary, seconds (see `transition_windows`)
    transition_ends: np.ndarray
    confidence: np.ndarray  # 0-1, how likely each boundary is a true track change (see `confidence`)


def find_boundaries(desc: Description, music_start: float, music_end: float, min_track_sec: float) -> Boundaries:
    """The track changes inside the music. The module's constants are read at call time, so a sweep
    (`bench/boundaries.py`) can set them."""
    lo, hi = int(np.floor(music_start)), int(np.ceil(music_end))
    part = Description(desc.mel_db[lo:hi], desc.chroma[lo:hi], desc.bpm[lo:hi])
    # At most MAX_FRAMES stretches, so the matrices stay small (46 MB) however long the mix; the price of a
    # cut is in frames of FRAME_SEC, so it shrinks with longer frames.
    frame_sec = float(max(FRAME_SEC, np.ceil((hi - lo) / MAX_FRAMES)))
    grouped = groups(part, frame_sec)
    x = standardized({name: g for name, g in grouped.items() if name not in APART_ONLY})
    if len(x) < 2:
        return Boundaries(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))
    sim = similarity(x, standardized({name: grouped[name] for name in APART_ONLY}))
    min_len = max(1, int(min_track_sec / frame_sec))
    max_len = max(min_len + 1, int(MAX_TRACK_SEC / frame_sec))
    cuts = partition(sim, min_len, max_len, PENALTY * FRAME_SEC / frame_sec)
    cuts = join_returning_sections(sim, grouped["chroma"], cuts)
    cuts = join_one_key_and_tempo(grouped["key"], grouped["tempo"][:, 0], cuts)
    left, right = _transitions(sim, cuts)
    # The boundary is the cut itself: where the partition found the audio turn from like the track before to like
    # the one after. The middle of the blend window is further from the crossfade's middle, because that window
    # is lopsided (a fade-in under a loud outgoing track looks like the outgoing track for longer).
    bounds = (lo + cuts * frame_sec).astype(float)
    starts, ends = transition_windows(bounds, lo + left * frame_sec, lo + right * frame_sec)
    return Boundaries(bounds, starts, ends, confidence(x, cuts, frame_sec))


def transition_windows(bounds: np.ndarray, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) seconds of the transition around each boundary, from the blend window [left, right] found
    around it (`_transitions`).

    The transition is symmetric around the boundary, as a crossfade is around its middle: as far to each side as
    the blend window reaches on its shorter side (the window is lopsided: a fade-in under a loud outgoing track
    looks like that track for longer), and at least MIN_TRANSITION_SEC in all (a blend is rarely shorter).
    Keeping it out of each track's steady part keeps the neighbour's fade out of its loudness and vocals. The
    longer side would run far into a track that is like its neighbour and leave a steady part of a few seconds,
    often a quiet intro or breakdown, with its loudness off by several LU; a fixed width would cut long blends
    short."""
    half = np.maximum(np.minimum(bounds - left, right - bounds), MIN_TRANSITION_SEC / 2)
    return bounds - half, bounds + half


def contrast(sim: np.ndarray, a: tuple[int, int], b: tuple[int, int]) -> float:
    """How unlike each other two parts (frame ranges) are, relative to how like themselves they are: 0 when
    their cross-similarity equals their own, towards 1 when they share nothing."""
    across = sim[a[0] : a[1], b[0] : b[1]].mean()
    own = np.sqrt(sim[a[0] : a[1], a[0] : a[1]].mean() * sim[b[0] : b[1], b[0] : b[1]].mean())
    return float(1 - across / max(own, 1e-12))


def confidence(x: np.ndarray, cuts: np.ndarray, frame_sec: float) -> np.ndarray:
    """How sure each cut is, 0-1: a logistic in its `abruptness`, whose midpoint and slope (CONFIDENT_ABRUPTNESS,
    CONFIDENCE_SLOPE) are fitted to the cuts found on the tune corpora, a cut being true when a track changes
    within 10 s of it. A DJ's blend turns one track into the next over many bars, a song's new section begins at
    once; of the evidence at a cut, this told them apart on both the tune and the test corpora (figures in the
    README), the key distance and the parts' contrast did not once the partition and its joins had chosen."""
    ratios = np.array([abruptness(x, int(c), frame_sec) for c in cuts])
    return 1.0 / (1.0 + np.exp(CONFIDENCE_SLOPE * (ratios - CONFIDENT_ABRUPTNESS)))


def abruptness(x: np.ndarray, cut: int, frame_sec: float) -> float:
    """How much of the change across `cut` happens at once: the distance between the mean descriptions (rows of
    `x`) of the ABRUPT_SEC before and after it, over the distance between the stretches GRADUAL_SEC before and
    after it. Near 0 for a slow blend, 1 or more for a change at a bar line."""
    near = max(1, round(ABRUPT_SEC / frame_sec))
    lo, hi = (max(1, round(sec / frame_sec)) for sec in GRADUAL_SEC)
    before, after = x[max(0, cut - near) : cut].mean(axis=0), x[cut : cut + near].mean(axis=0)
    far_before = x[max(0, cut - hi) : max(1, cut - lo)].mean(axis=0)
    far_after = x[min(len(x) - 1, cut + lo) : cut + hi].mean(axis=0)
    return float(np.linalg.norm(after - before) / max(float(np.linalg.norm(far_after - far_before)), 1e-9))


def chroma_distance(chroma: np.ndarray, a: tuple[int, int], b: tuple[int, int]) -> float:
    """1 - Pearson correlation of two parts' mean chroma: near 0 for one key and harmony, 1 for unrelated ones."""
    x, y = (chroma[p[0] : p[1]].mean(axis=0) for p in (a, b))
    x, y = x - x.mean(), y - y.mean()
    return float(1 - x @ y / max(np.linalg.norm(x) * np.linalg.norm(y), 1e-12))


def join_returning_sections(sim: np.ndarray, chroma: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Cuts left after removing those inside one song: where the parts on both sides share their harmony and are
    alike, or one comes back across the next cut (A B A: the part after B is like A, or the part before A like B).
    That is a breakdown or chorus of a song, which repeats its sections in one key; a new track neither returns
    nor keeps the harmony. Removed one at a time, most song-like first, since each removal joins parts and
    changes the evidence of its neighbours. Either sign alone cuts true boundaries: tracks of one style look alike
    two apart, and DJs mix tracks in compatible keys.

    A part that comes back nearly unchanged (contrast under RETURNS_ITSELF) is joined whatever the harmony of
    what lies between: a breakdown of pads or a riser has other chroma than the song around it, but no track
    of a mix comes back as itself after another; a looser bound joins tracks of one style."""
    cuts = [int(c) for c in cuts]
    while cuts:
        edges = [0, *cuts, len(sim)]
        scores = []
        for k in range(len(cuts)):
            a, b = (edges[k], edges[k + 1]), (edges[k + 1], edges[k + 2])
            around = []
            if k + 3 < len(edges):
                around.append(contrast(sim, a, (edges[k + 2], edges[k + 3])))
            if k > 0:
                around.append(contrast(sim, (edges[k - 1], edges[k]), b))
            around.append(contrast(sim, a, b))
            returning = min(around)
            harmony = chroma_distance(chroma, a, b)
            song = (returning < RETURNING and harmony < SAME_HARMONY) or returning < RETURNS_ITSELF
            scores.append(returning + harmony if song else np.inf)
        best = int(np.argmin(scores))
        if not np.isfinite(scores[best]):
            break
        del cuts[best]
    return np.array(cuts, dtype=int)


def join_one_key_and_tempo(key: np.ndarray, log_bpm: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Cuts left after removing those between parts in one key (chroma over KEY_SEC, `chroma_distance` under
    SAME_KEY) and at one tempo (median log2 BPM within SAME_TEMPO): a song's breakdown or new section keeps both,
    while the next track of a mix changes at least one, unless the DJ blends two tracks of one key at one
    tempo, which this joins. Removed one at a time, nearest keys first, since each removal changes the parts
    its neighbours are compared with. Game music, whose pieces change sections and sound far more than their
    key, was cut at every section before (figures in the README)."""
    cuts = [int(c) for c in cuts]
    while cuts:
        edges = [0, *cuts, len(key)]
        distances = []
        for k in range(len(cuts)):
            a, b = (edges[k], edges[k + 1]), (edges[k + 1], edges[k + 2])
            tempo = abs(np.median(log_bpm[a[0] : a[1]]) - np.median(log_bpm[b[0] : b[1]]))
            distances.append(chroma_distance(key, a, b) if tempo < SAME_TEMPO else np.inf)
        nearest = int(np.argmin(distances))
        if distances[nearest] >= SAME_KEY:
            break
        del cuts[nearest]
    return np.array(cuts, dtype=int)


def _transitions(sim: np.ndarray, cuts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames around each cut that are about as like the part before as the part after: the blend."""
    edges = np.concatenate([[0], cuts, [len(sim)]])
    left, right = [], []
    for k, cut in enumerate(cuts):
        a, b, c = edges[k], cut, edges[k + 2]
        to_before = sim[:, a:b].mean(axis=1)
        to_after = sim[:, b:c].mean(axis=1)
        mixed = np.abs(to_before - to_after) < MIXED_SHARE * np.maximum(to_before, to_after)
        lo = b
        while lo - 1 > a and mixed[lo - 1]:
            lo -= 1
        hi = b
        while hi < c - 1 and mixed[hi]:
            hi += 1
        left.append(min(lo, b))
        right.append(max(hi, b))
    return np.array(left, float), np.array(right, float)
