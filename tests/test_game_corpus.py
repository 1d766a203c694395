"""The game-music corpus (bench/corpus/game/) without its music: fades, beat matching, the aligned cut, assembly,
blend planning, levelling and the truth of a mix on a few seconds of synthesized audio, and the licence and
reservation checks on stand-in files. Nothing is fetched or decoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from bench.corpus.game import analysis, blending, cli, plan, sources
from bench.corpus.game.blending import Blend, Part

SR = analysis.SAMPLE_RATE


def noise(sec: float, seed: int, level: float = 0.1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((round(sec * SR), 2)) * level).astype(np.float32)


def tone(sec: float, hz: float, amp: float) -> np.ndarray:
    t = np.arange(round(sec * SR)) / SR
    return np.repeat((amp * np.sin(2 * np.pi * hz * t))[:, None], 2, axis=1).astype(np.float32)


def clicks(sec: float, bpm: float, first: float) -> tuple[np.ndarray, np.ndarray]:
    """A click on every beat (a 5 ms Hann burst starting on it) and the beat times."""
    beats = np.arange(first, sec - 0.01, 60.0 / bpm)
    x = np.zeros((round(sec * SR), 2), np.float32)
    burst = np.hanning(220).astype(np.float32)
    for b in beats:
        i = round(b * SR)
        x[i : i + 220] += burst[: len(x) - i, None]
    return x, beats


def click_times(x: np.ndarray) -> np.ndarray:
    peaks, _ = signal.find_peaks(x[:, 0], height=0.5, distance=SR // 10)
    return peaks / SR


def band_rms(x: np.ndarray, lo: float, hi: float, low: bool) -> float:
    """RMS of the band below (or above) 150 Hz of the seconds ``lo``..``hi`` of ``x``."""
    sos = signal.butter(4, 150.0, "low" if low else "high", fs=SR, output="sos")
    band = signal.sosfiltfilt(sos, x[:, 0].astype(np.float64))
    return float(np.sqrt(np.mean(band[round(lo * SR) : round(hi * SR)] ** 2)))


def piece(key: str, sec: float, bpm: float | None = None) -> sources.Piece:
    beats = [round(float(b), 4) for b in np.arange(0.2, sec, 60.0 / bpm)] if bpm else []
    figures = {"trim_start": 0.5, "trim_end": 0.5 + sec, "bpm": bpm, "tempo_known": bpm is not None, "beats": beats}
    return sources.Piece(
        key=key,
        title=key.split("/")[1],
        artist="Someone",
        package="pkg",
        package_version="1",
        licence="GPL-3+",
        split="tune",
        style="game-pkg",
        path=Path(f"/nonexistent/{key}.ogg"),
        relpath=f"{key}.ogg",
        file_sec=sec + 1.0,
        analysis=figures,
    )


# --------------------------------------------------------------------------------------------------------------
# Fades


def test_equal_power_gains_add_up_to_one_in_power() -> None:
    n = 5000
    out, inc = np.ones((n, 2), np.float32), np.ones((n, 2), np.float32)
    blending.apply_fade(out, n, "equal_power", incoming=False)
    blending.apply_fade(inc, n, "equal_power", incoming=True)
    assert np.allclose(out[:, 0] ** 2 + inc[:, 0] ** 2, 1.0, atol=1e-5)
    assert out[0, 0] > 0.99 and inc[0, 0] < 0.01 and out[-1, 0] < 0.01 and inc[-1, 0] > 0.99


def test_an_equal_power_blend_of_uncorrelated_tracks_keeps_their_power() -> None:
    a, b = noise(5.0, 1), noise(5.0, 2)
    mix, starts = blending.assemble([Part("a", "s", a), Part("b", "s", b)], [Blend(2 * SR, "equal_power")])
    assert starts == [0, 3 * SR] and len(mix) == 8 * SR
    steady = float(np.mean(a[: 3 * SR] ** 2))
    for k in range(10):  # 0.2 s blocks through the 2 s blend
        block = mix[3 * SR + k * SR // 5 : 3 * SR + (k + 1) * SR // 5]
        assert np.mean(block**2) == pytest.approx(steady, rel=0.06), k


def test_bass_swap_keeps_the_outgoing_lows_until_the_midpoint_then_the_incoming_ones() -> None:
    fade = 4.0  # over the last (first) 4 s of a 6 s track: midpoint at 4 s (2 s)
    out = tone(6.0, 50.0, 0.5) + tone(6.0, 3000.0, 0.1)
    inc = out.copy()
    blending.apply_fade(out, round(fade * SR), "bass_swap", incoming=False)
    blending.apply_fade(inc, round(fade * SR), "bass_swap", incoming=True)
    full_low, full_high = 0.5 / np.sqrt(2), 0.1 / np.sqrt(2)
    for lo in np.arange(2.0, 3.7, 0.2):  # the outgoing lows stay full up to 1/16 s before the midpoint
        assert band_rms(out, lo, lo + 0.2, low=True) == pytest.approx(full_low, rel=0.03), lo
        assert band_rms(inc, lo - 2.0, lo - 1.8, low=True) < 0.03 * full_low, lo
    for lo in np.arange(4.2, 5.7, 0.2):  # and are gone from 1/16 s after it; the incoming ones are full
        assert band_rms(out, lo, lo + 0.2, low=True) < 0.03 * full_low, lo
        assert band_rms(inc, lo - 2.0, lo - 1.8, low=True) == pytest.approx(full_low, rel=0.03), lo
    # the highs follow the equal-power curve: cos of the blend's progress (1.5 s into 4 s, around 1.6 s)
    assert band_rms(out, 3.5, 3.7, low=False) == pytest.approx(full_high * np.cos(np.pi / 2 * 1.6 / fade), rel=0.05)
    assert band_rms(out, 0.5, 1.5, low=False) == pytest.approx(full_high, rel=0.03)


def test_unknown_fade_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fade"):
        blending.apply_fade(noise(1.0, 0), SR // 2, "linear", incoming=True)


# --------------------------------------------------------------------------------------------------------------
# Beat matching and the aligned cut


def test_beat_matching_plays_the_incoming_track_at_the_outgoing_tempo() -> None:
    x, beats = clicks(8.0, 120.0, 0.25)
    prev = Part("a", "s", noise(4.0, 0), bpm=124.0)
    nxt = Part("b", "s", x, beats, 120.0, {"stretch_ratio": 1.0})
    out, matched = blending.beat_match(prev, nxt)
    assert matched and out.bpm == 124.0 and out.info["stretch_ratio"] == pytest.approx(124 / 120, abs=1e-6)
    heard = click_times(out.audio)
    assert 60.0 / np.median(np.diff(heard)) == pytest.approx(124.0, rel=0.002)  # what plays, not what is claimed
    assert len(out.audio) == pytest.approx(len(x) * 120 / 124, abs=2)
    assert np.allclose(heard - 110 / SR * 120 / 124, out.beats[: len(heard)], atol=0.001)  # beats follow the audio


def test_tempi_too_far_apart_or_unknown_are_not_matched() -> None:
    nxt = Part("b", "s", noise(2.0, 0), np.array([0.5, 1.0]), 120.0)
    far = Part("a", "s", noise(2.0, 1), bpm=120.0 * (1 + blending.MATCH_TOLERANCE + 0.01))
    for prev in (far, Part("a", "s", noise(2.0, 1))):
        out, matched = blending.beat_match(prev, nxt)
        assert out is nxt and not matched
    assert blending.varispeed(nxt, 1.0) is nxt


def test_the_cut_puts_a_beat_of_the_incoming_track_on_a_beat_of_the_outgoing_one() -> None:
    a, a_beats = clicks(10.0, 124.0, 0.1)
    b, b_beats = clicks(6.0, 124.0, 0.3)
    prev, nxt = Part("a", "s", a, a_beats, 124.0), Part("b", "s", b, b_beats, 124.0)
    fade = 1.7
    n = blending.align_cut(prev, nxt, fade)
    assert 0 <= len(a) - n < 60.0 / 124.0 * SR  # shorter by less than one beat
    landing = n / SR - fade + b_beats[0]
    assert np.min(np.abs(a_beats - landing)) < 1.0 / SR
    parts = [blending.cut(prev, n), nxt]
    mix, starts = blending.assemble(parts, [Blend(round(fade * SR), "equal_power")])
    assert np.all(parts[0].beats < n / SR) and starts[1] == n - round(fade * SR)
    assert len(mix) == n + len(b) - round(fade * SR)


def test_a_gap_in_the_outgoing_beats_leaves_the_plain_placement() -> None:
    a, a_beats = clicks(10.0, 124.0, 0.1)
    prev = Part("a", "s", a, a_beats[a_beats < 6.0], 124.0)  # no beats in its last 4 s
    nxt = Part("b", "s", *clicks(6.0, 124.0, 0.3), bpm=124.0)
    assert blending.align_cut(prev, nxt, 1.0) == len(a)
    assert blending.align_cut(Part("a", "s", a), nxt, 1.0) == len(a)  # no beats at all: nothing to align


def test_join_matches_and_aligns_consecutive_parts() -> None:
    a, a_beats = clicks(12.0, 124.0, 0.1)
    b, b_beats = clicks(12.0, 121.0, 0.3)
    parts = [Part("a", "s", a, a_beats, 124.0, {}), Part("b", "s", b, b_beats, 121.0, {})]
    joined, blends, matched = plan.join(parts, np.random.default_rng(0), quick=True)
    assert matched == [True] and joined[1].bpm == 124.0
    mix, starts = blending.assemble(joined, blends)
    landing = starts[1] / SR + joined[1].beats[0]
    assert np.min(np.abs(a_beats - landing)) < 1.0 / SR
    heard = click_times(mix[starts[1] + blends[0].samples :])  # after the blend only the incoming clicks play
    assert 60.0 / np.median(np.diff(heard)) == pytest.approx(124.0, rel=0.002)


# --------------------------------------------------------------------------------------------------------------
# Assembly, truth, finishing


def test_the_truth_boundary_is_the_middle_of_each_blend_window() -> None:
    parts = [Part(f"t{i}", "game-x", noise(s, i)) for i, s in enumerate((6.0, 5.0, 7.0))]
    blends = [Blend(round(1.5 * SR), "equal_power"), Blend(2 * SR, "bass_swap")]
    mix, starts = blending.assemble(parts, blends)
    truth = plan.mix_truth("game-tune-whole-s1-000", "tune", parts, blends, starts, 1.0)
    assert truth.corpus == "game" and truth.duration_sec == len(mix) / SR == 14.5
    assert truth.boundaries_sec == pytest.approx([5.25, 8.5])
    for i, boundary in enumerate(truth.boundaries_sec):
        out, inc = truth.tracks[i], truth.tracks[i + 1]
        assert out.transition_out == inc.transition_in
        assert boundary == pytest.approx(sum(out.transition_out) / 2)
        assert (inc.start_sec, out.end_sec) == out.transition_out
    assert truth.tracks[0].transition_in is None and truth.tracks[-1].transition_out is None
    assert all(t.bpm == 0.0 and t.key is None and t.has_vocals is None for t in truth.tracks)
    assert truth.beats_sec == [] and truth.downbeats_sec == []


def test_track_loudness_is_measured_at_the_final_gain_over_the_steady_part() -> None:
    parts = [Part("a", "s", noise(6.0, 1)), Part("b", "s", noise(6.0, 2, level=0.3))]
    blends = [Blend(2 * SR, "equal_power")]
    _, starts = blending.assemble(parts, blends)
    full = plan.mix_truth("m", "tune", parts, blends, starts, 1.0)
    half = plan.mix_truth("m", "tune", parts, blends, starts, 0.5)
    assert full.tracks[1].lufs - full.tracks[0].lufs == pytest.approx(20 * np.log10(3), abs=0.2)
    assert full.tracks[0].lufs - half.tracks[0].lufs == pytest.approx(20 * np.log10(2), abs=0.01)
    assert full.tracks[0].lufs == pytest.approx(analysis.loudness(parts[0].audio[: 4 * SR]), abs=1e-6)


def test_assemble_refuses_blends_that_do_not_fit() -> None:
    parts = [Part("a", "s", noise(1.0, 1)), Part("b", "s", noise(1.0, 2))]
    with pytest.raises(ValueError, match="does not fit"):
        blending.assemble(parts, [Blend(2 * SR, "equal_power")])
    with pytest.raises(ValueError, match="blends for"):
        blending.assemble(parts, [])


def test_finish_declicks_the_ends_and_keeps_the_peak_under_the_ceiling() -> None:
    loud = noise(2.0, 3, level=1.0)
    scale = blending.finish(loud)
    assert scale < 1.0 and np.max(np.abs(loud)) <= blending.PEAK_CEILING + 1e-6
    assert np.all(loud[0] == 0) and np.all(loud[-1] == 0)
    quiet = noise(2.0, 4, level=0.05)
    middle = quiet[SR // 2 : SR].copy()
    assert blending.finish(quiet) == 1.0 and np.array_equal(quiet[SR // 2 : SR], middle)


# --------------------------------------------------------------------------------------------------------------
# Planning


def long_part(sec: float, bpm: float | None) -> Part:
    return Part("x", "s", np.broadcast_to(np.float32(0), (round(sec * SR), 2)), bpm=bpm)


def test_matched_blends_are_whole_bars_within_the_share_of_either_track() -> None:
    prev, nxt = long_part(300.0, 128.0), long_part(240.0, 128.0)
    bar = 4 * 60.0 / 128.0
    seen = set()
    for seed in range(20):
        b = plan.plan_blend(prev, nxt, True, np.random.default_rng(seed), quick=False)
        assert b.bars in plan.WHOLE_BARS and b.samples == round(b.bars * bar * SR)
        assert b.samples <= min(0.3 * 240.0, plan.MAX_BLEND_SEC) * SR  # 64 bars (120 s) never fit
        seen.add((b.bars, b.kind))
    assert seen == {(16, "equal_power"), (16, "bass_swap"), (32, "equal_power"), (32, "bass_swap")}


def test_unmatched_blends_are_timed_and_never_longer_than_the_share() -> None:
    for seed in range(10):
        rng = np.random.default_rng(seed)
        b = plan.plan_blend(long_part(300.0, 128.0), long_part(300.0, None), False, rng, quick=False)
        assert b.bars is None and 16.0 * SR <= b.samples <= 40.0 * SR
        short = plan.plan_blend(long_part(20.0, 128.0), long_part(60.0, 128.0), True, rng, quick=True)
        assert short.bars is None and short.samples == 5 * SR  # 8 bars would be 15 s: 25 % of 20 s it is


def test_make_part_levels_to_the_target_loudness_and_keeps_the_excerpts_beats() -> None:
    p = piece("pkg/a", 8.0, bpm=120.0)
    part = plan.make_part(p, noise(8.0, 5), np.random.default_rng(0), excerpt=(2.0, 6.0))
    assert plan.TARGET_LUFS[0] - 0.1 <= analysis.loudness(part.audio) <= plan.TARGET_LUFS[1] + 0.1
    assert len(part.audio) == 4 * SR and part.beats[0] == pytest.approx(0.2) and part.beats.max() < 4.0
    assert part.info["source_sec"] == [2.5, 6.5] and part.title == "a - Someone"


def test_the_queue_deals_every_piece_once_per_round_and_keeps_versions_of_a_work_apart() -> None:
    keys = ["warzone2100/track3", "warzone2100/track3_enhanced", "pkg/b", "pkg/c", "pkg/d"]
    queue = plan.Queue([piece(k, 60.0) for k in keys], np.random.default_rng(0))
    rounds = [[queue.draw(set()).key for _ in keys] for _ in range(3)]  # type: ignore[union-attr]
    assert all(sorted(r) == sorted(keys) for r in rounds) and len({tuple(r) for r in rounds}) > 1
    used: set[str] = set()
    while (p := queue.draw(used, fits=lambda p: p.key != "pkg/b")) is not None:  # one mix: each work once
        used.add(p.work)
    assert used == {"warzone2100/track3", "pkg/c", "pkg/d"}


def test_build_writes_boundaries_inside_their_blends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan, "QUICK_MIX_SEC", (30.0, 40.0))

    class Audio:
        def get(self, p: sources.Piece) -> np.ndarray:
            return noise(p.duration, int(p.key[-1])) + tone(p.duration, 60.0, 0.1)

    pieces = [piece(f"pkg/p{i}", 12.0 + i, bpm=122.0 if i % 2 else None) for i in range(6)]
    queue = plan.Queue(pieces, np.random.default_rng(1))
    mix, truth, manifest = plan.build(
        "game-tune-quick-s1-000", "tune", "quick", queue, Audio(), np.random.default_rng(2)
    )
    assert len(mix) / SR == pytest.approx(truth.duration_sec) and truth.duration_sec <= 40.0
    assert np.max(np.abs(mix)) <= blending.PEAK_CEILING + 1e-6
    assert len(truth.tracks) >= 3 and len({p["piece"] for p in manifest["parts"]}) == len(truth.tracks)
    for i, boundary in enumerate(truth.boundaries_sec):
        lo, hi = truth.tracks[i].transition_out
        assert lo < boundary < hi and manifest["blends"][i]["boundary_sec"] == pytest.approx(boundary, abs=1e-4)
        lengths = [t.end_sec - t.start_sec for t in truth.tracks[i : i + 2]]
        assert hi - lo <= 0.25 * (min(lengths) + 60.0 / 122.0)  # a quarter of either (before a cut of < 1 beat)


# --------------------------------------------------------------------------------------------------------------
# Sources and the command line (no network)


def test_licences_are_confirmed_in_the_copyright_file(tmp_path: Path) -> None:
    pkg = next(p for p in sources.PACKAGES if p.name == "asc-music")
    doc = tmp_path / "usr/share/doc/asc-music/copyright"
    doc.parent.mkdir(parents=True)
    doc.write_text("Files: *\nCopyright: 2002 Michael Kievernagel\nLicense: GPL-2+\n")
    assert sources.check_licence(tmp_path, pkg) == "GPL-2+"
    doc.write_text("Files: *\nCopyright: 2002 Michael Kievernagel\nLicense: CC-BY-NC-4.0\n")
    with pytest.raises(RuntimeError, match="check the licence"):
        sources.check_licence(tmp_path, pkg)


def test_reserved_packages_are_never_fetched_and_splits_share_no_artist(tmp_path: Path) -> None:
    reserved = sources.PackageInfo("nexuiz-music", "nexuiz", "music", "test", "GPL", "x", "someone")
    with pytest.raises(RuntimeError, match="reserved"):
        sources.fetch_packages(tmp_path, (reserved,))
    assert not {p.name for p in sources.PACKAGES} & set(sources.RESERVED)
    artists = {s: {p.artist for p in sources.PACKAGES if p.split == s} for s in ("tune", "test")}
    assert artists["tune"] and artists["test"] and not artists["tune"] & artists["test"]


def test_audible_span_trims_leading_and_trailing_silence() -> None:
    x = np.concatenate([np.zeros((SR, 2), np.float32), noise(2.0, 6), np.zeros((SR // 2, 2), np.float32)])
    a, b = analysis.audible_span(x)
    assert abs(a - SR) < 2048 and abs(b - 3 * SR) < 2048


def test_the_command_line_takes_the_same_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for option in ("--out", "--split", "--mixes", "--quick", "--singles", "--seed", "--cache", "--list"):
        assert option in text
    assert "python -m bench.corpus.game" in text
    assert Path(__file__).resolve().parents[1] / ".corpus-cache" == cli.DEFAULT_CACHE
