"""Known answers for the corpora's ground truth (bench/corpus/truth.py and the synthetic corpus that writes it).

A tiny synthetic mix (three 12-bar four-on-the-floor tracks: a beat-matched linear blend, then an equal-power
blend of unrelated tempi into a track whose tempo ramps) is rendered by the corpus's own mixer, written with
`truth.write_mix` and read back; its truth must agree with the audio on the file: each boundary is where the two
tracks' gains in the mix cross (solved per 23 ms window from the mix and the tracks rendered alone), each true
beat is a kick onset of the track's rendered drums (within 2 ms), the declared tempo is the one of the beats and of
the kicks, the steady parts hold one track alone, and their loudness is the truth's. Then the format itself: JSON
round trips, the consistency checks a writer must pass, and what `write_mix` refuses."""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from bench.corpus import truth as ct
from bench.corpus.synthetic.dsp import SR
from bench.corpus.synthetic.mixing import render_mix
from bench.corpus.synthetic.plan import TAIL_SEC, Grid, MixPlan, Section, TrackPlan, Transition, place
from bench.corpus.synthetic.render import TrackRenderer
from bench.corpus.synthetic.styles import STYLES

BARS = 12
SECTIONS = [Section("intro", 0, 2), Section("drop", 2, 8), Section("outro", 10, 2)]


def grid(bpm0: float, bpm1: float, meter: int = 4) -> Grid:
    """A grid of BARS bars: bpm0 for the first quarter of the beats, a linear ramp to bpm1 over the middle half."""
    n = BARS * meter
    bpm = np.interp(np.arange(n) + 0.5, [n / 4, 3 * n / 4], [bpm0, bpm1])
    return Grid(np.concatenate([[0.0], np.cumsum(60.0 / bpm)]), meter)


def tiny_plan() -> MixPlan:
    """techno 126 -> house 126 (beat-matched, linear over 4 bars) -> tempo ramp 118->122 (equal power, 4 bars)."""
    specs = [
        ("techno", 126.0, 126.0, 9, "minor"),
        ("house", 126.0, 126.0, 2, "major"),
        ("tempo ramp", 118.0, 122.0, 7, "minor"),
    ]
    tracks = [
        TrackPlan(i, STYLES[style], b0, b1, key, mode, BARS, SECTIONS, False, -2.0 * i, 100 + i, grid(b0, b1))
        for i, (style, b0, b1, key, mode) in enumerate(specs)
    ]
    tracks[0].offset = round(0.5 * SR)
    transitions = [Transition("linear", True, 4), Transition("equal_power", False, 4)]
    return MixPlan("synth-tiny-00001", 1, "test", tracks, transitions, place(tracks, transitions))


@functools.cache
def tiny_mix() -> tuple[MixPlan, np.ndarray, ct.MixTruth]:
    """The tiny mix as the corpus's mixer renders it: (plan, audio, truth); rendered once per test session."""
    plan = tiny_plan()
    audio, truth = render_mix(plan)
    return plan, audio, truth


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[MixPlan, ct.MixTruth, np.ndarray]:
    """The tiny mix written as a corpus writes it, and read back: (plan, truth from the JSON, audio from the FLAC)."""
    plan, audio, truth = tiny_mix()
    path = ct.write_mix(tmp_path_factory.mktemp("corpus"), plan.mix_id, audio, SR, truth)
    read = ct.read_mix(path)
    flac, rate = sf.read(str(read.audio_path), dtype="float64", always_2d=True)
    assert rate == SR
    return plan, read, flac


def placed(plan: MixPlan, i: int, audio: np.ndarray, length: int) -> np.ndarray:
    """A track's own render at its place in the mix (zeros elsewhere)."""
    out = np.zeros((length, audio.shape[1]))
    offset = plan.tracks[i].offset
    n = min(len(audio), length - offset)
    out[offset : offset + n] = audio[:n]
    return out


def solo_gain(mix: np.ndarray, alone: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """The gain g that makes g * alone closest to the mix between lo and hi seconds, and the largest residual."""
    a, b = round(lo * SR), round(hi * SR)
    g = float(np.sum(mix[a:b] * alone[a:b]) / np.sum(alone[a:b] ** 2))
    return g, float(np.max(np.abs(mix[a:b] - g * alone[a:b])))


def kick_onset_errors(drums: np.ndarray, beats: np.ndarray, start: float) -> np.ndarray:
    """For each beat (mix seconds), how far (s) from it the drums' energy rises most sharply: the argmax, within
    +-30 ms, of the energy in the next 10 ms over the energy in the 10 ms before."""
    x = drums.mean(axis=1).astype(np.float64)
    energy = np.concatenate([[0.0], np.cumsum(x**2)])
    h, reach = round(0.010 * SR), round(0.030 * SR)
    errors = []
    for beat in beats:
        c = round((beat - start) * SR)
        if c < reach + h or c + reach + h >= len(x):  # too near the render's edges to see a rise
            continue
        t = np.arange(c - reach, c + reach)
        rise = (energy[t + h] - energy[t]) / (energy[t] - energy[t - h] + 1e-12)
        errors.append((t[np.argmax(rise)] - c) / SR)
    return np.asarray(errors)


def check_against_audio(truth: ct.MixTruth, audio: np.ndarray) -> None:
    """What any synthetic mix's truth must say about its own audio file: the length, silence before the first
    track, every track's steady-part loudness (BS.1770 on the file), and beats handed over at the boundaries."""
    assert truth.problems() == []
    assert len(audio) / truth.sample_rate == pytest.approx(truth.duration_sec, abs=1e-3)
    first = round(truth.tracks[0].start_sec * truth.sample_rate)
    assert np.all(audio[:first] == 0.0) and np.max(np.abs(audio[first : first + truth.sample_rate // 2])) > 0.01
    assert truth.tracks[-1].end_sec == pytest.approx(truth.duration_sec, abs=1e-3)
    meter = pyloudnorm.Meter(truth.sample_rate)
    for t in truth.tracks:
        lo, hi = t.steady_window()
        steady = audio[round(lo * truth.sample_rate) : round(hi * truth.sample_rate)]
        assert meter.integrated_loudness(steady) == pytest.approx(t.lufs, abs=0.05), t.title
    for i, b in enumerate(truth.boundaries_sec):
        window = truth.tracks[i].transition_out
        assert window == truth.tracks[i + 1].transition_in
        assert b == pytest.approx(0.5 * (window[0] + window[1]), abs=1e-5)  # the middle of the crossfade
    # the mix's beats: the outgoing track's before each boundary, the incoming's from it on (a beat on the
    # boundary, to the microsecond the JSON keeps, may be either's), no beat twice
    edges = [-np.inf, *truth.boundaries_sec, np.inf]
    mix_beats = np.asarray(truth.beats_sec)
    for i, t in enumerate(truth.tracks):
        inside = mix_beats[(mix_beats >= edges[i] + 1e-5) & (mix_beats < edges[i + 1] - 1e-5)]
        own = np.asarray(t.beats_sec)
        assert np.all(np.min(np.abs(inside[:, None] - own[None, :]), axis=1) < 1e-5), t.title
        assert inside.size >= np.sum((own >= edges[i] + 0.5) & (own < edges[i + 1]))
    assert np.min(np.diff(mix_beats)) > 0.4 * 60.0 / max(t.bpm_range[1] for t in truth.tracks)
    assert set(np.round(truth.downbeats_sec, 5)) <= set(np.round(truth.beats_sec, 5))


# -- the tiny mix against its audio ------------------------------------------------------------------------------


def test_truth_agrees_with_the_written_audio(tiny: tuple[MixPlan, ct.MixTruth, np.ndarray]) -> None:
    plan, truth, audio = tiny
    assert (truth.corpus, truth.mix_id, truth.split, truth.sample_rate) == ("synthetic-v1", plan.mix_id, "test", SR)
    assert [t.style for t in truth.tracks] == ["techno", "house", "tempo ramp"]
    assert [t.blend_in for t in truth.tracks] == [None, "blend", "blend"]
    assert [t.beatmatched_in for t in truth.tracks] == [None, True, False]
    assert [t.key for t in truth.tracks] == ["A minor", "D major", "G minor"]
    assert [t.has_vocals for t in truth.tracks] == [False, False, False]
    check_against_audio(truth, audio)


def test_boundaries_are_where_the_tracks_hand_over(tiny: tuple[MixPlan, ct.MixTruth, np.ndarray]) -> None:
    """Each track's gain in the mix, solved per window from the mix and the tracks rendered alone: 1 in its steady
    part (where the mix is that track alone), 0 outside its extent, and the two gains of a crossfade cross at the
    truth's boundary (linear: at 0.5, equal power: at 0.71)."""
    plan, truth, mix = tiny
    alone = [placed(plan, i, TrackRenderer(tp, tp.n_render).render(), len(mix)) for i, tp in enumerate(plan.tracks)]
    steady_gain = []
    for tp, t, track in zip(plan.tracks, truth.tracks, alone, strict=True):
        assert (tp.offset, tp.offset + tp.n_render) == (round(t.start_sec * SR), round(t.end_sec * SR))
        lo, hi = t.steady_window()
        if t is truth.tracks[-1]:
            hi -= TAIL_SEC  # the last track's tail is faded out
        gain, residual = solo_gain(mix, track, lo, hi)
        assert residual < 1e-4 * gain, t.title  # the steady part is this track alone (24-bit FLAC rounding aside)
        steady_gain.append(gain)
    win = 1024
    for i, (boundary, middle_gain) in enumerate(zip(truth.boundaries_sec, (0.5, np.sqrt(0.5)), strict=True)):
        lo, hi = truth.tracks[i].transition_out
        starts = range(round(lo * SR), round(hi * SR) - win, win)
        gains = []
        for a in starts:
            parts = np.stack([alone[i][a : a + win].ravel(), alone[i + 1][a : a + win].ravel()], axis=1)
            solved, *_ = np.linalg.lstsq(parts, mix[a : a + win].ravel(), rcond=None)
            gains.append(solved / [steady_gain[i], steady_gain[i + 1]])
        gains = np.asarray(gains)
        times = (np.asarray(starts) + win / 2) / SR
        out_gain, in_gain = gains[:, 0], gains[:, 1]
        assert out_gain[0] > 0.95 and in_gain[0] < 0.05
        assert out_gain[-1] < 0.05 and in_gain[-1] > 0.95
        assert np.all(np.diff(out_gain) < 0.01) and np.all(np.diff(in_gain) > -0.01)  # one handover, no wobble
        k = int(np.flatnonzero(np.diff(np.sign(out_gain - in_gain)))[0])
        crossing = np.interp(0.0, [in_gain[k] - out_gain[k], in_gain[k + 1] - out_gain[k + 1]], times[k : k + 2])
        assert crossing == pytest.approx(boundary, abs=0.01)
        assert np.interp(boundary, times, out_gain) == pytest.approx(middle_gain, abs=0.02)


def test_beats_are_on_the_kicks_of_the_rendered_drums(tiny: tuple[MixPlan, ct.MixTruth, np.ndarray]) -> None:
    """Every track's true beats sit on the kicks of its drums (rendered alone by the corpus's renderer, in the same
    random order as in the mix), and the declared tempo is the one of its beats and of its kicks."""
    plan, truth, _ = tiny
    for tp, t in zip(plan.tracks, truth.tracks, strict=True):
        renderer = TrackRenderer(tp, tp.n_render)
        renderer.drums()  # the first layer drawn: the same drums as in the mix
        beats = np.asarray(t.beats_sec)
        errors = kick_onset_errors(renderer.bus.lr, beats, t.start_sec)
        assert errors.size >= len(beats) - 2
        assert np.max(np.abs(errors)) < 0.002, t.title
        kicks = beats[: errors.size] + errors  # the kicks as found in the audio
        intervals = 60.0 / np.diff(beats)
        lo, hi = t.bpm_range
        assert (lo, hi) == (min(tp.bpm0, tp.bpm1), max(tp.bpm0, tp.bpm1))
        assert np.all((intervals > lo - 1e-3) & (intervals < hi + 1e-3))
        assert t.bpm == pytest.approx(0.5 * (lo + hi))
        assert intervals[0] == pytest.approx(tp.bpm0, abs=1e-3) and intervals[-1] == pytest.approx(tp.bpm1, abs=1e-3)
        assert 60.0 / np.median(np.diff(kicks[:8])) == pytest.approx(tp.bpm0, rel=0.005)
        assert t.downbeats_sec == t.beats_sec[:: t.meter] and t.meter == 4
        assert beats[0] == pytest.approx(t.start_sec, abs=1e-5)  # the first beat starts the track


def test_the_mix_beats_hand_over_on_a_beat_matched_boundary(tiny: tuple[MixPlan, ct.MixTruth, np.ndarray]) -> None:
    """On the beat-matched blend both tracks have a beat on the boundary: the mix lists it once."""
    _, truth, _ = tiny
    boundary = truth.boundaries_sec[0]
    near = [b for b in truth.beats_sec if abs(b - boundary) < 1e-3]
    assert len(near) == 1
    out_beats, in_beats = truth.tracks[0].beats_sec, truth.tracks[1].beats_sec
    assert min(abs(b - boundary) for b in out_beats) < 1e-3 and min(abs(b - boundary) for b in in_beats) < 1e-3
    step = 60.0 / 126.0
    assert np.allclose(np.diff(truth.beats_sec[: len(out_beats) + 4]), step, atol=1e-4)  # one grid through it


# -- the format -----------------------------------------------------------------------------------------------


def small_truth() -> ct.MixTruth:
    """Two 120 BPM tracks with a 4 s crossfade at 8-12 s, written by hand."""
    beats_a = [0.5 * k for k in range(24)]  # 0 .. 11.5
    beats_b = [8.0 + 0.5 * k for k in range(24)]  # 8 .. 19.5
    a = ct.TrackTruth(0, "a", "house", 0.0, 12.0, None, (8.0, 12.0), 120.0, (120.0, 120.0), 4, "A minor", False,
                      -9.5, beats_a, beats_a[::4])  # fmt: skip
    b = ct.TrackTruth(1, "b", "techno", 8.0, 20.0, (8.0, 12.0), None, 120.0, (120.0, 120.0), 4, "C# major", None,
                      None, beats_b, beats_b[::4], "bass_swap", True)  # fmt: skip
    beats = [x for x in beats_a if x < 10.0] + [x for x in beats_b if x >= 10.0]
    return ct.MixTruth("known", "known-0", "tune", 1000, 20.0, [10.0], beats, beats[::4], [a, b])


def test_json_round_trips() -> None:
    truth = small_truth()
    doc = truth.to_dict()
    assert json.loads(json.dumps(doc)) == doc
    again = ct.MixTruth.from_dict(doc)
    assert again == truth
    assert again.to_dict() == doc
    assert doc["tracks"][1]["transition_in"] == [8.0, 12.0] and doc["tracks"][0]["transition_in"] is None


def test_write_then_read_gives_the_same_truth_and_audio(tmp_path: Path) -> None:
    truth = small_truth()
    rng = np.random.default_rng(0)
    audio = (rng.uniform(-0.5, 0.5, (20 * 1000, 2))).astype(np.float32)
    path = ct.write_mix(tmp_path, "known-0", audio, 1000, truth)
    assert path == tmp_path / "known-0.json" and sorted(p.name for p in tmp_path.iterdir()) == [
        "known-0.flac",
        "known-0.json",
    ]
    read = ct.read_mix(path)
    assert read == truth and read.source == path and read.audio_path == tmp_path / "known-0.flac"
    back, rate = sf.read(str(read.audio_path), dtype="float32", always_2d=True)
    assert rate == 1000 and back.shape == audio.shape
    assert np.max(np.abs(back - audio)) < 2.0**-22  # 24-bit
    assert ct.list_mixes(tmp_path) == [path] and ct.list_mixes(tmp_path, "tune") == [path]
    assert ct.list_mixes(tmp_path, "test") == []
    (tmp_path / "orphan.json").write_text(path.read_text())  # truth without audio is not a mix
    assert ct.list_mixes(tmp_path) == [path]


def test_times_are_rounded_to_microseconds_and_older_files_still_read() -> None:
    truth = small_truth()
    truth.boundaries_sec = [10.0000004]
    doc = truth.to_dict()
    assert doc["boundaries_sec"] == [10.0]
    for t in doc["tracks"]:
        del t["blend_in"], t["beatmatched_in"]  # written before those fields existed
    old = ct.MixTruth.from_dict(doc)
    assert [t.blend_in for t in old.tracks] == [None, None] and old.problems() == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda m: setattr(m, "split", "train"), "split 'train'"),
        (lambda m: setattr(m, "boundaries_sec", []), "0 boundaries for 2 tracks"),
        (lambda m: setattr(m, "boundaries_sec", [7.0]), "boundary 0 outside its transition window"),
        (lambda m: setattr(m, "beats_sec", [1.0, 1.0, 2.0]), "beats_sec not strictly increasing"),
        (lambda m: setattr(m, "beats_sec", [1.0, 21.0]), "beats_sec outside the mix"),
        (lambda m: setattr(m.tracks[1], "index", 5), "track 1: index 5"),
        (lambda m: setattr(m.tracks[1], "end_sec", 25.0), "track 1: extent"),
        (lambda m: setattr(m.tracks[0], "transition_out", None), "track 0: transitions do not match its position"),
        (lambda m: setattr(m.tracks[1], "transition_in", (8.0, 21.0)), "track 1: empty steady part"),
        (lambda m: setattr(m.tracks[1], "blend_in", "scratch"), "track 1: blend_in 'scratch'"),
        (lambda m: setattr(m.tracks[0], "blend_in", "cut"), "track 0: the first track has no transition into it"),
        (lambda m: setattr(m.tracks[0], "bpm", 130.0), "track 0: bpm 130.0 outside"),
        (lambda m: setattr(m.tracks[0], "key", "a minor"), "not in canonical spelling"),
        (lambda m: setattr(m.tracks[0], "key", "A dorian"), "key must look like"),
        (lambda m: setattr(m.tracks[1], "beats_sec", [7.0, 9.0]), "track 1: beats_sec outside the track"),
    ],
)
def test_problems_finds_each_inconsistency(change, problem: str) -> None:
    truth = small_truth()
    assert truth.problems() == []
    change(truth)
    found = truth.problems()
    assert any(problem in p for p in found), found


def test_write_mix_refuses_what_would_make_a_wrong_corpus(tmp_path: Path) -> None:
    truth = small_truth()
    quiet = np.zeros((20 * 1000, 2), np.float32)
    with pytest.raises(ValueError, match="clip"):
        ct.write_mix(tmp_path, "known-0", quiet + 1.5, 1000, truth)
    with pytest.raises(ValueError, match="stereo"):
        ct.write_mix(tmp_path, "known-0", quiet[:, 0], 1000, truth)
    with pytest.raises(ValueError, match="duration"):
        ct.write_mix(tmp_path, "known-0", quiet[:-100], 1000, truth)
    with pytest.raises(ValueError, match="disagree"):
        ct.write_mix(tmp_path, "other", quiet, 1000, truth)
    with pytest.raises(ValueError, match="inconsistent truth"):
        ct.write_mix(tmp_path, "known-0", quiet, 1000, replace(truth, boundaries_sec=[3.0]))
    assert list(tmp_path.iterdir()) == []  # nothing half-written


@pytest.mark.parametrize(
    ("text", "parsed", "canonical"),
    [
        ("A minor", (9, "minor"), "A minor"),
        ("C# major", (1, "major"), "C# major"),
        ("Db major", (1, "major"), "C# major"),
        ("bb minor", (10, "minor"), "A# minor"),
        ("Cb major", (11, "major"), "B major"),
        (" e  Minor ", (4, "minor"), "E minor"),
    ],
)
def test_keys_parse_and_spell_one_way(text: str, parsed: tuple[int, str], canonical: str) -> None:
    assert ct.parse_key(text) == parsed
    assert ct.format_key(*parsed) == canonical


@pytest.mark.parametrize("text", ["H major", "A", "A dorian", "A minor sharp", ""])
def test_keys_that_are_not_keys_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        ct.parse_key(text)
    with pytest.raises(ValueError):
        ct.format_key(0, "dorian")
