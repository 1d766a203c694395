"""Accuracy of `offbeat analyze` on corpora with independent ground truth (audio this project did not generate).

Each corpus directory holds `<mix_id>.flac` + `<mix_id>.json` (the ground truth written by the corpus builders in
`bench/corpus/`). For every mix of the chosen split this runs the real command line, `offbeat analyze <flac>
--output <results>/<corpus>/<mix_id>.json`, in a subprocess, so what is measured is exactly what a user gets, and
scores the result document against the truth with mir_eval:

- boundaries: `mir_eval.segment.detection` (trim=True, so only the inner boundaries count: both interval lists
  span [0, duration]) at +-10 s and +-3 s; group rows pool the hits of `mir_eval.util.match_events` (the matcher
  inside `detection`) over their mixes, so that a style row can own the boundaries next to its tracks;
- beats: `mir_eval.beat.f_measure` (+-70 ms, no 5 s trim: a mix has no count-in) of
  `global_beat_grid_timestamps` against the mix's `beats_sec`; per track the same on the track's steady part only
  (style rows);
- downbeats: the same on a `downbeat`-named list in `results.global`, n/a while the engine has none;
- tempo: MIREX Acc1 (|est - truth| <= 4 % of truth) and Acc2 (also at 2, 1/2, 3, 1/3 times the truth) of
  `analysis.stable_bpm`;
- key: `mir_eval.key.weighted_score` (MIREX weighted: 1 same, 0.5 fifth, 0.3 relative, 0.2 parallel);
- vocals: share of tracks whose `has_vocals` equals the truth; LUFS: mean absolute error of
  `loudness_lufs_total` (LU).

A true track is matched to the estimated track that overlaps its steady part (between the end of its transition in
and the start of its transition out) the most; a true track with no overlapping estimate scores as a miss (tempo
wrong, key 0, vocals wrong), so splitting or merging tracks costs accuracy instead of hiding.

    .venv/bin/python bench/accuracy.py CORPUS_DIR [CORPUS_DIR ...] [--split test|tune|all] [--per-mix]
    .venv/bin/python bench/accuracy.py CORPUS_DIR --reuse-results     # re-score the last results, no engine
    .venv/bin/python bench/accuracy.py CORPUS_DIR --oracle            # score the truth against itself (all 1.0)

The artifact store (`--store`, default `.bench-store/accuracy`) is kept between runs, so separation is computed
once per mix and a changed stage recomputes only what depends on it. One Prefect server is started for the whole
run (each `offbeat analyze` would otherwise start its own embedded one, about 15 s each) and always stopped, also
on Ctrl-C or SIGTERM. Results, engine logs and wall times stay in `--results` (RESULTS/<corpus>/<mix_id>.json,
.log, .run.json), which `--reuse-results` scores again. `--offbeat` runs another engine command line (e.g. a
launcher of another checkout) against the same corpora.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mir_eval
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: the corpus package sits beside this file
    sys.path.insert(0, str(REPO))

from bench.corpus import truth as corpus_truth  # noqa: E402 - needs the path above

BIN = Path(sys.executable).parent  # the venv's bin: `offbeat` and `prefect` live beside this interpreter
AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3")

BOUNDARY_WINDOW_SEC = 10.0
BOUNDARY_WINDOW_TIGHT_SEC = 3.0
TEMPO_TOLERANCE = 0.04
TEMPO_FACTORS = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)

# The goal row of the accuracy issue: a metric name -> (comparison, threshold).
GOALS: dict[str, tuple[str, float]] = {
    "tempo_acc1": (">=", 0.90),
    "tempo_acc2": (">=", 0.98),
    "beat_f": (">=", 0.90),
    "boundary_f10": (">=", 0.85),
    "key_mirex": (">=", 0.85),
    "vocals_right": (">=", 0.95),
    "lufs_mae": ("<=", 0.5),
}


# -- ground truth --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrueTrack:
    """One track of a mix as the corpus builder knows it (seconds from the start of the mix file)."""

    index: int
    title: str
    style: str
    start: float
    end: float
    transition_in: tuple[float, float] | None
    transition_out: tuple[float, float] | None
    bpm: float | None
    bpm_range: tuple[float, float] | None
    key: str | None
    has_vocals: bool | None
    lufs: float | None
    beats: np.ndarray
    downbeats: np.ndarray

    @property
    def steady(self) -> tuple[float, float]:
        """The part where only this track plays: what features are measured on, and what matching uses."""
        lo = self.transition_in[1] if self.transition_in else self.start
        hi = self.transition_out[0] if self.transition_out else self.end
        return (lo, hi) if hi > lo else (self.start, self.end)


@dataclass(frozen=True)
class TrueMix:
    """A mix's ground truth and where its audio is."""

    corpus: str
    mix_id: str
    split: str
    duration: float
    boundaries: np.ndarray
    beats: np.ndarray
    downbeats: np.ndarray
    tracks: tuple[TrueTrack, ...]
    audio: Path
    truth_path: Path


def _seconds(values: Iterable[Any] | None) -> np.ndarray:
    return np.sort(np.asarray(list(values or []), dtype=float))


def _pair(value: Sequence[float] | None) -> tuple[float, float] | None:
    return (float(value[0]), float(value[1])) if value else None


def truth_from_dict(doc: dict[str, Any], path: Path) -> TrueMix | None:
    """A mix of the corpus schema as the scorer uses it (sorted numpy times); None when no audio is beside it."""
    audio = next((path.with_suffix(s) for s in AUDIO_SUFFIXES if path.with_suffix(s).exists()), None)
    if audio is None:
        print(f"warning: {path} has no audio beside it; skipped", file=sys.stderr)
        return None
    tracks = tuple(
        TrueTrack(
            index=int(t.get("index", i)),
            title=str(t.get("title") or f"track {i}"),
            style=str(t.get("style") or "unknown"),
            start=float(t["start_sec"]),
            end=float(t["end_sec"]),
            transition_in=_pair(t.get("transition_in")),
            transition_out=_pair(t.get("transition_out")),
            bpm=None if t.get("bpm") is None else float(t["bpm"]),
            bpm_range=_pair(t.get("bpm_range")),
            key=t.get("key"),
            has_vocals=t.get("has_vocals"),
            lufs=None if t.get("lufs") is None else float(t["lufs"]),
            beats=_seconds(t.get("beats_sec")),
            downbeats=_seconds(t.get("downbeats_sec")),
        )
        for i, t in enumerate(sorted(doc["tracks"], key=lambda t: float(t["start_sec"])))
    )
    return TrueMix(
        corpus=str(doc.get("corpus") or path.parent.name),
        mix_id=str(doc["mix_id"]),
        split=str(doc.get("split") or "test"),
        duration=float(doc["duration_sec"]),
        boundaries=_seconds(doc.get("boundaries_sec")),
        beats=_seconds(doc.get("beats_sec")),
        downbeats=_seconds(doc.get("downbeats_sec")),
        tracks=tracks,
        audio=audio,
        truth_path=path,
    )


def find_mixes(dirs: Sequence[Path], split: str) -> list[TrueMix]:
    """Every mix in the corpus directories whose split is `split` ('all': every split), read through
    `bench.corpus.truth` (the format's own reader); its `problems()` consistency checks are printed as
    warnings, since a wrong truth would silently cost accuracy."""
    mixes = []
    for directory in dirs:
        if not directory.is_dir():
            raise SystemExit(f"not a directory: {directory}")
        for path in corpus_truth.list_mixes(directory, None if split == "all" else split):
            try:
                truth = corpus_truth.read_mix(path)
            except (OSError, ValueError, KeyError, TypeError) as exc:  # a manifest or a broken file
                print(f"warning: {path} is not a mix truth ({exc!r}); skipped", file=sys.stderr)
                continue
            for problem in truth.problems():
                print(f"warning: {path}: {problem}", file=sys.stderr)
            mix = truth_from_dict(truth.to_dict(), path)
            if mix is not None:
                mixes.append(mix)
    return mixes


# -- scoring ---------------------------------------------------------------------------------------------------


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


def downbeat_list(global_: dict[str, Any]) -> tuple[str | None, np.ndarray | None]:
    """The engine's downbeat list in `results.global`, if it has one yet: a key naming downbeats whose value is a
    list of seconds (or of objects with a time); the mix's own grid is preferred over the drum stem's."""
    names = sorted((k for k in global_ if "downbeat" in k.lower()), key=lambda k: ("drum" in k.lower(), len(k), k))
    for name in names:
        value = global_[name]
        if not isinstance(value, list):
            continue
        times = []
        for item in value:
            if isinstance(item, int | float):
                times.append(float(item))
            elif isinstance(item, dict):
                t = next((item[k] for k in ("time", "time_sec", "t", "timestamp") if k in item), None)
                if isinstance(t, int | float):
                    times.append(float(t))
        return name, np.sort(np.asarray(times, dtype=float))
    return None, None


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
    grid = global_.get("global_beat_grid_timestamps")
    beats = None if grid is None else np.sort(np.asarray(grid, dtype=float))
    down_name, downbeats = downbeat_list(global_)
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
        downbeat_field=down_name,
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
                "global_beat_grid_timestamps": truth.beats.tolist(),
                "downbeats": truth.downbeats.tolist(),
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


# -- aggregation -----------------------------------------------------------------------------------------------


def _mean(values: Iterable[float | bool | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def aggregate(name: str, mixes: list[MixScore], style: str | None = None) -> dict[str, Any]:
    """One table row: the mixes' tracks (of `style` only, for a style row) pooled.

    A corpus row's beat and downbeat F are the mean of its mixes' whole-mix F; a style row has no whole mixes,
    so its beat/downbeat F is the mean over its tracks' steady parts (both are in the JSON as `*_tracks`).
    Boundary P/R/F pool the matched counts over the mixes (micro average).
    """
    tracks = [t for m in mixes for t in m.tracks if style in (None, t.style)]
    c10, c3 = BoundaryCounts(), BoundaryCounts()
    for mix in mixes:
        c10.add(mix.boundary_counts10 if style is None else mix.style_boundaries10.get(style, BoundaryCounts()))
        c3.add(mix.boundary_counts3 if style is None else mix.style_boundaries3.get(style, BoundaryCounts()))
    p10, r10, f10 = c10.prf()
    _, _, f3 = c3.prf()
    track_beat, track_down = _mean(t.beat_f for t in tracks), _mean(t.downbeat_f for t in tracks)
    lufs_errors = [t.lufs_error for t in tracks if t.lufs_error is not None]
    timed = [m for m in mixes if m.wall_sec is not None]
    wall = sum(m.wall_sec or 0.0 for m in timed)
    return {
        "group": name,
        "mixes": len(mixes),
        "tracks": len(tracks),
        "tempo_acc1": _mean(t.tempo_acc1 for t in tracks),
        "tempo_acc2": _mean(t.tempo_acc2 for t in tracks),
        "beat_f": _mean(m.beat_f for m in mixes) if style is None else track_beat,
        "beat_f_tracks": track_beat,
        "downbeat_f": _mean(m.downbeat_f for m in mixes) if style is None else track_down,
        "downbeat_f_tracks": track_down,
        "boundary_f10": f10,
        "boundary_p10": p10,
        "boundary_r10": r10,
        "boundary_f3": f3,
        "boundary_counts10": asdict(c10),
        "boundary_counts3": asdict(c3),
        "key_mirex": _mean(t.key_score for t in tracks),
        "vocals_right": _mean(t.vocals_right for t in tracks),
        "lufs_mae": _mean(lufs_errors),
        "lufs_measured": f"{len(lufs_errors)}/{sum(t.lufs_true is not None for t in tracks)}",
        "tracks_unmatched": sum(t.est_index is None for t in tracks),
        "mixes_failed": sum(m.status != "completed" for m in mixes),
        "wall_sec": wall if timed else None,
        "audio_sec_per_sec": sum(m.duration_sec for m in timed) / wall if timed and wall > 0 else None,
    }


def group_rows(scores: list[MixScore]) -> list[dict[str, Any]]:
    """Rows per corpus and per style within it, then all corpora together when there are several."""
    rows = []
    corpora = sorted({m.corpus for m in scores})
    for corpus in [*corpora, *(["ALL"] if len(corpora) > 1 else [])]:
        mixes = [m for m in scores if corpus in ("ALL", m.corpus)]
        rows.append(aggregate(corpus, mixes))
        for style in sorted({t.style for m in mixes for t in m.tracks}):
            owning = [m for m in mixes if any(t.style == style for t in m.tracks)]
            rows.append(aggregate(f"{corpus} / {style}", owning, style))
    return rows


# -- tables ----------------------------------------------------------------------------------------------------

COLUMNS: list[tuple[str, str]] = [
    ("tempo_acc1", "tempo Acc1"),
    ("tempo_acc2", "tempo Acc2"),
    ("beat_f", "beat F"),
    ("downbeat_f", "downbeat F"),
    ("boundary_f10", "bnd F ±10 s"),
    ("boundary_p10", "bnd P ±10 s"),
    ("boundary_r10", "bnd R ±10 s"),
    ("boundary_f3", "bnd F ±3 s"),
    ("key_mirex", "key MIREX"),
    ("vocals_right", "vocals right"),
    ("lufs_mae", "LUFS MAE (LU)"),
]


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def markdown(header: list[str], rows: list[list[Any]], text_columns: int = 1) -> str:
    """A GitHub markdown table: the first `text_columns` left-aligned, the numbers right-aligned."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" --- " if i < text_columns else " ---: " for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def goal_row() -> list[Any]:
    return ["**goal**", "", "", *(f"{GOALS[k][0]} {GOALS[k][1]:.2f}" if k in GOALS else "" for k, _ in COLUMNS)]


def summary_table(rows: list[dict[str, Any]]) -> str:
    header = ["group", "mixes", "tracks", *(title for _, title in COLUMNS)]
    body = [goal_row(), *([r["group"], r["mixes"], r["tracks"], *(r[k] for k, _ in COLUMNS)] for r in rows)]
    return markdown(header, body)


def per_mix_table(scores: list[MixScore]) -> str:
    header = ["mix", "tracks true/est", "status", *(title for _, title in COLUMNS)]
    body = []
    for mix in scores:
        row = aggregate(mix.mix_id, [mix])
        body.append(
            [
                f"{mix.corpus}/{mix.mix_id}",
                f"{mix.tracks_true}/{mix.tracks_est}",
                mix.status,
                *(row[k] for k, _ in COLUMNS),
            ]
        )
    return markdown(header, [goal_row(), *body], text_columns=3)


def timing_table(scores: list[MixScore]) -> str:
    header = ["mix", "audio s", "wall s", "audio s per s", "stages from store", "status"]
    body: list[list[Any]] = [
        [
            f"{m.corpus}/{m.mix_id}",
            round(m.duration_sec, 1),
            None if m.wall_sec is None else round(m.wall_sec, 1),
            m.audio_sec_per_sec,
            None if m.cached_stages is None else len(m.cached_stages),
            m.status,
        ]
        for m in scores
    ]
    timed = [m for m in scores if m.wall_sec]
    if timed:
        wall = sum(m.wall_sec or 0.0 for m in timed)
        audio = sum(m.duration_sec for m in timed)
        body.append(["**total**", round(audio, 1), round(wall, 1), audio / wall, "", ""])
    return markdown(header, body, text_columns=1)


# -- running the engine ----------------------------------------------------------------------------------------

_LIVE: set[subprocess.Popen[bytes]] = set()
_LIVE_LOCK = threading.Lock()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes], grace: float, group: bool) -> None:
    """SIGTERM (the whole process group when it has its own), then SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
            return


@contextlib.contextmanager
def prefect_server(home: Path, timeout: float = 180.0) -> Iterator[str]:
    """One Prefect server (private PREFECT_HOME, free port, no UI) for every engine run; yields its API URL and
    always stops it. Without it each `offbeat analyze` starts an embedded server of its own (~15 s per mix)."""
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    log_path = home / "server.log"
    cmd = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"]
    with log_path.open("wb") as log:
        # its own session: a Ctrl-C in the terminal does not kill it under a running analysis; we stop it last
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}/api"
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"prefect server exited ({proc.returncode}): {_tail(log_path)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"prefect server not healthy after {timeout:.0f} s: {_tail(log_path)}")
                with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
                time.sleep(0.5)
            print(f"prefect server at {url} (PREFECT_HOME {home})", file=sys.stderr)
            yield url
        finally:
            _stop(proc, grace=20.0, group=True)


def _tail(path: Path, chars: int = 2000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-chars:]
    return ""


@dataclass
class Run:
    """How one `offbeat analyze` went (also written beside the result as `<mix_id>.run.json`)."""

    wall_sec: float
    returncode: int
    log: str


def run_engine(
    offbeat: list[str], mix: TrueMix, output: Path, env: dict[str, str], timeout: float | None, extra: list[str]
) -> Run:
    """`offbeat analyze <audio> --output <output>` in a subprocess: wall seconds from start to exit."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)  # a stale result must not be scored as this run's
    log = output.with_suffix(".log")
    cmd = [*offbeat, "analyze", str(mix.audio), "--output", str(output), *extra]
    started = time.perf_counter()
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=REPO)
        with _LIVE_LOCK:
            _LIVE.add(proc)
        try:
            returncode = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _stop(proc, grace=10.0, group=False)
            returncode = -9
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(proc)
    run = Run(time.perf_counter() - started, returncode, str(log))
    output.with_suffix(".run.json").write_text(json.dumps(asdict(run) | {"command": cmd}, indent=1))
    return run


def read_result(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def read_run(path: Path) -> Run | None:
    with contextlib.suppress(OSError, json.JSONDecodeError, TypeError, KeyError):
        data = json.loads(path.with_suffix(".run.json").read_text())
        return Run(float(data["wall_sec"]), int(data["returncode"]), str(data.get("log", "")))
    return None


def result_path(results: Path, mix: TrueMix) -> Path:
    """`<results>/<corpus>/<mix_id>.json`: mix ids are only unique within a corpus."""
    return results / mix.corpus / f"{mix.mix_id}.json"


def score_with_run(mix: TrueMix, doc: dict[str, Any] | None, run: Run | None) -> MixScore:
    score = score_mix(mix, doc)
    if run is not None:
        score.wall_sec = run.wall_sec
        score.audio_sec_per_sec = mix.duration / run.wall_sec if run.wall_sec > 0 else None
        if doc is None:
            score.status = f"no result (exit {run.returncode})"
            score.error = _tail(Path(run.log), 600)
    return score


def analyze_all(
    mixes: list[TrueMix], args: argparse.Namespace, on_done: Callable[[TrueMix, MixScore], None]
) -> list[MixScore]:
    """Run the engine on every mix (`--jobs` at a time) against one Prefect server and one artifact store."""
    store = Path(args.store).resolve()
    store.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "OFFBEAT_ARTIFACT_STORE": str(store),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.setdefault("OFFBEAT_LOCAL_EXPORTS_PATH", str(store / "exports"))  # stems of the corpora stay with the store
    # numba's JIT cache beside the store: the one in the venv's site-packages is shared with every other process
    # (and machine) using that venv, and a stale one there crashed librosa's beat tracker (SIGSEGV)
    env.setdefault("NUMBA_CACHE_DIR", str(store / "numba-cache"))
    extra = ["--model", args.model] if args.model else []

    def one(mix: TrueMix) -> MixScore:
        out = result_path(args.results, mix)
        run = run_engine(shlex.split(args.offbeat), mix, out, env, args.timeout, extra)
        score = score_with_run(mix, read_result(out), run)
        on_done(mix, score)
        return score

    with contextlib.ExitStack() as stack:
        if args.embedded_prefect:
            env.pop("PREFECT_API_URL", None)
        elif "PREFECT_API_URL" not in os.environ:  # else: the caller's server is used as it is
            home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="offbeat-bench-prefect-")))
            env["PREFECT_API_URL"] = stack.enter_context(prefect_server(home))
            env["PREFECT_HOME"] = str(home)
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=max(1, args.jobs)))
        futures = [pool.submit(one, mix) for mix in mixes]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            with _LIVE_LOCK:
                live = list(_LIVE)
            for proc in live:
                _stop(proc, grace=10.0, group=False)
            raise


# -- main ------------------------------------------------------------------------------------------------------


def _terminate(signum: int, _frame: Any) -> None:
    """SIGTERM acts like Ctrl-C: unwind, so the engine runs and the Prefect server are stopped."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpora", nargs="+", type=Path, metavar="CORPUS_DIR", help="<mix_id>.flac + .json files")
    parser.add_argument("--split", choices=("test", "tune", "all"), default="test", help="which mixes (default test)")
    parser.add_argument("--store", type=Path, default=REPO / ".bench-store" / "accuracy", help="artifact store")
    parser.add_argument(
        "--results",
        type=Path,
        default=REPO / ".bench-store" / "accuracy-results",
        help="result documents go to RESULTS/<corpus>/<mix_id>.json (with .log and .run.json)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="engine runs at once (default 1)")
    parser.add_argument("--reuse-results", action="store_true", help="score existing results; run nothing")
    parser.add_argument("--oracle", action="store_true", help="score the truth against itself (checks the scorer)")
    parser.add_argument("--per-mix", action="store_true", help="also print one row per mix")
    parser.add_argument("--json", type=Path, help="write every number (groups, mixes, tracks) here")
    parser.add_argument("--model", help="Spleeter model passed to the engine (default: its settings)")
    parser.add_argument(
        "--offbeat",
        default=str(BIN / "offbeat"),
        help="the engine's command line (default: this venv's offbeat); e.g. a launcher of another checkout",
    )
    parser.add_argument("--timeout", type=float, help="seconds one mix may take before it is stopped")
    parser.add_argument(
        "--embedded-prefect",
        action="store_true",
        help="start no server: every run uses Prefect's embedded one (default: one server for all runs, or the "
        "server of PREFECT_API_URL when it is set)",
    )
    args = parser.parse_args(argv)
    args.results = args.results.resolve()
    signal.signal(signal.SIGTERM, _terminate)

    mixes = find_mixes(args.corpora, args.split)
    if not mixes:
        print(f"no mixes of split {args.split!r} under {', '.join(map(str, args.corpora))}", file=sys.stderr)
        return 1
    print(f"{len(mixes)} mixes ({args.split}), {sum(len(m.tracks) for m in mixes)} tracks", file=sys.stderr)
    started = time.perf_counter()
    if args.oracle:
        scores = [score_mix(mix, oracle_result(mix)) for mix in mixes]
    elif args.reuse_results:
        scores = []
        for mix in mixes:
            path = result_path(args.results, mix)
            doc = read_result(path)
            if doc is None:
                print(f"warning: no result {path}; {mix.corpus}/{mix.mix_id} left out", file=sys.stderr)
                continue
            scores.append(score_with_run(mix, doc, read_run(path)))
    else:
        done = 0

        def progress(mix: TrueMix, score: MixScore) -> None:
            nonlocal done
            done += 1
            print(
                f"[{done}/{len(mixes)}] {mix.corpus}/{mix.mix_id}: {score.status}, {score.wall_sec or 0:.1f} s "
                f"({score.audio_sec_per_sec or 0:.1f} audio s/s)",
                file=sys.stderr,
                flush=True,
            )

        try:
            scores = analyze_all(mixes, args, progress)
        except KeyboardInterrupt:
            print("interrupted; engine runs and the Prefect server stopped", file=sys.stderr)
            return 130
    if not scores:
        return 1

    rows = group_rows(scores)
    print("## Accuracy\n")
    print(summary_table(rows))
    print(
        "\nbeat/downbeat F: corpus rows = mean whole-mix F over mixes; style rows = mean F over the tracks' steady "
        "parts. Boundaries: hits pooled over mixes. n/a: nothing to score (or no downbeats in the result)."
    )
    fields = sorted({m.downbeat_field for m in scores if m.downbeat_field})
    print(f"downbeats read from: {', '.join(fields) if fields else 'none (results.global has no downbeat list)'}")
    if args.per_mix:
        print("\n## Per mix\n")
        print(per_mix_table(scores))
    if any(m.wall_sec is not None for m in scores):
        print("\n## Speed\n")
        print(timing_table(scores))
    elapsed = time.perf_counter() - started
    audio = sum(m.duration_sec for m in scores)
    print(f"\nbenchmark wall time {elapsed:.1f} s for {audio:.0f} s of audio ({audio / elapsed:.2f} audio s per s)")
    failed = [m for m in scores if m.status != "completed"]
    for mix in failed:
        print(f"warning: {mix.corpus}/{mix.mix_id}: {mix.status} {mix.error or ''}".rstrip(), file=sys.stderr)

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "goals": {k: {"op": op, "value": v} for k, (op, v) in GOALS.items()},
            "split": args.split,
            "corpora": [str(c) for c in args.corpora],
            "mode": "oracle" if args.oracle else "reuse-results" if args.reuse_results else "analyze",
            "groups": rows,
            "mixes": [asdict(m) | {"summary": aggregate(m.mix_id, [m])} for m in scores],
        }
        args.json.write_text(json.dumps(report, indent=1, default=_json_default))
        print(f"JSON: {args.json}", file=sys.stderr)
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
