"""Levels and per-track features on synthetic arrays: dB and RMS helpers, BPM, key, loudness, brightness, vocals."""

from __future__ import annotations

import numpy as np
import pytest

from offbeat.dsp import features, levels, silence


def test_db_and_amplitude_are_inverse_and_floored() -> None:
    assert levels.db(np.array([1.0, 0.1]))[1] == pytest.approx(-20.0)
    assert levels.amplitude(-20.0) == pytest.approx(0.1)
    assert levels.db(np.zeros(1))[0] == pytest.approx(-200.0)
    assert levels.db(np.zeros(1, np.float32)).dtype == np.float32


def test_frame_rms_pads_the_last_frame_and_matches_the_trim_levels() -> None:
    x = np.concatenate([np.full(512, 0.5), np.full(100, 0.1)]).astype(np.float32)
    rms = levels.frame_rms(x, 512)
    assert rms.dtype == np.float32
    np.testing.assert_allclose(rms, [0.5, 0.1 * np.sqrt(100 / 512)], rtol=1e-6)
    np.testing.assert_allclose(silence.frame_levels_db(x), levels.db(levels.frame_rms(x, 512, np.float64)), rtol=1e-6)
    assert levels.rms(np.array([3.0, -3.0])) == pytest.approx(3.0)
    assert len(levels.frame_rms(np.zeros(0, np.float32), 512)) == 0


def test_voiced_seconds() -> None:
    rms = np.concatenate([np.full(10, 1e-5), np.full(10, 0.3), np.full(5, 1e-5)])  # 10 frames per second
    np.testing.assert_array_equal(levels.voiced_seconds(rms, 10.0, 3, -60.0), [False, True, False])


def test_stable_bpm_from_a_regular_grid_ignores_the_odd_gap() -> None:
    times = np.arange(0, 30, 60 / 128)
    times = np.delete(times, 20)  # a missed beat
    bpm, confidence = features.stable_bpm(times)
    assert bpm == pytest.approx(128.0, abs=0.2) and confidence > 0.9


def test_stable_bpm_is_exact_from_beats_on_a_10_ms_grid() -> None:
    times = np.round(np.arange(0, 60, 60 / 171.3), 2)  # every interval off by up to 5 ms
    bpm, _ = features.stable_bpm(times)
    assert bpm == pytest.approx(171.3, abs=0.1)


def test_key_of_a_major_triad_chroma() -> None:
    chroma = np.zeros((50, 12))
    chroma[:, [7, 11, 2]] = 1.0  # G, B, D
    key = features.estimate_key(chroma)
    assert key.musical == "G Major" and key.camelot == "9B"


def test_loudness_of_a_full_scale_sine() -> None:
    sr = 44100
    t = np.arange(sr * 5) / sr
    tone = 0.5 * np.sin(2 * np.pi * 997 * t).astype(np.float32)
    lufs = features.loudness(np.stack([tone, tone], axis=1), sr)
    assert lufs == pytest.approx(-6.0 - 3.0 + 3.0, abs=0.3)  # a 997 Hz sine at -6 dBFS on both channels


def test_brightness_and_vocals_count_audible_frames_only() -> None:
    rms = np.array([1e-6, 0.2, 0.2, 0.2])
    assert features.brightness(np.array([9999.0, 1000.0, 2000.0, 3000.0]), rms, 1e-3) == 2000.0
    has, vocal_rms = features.vocals(np.array([0.9, 0.1, 0.1, 0.0]), rms, 1e-3)
    assert has and vocal_rms == pytest.approx(levels.rms(np.array([0.1, 0.1, 0.0])), abs=1e-5)
    assert not features.vocals(np.array([0.0, 0.01, 0.01, 0.01]), rms, 1e-3)[0]
