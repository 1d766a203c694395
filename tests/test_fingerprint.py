"""Quad fingerprints: excerpts of synthetic tracks found in an index through speed changes (pitch follows),
time-stretches with key lock, noise and a second track mixed in; an unknown track is not claimed."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soxr

from offbeat.dsp import fingerprint as fp
from offbeat.dsp import matching

SR = 22050
TRACKS = 5
CONFIDENT = 0.35  # about the threshold bench/accuracy/identification.py chooses on its tune split


def track(seed: int, seconds: float = 36.0) -> np.ndarray:
    """A synthetic track: decaying harmonic notes on a 1/8-beat grid at random pitches, some with noise bursts."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(seconds * SR))
    t = 0.0
    while t < seconds - 0.5:
        dur = min(rng.uniform(0.3, 1.0), seconds - t)
        f0 = 110 * 2 ** (rng.integers(0, 48) / 12)
        tt = np.arange(int(dur * SR)) / SR
        note = sum(a * np.sin(2 * np.pi * f0 * h * tt) for h, a in ((1, 1.0), (2, 0.5), (3, 0.3)) if f0 * h < 3800)
        start = int(t * SR)
        y[start : start + len(tt)] += np.exp(-tt * rng.uniform(2, 6)) * note * rng.uniform(0.3, 1.0)
        if rng.random() < 0.3:
            burst = int(0.05 * SR)
            y[start : start + burst] += rng.normal(0, 0.2, burst) * np.exp(-np.arange(burst) / (0.01 * SR))
        t += rng.choice([0.125, 0.25, 0.375, 0.5])
    return (y / np.max(np.abs(y)) * 0.5).astype(np.float32)


def excerpt(y: np.ndarray, start: float, seconds: float) -> np.ndarray:
    return y[int(start * SR) : int((start + seconds) * SR)]


def faster(y: np.ndarray, speed: float) -> np.ndarray:
    """`y` played `speed` times as fast, pitch following (varispeed): resampled, then read at SR."""
    return soxr.resample(y, SR * speed, SR)


@pytest.fixture(scope="module")
def library() -> tuple[dict[int, np.ndarray], fp.Index]:
    tracks = {k: track(100 + k) for k in range(TRACKS)}
    return tracks, fp.build_index({k: fp.reference_fingerprint(y, SR) for k, y in tracks.items()})


def check(
    index: fp.Index, audio: np.ndarray, want: int, tempo: float, pitch: float, start: float
) -> matching.Identification:
    found = matching.identify(index, fp.fingerprint(audio, SR))
    assert found is not None
    assert found.track == want, found
    assert abs(found.tempo_ratio / tempo - 1) < 0.005, found
    assert abs(found.pitch_ratio / pitch - 1) < 0.01, found
    assert abs(found.offset_sec - start) < 0.1, found
    assert found.confidence > CONFIDENT, found
    return found


@pytest.mark.accuracy
@pytest.mark.parametrize("speed", [0.95, 1.05])
def test_speed_changes_with_pitch_following_are_measured(library, speed: float) -> None:
    tracks, index = library
    for k in range(TRACKS):
        start = 4.0 + 3 * k
        check(index, faster(excerpt(tracks[k], start, 13.0 * speed), speed), k, speed, speed, start)


@pytest.mark.accuracy
@pytest.mark.parametrize("rate", [0.95, 1.05])
def test_time_stretch_with_key_lock_keeps_the_pitch(library, rate: float) -> None:
    tracks, index = library
    for k in range(TRACKS):
        start = 6.0 + 2 * k
        # 20 s: the references are sparse, and a phase vocoder smears the peaks a quad needs
        stretched = librosa.effects.time_stretch(excerpt(tracks[k], start, 20.0 * rate), rate=rate)
        check(index, stretched, k, rate, 1.0, start)


@pytest.mark.accuracy
def test_noise_and_another_track_mixed_in(library) -> None:
    tracks, index = library
    rng = np.random.default_rng(7)
    clean = excerpt(tracks[1], 10.0, 14.0)
    noisy = clean + rng.normal(0, 0.5 * np.std(clean), len(clean)).astype(np.float32)  # 6 dB SNR
    check(index, noisy, 1, 1.0, 1.0, 10.0)
    played = faster(excerpt(tracks[2], 8.0, 14.0), 1.05)
    blend = played + 0.5 * excerpt(tracks[3], 3.0, 14.0)[: len(played)]  # the other track at -6 dB
    check(index, blend, 2, 1.05, 1.05, 8.0)


@pytest.mark.accuracy
def test_a_track_outside_the_library_is_not_claimed(library) -> None:
    _, index = library
    for seed in (998, 999):
        found = matching.identify(index, fp.fingerprint(excerpt(track(seed), 5.0, 13.0), SR))
        assert found is None or found.confidence < CONFIDENT, found


def test_hashes_do_not_change_when_time_and_frequency_scale() -> None:
    sec, hz = np.array([0.0, 0.3, 0.7, 1.0]), np.array([200.0, 600.0, 400.0, 900.0])  # one box: A, C, D, B
    plain = fp.quads(sec, hz)
    assert len(plain.root_sec) == 1
    for time_scale, freq_scale in ((1 / 1.07, 1.07), (1 / 1.05, 1.0)):  # varispeed; time-stretch with key lock
        scaled = fp.quads(sec * time_scale + 3.0, hz * freq_scale)
        np.testing.assert_allclose(scaled.hashes, plain.hashes, atol=1e-6)
        np.testing.assert_allclose(scaled.width_sec, plain.width_sec * time_scale)
        np.testing.assert_allclose(scaled.height_hz, plain.height_hz * freq_scale)


def test_windows_are_searched_until_the_match_is_sure(library) -> None:
    """One window is enough when it is sure; otherwise every window votes, as one identify of them all would."""
    tracks, index = library
    audio = faster(excerpt(tracks[2], 3.0, 30.0 * 1.04), 1.04)
    windows = [fp.fingerprint(audio[int(a * SR) : int((a + 9) * SR)], SR) for a in (0.0, 10.0, 20.0)]
    for w, a in zip(windows, (0.0, 10.0, 20.0), strict=True):
        w.root_sec[:] += a  # one clock for the three
    first, used = matching.identify_until_sure(index, iter(windows), sure=0.0)
    assert used == 1 and first is not None and first.track == 2
    whole, used = matching.identify_until_sure(index, iter(windows), sure=1.01)
    once = matching.identify(index, fp.concat(windows))
    assert used == 3 and whole is not None and once is not None
    assert (whole.track, whole.votes, whole.runner_up_votes) == (once.track, once.votes, once.runner_up_votes)
    assert abs(whole.offset_sec - once.offset_sec) < 1e-6 and abs(whole.tempo_ratio - once.tempo_ratio) < 1e-9
    assert whole.track == 2 and whole.votes > first.votes
    assert abs(whole.tempo_ratio / 1.04 - 1) < 0.005 and abs(whole.offset_sec - 3.0) < 0.1
