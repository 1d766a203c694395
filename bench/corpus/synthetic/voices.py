"""Melodic voices: basses (808 with glide, sub, pluck, saw, organ, reese, wobble), chord instruments, arp and
lead synths, and the formant singer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.corpus.synthetic.dsp import SR, TWO_PI, Array, bandpass, highpass, lowpass, peak_normalize, time_axis
from bench.corpus.synthetic.instruments import adsr, harmonics, saw, sine, square
from bench.corpus.synthetic.patterns import midi_hz


def quantize_gate(gate: int) -> int:
    """Quantize a note length to 64 samples (1.5 ms) so repeated notes under a tempo ramp still share a render."""
    return max(64, (gate + 32) // 64 * 64)


def _pluck_filter(x: Array, f0: float, t: Array, bright: float, tau: float) -> Array:
    """Decaying low-pass 'filter envelope' approximated by crossfading a dark and the raw signal."""
    dark = lowpass(x, min(f0 * bright, 0.4 * SR))
    return dark + (x - dark) * np.exp(-t / tau)


def voice_bass(kind: str, f: float, gate: int, rng: np.random.Generator, f_from: float | None, lfo_hz: float) -> Array:
    if kind == "808":
        n = gate + int(0.03 * SR)
        t = time_axis(n)
        ff = np.full(n, f)
        if f_from is not None:
            ff = f + (f_from - f) * np.exp(-t / 0.05)
        ff = ff * (1 + 0.6 * np.exp(-t / 0.008))
        x = np.tanh(2.2 * sine(ff, n)) * np.exp(-t / 0.9)
        x[gate:] *= np.linspace(1, 0, n - gate)
        x[: int(0.002 * SR)] *= np.linspace(0, 1, int(0.002 * SR))
        return x
    env = adsr(gate, 0.004, 0.15, 0.7, 0.04)
    n = len(env)
    t = time_axis(n)
    if kind == "sub":
        x = sine(f, n) + 0.15 * sine(2 * f, n)
    elif kind == "pluck":
        x = _pluck_filter(saw(f, n, rng.random()), f, t, 3.0, 0.06) + 0.5 * sine(f, n)
    elif kind == "saw":
        x = lowpass(saw(f, n, rng.random()), 900) + 0.4 * sine(f, n)
    elif kind == "organ":
        x = harmonics(TWO_PI * f * t, (1.0, 0.5, 0.3, 0.0, 0.1))
    elif kind == "reese":
        x = saw(f * 2 ** (12 / 1200), n, rng.random()) + saw(f * 2 ** (-12 / 1200), n, rng.random())
        x = lowpass(x, 700) * 0.6 + 0.8 * sine(f, n)
    elif kind == "wobble":
        lfo = 0.5 - 0.5 * np.cos(TWO_PI * lfo_hz * t)
        raw = saw(f * 2, n, rng.random()) + 0.6 * square(f, n, rng.random())
        dark = lowpass(raw, 180)
        x = np.tanh(1.8 * (dark + (raw - dark) * lfo)) * 0.7 + 0.8 * sine(f, n)
    else:
        raise ValueError(kind)
    return x * env


def voice_chord(kind: str, freqs: Sequence[float], gate: int, rng: np.random.Generator) -> Array:
    if kind == "pad":
        env = adsr(gate, rng.uniform(0.2, 0.8), 0.5, 0.9, 0.8)
        n = len(env)
        x = np.zeros(n)
        det = rng.uniform(5, 14)
        for f in freqs:
            for d in (-det, det):
                x += saw(f * 2 ** (d / 1200), n, rng.random())
        return x * env / len(freqs)
    if kind == "keys":  # two-operator FM e-piano: bright attack that mellows, plus a short "tine"
        env = adsr(gate, 0.003, 1.2, 0.35, 0.25)
        n = len(env)
        t = time_axis(n)
        x = np.zeros(n)
        idx = 1.8 * np.exp(-t / 0.35)
        for f in freqs:
            x += np.sin(TWO_PI * f * t + idx * np.sin(TWO_PI * f * t)) + 0.15 * np.sin(TWO_PI * 7 * f * t) * np.exp(
                -t / 0.03
            )
        return x * env / len(freqs)
    if kind == "organ":
        env = adsr(gate, 0.005, 0.1, 0.85, 0.05)
        t = time_axis(len(env))
        x = sum(harmonics(TWO_PI * f * t, (1.0, 0.6, 0.3, 0.25)) for f in freqs)
        return x * env / len(freqs)
    if kind == "stab":
        env = adsr(gate, 0.003, 0.12, 0.25, 0.12)
        n = len(env)
        x = np.zeros(n)
        for f in freqs:
            x += saw(f, n, rng.random()) + saw(f * 1.005, n, rng.random())
        return highpass(lowpass(x, 2600), 180) * env / len(freqs)
    if kind == "pluck":
        env = adsr(gate, 0.002, 0.15, 0.0, 0.1)
        n = len(env)
        t = time_axis(n)
        x = np.zeros(n)
        for f in freqs:
            x += _pluck_filter(saw(f, n, rng.random()) + 0.5 * square(f, n, rng.random()), f, t, 2.5, 0.07)
        return x * env / len(freqs)
    raise ValueError(kind)


def voice_lead(f: float, gate: int, rng: np.random.Generator, kind: str, decay: float = 0.1) -> Array:
    if kind == "arp":
        env = adsr(gate, 0.002, decay, 0.0, 0.05)
        n = len(env)
        x = _pluck_filter(saw(f, n, rng.random()) + 0.6 * square(f, n, rng.random()), f, time_axis(n), 3.0, 0.05)
        return x * env
    env = adsr(gate, 0.01, 0.3, 0.7, 0.12)
    n = len(env)
    t = time_axis(n)
    vib = 1 + 0.004 * np.sin(TWO_PI * 5.5 * t) * np.clip((t - 0.15) / 0.2, 0, 1)
    x = saw(f * vib, n, rng.random()) + 0.7 * saw(f * 1.006 * vib, n, rng.random()) + 0.5 * square(f * 0.5, n)
    return lowpass(x, 4500) * env


# The singer: a harmonic source whose harmonics are weighted by a vowel's formant envelope (i.e. a formant-
# filtered glottal source), with pitch scoops, delayed vibrato, syllable envelopes and consonant noise.
_VOWELS = {
    "high": {
        "a": (800, 1150, 2900),
        "e": (350, 2000, 2800),
        "i": (270, 2140, 2950),
        "o": (450, 800, 2830),
        "u": (325, 700, 2700),
    },
    "low": {
        "a": (650, 1080, 2650),
        "e": (400, 1700, 2600),
        "i": (290, 1870, 2800),
        "o": (400, 800, 2600),
        "u": (350, 600, 2700),
    },
}
_FORMANT_BW = (90.0, 110.0, 160.0)
_FORMANT_AMP = (1.0, 0.6, 0.3)


@dataclass
class Singer:
    register: str
    lo: int
    hi: int
    vib_rate: float
    vib_depth: float
    breath: float


def syllable(
    singer: Singer, midi: int, prev: int | None, gate: int, vowel: str, consonant: bool, rng: np.random.Generator
) -> Array:
    env = adsr(gate, rng.uniform(0.02, 0.05), 0.3, 0.8, 0.09)
    n = len(env)
    t = time_axis(n)
    start = prev if prev is not None and abs(prev - midi) <= 5 else midi - rng.uniform(0.3, 1.0)
    pitch = midi + (start - midi) * np.exp(-t / rng.uniform(0.03, 0.06))
    pitch = pitch + singer.vib_depth * np.sin(TWO_PI * singer.vib_rate * t + rng.uniform(0, 6.28)) * np.clip(
        (t - 0.15) / 0.25, 0, 1
    )
    f = midi_hz(pitch)
    f0 = float(midi_hz(midi))
    theta = TWO_PI * np.cumsum(f) / SR
    formants = _VOWELS[singer.register][vowel]
    amps = []
    for k in range(1, int(7000 / f0) + 1):
        fk = k * f0
        e = sum(
            a / math.sqrt(1 + ((fk - fc) / (bw / 2)) ** 2)
            for fc, bw, a in zip(formants, _FORMANT_BW, _FORMANT_AMP, strict=True)
        )
        amps.append((e + 0.03) / k**0.6)
    x = harmonics(theta, amps)
    x = x / (np.max(np.abs(x)) + 1e-9)
    if singer.breath > 0:
        x += singer.breath * peak_normalize(bandpass(rng.standard_normal(n), formants[1] * 0.8, formants[2] * 1.2))
    x *= env
    if consonant:
        k = int(rng.uniform(0.03, 0.07) * SR)
        c = peak_normalize(highpass(rng.standard_normal(k), rng.uniform(3500, 6000))) * np.exp(
            -np.arange(k) / (0.4 * k)
        )
        x[: min(k, n)] += rng.uniform(0.15, 0.35) * c[: min(k, n)]
    return x
