"""Scores of one result document against its mix's truth, with mir_eval: boundaries (detection at +-10 s and
+-3 s, with the counts each track style owns), beats and downbeats (F-measure, +-70 ms), tempo (MIREX Acc1/Acc2),
key (MIREX weighted), vocals and LUFS; and the oracle result that scores the truth against itself."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import mir_eval
import numpy as np

from bench.accuracy.mixes import TrueMix

BOUNDARY_WINDOW_SEC = 10.0
BOUNDARY_WINDOW_TIGHT_SEC = 3.0
TEMPO_TOLERANCE = 0.04
TEMPO_FACTORS = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
# The result's names (offbeat/contract.py, GlobalAnalysis): the beat grid and the bar lines, seconds.
BEATS_FIELD = "global_beat_grid_timestamps"
DOWNBEATS_FIELD = "global_downbeat_timestamps"


@dataclass
class BoundaryCounts:
    """Hits and totals of a boundary matching, pooled over mixes (and owned by styles) by adding them up."""

    ref: int = 0
    est: int = 0
    ref_hit: int = 0
    est_hit: int = 0

    def add(self, other: BoundaryCounts) -> None:
        self.ref, self.est = self.ref + other.ref, self.est + other.est
        self.ref_hit, self.est_hit = self.ref_hit + other.ref_hit, self.est_hit + other.est_hit

    def prf(self) -> tuple[float | None, float | None, float | None]:
        """(precision, recall, F) as mir_eval computes them; None where the denominator is empty."""
        p = self.est_hit / self.est if self.est else (0.0 if self.ref else None)
        r = self.ref_hit / self.ref if self.ref else None
        if p is None or r is None:
            return p, r, None
        return p, r, (2 * p * r / (p + r) if p + r > 0 else 0.0)


@dataclass
class TrackScore:
    """One true track against its matched estimate (est_index None: no estimate overlaps it)."""

    index: int
    style: str
    est_index: int | None
    overlap_sec: float
    bpm_true: float | None
    bpm_est: float | None
    tempo_acc1: bool | None
    tempo_acc2: bool | None
    beat_f: float | None
    downbeat_f: float | None
    key_true: str | None
    key_est: str | None
    key_score: float | None
    vocals_true: bool | None
    vocals_est: bool | None
    vocals_right: bool | None
    lufs_true: float | None
    lufs_est: float | None
    lufs_error: float | None


@dataclass
class MixScore:
    """A mix's mix-level scores (mir_eval's own numbers) and its tracks' scores."""

    corpus: str
    mix_id: str
    duration_sec: float
    status: str
    tracks_true: int
    tracks_est: int
    boundary10: dict[str, float | None]
    boundary3: dict[str, float | None]
    boundary_counts10: BoundaryCounts
    boundary_counts3: BoundaryCounts
    style_boundaries10: dict[str, BoundaryCounts]
    style_boundaries3: dict[str, BoundaryCounts]
    beat_f: float | None
    downbeat_f: float | None
    downbeat_field: str | None
    tracks: list[TrackScore]
    boundaries_true: list[float]
    boundaries_est: list[float]
    wall_sec: float | None = None
    audio_sec_per_sec: float | None = None
    cached_stages: list[str] | None = None
    error: str | None = None


def beat_f(reference: np.ndarray, estimate: np.ndarray | None) -> float | None:
    """`mir_eval.beat.f_measure` (+-70 ms); None when the truth has no beats there (nothing to score)."""
    if reference.size == 0:
        return None
    if estimate is None or estimate.size == 0:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(mir_eval.beat.f_measure(reference, estimate))


def _inside(times: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return times[(times >= lo) & (times <= hi)]


def to_mir_key(key: str | None) -> str | None:
    """'A Minor' / 'a minor' / 'C# Major' -> mir_eval's 'A minor' / 'C# major'; None if it is not a key."""
    if not key:
        return None
    parts = key.replace("\u266f", "#").replace("\u266d", "b").split()
    if len(parts) != 2:
        return None
    tonic, mode = parts[0][:1].upper() + parts[0][1:].lower(), parts[1].lower()
    if mode in ("maj", "min"):
        mode += "or"
    candidate = f"{tonic} {mode}"
    try:
        mir_eval.key.validate_key(candidate)
    except ValueError:
        return None
    return candidate


def tempo_hits(estimate: float | None, truth: float) -> tuple[bool, bool]:
    """(Acc1, Acc2): within 4 % of the truth; of the truth or of 2, 1/2, 3 or 1/3 times it (MIREX)."""
    if estimate is None or not math.isfinite(estimate):
        return False, False
    acc1 = abs(estimate - truth) <= TEMPO_TOLERANCE * truth
    acc2 = any(abs(estimate - f * truth) <= TEMPO_TOLERANCE * f * truth for f in TEMPO_FACTORS)
    return acc1, acc2


def times_of(global_: dict[str, Any], field: str) -> np.ndarray | None:
    """The list of seconds `field` of `results.global`, sorted; None when the result has none."""
    value = global_.get(field)
    return None if value is None else np.sort(np.asarray(value, dtype=float))


def match_tracks(truth: TrueMix, estimated: list[dict[str, Any]]) -> list[tuple[int | None, float]]:
    """For each true track, (index into `estimated`, overlap seconds) of the estimate that overlaps its steady
    part the most; (None, 0) when none does."""
    spans = [(float(t["start_time_sec"]), float(t["end_time_sec"])) for t in estimated]
    matches: list[tuple[int | None, float]] = []
    for track in truth.tracks:
        lo, hi = track.steady
        overlaps = [max(0.0, min(hi, e) - max(lo, s)) for s, e in spans]
        best = int(np.argmax(overlaps)) if overlaps else None
        if best is None or overlaps[best] <= 0:
            matches.append((None, 0.0))
        else:
            matches.append((best, overlaps[best]))
    return matches


def estimated_boundaries(estimated: list[dict[str, Any]]) -> list[float]:
    """Inner boundaries of the estimate: the meeting point of consecutive tracks (the middle if they overlap)."""
    spans = sorted((float(t["start_time_sec"]), float(t["end_time_sec"])) for t in estimated)
    return [(spans[i][1] + spans[i + 1][0]) / 2 for i in range(len(spans) - 1)]


def _intervals(inner: Iterable[float], duration: float) -> np.ndarray:
    """Interval list [0, b1], [b1, b2], ..., [bn, duration]: equal outer edges, so trim=True leaves the inner."""
    inner = np.unique(np.round(np.clip(np.asarray(list(inner), dtype=float), 1e-3, duration - 1e-3), 5))
    edges = np.concatenate([[0.0], inner, [duration]])  # unique: mir_eval refuses empty intervals
    return np.stack([edges[:-1], edges[1:]], axis=1)


def score_boundaries(
    truth: TrueMix, est_inner: list[float], window: float
) -> tuple[dict[str, float | None], BoundaryCounts, dict[str, BoundaryCounts]]:
    """Mix-level `mir_eval.segment.detection`, its counts, and the counts each track style owns.

    A true boundary belongs to the styles of the tracks on both sides of it; a matched estimate to the styles of
    the true boundary it matched; an unmatched estimate to the style of the true track whose stretch between true
    boundaries holds it. A style counts a boundary once even when both its neighbours have that style.
    """
    ref_intervals = _intervals([b for b in truth.boundaries if 0 < b < truth.duration], truth.duration)
    est_intervals = _intervals([b for b in est_inner if 0 < b < truth.duration], truth.duration)
    ref = mir_eval.util.intervals_to_boundaries(ref_intervals)[1:-1]
    est = mir_eval.util.intervals_to_boundaries(est_intervals)[1:-1]
    pairs = mir_eval.util.match_events(ref, est, window) if ref.size and est.size else []
    counts = BoundaryCounts(ref=int(ref.size), est=int(est.size), ref_hit=len(pairs), est_hit=len(pairs))
    mix: dict[str, float | None] = dict(zip(("precision", "recall", "f"), counts.prf(), strict=True))
    if ref.size:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p, r, f = mir_eval.segment.detection(ref_intervals, est_intervals, window=window, trim=True)
        mix = {"precision": float(p), "recall": float(r), "f": float(f)}
        if not np.allclose([p, r, f], counts.prf()):  # the pooled counts must reproduce mir_eval's numbers
            raise AssertionError(f"boundary counts {counts} disagree with mir_eval {(p, r, f)}")
    styles: dict[str, BoundaryCounts] = {t.style: BoundaryCounts() for t in truth.tracks}
    if not truth.tracks:
        return mix, counts, styles
    centers = np.array([sum(t.steady) / 2 for t in truth.tracks])
    last = len(truth.tracks) - 1
    cuts = ref if ref.size == last else (centers[:-1] + centers[1:]) / 2  # where one track's stretch ends

    def owners(boundary: float) -> set[str]:
        after = int(np.searchsorted(centers, boundary))  # the tracks whose steady middles bracket it
        return {truth.tracks[max(0, after - 1)].style, truth.tracks[min(last, after)].style}

    matched = {j: i for i, j in pairs}  # estimate index -> true boundary index
    hit_refs = set(matched.values())
    for i, boundary in enumerate(ref):
        for style in owners(boundary):
            styles[style].ref += 1
            styles[style].ref_hit += i in hit_refs
    for j, boundary in enumerate(est):
        if j in matched:
            for style in owners(ref[matched[j]]):
                styles[style].est += 1
                styles[style].est_hit += 1
        else:
            cell = min(int(np.searchsorted(cuts, boundary)), last)  # the true track whose stretch holds it
            styles[truth.tracks[cell].style].est += 1
    return mix, counts, styles


def score_mix(truth: TrueMix, doc: dict[str, Any] | None) -> MixScore:
    """Every metric of one mix; a missing or failed result scores as an estimate with nothing in it."""
    status = "missing" if doc is None else str(doc.get("status", "completed"))
    results = (doc or {}).get("results") or {}
    global_ = results.get("global") or {}
    estimated = sorted(results.get("tracks") or [], key=lambda t: float(t["start_time_sec"]))
    beats = times_of(global_, BEATS_FIELD)
    downbeats = times_of(global_, DOWNBEATS_FIELD)
    est_inner = estimated_boundaries(estimated)
    b10, counts10, styles10 = score_boundaries(truth, est_inner, BOUNDARY_WINDOW_SEC)
    b3, counts3, styles3 = score_boundaries(truth, est_inner, BOUNDARY_WINDOW_TIGHT_SEC)
    tracks = []
    for track, (match, overlap) in zip(truth.tracks, match_tracks(truth, estimated), strict=True):
        analysis = (estimated[match].get("analysis") or {}) if match is not None else {}
        lo, hi = track.steady
        # the mix's beats where it has them, like the estimate: at the edges of the steady part the neighbour's
        # last or first beats are still in the mix, and a track-only reference would count them as false beats
        ref_beats = _inside(truth.beats if truth.beats.size else track.beats, lo, hi)
        ref_down = _inside(truth.downbeats if truth.downbeats.size else track.downbeats, lo, hi)
        bpm_est = analysis.get("stable_bpm")
        acc1, acc2 = tempo_hits(bpm_est, track.bpm) if track.bpm else (None, None)
        key_true, key_est = to_mir_key(track.key), to_mir_key((analysis.get("key") or {}).get("musical"))
        key_score = None
        if key_true is not None:
            key_score = float(mir_eval.key.weighted_score(key_true, key_est)) if key_est else 0.0
        vocals_est = analysis.get("has_vocals")
        lufs_est = analysis.get("loudness_lufs_total")
        tracks.append(
            TrackScore(
                index=track.index,
                style=track.style,
                est_index=match,
                overlap_sec=round(overlap, 3),
                bpm_true=track.bpm,
                bpm_est=bpm_est,
                tempo_acc1=acc1,
                tempo_acc2=acc2,
                beat_f=beat_f(ref_beats, None if beats is None else _inside(beats, lo, hi)),
                downbeat_f=None if downbeats is None else beat_f(ref_down, _inside(downbeats, lo, hi)),
                key_true=key_true,
                key_est=key_est,
                key_score=key_score,
                vocals_true=track.has_vocals,
                vocals_est=vocals_est,
                vocals_right=None if track.has_vocals is None else vocals_est == track.has_vocals,
                lufs_true=track.lufs,
                lufs_est=lufs_est,
                lufs_error=None if track.lufs is None or lufs_est is None else abs(lufs_est - track.lufs),
            )
        )
    return MixScore(
        corpus=truth.corpus,
        mix_id=truth.mix_id,
        duration_sec=truth.duration,
        status=status,
        tracks_true=len(truth.tracks),
        tracks_est=len(estimated),
        boundary10=b10,
        boundary3=b3,
        boundary_counts10=counts10,
        boundary_counts3=counts3,
        style_boundaries10=styles10,
        style_boundaries3=styles3,
        beat_f=beat_f(truth.beats, beats),
        downbeat_f=None if downbeats is None else beat_f(truth.downbeats, downbeats),
        downbeat_field=None if downbeats is None else DOWNBEATS_FIELD,
        tracks=tracks,
        boundaries_true=[round(float(b), 3) for b in truth.boundaries],
        boundaries_est=[round(b, 3) for b in est_inner],
        cached_stages=((doc or {}).get("engine") or {}).get("cached_stages"),
        error=(doc or {}).get("error"),
    )


def oracle_result(truth: TrueMix) -> dict[str, Any]:
    """A result document built from the truth itself: scoring it must give 1.0 everywhere and 0 LU, which
    checks the scorer and the corpus's internal consistency (boundaries vs tracks, beats vs tracks)."""
    bounds = list(truth.boundaries)
    edges = [truth.tracks[0].start if truth.tracks else 0.0, *bounds, truth.tracks[-1].end if truth.tracks else 0.0]
    return {
        "job_id": -1,
        "status": "completed",
        "results": {
            "global": {
                "duration_sec": truth.duration,
                BEATS_FIELD: truth.beats.tolist(),
                DOWNBEATS_FIELD: truth.downbeats.tolist(),
            },
            "tracks": [
                {
                    "track_id": i,
                    "start_time_sec": edges[i] if len(edges) == len(truth.tracks) + 1 else t.start,
                    "end_time_sec": edges[i + 1] if len(edges) == len(truth.tracks) + 1 else t.end,
                    "analysis": {
                        "stable_bpm": t.bpm,
                        "key": {"musical": t.key.title(), "camelot": "", "confidence": 1.0} if t.key else None,
                        "has_vocals": t.has_vocals,
                        "loudness_lufs_total": t.lufs,
                    },
                }
                for i, t in enumerate(truth.tracks)
            ],
        },
        "engine": {"cached_stages": []},
    }
