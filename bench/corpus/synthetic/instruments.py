"""Oscillators and envelopes, the drum sounds built from them, and the per-track drum kit."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from bench.corpus.synthetic.dsp import (
    SR,
    TWO_PI,
    Array,
    bandpass,
    finish_hit,
    highpass,
    lowpass,
    peak_normalize,
    time_axis,
)


def saw(f: float | Array, n: int, phase0: float = 0.0) -> Array:
    """Band-limited (polyBLEP) sawtooth; f is a constant or a per-sample frequency in Hz.

    For a constant frequency the samples next to each wrap are found arithmetically, so the BLEP correction
    costs nothing per sample (the oscillators are the hot loop of the whole generator).
    """
    if np.ndim(f) == 0:
        dt = float(f) / SR
        ph = phase0 + dt * np.arange(n)
        y = ph - np.floor(ph)
        y *= 2.0
        y -= 1.0
        if n == 0 or dt <= 0 or dt >= 0.5:
            return y
        wraps = np.arange(math.floor(phase0) + 1, math.floor(ph[-1]) + 1)
        after = np.ceil((wraps - phase0) / dt).astype(np.int64)
        after = after[(after >= 1) & (after < n)]
        fa = ph[after] - np.floor(ph[after])
        after[fa >= dt] += 1  # the phase landed a hair below the integer: the wrap is one sample later
        after = after[after < n]
        fa = ph[after] - np.floor(ph[after])
        ok = fa < dt
        after, fa = after[ok], fa[ok]
        tl = fa / dt
        y[after] -= tl + tl - tl * tl - 1.0
        before = after - 1
        th = (ph[before] - np.floor(ph[before]) - 1.0) / dt
        y[before] -= th * th + th + th + 1.0
        return y
    dtv = np.asarray(f, dtype=float)[:n] / SR
    ph = phase0 + np.cumsum(dtv)
    frac = ph - np.floor(ph)
    y = 2.0 * frac - 1.0
    lo = frac < dtv
    hi = frac > 1.0 - dtv
    tl, th = frac[lo] / dtv[lo], (frac[hi] - 1.0) / dtv[hi]
    y[lo] -= tl + tl - tl * tl - 1.0
    y[hi] -= th * th + th + th + 1.0
    return y


def square(f: float | Array, n: int, phase0: float = 0.0) -> Array:
    return 0.5 * (saw(f, n, phase0) - saw(f, n, phase0 + 0.5))


def sine(f: float | Array, n: int, phase0: float = 0.0) -> Array:
    if np.ndim(f) == 0:
        return np.sin(TWO_PI * (phase0 + float(f) * np.arange(n) / SR))
    return np.sin(TWO_PI * (phase0 + np.cumsum(np.asarray(f, dtype=float)[:n]) / SR))


def harmonics(theta: Array, amps: Sequence[float]) -> Array:
    """sum_k amps[k-1] * sin(k*theta) via the Chebyshev recurrence (one multiply-add per harmonic, no sin)."""
    out = np.zeros_like(theta)
    s_prev = np.zeros_like(theta)
    s = np.sin(theta)
    c2 = 2.0 * np.cos(theta)
    for a in amps:
        if a:
            out += a * s
        s_prev, s = s, c2 * s - s_prev
    return out


def adsr(gate: int, a: float, d: float, s: float, r: float) -> Array:
    """Envelope of length gate + release; attack/decay/release in seconds, sustain as a level."""
    na, nd, nr = max(1, int(a * SR)), max(1, int(d * SR)), max(1, int(r * SR))
    t = np.arange(gate)
    env = np.empty(gate + nr)
    env[:gate] = np.where(t < na, t / na, s + (1.0 - s) * np.exp(-(t - na) / nd))
    last = env[gate - 1] if gate > 0 else 0.0
    env[gate:] = last * (1.0 - np.arange(nr) / nr) ** 2
    return env


# ------------------------------------------------------------------------------------------------ drum sounds


def _kick(rng: np.random.Generator, tight: bool = False, f_end: float | None = None) -> Array:
    n = int(rng.uniform(0.25, 0.35) * SR) if tight else int(rng.uniform(0.35, 0.55) * SR)
    t = time_axis(n)
    f_start = rng.uniform(130, 260)
    f_end = rng.uniform(42, 58) if f_end is None else f_end
    f = f_end + (f_start - f_end) * np.exp(-t / rng.uniform(0.015, 0.045))
    body = np.sin(TWO_PI * np.cumsum(f) / SR) * np.exp(
        -t / (rng.uniform(0.07, 0.12) if tight else rng.uniform(0.12, 0.3))
    )
    click = highpass(rng.standard_normal(n), rng.uniform(1500, 4000)) * np.exp(-t / rng.uniform(0.002, 0.005))
    x = body + rng.uniform(0.1, 0.35) * click
    return finish_hit(np.tanh(rng.uniform(1.0, 2.5) * x), 10)


def _snare(rng: np.random.Generator, bright: bool = False) -> Array:
    n = int(0.32 * SR)
    t = time_axis(n)
    f = rng.uniform(170, 240) * (1 + 0.3 * np.exp(-t / 0.01))
    tone = np.sin(TWO_PI * np.cumsum(f) / SR) * np.exp(-t / rng.uniform(0.04, 0.09))
    nz = lowpass(
        highpass(rng.standard_normal(n), rng.uniform(900, 1800)), rng.uniform(6000, 12000) if not bright else 14000
    )
    nz = peak_normalize(nz) * np.exp(-t / rng.uniform(0.07, 0.17))
    return finish_hit(rng.uniform(0.35, 0.8) * peak_normalize(tone) + nz, 10)


def _clap(rng: np.random.Generator) -> Array:
    n = int(0.4 * SR)
    t = time_axis(n)
    nz = peak_normalize(bandpass(rng.standard_normal(n), rng.uniform(700, 1100), rng.uniform(2200, 3500)))
    env = np.zeros(n)
    gap = rng.uniform(0.008, 0.013)
    for k in range(3):
        d = k * gap
        env += (t >= d) * np.exp(-np.clip(t - d, 0, None) / 0.004)
    d = 3 * gap
    env += 0.9 * (t >= d) * np.exp(-np.clip(t - d, 0, None) / rng.uniform(0.07, 0.16))
    return finish_hit(nz * env, 10)


def _metal(t: Array, base: float, rng: np.random.Generator) -> Array:
    """Inharmonic square cluster (the 808 cymbal trick) plus an FM pair: what makes hats sound metallic."""
    ratios = (1.0, 1.4471, 1.6170, 1.9265, 2.5028, 2.6637)
    x = np.zeros_like(t)
    for r in ratios:
        x += np.sign(np.sin(TWO_PI * (base * r * t + rng.random())))
    fc = rng.uniform(6000, 9000)
    fm = np.sin(TWO_PI * fc * t + rng.uniform(2, 5) * np.sin(TWO_PI * fc * 1.41 * t))
    return x / len(ratios) + 0.5 * fm


def _hat(rng: np.random.Generator, open_: bool) -> Array:
    n = int((0.7 if open_ else 0.12) * SR)
    t = time_axis(n)
    x = 0.6 * peak_normalize(highpass(rng.standard_normal(n), 7000)) + 0.5 * peak_normalize(
        highpass(_metal(t, rng.uniform(320, 460), rng), 6500)
    )
    tau = rng.uniform(0.12, 0.3) if open_ else rng.uniform(0.012, 0.035)
    return finish_hit(x * np.exp(-t / tau))


def _ride(rng: np.random.Generator) -> Array:
    n = int(1.2 * SR)
    t = time_axis(n)
    bell = sum(np.sin(TWO_PI * f * t) for f in (rng.uniform(2900, 3300), rng.uniform(4300, 4700)))
    x = highpass(_metal(t, rng.uniform(480, 620), rng) + 0.3 * rng.standard_normal(n), 3000) + 0.3 * bell
    return finish_hit(x * np.exp(-t / rng.uniform(0.45, 0.8)))


def _crash(rng: np.random.Generator) -> Array:
    n = int(2.4 * SR)
    t = time_axis(n)
    x = highpass(rng.standard_normal(n) + 0.6 * _metal(t, rng.uniform(350, 450), rng), 2500)
    return finish_hit(x * np.exp(-t / rng.uniform(0.7, 1.2)) * (1 - np.exp(-t / 0.002)))


def _tom(rng: np.random.Generator, f: float) -> Array:
    n = int(0.5 * SR)
    t = time_axis(n)
    ff = f * (1 + 0.5 * np.exp(-t / 0.03))
    x = np.sin(TWO_PI * np.cumsum(ff) / SR) * np.exp(-t / rng.uniform(0.15, 0.3))
    x += 0.1 * highpass(rng.standard_normal(n), 2000) * np.exp(-t / 0.004)
    return finish_hit(x)


def _conga(rng: np.random.Generator, f: float, tau: float) -> Array:
    n = int(0.4 * SR)
    t = time_axis(n)
    ff = f * (1 + 0.2 * np.exp(-t / 0.01))
    x = np.sin(TWO_PI * np.cumsum(ff) / SR) * np.exp(-t / tau)
    x += rng.uniform(0.1, 0.4) * peak_normalize(bandpass(rng.standard_normal(n), 2000, 5000)) * np.exp(-t / 0.006)
    return finish_hit(x)


def _shaker(rng: np.random.Generator) -> Array:
    n = int(0.14 * SR)
    t = time_axis(n)
    x = bandpass(rng.standard_normal(n), rng.uniform(3500, 5000), rng.uniform(9000, 12000))
    return finish_hit(x * (1 - np.exp(-t / rng.uniform(0.005, 0.012))) * np.exp(-t / rng.uniform(0.03, 0.06)))


def _rim(rng: np.random.Generator) -> Array:
    n = int(0.1 * SR)
    t = time_axis(n)
    x = np.sin(TWO_PI * rng.uniform(1500, 1900) * t) + 0.6 * np.sin(TWO_PI * rng.uniform(450, 550) * t)
    x = x * np.exp(-t / 0.012) + 0.5 * highpass(rng.standard_normal(n), 3000) * np.exp(-t / 0.003)
    return finish_hit(x)


def _cowbell(rng: np.random.Generator) -> Array:
    n = int(0.35 * SR)
    t = time_axis(n)
    k = rng.uniform(0.9, 1.15)
    x = bandpass(square(540 * k, n) + square(800 * k, n), 600, 4000)
    return finish_hit(x * (0.7 * np.exp(-t / 0.05) + 0.3 * np.exp(-t / 0.25)))


def _clave(rng: np.random.Generator) -> Array:
    n = int(0.12 * SR)
    t = time_axis(n)
    return finish_hit(np.sin(TWO_PI * rng.uniform(2200, 2700) * t) * np.exp(-t / 0.02))


class Kit:
    """Per-track drum sounds, built lazily (a track only pays for the sounds its style uses)."""

    def __init__(self, rng: np.random.Generator, tight_kick: bool, kick_hz: float | None = None) -> None:
        self.rng = rng
        self.tight = tight_kick
        self.kick_hz = kick_hz
        self._cache: dict[str, Array] = {}
        self.tom_base = rng.uniform(90, 130)
        self.conga_base = rng.uniform(190, 260)

    def __getitem__(self, name: str) -> Array:
        if name not in self._cache:
            r = self.rng
            makers: dict[str, Callable[[], Array]] = {
                "kick": lambda: _kick(r, self.tight, self.kick_hz),
                "snare": lambda: _snare(r),
                "clap": lambda: _clap(r),
                "hat": lambda: _hat(r, False),
                "ohat": lambda: _hat(r, True),
                "ride": lambda: _ride(r),
                "crash": lambda: _crash(r),
                "shaker": lambda: _shaker(r),
                "rim": lambda: _rim(r),
                "cowbell": lambda: _cowbell(r),
                "clave": lambda: _clave(r),
                "tom_lo": lambda: _tom(r, self.tom_base),
                "tom_mid": lambda: _tom(r, self.tom_base * 1.33),
                "tom_hi": lambda: _tom(r, self.tom_base * 1.78),
                "conga": lambda: _conga(r, self.conga_base, r.uniform(0.12, 0.2)),
                "conga_hi": lambda: _conga(r, self.conga_base * 1.5, r.uniform(0.1, 0.16)),
                "bongo": lambda: _conga(r, self.conga_base * 2.2, r.uniform(0.06, 0.1)),
                "brk_kick": lambda: _kick(r, True),
                "brk_snare": lambda: _snare(r, bright=True),
            }
            self._cache[name] = makers[name]()
        return self._cache[name]
