"""The transition reader (`offbeat.dsp.transitions`) on synthesized band powers and beat grids: each way of
mixing two spectra is told apart, lengths are counted on the grid, tempi compared, keys related."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from offbeat.dsp import transitions

BANDS = 32
STEP = transitions.STEP_SEC
BEAT = 0.5  # 120 BPM: a bar is 2 s
MIX_SEC = 120.0
WINDOW = (50.0, 66.0)  # 8 bars


def spectra(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two tracks' band powers: distinct shapes, the outgoing one's lows 25 dB fuller (a filter sweep takes
    them away), a strong bass in both, the incoming one's stronger."""
    rng = np.random.default_rng(seed)
    tilt = np.linspace(0, -30, BANDS)
    out_ref = 10 ** ((tilt + rng.normal(0, 8, BANDS)) / 10)
    in_ref = 10 ** ((tilt + rng.normal(0, 8, BANDS)) / 10)
    out_ref[:8] *= 10**2.5
    out_ref[0], in_ref[0] = 2.0, 8.0
    return out_ref, in_ref


def grid(bpm_out: float = 120.0, bpm_in: float = 120.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Beats, bar positions (4/4) and the per-second BPM curve of two tracks meeting at the window's middle."""
    middle = 0.5 * sum(WINDOW)
    first = np.arange(0.0, middle, 60.0 / bpm_out)
    second = np.arange(first[-1] + 60.0 / bpm_in, MIX_SEC, 60.0 / bpm_in)
    beats = np.concatenate([first, second])
    position = (np.arange(len(beats)) % 4 + 1).astype(np.int8)
    curve = np.where(np.arange(int(MIX_SEC)) < middle, bpm_out, bpm_in).astype(float)
    return beats, position, curve


def mixed(gains: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], seed: int = 0) -> np.ndarray:
    """The mix's band powers: the outgoing track alone, then `gains(x, out_ref, in_ref)` through the window
    (x from 0 to 1), then the incoming track alone; with a little level noise, as bars of music have."""
    out_ref, in_ref = spectra(seed)
    t = np.arange(int(MIX_SEC / STEP)) * STEP
    x = np.clip((t - WINDOW[0]) / (WINDOW[1] - WINDOW[0]), 0, 1)[:, None]
    power = gains(x, out_ref, in_ref)
    noise = 10 ** (np.random.default_rng(seed + 1).normal(0, 0.5, power.shape) / 10)
    return power * noise


def equal_power(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.cos(0.5 * np.pi * x) ** 2 * a + np.sin(0.5 * np.pi * x) ** 2 * b


def linear(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (1 - x) ** 2 * a + x**2 * b


def bass_swap(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Tops: the incoming track rises to full over the first half, the outgoing falls over the second; the bass
    band belongs to one track at a time, handed over at the middle."""
    out_top = np.cos(0.5 * np.pi * np.clip((x - 0.5) / 0.5, 0, 1)) ** 2
    in_top = np.sin(0.5 * np.pi * np.clip(x / 0.5, 0, 1)) ** 2
    low = np.arange(BANDS) < transitions.LOW_BANDS
    out_gain = np.where(low, (x < 0.5).astype(float), out_top)
    in_gain = np.where(low, (x >= 0.5).astype(float), in_top)
    return out_gain * a + in_gain * b


def filter_sweep(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A high-pass rising through the outgoing track's spectrum (its cutoff band moving up with x, 24 dB per band
    below it), the incoming track faded in equal-power."""
    cutoff = x * BANDS
    highpass = np.minimum(1.0, 10 ** (-2.4 * np.maximum(cutoff - np.arange(BANDS), 0)))
    out_gain = highpass * np.cos(0.5 * np.pi * np.clip((x - 0.7) / 0.3, 0, 1)) ** 2
    return out_gain * a + np.sin(0.5 * np.pi * x) ** 2 * b


def signals(power: np.ndarray, bpm_out: float = 120.0, bpm_in: float = 120.0) -> transitions.Signals:
    beats, position, curve = grid(bpm_out, bpm_in)
    return transitions.Signals(power, beats, position, curve)


@pytest.mark.parametrize(
    ("gains", "kind"),
    [(equal_power, "blend"), (linear, "blend"), (bass_swap, "bass_swap"), (filter_sweep, "filter")],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kind_of_blend(gains: Callable[..., np.ndarray], kind: str, seed: int) -> None:
    found = transitions.describe(signals(mixed(gains, seed)), *WINDOW)
    assert found.kind == kind


def test_cut_is_a_handover_within_a_bar() -> None:
    def step(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.where(x < 0.5, a, b)

    middle = 0.5 * sum(WINDOW)
    found = transitions.describe(signals(mixed(step)), middle - 0.5, middle + 0.5)
    assert found.kind == "cut"
    assert found.beats == pytest.approx(2.0, abs=0.01)


def test_length_on_the_beat_grid() -> None:
    found = transitions.describe(signals(mixed(equal_power)), *WINDOW)
    assert (found.beats, found.bars) == (pytest.approx(32.0, abs=0.01), pytest.approx(8.0, abs=0.01))
    beats, position, _ = grid()
    assert transitions.beat_length(beats, position, -5.0, 10.0) is None  # the grid does not reach back there


def test_length_in_the_meter_around() -> None:
    beats = np.arange(0.0, 60.0, 0.5)
    position = (np.arange(len(beats)) % 3 + 1).astype(np.int8)
    assert transitions.beat_length(beats, position, 10.0, 22.0) == pytest.approx((24.0, 8.0))


@pytest.mark.parametrize(
    ("bpm_out", "bpm_in", "matched"),
    [(120.0, 120.0, True), (126.0, 125.0, True), (128.0, 118.0, False), (87.0, 174.0, True), (140.0, 100.0, False)],
)
def test_beatmatched_when_both_sides_run_at_one_tempo(bpm_out: float, bpm_in: float, matched: bool) -> None:
    found = transitions.describe(signals(mixed(equal_power), bpm_out, bpm_in), *WINDOW)
    assert found.tempo_ratio == pytest.approx(bpm_out / bpm_in)
    assert found.beatmatched is matched


def test_no_tempo_no_verdict() -> None:
    beats, position, curve = grid()
    silent = transitions.Signals(mixed(equal_power), beats, position, np.full_like(curve, np.nan))
    found = transitions.describe(silent, *WINDOW)
    assert found.tempo_ratio is None and found.beatmatched is None
