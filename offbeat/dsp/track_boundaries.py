"""Where one track of a mix ends and the next begins: optimal partition of a self-similarity matrix.
Numpy in, numpy out.

Looking for local change (a novelty peak) finds every chorus, drop and breakdown, because a song's own
sections differ more from each other over 20 s than two tracks of one genre do. What sets tracks apart is
that a song stays *like itself* for its whole length: its sections repeat, and it keeps its tempo, key and
sound palette, while the next track is unlike all of it. So the mix is cut into the partition whose parts
are, on average, most self-similar (kernel change-point detection, Arlot, Celisse & Harchaoui 2019),
with a fixed price per cut: a cut pays off only where the audio on both sides differs more than a song
differs from itself.

The evidence is declared in one table, `CUES`: each cue is read from one array of the per-second description
(the `description` stage's entry), turned into per-second values by its transform and averaged over stretches
of `Config.frame_sec` seconds: today the sound (mel-band shape), harmony (chroma), level and tempo, whose
distances make a Gaussian kernel, and the key, which only lowers it; a precomputed kernel (an embedding's
cosine) multiplies it. The optimal partition is found by dynamic programming over cut positions, with parts
between `min_track_sec` and `max_track_sec` long (O(frames x longest part), a fraction of a second for three
hours). ruptures (the field's change-point library) implements the same criterion, but only over the full
matrix and without a bound on part length, which costs minutes and gigabytes on a three-hour mix. Cuts inside
one song are then removed by the rules `Config.merges` lists, in turn. Every tunable is a field of `Config`,
passed explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy.ndimage import median_filter, uniform_filter1d

from offbeat.dsp import boundary_confidence, boundary_merges, series


@dataclass(frozen=True)
class Cue:
    """One kind of evidence the partition weighs, read from one array of the per-second description.

    `role`: `similar`, its distances set the Gaussian kernel's bandwidth and its similarity; `apart`, its
    distances are added after the bandwidth is set, so it can only tell stretches apart (see `similarity`);
    `kernel`, a similarity matrix of its own (the cosine of its stretches, see `cosine_kernel`) that multiplies
    the Gaussian one, raised to `weight`. `transform` names the function of `TRANSFORMS` that turns the
    per-second `source` rows into the cue's (seconds, dims) values before they are averaged over stretches."""

    name: str
    source: str
    transform: str
    role: str
    weight: float


@dataclass(frozen=True)
class Merge:
    """A rule that removes cuts inside one song, after the partition: `rule` names a function of
    `offbeat.dsp.boundary_merges.RULES`, `cues` the cues whose stretches it reads, in its order."""

    rule: str
    cues: tuple[str, ...]


SAME_TRACK = "same_track"  # the cue whose stretches are the embedding a cut's confidence reads

# The evidence, in the order its columns are laid side by side (the order matters to the last float bit).
CUES = (
    Cue("timbre", "mel_db", "shape", "similar", 1.0),  # the spectrum's shape, apart from how loud it is
    Cue("chroma", "chroma", "tonal_chroma", "similar", 1.0),  # the harmony, unclear seconds taking clear ones'
    Cue("level", "mel_db", "level", "similar", 0.5),
    Cue("tempo", "bpm", "log_tempo", "similar", 1.0),
    # Two tracks of one tempo and style (jungle into drum and bass at 170) differ most in key; it only lowers
    # similarity, since DJs mix in compatible keys.
    Cue("key", "chroma", "key", "apart", 0.25),
    # The learned same-track embedding (`offbeat.dsp.same_track`): its cosine, squared, multiplies the similarity.
    Cue(SAME_TRACK, "embedding", "frames", "kernel", 2.0),
)
MERGES = (Merge("returning_sections", ("chroma",)), Merge("one_key_and_tempo", ("key", "tempo")))


@dataclass(frozen=True)
class Config:
    """Every tunable of the boundary finder, passed explicitly: a sweep is `dataclasses.replace(CONFIG, ...)`."""

    min_track_sec: float = 40.0  # no part is shorter (the engine's `OFFBEAT_MIN_TRACK_SEC`)
    frame_sec: float = 2.0  # seconds per described stretch (the partition's resolution)
    smooth_sec: float = 8.0  # descriptions are averaged over this long, so a single bar's fill does not count
    key_sec: float = 32.0  # the harmony averaged over this long is the track's key, apart from its chord changes
    tonal_quantile: float = 0.25  # this share of seconds, whose chroma peaks least, take their neighbours' chroma
    min_transition_sec: float = 16.0  # transition windows are at least this wide (8 bars at 120 BPM)
    max_frames: int = 2400  # 80 minutes at frame_sec; longer mixes are described in longer stretches
    max_track_sec: float = 900.0  # no track in a mix is longer than 15 minutes
    penalty: float = 4.5  # price of a cut, in frames of self-similarity it must gain (see `partition`)
    same_harmony: float = 0.5  # chroma distance (1 - correlation of mean chroma) under which parts share harmony
    returning: float = 0.3  # contrast under which a part comes back after the next one (see `boundary_merges.contrast`)
    returns_itself: float = 0.1  # contrast under which it comes back as itself: a song's breakdown
    same_key: float = 0.4  # key distance (`boundary_merges.chroma_distance`) under which two parts are in one key
    same_tempo: float = 0.02  # octaves (about 1.4 %) under which two parts' median tempi are one tempo
    mixed_share: float = 0.25  # a stretch is in the blend while its likeness to both sides differs by less
    abrupt_sec: float = (
        8.0  # seconds each side of a cut whose change counts as sudden (see `boundary_confidence.abruptness`)
    )
    gradual_sec: tuple[float, float] = (24.0, 40.0)  # seconds before and after a cut: the whole change
    # A cut's confidence is a logistic over the same-track embedding's distance across it and its abruptness (see
    # `boundary_confidence`): (intercept, per unit of distance, per unit of abruptness), fitted on the tune corpora.
    confidence_weights: tuple[float, float, float] = (1.003, 1.802, -1.66)
    confidence_span_sec: float = 30.0  # seconds each side of a cut whose embeddings are compared
    min_confidence: float = 0.4  # a cut less sure than this is taken for a section change inside one track
    unknown_bpm: float = 120.0  # the tempo of a mix where no stretch has one (only its log differences count)
    handover_sec: float = 10.0  # a cut this near a handover of the library's plays is that handover
    cues: tuple[Cue, ...] = CUES
    merges: tuple[Merge, ...] = MERGES


CONFIG = Config()

# The per-second description the partition reads: one (seconds, ...) array per source the cues name.
Description = Mapping[str, np.ndarray]


def _smoothed(values: np.ndarray, config: Config) -> np.ndarray:
    return uniform_filter1d(values, size=max(1, round(config.smooth_sec)), axis=0, mode="nearest")


def _chroma_shares(chroma: np.ndarray) -> np.ndarray:
    return chroma / np.maximum(chroma.sum(axis=1, keepdims=True), 1e-9)


def shape(mel_db: np.ndarray, config: Config) -> np.ndarray:
    """The spectrum's shape: log-mel bands less their mean (the level), smoothed."""
    mel = mel_db.astype(np.float64)
    return _smoothed(mel - mel.mean(axis=1, keepdims=True), config)


def level(mel_db: np.ndarray, config: Config) -> np.ndarray:
    """The mean log-mel band level, smoothed."""
    return _smoothed(mel_db.astype(np.float64).mean(axis=1, keepdims=True), config)


def tonal_chroma(chroma: np.ndarray, config: Config) -> np.ndarray:
    """Chroma as shares of each second, smoothed. Where the harmony is unclear it takes the value of the nearest
    clear second, so a drum-only intro or a noisy riser does not look like another track."""
    shares = _chroma_shares(chroma)
    tonal = shares.max(axis=1)
    clear = tonal >= np.quantile(tonal, config.tonal_quantile) if len(tonal) else tonal > 0
    return _smoothed(series.carried(shares, clear), config)


def key(chroma: np.ndarray, config: Config) -> np.ndarray:
    """Chroma shares averaged over `key_sec`: over `smooth_sec` a song's own chord changes hide its key, over
    `key_sec` they average out."""
    return uniform_filter1d(_chroma_shares(chroma), size=max(1, round(config.key_sec)), axis=0, mode="nearest")


def log_tempo(bpm: np.ndarray, config: Config) -> np.ndarray:
    """log2 of the local tempo, seconds without one taking the nearest second's, median-filtered over twice
    `smooth_sec` (a tempo octave error for a few bars does not count), then smoothed."""
    bpm = bpm.astype(np.float64)
    known = np.isfinite(bpm) & (bpm > 0)
    log_bpm = np.log2(series.carried(np.where(known, bpm, config.unknown_bpm), known))
    smooth = max(1, round(config.smooth_sec))
    return _smoothed(median_filter(log_bpm, size=smooth * 2 + 1, mode="nearest")[:, None], config)


def frames(values: np.ndarray, config: Config) -> np.ndarray:
    """Any per-second values (an embedding), as (seconds, dims), smoothed."""
    return _smoothed(values.astype(np.float64).reshape(len(values), -1), config)


TRANSFORMS: dict[str, Callable[[np.ndarray, Config], np.ndarray]] = {
    "shape": shape,
    "level": level,
    "tonal_chroma": tonal_chroma,
    "key": key,
    "log_tempo": log_tempo,
    "frames": frames,
}


def sources(config: Config) -> set[str]:
    """The description arrays the cues of `config` read: those of the cues of nonzero weight (a cue of weight 0
    changes nothing, so the `description` stage does not compute an array only such cues name)."""
    return {cue.source for cue in config.cues if cue.weight != 0}


def stretches(desc: Description, config: Config, frame_sec: float) -> dict[str, np.ndarray]:
    """Each cue of `config` as (stretches, dims): its transform of the per-second description, averaged over
    `frame_sec`-second stretches. A cue of weight 0 whose array is not described is left out."""
    step = max(1, round(frame_sec))
    out = {}
    for cue in config.cues:
        if cue.weight == 0 and cue.source not in desc:
            continue
        values = TRANSFORMS[cue.transform](desc[cue.source], config)
        n = len(values) // step * step
        out[cue.name] = values[:n].reshape(-1, step, values.shape[1]).mean(axis=1) if n else values[:0]
    return out


def standardized(grouped: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """The named cues' stretches side by side, each column standardized and each cue weighted."""
    if not weights:
        return np.zeros((len(next(iter(grouped.values()), ())), 0))
    return np.concatenate([series.standardized(grouped[name], weight) for name, weight in weights.items()], axis=1)


def cosine_kernel(x: np.ndarray) -> np.ndarray:
    """Cosine similarity of the rows of `x`, negative values taken as 0 (unrelated), so it is 0-1."""
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return np.clip(unit @ unit.T, 0.0, 1.0)


def similarity(x: np.ndarray, apart: np.ndarray | None = None, kernels: Sequence[np.ndarray] = ()) -> np.ndarray:
    """Gaussian-kernel self-similarity of `x`, bandwidth from its median pairwise distance; the distances in
    `apart` (same rows) are added after the bandwidth is set, so they only lower the similarity of rows that
    differ there. Added to `x` instead, the key made two tracks that share it (DJs mix in one key) look alike:
    the wider bandwidth hid their other differences; a larger weight cuts real songs at their own key changes.
    Each of `kernels`, a precomputed 0-1 similarity of the same rows (an embedding's cosine, a repetition
    matrix), multiplies the result: a product of kernels is a kernel, and rows stay alike only where every
    kernel says so."""

    def squared_distances(v: np.ndarray) -> np.ndarray:
        sq = np.sum(v * v, axis=1)
        return np.maximum(sq[:, None] + sq[None, :] - 2 * v @ v.T, 0.0)

    d2 = squared_distances(x)
    scale = float(np.median(d2[np.triu_indices(len(x), 1)])) if len(x) > 1 else 1.0
    if apart is not None:
        d2 += squared_distances(apart)
    sim = np.exp(-d2 / max(scale, 1e-9)).astype(np.float64)
    for kernel in kernels:
        sim = sim * kernel
    return sim


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
    confidence: np.ndarray  # 0-1, how likely each boundary is a true track change (see `boundary_confidence`)
    similarity: np.ndarray  # the partition's evidence: its self-similarity of the stretches of the music
    similarity_start: float  # seconds of the file where the first stretch starts
    frame_sec: float  # seconds per stretch


@dataclass(frozen=True)
class Plays:
    """What the track library knows of the mix (`offbeat.dsp.anchors`): where no track changes inside each play of
    a library track, in order, the handover between each pair of neighbours (None where a track nobody knows may
    lie between), and each play's confidence."""

    inside: list[tuple[float, float]]
    handovers: list[float | None]
    confidence: list[float]


def find_boundaries(
    desc: Description, music_start: float, music_end: float, config: Config = CONFIG, plays: Plays | None = None
) -> Boundaries:
    """The track changes inside the music: the optimal partition of the cues' self-similarity, then the merge
    rules of `config` in turn, then each cut's blend window and confidence."""
    lo, hi = int(np.floor(music_start)), int(np.ceil(music_end))
    part = {name: values[lo:hi] for name, values in desc.items()}
    # At most max_frames stretches, so the matrices stay small (46 MB) however long the mix; the price of a
    # cut is in frames of config.frame_sec, so it shrinks with longer frames.
    frame_sec = float(max(config.frame_sec, np.ceil((hi - lo) / config.max_frames)))
    grouped = stretches(part, config, frame_sec)
    roles = {
        role: {c.name: c.weight for c in config.cues if c.role == role and c.name in grouped}
        for role in ("similar", "apart", "kernel")
    }
    x = standardized(grouped, roles["similar"])
    if len(x) < 2:
        empty = np.zeros(0)
        return Boundaries(empty, empty, empty, empty, np.zeros((len(x), len(x))), float(lo), frame_sec)
    apart = standardized(grouped, roles["apart"]) if roles["apart"] else None
    kernels = [cosine_kernel(grouped[name]) ** weight for name, weight in roles["kernel"].items()]
    sim = similarity(x, apart, kernels)
    min_len = max(1, int(config.min_track_sec / frame_sec))
    max_len = max(min_len + 1, int(config.max_track_sec / frame_sec))
    cuts = partition(sim, min_len, max_len, config.penalty * config.frame_sec / frame_sec)
    for merge in config.merges:
        cuts = boundary_merges.RULES[merge.rule](sim, cuts, config, *(grouped[name] for name in merge.cues))
    # A cut the evidence at it does not make likely is a section change inside one track.
    embedding = grouped.get(SAME_TRACK)
    cuts = cuts[boundary_confidence.confidence(x, cuts, frame_sec, config, embedding) >= config.min_confidence]
    # The boundary is the cut itself: where the partition found the audio turn from like the track before to like
    # the one after. The middle of the blend window is further from the crossfade's middle, because that window
    # is lopsided (a fade-in under a loud outgoing track looks like the outgoing track for longer).
    bounds = (lo + cuts * frame_sec).astype(float)
    known = np.zeros(len(bounds), bool)
    if plays is not None and plays.inside:  # the library's plays: no cut inside one, a cut at each handover
        bounds, known = boundary_merges.anchored_cuts(bounds, plays.inside, plays.handovers, config.handover_sec)
        cuts = np.clip(np.round((bounds - lo) / frame_sec).astype(int), 1, len(x) - 1)
    left, right = _transitions(sim, cuts, config)
    starts, ends = transition_windows(bounds, lo + left * frame_sec, lo + right * frame_sec, config)
    sure = boundary_confidence.confidence(x, cuts, frame_sec, config, embedding)
    if plays is not None and known.any():  # a handover is as sure as the less sure of its two plays
        pairs = zip(pairwise(plays.confidence), plays.handovers, strict=True)
        sure[known] = [min(a, b) for (a, b), h in pairs if h is not None]
    return Boundaries(bounds, starts, ends, sure, sim, float(lo), frame_sec)


def transition_windows(
    bounds: np.ndarray, left: np.ndarray, right: np.ndarray, config: Config = CONFIG
) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) seconds of the transition around each boundary, from the blend window [left, right] found
    around it (`_transitions`).

    The transition is symmetric around the boundary, as a crossfade is around its middle: as far to each side as
    the blend window reaches on its shorter side (the window is lopsided: a fade-in under a loud outgoing track
    looks like that track for longer), and at least `min_transition_sec` in all (a blend is rarely shorter).
    Keeping it out of each track's steady part keeps the neighbour's fade out of its loudness and vocals. The
    longer side would run far into a track that is like its neighbour and leave a steady part of a few seconds,
    often a quiet intro or breakdown, with its loudness off by several LU; a fixed width would cut long blends
    short."""
    half = np.maximum(np.minimum(bounds - left, right - bounds), config.min_transition_sec / 2)
    return bounds - half, bounds + half


def _transitions(sim: np.ndarray, cuts: np.ndarray, config: Config) -> tuple[np.ndarray, np.ndarray]:
    """Frames around each cut that are about as like the part before as the part after: the blend."""
    edges = np.concatenate([[0], cuts, [len(sim)]])
    left, right = [], []
    for k, cut in enumerate(cuts):
        a, b, c = edges[k], cut, edges[k + 2]
        to_before = sim[:, a:b].mean(axis=1)
        to_after = sim[:, b:c].mean(axis=1)
        mixed = np.abs(to_before - to_after) < config.mixed_share * np.maximum(to_before, to_after)
        lo = b
        while lo - 1 > a and mixed[lo - 1]:
            lo -= 1
        hi = b
        while hi < c - 1 and mixed[hi]:
            hi += 1
        left.append(min(lo, b))
        right.append(max(hi, b))
    return np.array(left, float), np.array(right, float)
