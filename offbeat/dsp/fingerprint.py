"""Which library track an excerpt comes from, through a DJ's tempo and pitch changes: quad fingerprints.
Numpy in, numpy out.

A DJ plays a track 3-8 % faster or slower; without key lock (a turntable, varispeed) the pitch follows the
speed, with key lock only the time changes. A classic landmark fingerprint (peak pairs hashed by their
frequency and time distance) breaks under either, because both distances change. Quad fingerprints
(Sonnleitner & Widmer, IEEE TASLP 2016) hash shapes that do not change: spectrogram peaks A and B span a box,
two further peaks C and D lie inside it, and the hash is where C and D sit *relative to the box*, each
coordinate a share of the box's width in time and of its height in frequency. Playing faster divides every
time difference by the speed and, with frequency on a linear scale in Hz (whose origin, 0 Hz, stays put
under resampling), multiplies every frequency difference by it; a share of a box is unchanged by either.

Here: the quads of a recording (sparse for references, dense for queries), the index of many tracks' quads and
its lookup; `offbeat.dsp.matching` turns a query's matches into the track, the tempo and the pitch.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import scipy.signal
from scipy.ndimage import maximum_filter

VERSION = 3  # of the quads and the index layout: a change gives stored fingerprints new keys
SAMPLE_RATE = 8000  # Hz the audio is resampled to: peaks up to 4 kHz carry the melody and most of the identity
N_FFT = 1024  # samples per STFT frame (128 ms, 7.8 Hz bins: notes resolved in frequency)
HOP = 128  # samples between frames (16 ms, refined between frames by interpolation)
MIN_HZ = 80.0  # peaks below this are rumble and DC, shared by every track
MAX_HZ = 3900.0  # peaks above this are at the band edge, where resampling filters reshape the spectrum
PEAK_FREQ_BINS = 13  # max-filter height in bins (about 100 Hz): a peak is the loudest within it
PEAK_FRAMES = 17  # max-filter width in frames (about 270 ms): one peak per note, not one per wobble of its decay
PEAK_FLOOR_DB = 6.0  # a peak stands at least this far above the spectrogram's median level
MIN_SPEED, MAX_SPEED = 0.85, 1.18  # the tempo ratios a query's boxes are widened for (a DJ's +-10 % and some)


@dataclass(frozen=True)
class Shape:
    """How peaks are picked and grouped into quads. References are sparse and queries dense: a query's peaks
    and boxes are a superset of what the same audio would give as a reference, widened for the speed range, so
    that the few quads kept per reference track are still found in a sped-up, EQ'd and blended excerpt."""

    peaks_per_sec: int  # at most this many peaks (the loudest, which survive stretching and mixing) per second
    box_min_sec: float  # A to B at least this long: a phase vocoder moves corners by up to 35 ms, a small share
    box_max_sec: float  # and at most this long, so that many quads fit in a short excerpt
    box_min_hz: float  # A to B at least this far apart in frequency, for the same reason
    boxes_per_root: int  # a root A spans boxes to at most this many following peaks B (the nearest in time)
    inside_per_box: int  # of the peaks inside a box, this many (the earliest) make the pairs C, D


# One box per root and the pairs of its first three inside peaks: about 24 quads/s of music, a tenth of the
# query's, which the bench measured to still identify 30 s excerpts (bench/accuracy/identification.py).
REFERENCE = Shape(
    peaks_per_sec=12, box_min_sec=0.6, box_max_sec=2.4, box_min_hz=150.0, boxes_per_root=1, inside_per_box=3
)
QUERY = Shape(
    peaks_per_sec=12,
    box_min_sec=REFERENCE.box_min_sec / MAX_SPEED,
    box_max_sec=REFERENCE.box_max_sec / MIN_SPEED,
    box_min_hz=REFERENCE.box_min_hz * MIN_SPEED,
    boxes_per_root=5,
    inside_per_box=4,
)
HASH_TOLERANCE = 0.035  # a query quad matches a reference quad whose coordinates differ by at most this
HASH_BINS = 25  # bins per hash coordinate (a share of the box, 0..1) in the key: a lookup reaches 2 or 3 of them
HASH_LEVELS = 255  # a reference hash coordinate is stored as a byte, 0..1 in this many steps
MAX_RATIO = 1.25  # tempo and pitch ratios beyond 1/MAX_RATIO..MAX_RATIO are not a DJ's and are not voted for
# The box's size is in the key too, as log-width and log-height bins at least 2 log(MAX_RATIO) wide: a query box
# can only match reference boxes within MAX_RATIO of its size, which lie in its bin or the nearer neighbour.
GEOMETRY_BIN = 0.45  # natural log
GEOMETRY_ORIGIN = (-1.4, 3.7)  # log seconds (0.25 s) and log Hz (40 Hz) where the first width and height bins start
GEOMETRY_BINS = (7, 11)  # width and height bins (the last of each takes everything beyond)


@dataclass(frozen=True)
class Quads:
    """The quads of one recording; row i is one quad."""

    hashes: np.ndarray  # (n, 4) float32 (uint8 in an Index: 0..HASH_LEVELS): C's and D's time and frequency
    #                     as shares of the A-B box
    root_sec: np.ndarray  # (n,) float32: time of A, in seconds from the recording's start
    root_hz: np.ndarray  # (n,) float32 (float16 in an Index): frequency of A
    width_sec: np.ndarray  # (n,) float32 (float16 in an Index): B's time minus A's
    height_hz: np.ndarray  # (n,) float32 (float16 in an Index): B's frequency minus A's (signed: B may lie
    #                        above or below A)


@dataclass(frozen=True)
class Index:
    """Reference quads of many tracks, sorted by key, for lookups by binary search."""

    keys: np.ndarray  # (n,) int32 quantized hash (see `keys`)
    track: np.ndarray  # (n,) int32 track id (int64 when an id does not fit)
    quads: Quads  # the reference quads, in key order, in compact dtypes


def spectrogram(audio: np.ndarray, sr: int) -> np.ndarray:
    """Log-magnitude STFT (bins, frames) of mono `audio` resampled to SAMPLE_RATE."""
    x = np.asarray(audio, dtype=np.float64)
    if sr != SAMPLE_RATE:
        g = np.gcd(int(sr), SAMPLE_RATE)
        x = scipy.signal.resample_poly(x, SAMPLE_RATE // g, int(sr) // g)
    _, _, z = scipy.signal.stft(x, nperseg=N_FFT, noverlap=N_FFT - HOP, boundary=None, padded=False)
    return np.log(np.abs(z) + 1e-7).astype(np.float32)


def peaks(log_mag: np.ndarray, per_sec: int = QUERY.peaks_per_sec) -> tuple[np.ndarray, np.ndarray]:
    """Spectrogram peaks as (seconds, Hz), sorted by time: local maxima of `log_mag` above its median by
    PEAK_FLOOR_DB, at most `per_sec` per second, placed between bins and frames by parabolic interpolation."""
    lo, hi = int(MIN_HZ * N_FFT / SAMPLE_RATE), int(MAX_HZ * N_FFT / SAMPLE_RATE)
    s = log_mag[lo:hi]
    if s.shape[1] < 3:
        return np.zeros(0), np.zeros(0)
    is_max = (s == maximum_filter(s, size=(PEAK_FREQ_BINS, PEAK_FRAMES), mode="nearest")) & (
        s > np.median(s) + PEAK_FLOOR_DB * np.log(10) / 20
    )
    is_max[[0, -1], :] = False
    is_max[:, [0, -1]] = False
    f, t = np.nonzero(is_max)
    level = s[f, t]
    second = (t * HOP / SAMPLE_RATE).astype(int)
    order = np.lexsort((-level, second))  # loudest first within each second
    rank = np.arange(len(order)) - np.searchsorted(second[order], second[order])
    keep = order[rank < per_sec]
    f, t = f[keep], t[keep]
    df = _vertex(s[f - 1, t], s[f, t], s[f + 1, t])
    dt = _vertex(s[f, t - 1], s[f, t], s[f, t + 1])
    sec = (t + dt) * HOP / SAMPLE_RATE
    hz = (f + lo + df) * SAMPLE_RATE / N_FFT
    by_time = np.argsort(sec, kind="stable")
    return sec[by_time], hz[by_time]


def _vertex(left: np.ndarray, mid: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Offset (-0.5..0.5) of the vertex of the parabola through three equally spaced values."""
    curvature = left - 2 * mid + right
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(curvature < 0, 0.5 * (left - right) / curvature, 0.0)
    return np.clip(d, -0.5, 0.5)


def _empty() -> Quads:
    return Quads(np.zeros((0, 4), np.float32), *(np.zeros(0, np.float32) for _ in range(4)))


def quads(sec: np.ndarray, hz: np.ndarray, shape: Shape = QUERY) -> Quads:
    """The quads of peaks sorted by time: each root A spans boxes to the `shape.boxes_per_root` nearest later
    peaks B that are `shape.box_min_sec..box_max_sec` after it and `shape.box_min_hz` above or below it; pairs
    C, D of the first `shape.inside_per_box` peaks strictly inside a box (C no later than D) make its quads."""
    rows: list[tuple[np.ndarray, ...]] = []
    for a in range(len(sec)):
        end = np.searchsorted(sec, sec[a] + shape.box_max_sec, side="right")
        later_t, later_f = sec[a + 1 : end] - sec[a], hz[a + 1 : end] - hz[a]
        boxes = np.flatnonzero((later_t >= shape.box_min_sec) & (np.abs(later_f) >= shape.box_min_hz))
        for b in boxes[: shape.boxes_per_root]:
            x, y = later_t[:b] / later_t[b], later_f[:b] / later_f[b]
            inside = np.flatnonzero((x > 0) & (y > 0) & (y < 1))[: shape.inside_per_box]
            if len(inside) < 2:
                continue
            c, d = np.triu_indices(len(inside), 1)
            c, d = inside[c], inside[d]
            hashes = np.stack([x[c], y[c], x[d], y[d]], axis=1)
            n = len(c)
            rows.append((hashes, np.full(n, sec[a]), np.full(n, hz[a]), np.full(n, later_t[b]), np.full(n, later_f[b])))
    if not rows:
        return _empty()
    cols = [np.concatenate(col).astype(np.float32) for col in zip(*rows, strict=True)]
    return Quads(*cols)


def fingerprint(audio: np.ndarray, sr: int) -> Quads:
    """The query quads of mono `audio` at sample rate `sr` (dense: see `Shape`)."""
    return quads(*peaks(spectrogram(audio, sr), QUERY.peaks_per_sec), QUERY)


def reference_fingerprint(audio: np.ndarray, sr: int) -> Quads:
    """The reference quads of mono `audio` at sample rate `sr`, for `build_index` (sparse: see `Shape`)."""
    return quads(*peaks(spectrogram(audio, sr), REFERENCE.peaks_per_sec), REFERENCE)


def keys(bins: np.ndarray, above: np.ndarray) -> np.ndarray:
    """Integer keys (< 2**31) of quantized quads: `bins` (n, 6) integers, four hash bins (HASH_BINS each) then
    the box's width and height bins (`geometry`), and whether B lies above A."""
    sizes = (HASH_BINS,) * 4 + GEOMETRY_BINS
    key = np.asarray(above, dtype=np.int64)
    for i, size in enumerate(sizes):
        key = key * size + np.clip(np.asarray(bins[:, i], dtype=np.int64), 0, size - 1)
    return key


def _geometry(width_sec: np.ndarray, height_hz: np.ndarray) -> np.ndarray:
    """(n, 2) log width and log |height| of boxes, in GEOMETRY_BIN units from GEOMETRY_ORIGIN (not yet floored)."""
    logs = np.stack([np.log(np.asarray(width_sec, np.float64)), np.log(np.abs(np.asarray(height_hz, np.float64)))], 1)
    return (logs - np.asarray(GEOMETRY_ORIGIN)) / GEOMETRY_BIN


def _bins(q: Quads) -> np.ndarray:
    """(n, 6) key bins of reference quads (float hashes, as `reference_fingerprint` makes them)."""
    return np.floor(np.concatenate([q.hashes.astype(np.float64) * HASH_BINS, _geometry(q.width_sec, q.height_hz)], 1))


def build_index(tracks: dict[int, Quads]) -> Index:
    """An index of the reference quads of `tracks` (track id -> its quads, from `reference_fingerprint`),
    sorted by key and stored compactly (see `Index`)."""
    parts = [(tid, q) for tid, q in tracks.items() if len(q.root_sec)]
    if not parts:
        return Index(np.zeros(0, np.int32), np.zeros(0, np.int32), _compact(_empty()))
    track = np.concatenate([np.full(len(q.root_sec), tid, np.int64) for tid, q in parts])
    merged = concat([q for _, q in parts])
    k = keys(_bins(merged), merged.height_hz > 0)
    order = np.argsort(k, kind="stable")
    fits32 = track.size == 0 or (track.min() >= -(2**31) and track.max() < 2**31)
    return Index(
        k[order].astype(np.int32),
        track[order].astype(np.int32 if fits32 else np.int64),
        _compact(Quads(*(getattr(merged, name)[order] for name in Quads.__dataclass_fields__))),
    )


def _compact(q: Quads) -> Quads:
    """Reference quads in the index's dtypes: hash coordinates as bytes, root time float32, the rest float16."""
    return Quads(
        np.round(np.clip(q.hashes, 0, 1) * HASH_LEVELS).astype(np.uint8),
        np.asarray(q.root_sec, np.float32),
        np.asarray(q.root_hz, np.float16),
        np.asarray(q.width_sec, np.float16),
        np.asarray(q.height_hz, np.float16),
    )


def lookup(index: Index, query: Quads) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (query row, index row) whose hashes agree within HASH_TOLERANCE in every coordinate, whose B lies on
    the same side of A and whose boxes are within MAX_RATIO of each other's width and height (which `identify`
    checks exactly). Every key bin such a reference quad can lie in is looked up: per hash coordinate the bins
    HASH_TOLERANCE either side reaches (two or three), per size the bin log(MAX_RATIO) either side reaches (one or
    two); a small margin covers the index's rounding (bytes, float16)."""
    hash_reach = HASH_TOLERANCE + 1.0 / HASH_LEVELS
    size_reach = (np.log(MAX_RATIO) + 1e-3) / GEOMETRY_BIN
    h = query.hashes.astype(np.float64) * HASH_BINS
    g = _geometry(query.width_sec, query.height_hz)
    lo = np.concatenate([np.floor(h - hash_reach * HASH_BINS), np.floor(g - size_reach)], 1)
    hi = np.concatenate([np.floor(h + hash_reach * HASH_BINS), np.floor(g + size_reach)], 1)
    sizes = np.array((HASH_BINS,) * 4 + GEOMETRY_BINS)
    lo, hi = np.clip(lo, 0, sizes - 1), np.clip(hi, 0, sizes - 1)
    extra = (hi - lo).astype(np.int64)  # further bins per dimension: 0, 1 or 2
    above = query.height_hz > 0
    q_rows, i_rows = [], []
    # The height bin is the key's last digit: the one or two a row reaches are one range of keys, searched once.
    for offsets in itertools.product(*(range(int(m) + 1) for m in extra[:, :-1].max(axis=0, initial=0))):
        rows = np.flatnonzero(np.all(extra[:, :-1] >= np.asarray(offsets), axis=1))
        if len(rows) == 0:
            continue
        base = lo[rows, :-1] + np.asarray(offsets)
        low = keys(np.column_stack([base, lo[rows, -1]]), above[rows]).astype(index.keys.dtype)  # no index copy
        high = low + extra[rows, -1].astype(index.keys.dtype)
        order = np.argsort(low, kind="stable")  # sorted needles: numpy's binary search narrows from the last
        first = np.empty_like(order)
        last = np.empty_like(order)
        first[order] = np.searchsorted(index.keys, low[order], "left")
        last[order] = np.searchsorted(index.keys, high[order], "right")
        counts = last - first
        q_rows.append(np.repeat(rows, counts))
        i_rows.append(np.repeat(first - np.cumsum(counts) + counts, counts) + np.arange(counts.sum()))
    if not q_rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    q, i = np.concatenate(q_rows), np.concatenate(i_rows)
    ref = index.quads.hashes[i].astype(np.float32) * np.float32(1 / HASH_LEVELS)
    close = np.all(np.abs(query.hashes[q] - ref) <= HASH_TOLERANCE, axis=1)
    return q[close], i[close]


def concat(parts: list[Quads]) -> Quads:
    """The quads of several excerpts in one (their times on one clock)."""
    if not parts:
        return _empty()
    return Quads(*(np.concatenate([getattr(q, name) for q in parts]) for name in Quads.__dataclass_fields__))
