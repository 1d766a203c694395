"""Known answers for the accuracy bench's scorer (bench/accuracy/score.py), on which every accuracy figure rests:
hand-built truths and result documents whose scores are worked out by hand here (boundary detection at +-3, +-10
and +-30 s with exact hits, near misses, phantoms and misses; beat F at +-70 ms; MIREX tempo Acc1/Acc2; MIREX
weighted key scores for fifth, relative and parallel errors; LUFS error; vocals), so a wrong metric, window or
tolerance fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.accuracy import report, score
from bench.accuracy.mixes import TrueMix, TrueTrack

APPROX = pytest.approx


def track(
    index: int,
    style: str,
    start: float,
    end: float,
    fade_in: tuple[float, float] | None,
    fade_out: tuple[float, float] | None,
    bpm: float | None = 120.0,
    key: str | None = "C major",
    vocals: bool | None = False,
    lufs: float | None = -10.0,
    beats: np.ndarray | None = None,
) -> TrueTrack:
    beats = np.arange(start, end, 60.0 / bpm) if beats is None and bpm else (beats if beats is not None else [])
    beats = np.asarray(beats, float)
    return TrueTrack(
        index=index,
        title=f"track {index}",
        style=style,
        start=start,
        end=end,
        transition_in=fade_in,
        transition_out=fade_out,
        bpm=bpm,
        bpm_range=None if bpm is None else (bpm, bpm),
        key=key,
        has_vocals=vocals,
        lufs=lufs,
        beats=beats,
        downbeats=beats[::4],
    )


def mix(tracks: list[TrueTrack], duration: float, boundaries: list[float], beats: np.ndarray | None = None) -> TrueMix:
    beats = np.asarray([] if beats is None else beats, float)
    return TrueMix(
        corpus="known",
        mix_id="known-0",
        split="test",
        duration=duration,
        boundaries=np.asarray(boundaries, float),
        beats=beats,
        downbeats=beats[::4],
        tracks=tuple(tracks),
        audio=Path("known-0.flac"),
        truth_path=Path("known-0.json"),
    )


def boundary_only_mix(boundaries: list[float], duration: float = 600.0) -> TrueMix:
    """A mix of len(boundaries) + 1 tracks of one style whose crossfades are 10 s around each boundary."""
    edges = [0.0, *boundaries, duration]
    tracks = [
        track(
            i,
            "house",
            max(0.0, edges[i] - 5.0),
            min(duration, edges[i + 1] + 5.0),
            None if i == 0 else (edges[i] - 5.0, edges[i] + 5.0),
            None if i == len(edges) - 2 else (edges[i + 1] - 5.0, edges[i + 1] + 5.0),
        )
        for i in range(len(edges) - 1)
    ]
    return mix(tracks, duration, boundaries)


def result(spans: list[tuple[float, float]], analyses: list[dict[str, Any]] | None = None, **global_: Any) -> dict:
    """A result document with these track spans (and analyses) and these `results.global` fields."""
    analyses = analyses or [{} for _ in spans]
    tracks = [
        {"track_id": i, "start_time_sec": s, "end_time_sec": e, "analysis": a}
        for i, ((s, e), a) in enumerate(zip(spans, analyses, strict=True))
    ]
    return {"job_id": 1, "status": "completed", "results": {"global": global_, "tracks": tracks}}


# -- boundaries -------------------------------------------------------------------------------------------------

# Truth: 100, 200, 300, 400 s. Estimates: 100 (exact), 208 (8 s late: a hit at +-10 s and +-30 s, a miss at +-3 s),
# 250 (a phantom: 50 s from any truth), 320 (20 s late: a hit only at +-30 s) and 550 (a phantom). 400 is missed.
TRUE_BOUNDS = [100.0, 200.0, 300.0, 400.0]
EST_BOUNDS = [100.0, 208.0, 250.0, 320.0, 550.0]


@pytest.mark.parametrize(
    ("window", "hits"),
    [(3.0, 1), (10.0, 2), (30.0, 3)],
    ids=["3s", "10s", "30s"],
)
def test_boundary_detection_counts_hits_within_the_window_once(window: float, hits: int) -> None:
    truth = boundary_only_mix(TRUE_BOUNDS)
    scores, counts, _ = score.score_boundaries(truth, EST_BOUNDS, window)
    p, r = hits / len(EST_BOUNDS), hits / len(TRUE_BOUNDS)
    assert (counts.ref, counts.est, counts.ref_hit, counts.est_hit) == (4, 5, hits, hits)
    assert scores["precision"] == APPROX(p)
    assert scores["recall"] == APPROX(r)
    assert scores["f"] == APPROX(2 * p * r / (p + r))


def test_boundary_figures_worked_by_hand() -> None:
    truth = boundary_only_mix(TRUE_BOUNDS)
    f3 = score.score_boundaries(truth, EST_BOUNDS, 3.0)[0]["f"]
    f10 = score.score_boundaries(truth, EST_BOUNDS, 10.0)[0]["f"]
    f30 = score.score_boundaries(truth, EST_BOUNDS, 30.0)[0]["f"]
    # P 1/5, R 1/4; P 2/5, R 2/4; P 3/5, R 3/4
    assert (f3, f10, f30) == (APPROX(2 / 9), APPROX(4 / 9), APPROX(2 / 3))
    assert score.BOUNDARY_WINDOW_SEC == 10.0 and score.BOUNDARY_WINDOW_TIGHT_SEC == 3.0


def test_a_boundary_exactly_at_the_window_edge_is_a_hit_and_just_past_it_is_not() -> None:
    truth = boundary_only_mix([200.0])
    assert score.score_boundaries(truth, [210.0], 10.0)[0]["f"] == APPROX(1.0)
    assert score.score_boundaries(truth, [190.0], 10.0)[0]["f"] == APPROX(1.0)
    assert score.score_boundaries(truth, [210.5], 10.0)[0]["f"] == APPROX(0.0)


def test_two_estimates_near_one_boundary_count_one_hit() -> None:
    truth = boundary_only_mix([200.0])
    scores, counts, _ = score.score_boundaries(truth, [198.0, 203.0], 10.0)
    assert (counts.ref_hit, counts.est_hit, counts.est) == (1, 1, 2)
    assert (scores["precision"], scores["recall"]) == (APPROX(0.5), APPROX(1.0))


def test_no_estimate_scores_zero_and_no_truth_leaves_recall_undefined() -> None:
    scores, counts, _ = score.score_boundaries(boundary_only_mix(TRUE_BOUNDS), [], 10.0)
    assert (scores["precision"], scores["recall"], scores["f"]) == (0.0, 0.0, 0.0)
    assert counts.ref == 4 and counts.est == 0
    single = boundary_only_mix([])  # one track: nothing to find
    scores, counts, _ = score.score_boundaries(single, [300.0], 10.0)
    assert counts.prf() == (0.0, None, None)
    assert scores["recall"] is None and scores["f"] is None
    assert score.BoundaryCounts().prf() == (None, None, None)


def test_boundaries_outside_the_mix_are_ignored() -> None:
    truth = boundary_only_mix([200.0], duration=400.0)
    scores, counts, _ = score.score_boundaries(truth, [-5.0, 0.0, 200.0, 400.0, 450.0], 10.0)
    assert (counts.est, counts.est_hit) == (1, 1)
    assert scores["f"] == APPROX(1.0)


def test_pooled_counts_are_micro_averages() -> None:
    a = score.BoundaryCounts(ref=4, est=5, ref_hit=2, est_hit=2)
    a.add(score.BoundaryCounts(ref=1, est=0, ref_hit=0, est_hit=0))
    p, r, f = a.prf()
    assert (a.ref, a.est, a.ref_hit) == (5, 5, 2)
    assert (p, r, f) == (APPROX(0.4), APPROX(0.4), APPROX(0.4))


def test_estimated_boundaries_are_where_consecutive_tracks_meet() -> None:
    spans = [(95.0, 200.0), (0.0, 105.0), (200.0, 300.0)]  # unsorted; the first two overlap by 10 s
    estimated = [{"start_time_sec": s, "end_time_sec": e} for s, e in spans]
    assert score.estimated_boundaries(estimated) == [100.0, 200.0]
    assert score.estimated_boundaries(estimated[:1]) == []


def test_each_style_owns_the_boundaries_beside_its_tracks() -> None:
    """Tracks A | B | C with boundaries at 100 and 200 s; estimates 100 (hit), 150 (a phantom inside B's stretch),
    none near 200 (a miss): A owns one hit boundary, B both boundaries (one hit) and the phantom, C one miss."""
    tracks = [
        track(0, "A", 0.0, 110.0, None, (90.0, 110.0)),
        track(1, "B", 90.0, 210.0, (90.0, 110.0), (190.0, 210.0)),
        track(2, "C", 190.0, 300.0, (190.0, 210.0), None),
    ]
    truth = mix(tracks, 300.0, [100.0, 200.0])
    scores, counts, styles = score.score_boundaries(truth, [100.0, 150.0], 10.0)
    assert scores["f"] == APPROX(0.5)
    assert (counts.ref, counts.est, counts.ref_hit) == (2, 2, 1)
    as_tuple = {name: (c.ref, c.ref_hit, c.est, c.est_hit) for name, c in styles.items()}
    assert as_tuple == {"A": (1, 1, 1, 1), "B": (2, 1, 2, 1), "C": (1, 0, 0, 0)}
    assert styles["C"].prf() == (0.0, 0.0, 0.0)
    assert styles["B"].prf() == (0.5, 0.5, APPROX(0.5))


# -- beats -----------------------------------------------------------------------------------------------------


def test_beat_f_measure_uses_a_70_ms_window() -> None:
    reference = np.arange(20) * 0.5 + 5.0
    estimate = reference.copy()
    estimate[3] += 0.06  # inside +-70 ms: a hit
    estimate[[5, 9, 12, 17]] += 0.08  # outside: four misses (and four false beats)
    assert score.beat_f(reference, estimate) == APPROX(0.8)  # P = R = 16/20
    extra = np.concatenate([estimate, reference[:5] + 0.25])  # five beats half-way between true ones
    assert score.beat_f(reference, np.sort(extra)) == APPROX(2 * 0.64 * 0.8 / 1.44)  # P 16/25, R 16/20


def test_beat_f_of_nothing() -> None:
    reference = np.arange(10) * 0.5
    assert score.beat_f(reference, None) == 0.0
    assert score.beat_f(reference, np.array([])) == 0.0
    assert score.beat_f(np.array([]), reference) is None


def test_times_of_sorts_and_tells_a_missing_field() -> None:
    assert score.times_of({"x": [3, 1, 2]}, "x").tolist() == [1.0, 2.0, 3.0]
    assert score.times_of({}, "x") is None


# -- tempo, key ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("estimate", "acc1", "acc2"),
    [
        (120.0, True, True),
        (124.0, True, True),  # 3.3 % off
        (115.5, True, True),  # 3.75 % off
        (125.0, False, False),  # 4.2 % off, and no multiple
        (240.0, False, True),  # double
        (238.0, False, True),  # 0.8 % off double
        (60.0, False, True),  # half
        (360.0, False, True),  # triple
        (40.0, False, True),  # a third
        (180.0, False, False),  # 3/2 is not a MIREX factor
        (None, False, False),
        (float("nan"), False, False),
    ],
)
def test_tempo_acc1_and_acc2(estimate: float | None, acc1: bool, acc2: bool) -> None:
    assert score.tempo_hits(estimate, 120.0) == (acc1, acc2)


@pytest.mark.parametrize(
    ("spelled", "mir"),
    [
        ("A Minor", "A minor"),
        ("c# maj", "C# major"),
        ("F\u266f minor", "F# minor"),
        ("B\u266d min", "Bb minor"),
        ("H major", None),
        ("C dorian", None),
        ("Cminor", None),
        ("", None),
        (None, None),
    ],
)
def test_keys_are_read_in_any_spelling_the_engine_or_a_corpus_uses(spelled: str | None, mir: str | None) -> None:
    assert score.to_mir_key(spelled) == mir


# -- one whole mix ---------------------------------------------------------------------------------------------


def four_track_mix() -> TrueMix:
    """Four 120 BPM tracks of C major at -10 LUFS, 100 s each with 20 s crossfades; the mix's beats every 0.5 s."""
    bounds = [100.0, 200.0, 300.0]
    edges = [0.0, *bounds, 400.0]
    tracks = []
    for i in range(4):
        fade_in = None if i == 0 else (edges[i] - 10.0, edges[i] + 10.0)
        fade_out = None if i == 3 else (edges[i + 1] - 10.0, edges[i + 1] + 10.0)
        start, end = (fade_in or (0.0, 0.0))[0], (fade_out or (400.0, 400.0))[1]
        tracks.append(track(i, "house" if i % 2 == 0 else "techno", start, end, fade_in, fade_out, vocals=i == 1))
    return mix(tracks, 400.0, bounds, beats=np.arange(0.5, 400.0, 0.5))


def test_a_perfect_result_scores_one_everywhere() -> None:
    truth = four_track_mix()
    doc = score.oracle_result(truth)
    scored = score.score_mix(truth, doc)
    assert scored.status == "completed"
    assert scored.boundary10 == {"precision": 1.0, "recall": 1.0, "f": 1.0}
    assert scored.boundary3["f"] == 1.0
    assert scored.beat_f == APPROX(1.0) and scored.downbeat_f == APPROX(1.0)
    assert [t.est_index for t in scored.tracks] == [0, 1, 2, 3]
    for t in scored.tracks:
        assert (t.tempo_acc1, t.tempo_acc2, t.key_score, t.vocals_right, t.lufs_error) == (True, True, 1.0, True, 0.0)
        assert t.beat_f == APPROX(1.0)
    row = report.aggregate("known", [scored])
    for name in ("tempo_acc1", "tempo_acc2", "beat_f", "boundary_f10", "boundary_f3", "key_mirex", "vocals_right"):
        assert row[name] == APPROX(1.0), name
    assert row["lufs_mae"] == 0.0


def test_a_hand_built_result_scores_what_was_worked_out_by_hand() -> None:
    """Boundaries 100/200/300 found at 104 and 230 (one +-10 s hit, a phantom, two misses), so the last two true
    tracks share one estimate; tempo right, doubled, then 4.2 % off for both; keys C (right), G (a fifth above:
    0.5), A minor (the relative: 0.3) for both; LUFS off by 0.5, 1.0, 0 and 0 LU; the second track's vocals
    missed; beats right but for 40 beats 90 ms late in the first track."""
    truth = four_track_mix()
    spans = [(0.0, 104.0), (104.0, 230.0), (230.0, 400.0)]
    analyses = [
        {"stable_bpm": 120.0, "key": {"musical": "C Major"}, "has_vocals": False, "loudness_lufs_total": -10.5},
        {"stable_bpm": 240.0, "key": {"musical": "G Major"}, "has_vocals": False, "loudness_lufs_total": -9.0},
        {"stable_bpm": 125.0, "key": {"musical": "A Minor"}, "has_vocals": False, "loudness_lufs_total": -10.0},
    ]
    beats = truth.beats.copy()
    late = (beats >= 20.0) & (beats < 40.0)  # 40 beats 90 ms late: 40 misses and 40 false beats
    beats[late] += 0.09
    doc = result(spans, analyses, global_beat_grid_timestamps=beats.tolist())
    scored = score.score_mix(truth, doc)

    assert scored.boundaries_est == [104.0, 230.0]
    assert scored.boundary10 == {"precision": 0.5, "recall": APPROX(1 / 3), "f": APPROX(0.4)}
    assert scored.boundary3 == {"precision": 0.0, "recall": 0.0, "f": 0.0}
    n = truth.beats.size  # 799 beats, 40 of them missed and 40 false ones
    assert scored.beat_f == APPROX((n - 40) / n)
    assert scored.downbeat_f is None and scored.downbeat_field is None  # the result has no bar lines

    # true track -> the estimate overlapping its steady part most: 0 -> 0, 1 -> 1, 2 -> 2 (steady 210-290 lies
    # 20 s in estimate 1 and 60 s in estimate 2), 3 -> 2
    assert [t.est_index for t in scored.tracks] == [0, 1, 2, 2]
    assert [t.overlap_sec for t in scored.tracks] == [90.0, 80.0, 60.0, 90.0]
    assert [t.tempo_acc1 for t in scored.tracks] == [True, False, False, False]
    assert [t.tempo_acc2 for t in scored.tracks] == [True, True, False, False]
    assert [t.key_est for t in scored.tracks] == ["C major", "G major", "A minor", "A minor"]
    assert [t.key_score for t in scored.tracks] == [1.0, 0.5, 0.3, 0.3]
    assert [t.lufs_error for t in scored.tracks] == [APPROX(0.5), APPROX(1.0), APPROX(0.0), APPROX(0.0)]
    assert [t.vocals_right for t in scored.tracks] == [True, False, True, True]
    steady0 = truth.beats[(truth.beats >= 0.0) & (truth.beats <= 90.0)].size  # 180 beats
    assert scored.tracks[0].beat_f == APPROX((steady0 - 40) / steady0)
    assert scored.tracks[1].beat_f == APPROX(1.0)

    row = report.aggregate("known", [scored])
    assert row["tempo_acc1"] == APPROX(0.25) and row["tempo_acc2"] == APPROX(0.5)
    assert row["key_mirex"] == APPROX((1.0 + 0.5 + 0.3 + 0.3) / 4)
    assert row["lufs_mae"] == APPROX(1.5 / 4)
    assert row["vocals_right"] == APPROX(0.75)
    assert row["boundary_f10"] == APPROX(0.4) and row["boundary_f3"] == 0.0


def test_mirex_weighted_key_score_for_each_kind_of_error() -> None:
    """One track per error kind, scored through `score_mix`: same key 1, a fifth above 0.5, the relative 0.3, the
    parallel 0.2, a fifth below and a neighbour 0, no key 0; a track with unknown key is not scored."""
    estimates = ["A minor", "E minor", "C major", "A major", "D minor", "A# minor", None]
    expected = [1.0, 0.5, 0.3, 0.2, 0.0, 0.0, 0.0]
    tracks = [track(i, "x", 100.0 * i, 100.0 * (i + 1), None, None, key="A minor") for i in range(len(estimates))]
    tracks.append(track(len(estimates), "x", 700.0, 800.0, None, None, key=None))
    truth = mix(tracks, 800.0, [100.0 * (i + 1) for i in range(len(estimates))])
    analyses = [{"key": {"musical": k.title()} if k else None} for k in [*estimates, "C major"]]
    scored = score.score_mix(truth, result([(t.start, t.end) for t in tracks], analyses))
    assert [t.key_score for t in scored.tracks] == [*expected, None]
    assert report.aggregate("keys", [scored])["key_mirex"] == APPROX(sum(expected) / len(expected))


def test_a_missing_result_scores_as_nothing_found() -> None:
    truth = four_track_mix()
    scored = score.score_mix(truth, None)
    assert scored.status == "missing" and scored.tracks_est == 0
    assert scored.boundary10 == {"precision": 0.0, "recall": 0.0, "f": 0.0}
    assert scored.beat_f == 0.0
    for t in scored.tracks:
        assert t.est_index is None
        assert (t.tempo_acc1, t.tempo_acc2, t.key_score, t.beat_f) == (False, False, 0.0, 0.0)
        assert t.vocals_right is False and t.lufs_error is None
    row = report.aggregate("known", [scored])
    assert row["tracks_unmatched"] == 4 and row["mixes_failed"] == 1 and row["lufs_mae"] is None


def test_unknown_truth_is_skipped_not_scored() -> None:
    """null in the truth (tempo, key, vocals, loudness) means: not scored; it must not count as right or wrong."""
    t = track(0, "x", 0.0, 100.0, None, None, bpm=None, key=None, vocals=None, lufs=None)
    truth = mix([t], 100.0, [])
    analysis = {"stable_bpm": 120.0, "key": {"musical": "C Major"}, "has_vocals": True, "loudness_lufs_total": -8}
    scored = score.score_mix(truth, result([(0.0, 100.0)], [analysis]))
    (one,) = scored.tracks
    assert (one.tempo_acc1, one.key_score, one.vocals_right, one.lufs_error, one.beat_f) == (None,) * 5
    row = report.aggregate("x", [scored])
    assert (row["tempo_acc1"], row["key_mirex"], row["vocals_right"], row["lufs_mae"]) == (None,) * 4
    assert row["boundary_f10"] is None  # one track, no boundary found: nothing to score
