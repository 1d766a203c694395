"""Synthetic DJ-mix corpus with exact ground truth, written independently of the engine's own test synth.

Why another generator: detectors that were tuned on one synthesizer learn its quirks. This module shares no code,
sounds or conventions with ``offbeat/``; it builds every instrument from scratch (pitch-swept kicks, noise snares
and claps, metallic hats, toms, congas, 808s with glide, detuned-saw pads, plucks, arps, e-pianos, organs, a
formant "singer", risers, convolution reverb), arranges them per style into tracks with intro / build /
breakdown / drop / outro in 8-bar phrases, and mixes 3-8 tracks the way a DJ would: beat-matched blends of
8-64 bars with equal-power, linear, EQ bass-swap or filter-sweep crossfades, plus deliberate clashes of
unrelated tempos. All truth (beats, downbeats, tempo, key, meter, vocals, loudness, boundaries) is computed from
the generator's own event times and signals, never estimated.

Every mix is a pure function of its seed; even seeds are the ``tune`` split and odd seeds ``test``, so an
evaluation can report on mixes no one tuned on. A boundary is the midpoint of its crossfade window (see
``truth.py`` for the shared format). Beat-matched blends place the incoming track's first downbeat on an
outgoing downbeat at the same tempo (no time-stretching: the incoming track is generated at the mix tempo);
the other transitions join tracks whose tempi differ by at least 8 %.

Usage (from the repository root)::

    .venv/bin/python -m bench.corpus.synthetic --out /tmp/synth --mixes 4 --seed 0 [--short]

``--short`` makes 45-110 s tracks (quick-mix style) instead of 2-6 min ones.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyloudnorm
from scipy import signal
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from bench.corpus.truth import MixTruth, TrackTruth, format_key, write_mix

SR = 44100
CORPUS = "synthetic-v1"
TAIL_SEC = 2.0  # reverb/release tail rendered after a track's last bar (faded out on the final track)
VOCAL_MIN_FRACTION = 0.10  # vocals must cover this much of the steady part (and VOCAL_MIN_SEC) to count
VOCAL_MIN_SEC = 8.0
MAX_MIX_SEC = 40 * 60  # keeps memory bounded: the mix buffer is float32 stereo

Array = np.ndarray
_TWO_PI = 2.0 * math.pi

# ------------------------------------------------------------------------------------------------ music theory

_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# Scale-degree progressions that start on the tonic (so the key is unambiguous); "5+" is the harmonic-minor
# dominant (major V in a minor key), the strongest cue a listener or key detector has for minor.
_PROGRESSIONS = {
    "major": ("1 5 6 4", "1 6 4 5", "1 4 5 4", "1 4 1 5", "1 2 4 5", "1 4 6 5", "1 1 4 5", "1 3 4 5"),
    "minor": ("1 6 3 7", "1 4 5+ 1", "1 7 6 7", "1 4 6 5+", "1 6 4 5+", "1 1 6 7", "1 4 1 5+", "1 6 7 1"),
}
_MINIMAL_PROGRESSIONS = {"major": ("1 1 4 1", "1 1 1 5", "1 4 1 1"), "minor": ("1 1 6 1", "1 1 1 7", "1 4 1 1")}


def _midi_hz(m: float | Array) -> float | Array:
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=float) - 69.0) / 12.0)


def _chord(mode: str, token: str, seventh: bool) -> tuple[int, ...]:
    """Semitone offsets above the tonic of the diatonic chord named by a scale degree ("1".."7", "5+")."""
    scale = _SCALES[mode]
    deg = int(token.rstrip("+")) - 1
    notes = [scale[(deg + k) % 7] + 12 * ((deg + k) // 7) for k in (0, 2, 4)]
    if token.endswith("+"):
        notes[1] += 1
    if seventh:
        notes.append(scale[(deg + 6) % 7] + 12 * ((deg + 6) // 7))
    return tuple(notes)


def _place(pc: int, lo: int) -> int:
    """Lowest MIDI note >= lo with pitch class pc."""
    return lo + ((pc - lo) % 12)


# ------------------------------------------------------------------------------------------------ DSP helpers


def _t(n: int) -> Array:
    return np.arange(n) / SR


@lru_cache(maxsize=1024)
def _sos(kind: str, freq: float | tuple[float, float], order: int = 2) -> Array:
    return signal.butter(order, freq, btype=kind, fs=SR, output="sos")


def _clampf(f: float) -> float:
    return float(min(max(f, 15.0), 0.45 * SR))


def _lp(x: Array, fc: float, order: int = 2) -> Array:
    return signal.sosfilt(_sos("lowpass", round(_clampf(fc)), order), x)


def _hp(x: Array, fc: float, order: int = 2) -> Array:
    return signal.sosfilt(_sos("highpass", round(_clampf(fc)), order), x)


def _bp(x: Array, lo: float, hi: float, order: int = 2) -> Array:
    return signal.sosfilt(_sos("bandpass", (round(_clampf(lo)), round(_clampf(hi))), order), x)


def _filter_inplace(x: Array, kind: str, fc: float, chunk: int = 1 << 18) -> None:
    """Butterworth-filter a long float32 buffer in place, chunk by chunk (no full-length float64 copies)."""
    sos = _sos(kind, round(_clampf(fc)), 2)
    zi = np.zeros((sos.shape[0], 2))
    for i in range(0, len(x), chunk):
        y, zi = signal.sosfilt(sos, x[i : i + chunk], zi=zi)
        x[i : i + chunk] = y


def _convolve_into(dst: Array, x: Array, ir: Array, gain: float, block: int = 1 << 19) -> None:
    """dst += gain * (x conv ir), overlap-add over blocks of x so memory stays ~block + len(ir), not ~len(x)."""
    n = len(dst)
    for i in range(0, min(len(x), n), block):
        seg = x[i : i + block]
        if not seg.any():
            continue
        y = signal.fftconvolve(seg, ir)
        e = min(n, i + len(y))
        dst[i:e] += gain * y[: e - i]


def _peak1(x: Array) -> Array:
    p = float(np.max(np.abs(x))) if x.size else 0.0
    return (x / p if p > 0 else x).astype(np.float32)


def _finish(x: Array, fade_ms: float = 5.0) -> Array:
    """Normalize a one-shot to peak 1 and fade its end, so hits never click when they are cut."""
    k = min(len(x), int(fade_ms * SR / 1000))
    if k > 1:
        x = x.copy()
        x[-k:] *= np.linspace(1.0, 0.0, k)
    return _peak1(x)


def _add(buf: Array, start: int, x: Array, gain: float = 1.0) -> None:
    """Mix x into buf at sample `start`, clipping at both ends (events may hang over the render edge)."""
    if start >= len(buf) or start + len(x) <= 0:
        return
    a = max(0, -start)
    b = min(len(x), len(buf) - start)
    buf[start + a : start + b] += gain * x[a:b]


def _biquad(kind: str, fc: float, q: float) -> tuple[Array, Array]:
    """RBJ-cookbook biquad; used for time-varying sweeps where designing Butterworths per block is too slow."""
    w0 = _TWO_PI * _clampf(fc) / SR
    cw, alpha = math.cos(w0), math.sin(w0) / (2.0 * q)
    if kind == "lp":
        b = ((1 - cw) / 2, 1 - cw, (1 - cw) / 2)
    elif kind == "hp":
        b = ((1 + cw) / 2, -(1 + cw), (1 + cw) / 2)
    else:  # band-pass, 0 dB peak
        b = (alpha, 0.0, -alpha)
    a0 = 1.0 + alpha
    return np.array(b) / a0, np.array((1.0, -2 * cw / a0, (1 - alpha) / a0))


def _sweep(x: Array, f0: float, f1: float, kind: str, q: float = 0.707, stages: int = 2, block: int = 1024) -> Array:
    """Filter with a cutoff gliding log-linearly from f0 to f1 (block-wise biquads carrying their state).

    Blocks of ~23 ms are far below what the ear resolves as steps for sweeps lasting seconds.
    """
    n = len(x)
    if n == 0:
        return x.astype(np.float32)
    nb = (n + block - 1) // block
    fcs = np.geomspace(max(f0, 15.0), max(f1, 15.0), nb)
    y = np.empty(n, dtype=np.float32)
    zi = np.zeros((stages, 2))
    for i in range(nb):
        b, a = _biquad(kind, float(fcs[i]), q)
        sos = np.tile(np.concatenate([b, a]), (stages, 1))
        seg, zi = signal.sosfilt(sos, x[i * block : (i + 1) * block], zi=zi)
        y[i * block : i * block + len(seg)] = seg
    return y


def _saw(f: float | Array, n: int, phase0: float = 0.0) -> Array:
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


def _square(f: float | Array, n: int, phase0: float = 0.0) -> Array:
    return 0.5 * (_saw(f, n, phase0) - _saw(f, n, phase0 + 0.5))


def _sine(f: float | Array, n: int, phase0: float = 0.0) -> Array:
    if np.ndim(f) == 0:
        return np.sin(_TWO_PI * (phase0 + float(f) * np.arange(n) / SR))
    return np.sin(_TWO_PI * (phase0 + np.cumsum(np.asarray(f, dtype=float)[:n]) / SR))


def _harmonics(theta: Array, amps: Sequence[float]) -> Array:
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


def _adsr(gate: int, a: float, d: float, s: float, r: float) -> Array:
    """Envelope of length gate + release; attack/decay/release in seconds, sustain as a level."""
    na, nd, nr = max(1, int(a * SR)), max(1, int(d * SR)), max(1, int(r * SR))
    t = np.arange(gate)
    env = np.empty(gate + nr)
    env[:gate] = np.where(t < na, t / na, s + (1.0 - s) * np.exp(-(t - na) / nd))
    last = env[gate - 1] if gate > 0 else 0.0
    env[gate:] = last * (1.0 - np.arange(nr) / nr) ** 2
    return env


def _mean_square(x: Array) -> float:
    """Mean square of a large float32 array without a full float64 copy."""
    flat = x.reshape(-1)
    total = 0.0
    step = 1 << 20
    for i in range(0, len(flat), step):
        c = flat[i : i + step].astype(np.float64)
        total += float(np.dot(c, c))
    return total / max(1, len(flat))


def _peak(x: Array) -> float:
    flat = x.reshape(-1)
    step = 1 << 21
    return max((float(np.max(np.abs(flat[i : i + step]))) for i in range(0, len(flat), step)), default=0.0)


# ------------------------------------------------------------------------------------------------ drum sounds


def _kick(rng: np.random.Generator, tight: bool = False, f_end: float | None = None) -> Array:
    n = int(rng.uniform(0.25, 0.35) * SR) if tight else int(rng.uniform(0.35, 0.55) * SR)
    t = _t(n)
    f_start = rng.uniform(130, 260)
    f_end = rng.uniform(42, 58) if f_end is None else f_end
    f = f_end + (f_start - f_end) * np.exp(-t / rng.uniform(0.015, 0.045))
    body = np.sin(_TWO_PI * np.cumsum(f) / SR) * np.exp(
        -t / (rng.uniform(0.07, 0.12) if tight else rng.uniform(0.12, 0.3))
    )
    click = _hp(rng.standard_normal(n), rng.uniform(1500, 4000)) * np.exp(-t / rng.uniform(0.002, 0.005))
    x = body + rng.uniform(0.1, 0.35) * click
    return _finish(np.tanh(rng.uniform(1.0, 2.5) * x), 10)


def _snare(rng: np.random.Generator, bright: bool = False) -> Array:
    n = int(0.32 * SR)
    t = _t(n)
    f = rng.uniform(170, 240) * (1 + 0.3 * np.exp(-t / 0.01))
    tone = np.sin(_TWO_PI * np.cumsum(f) / SR) * np.exp(-t / rng.uniform(0.04, 0.09))
    nz = _lp(_hp(rng.standard_normal(n), rng.uniform(900, 1800)), rng.uniform(6000, 12000) if not bright else 14000)
    nz = _peak1(nz) * np.exp(-t / rng.uniform(0.07, 0.17))
    return _finish(rng.uniform(0.35, 0.8) * _peak1(tone) + nz, 10)


def _clap(rng: np.random.Generator) -> Array:
    n = int(0.4 * SR)
    t = _t(n)
    nz = _peak1(_bp(rng.standard_normal(n), rng.uniform(700, 1100), rng.uniform(2200, 3500)))
    env = np.zeros(n)
    gap = rng.uniform(0.008, 0.013)
    for k in range(3):
        d = k * gap
        env += (t >= d) * np.exp(-np.clip(t - d, 0, None) / 0.004)
    d = 3 * gap
    env += 0.9 * (t >= d) * np.exp(-np.clip(t - d, 0, None) / rng.uniform(0.07, 0.16))
    return _finish(nz * env, 10)


def _metal(t: Array, base: float, rng: np.random.Generator) -> Array:
    """Inharmonic square cluster (the 808 cymbal trick) plus an FM pair: what makes hats sound metallic."""
    ratios = (1.0, 1.4471, 1.6170, 1.9265, 2.5028, 2.6637)
    x = np.zeros_like(t)
    for r in ratios:
        x += np.sign(np.sin(_TWO_PI * (base * r * t + rng.random())))
    fc = rng.uniform(6000, 9000)
    fm = np.sin(_TWO_PI * fc * t + rng.uniform(2, 5) * np.sin(_TWO_PI * fc * 1.41 * t))
    return x / len(ratios) + 0.5 * fm


def _hat(rng: np.random.Generator, open_: bool) -> Array:
    n = int((0.7 if open_ else 0.12) * SR)
    t = _t(n)
    x = 0.6 * _peak1(_hp(rng.standard_normal(n), 7000)) + 0.5 * _peak1(_hp(_metal(t, rng.uniform(320, 460), rng), 6500))
    tau = rng.uniform(0.12, 0.3) if open_ else rng.uniform(0.012, 0.035)
    return _finish(x * np.exp(-t / tau))


def _ride(rng: np.random.Generator) -> Array:
    n = int(1.2 * SR)
    t = _t(n)
    bell = sum(np.sin(_TWO_PI * f * t) for f in (rng.uniform(2900, 3300), rng.uniform(4300, 4700)))
    x = _hp(_metal(t, rng.uniform(480, 620), rng) + 0.3 * rng.standard_normal(n), 3000) + 0.3 * bell
    return _finish(x * np.exp(-t / rng.uniform(0.45, 0.8)))


def _crash(rng: np.random.Generator) -> Array:
    n = int(2.4 * SR)
    t = _t(n)
    x = _hp(rng.standard_normal(n) + 0.6 * _metal(t, rng.uniform(350, 450), rng), 2500)
    return _finish(x * np.exp(-t / rng.uniform(0.7, 1.2)) * (1 - np.exp(-t / 0.002)))


def _tom(rng: np.random.Generator, f: float) -> Array:
    n = int(0.5 * SR)
    t = _t(n)
    ff = f * (1 + 0.5 * np.exp(-t / 0.03))
    x = np.sin(_TWO_PI * np.cumsum(ff) / SR) * np.exp(-t / rng.uniform(0.15, 0.3))
    x += 0.1 * _hp(rng.standard_normal(n), 2000) * np.exp(-t / 0.004)
    return _finish(x)


def _conga(rng: np.random.Generator, f: float, tau: float) -> Array:
    n = int(0.4 * SR)
    t = _t(n)
    ff = f * (1 + 0.2 * np.exp(-t / 0.01))
    x = np.sin(_TWO_PI * np.cumsum(ff) / SR) * np.exp(-t / tau)
    x += rng.uniform(0.1, 0.4) * _peak1(_bp(rng.standard_normal(n), 2000, 5000)) * np.exp(-t / 0.006)
    return _finish(x)


def _shaker(rng: np.random.Generator) -> Array:
    n = int(0.14 * SR)
    t = _t(n)
    x = _bp(rng.standard_normal(n), rng.uniform(3500, 5000), rng.uniform(9000, 12000))
    return _finish(x * (1 - np.exp(-t / rng.uniform(0.005, 0.012))) * np.exp(-t / rng.uniform(0.03, 0.06)))


def _rim(rng: np.random.Generator) -> Array:
    n = int(0.1 * SR)
    t = _t(n)
    x = np.sin(_TWO_PI * rng.uniform(1500, 1900) * t) + 0.6 * np.sin(_TWO_PI * rng.uniform(450, 550) * t)
    x = x * np.exp(-t / 0.012) + 0.5 * _hp(rng.standard_normal(n), 3000) * np.exp(-t / 0.003)
    return _finish(x)


def _cowbell(rng: np.random.Generator) -> Array:
    n = int(0.35 * SR)
    t = _t(n)
    k = rng.uniform(0.9, 1.15)
    x = _bp(_square(540 * k, n) + _square(800 * k, n), 600, 4000)
    return _finish(x * (0.7 * np.exp(-t / 0.05) + 0.3 * np.exp(-t / 0.25)))


def _clave(rng: np.random.Generator) -> Array:
    n = int(0.12 * SR)
    t = _t(n)
    return _finish(np.sin(_TWO_PI * rng.uniform(2200, 2700) * t) * np.exp(-t / 0.02))


class _Kit:
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


# ------------------------------------------------------------------------------------------------ styles

# Drum pattern strings: one character per step, bars separated by "|"; steps per bar = len(bar), spread evenly
# over the bar's beats (16 steps in 4/4 are 16ths, 12 are triplet 8ths, 12 in 3/4 are 16ths).
_VEL = {"X": 1.0, "x": 0.78, "o": 0.45}
_FOUR = "X...X...X...X..."
_BACK = "....X.......X..."

# instrument -> (group, gain, pan, reverb send); groups switch on and off with the arrangement.
_DRUM_MIX: dict[str, tuple[str, float, float, float]] = {
    "kick": ("kick", 1.0, 0.0, 0.02),
    "snare": ("backbeat", 0.55, 0.0, 0.16),
    "clap": ("backbeat", 0.5, 0.05, 0.2),
    "hat": ("tops", 0.2, 0.18, 0.04),
    "ohat": ("tops", 0.17, -0.15, 0.08),
    "ride": ("tops", 0.12, 0.3, 0.1),
    "shaker": ("tops", 0.13, -0.3, 0.05),
    "rim": ("perc", 0.2, 0.3, 0.15),
    "conga": ("perc", 0.32, -0.35, 0.1),
    "conga_hi": ("perc", 0.28, 0.25, 0.1),
    "bongo": ("perc", 0.24, 0.4, 0.1),
    "tom_lo": ("perc", 0.38, -0.2, 0.12),
    "cowbell": ("perc", 0.12, -0.25, 0.1),
    "clave": ("perc", 0.16, 0.2, 0.12),
}


@dataclass
class Style:
    """A genre template: tempo range, meter, swing, drum patterns and which instruments carry the harmony."""

    name: str
    bpm: tuple[float, float]
    drums: dict[str, tuple[str, ...]]
    bass: str  # rhythm family in _BASS_RHYTHMS ("808" follows the kick pattern)
    bass_voices: tuple[str, ...]
    chords: tuple[str, ...]  # rhythmic chord instruments to pick from
    meter: int = 4
    swing: tuple[float, float] = (0.5, 0.5)  # ratio of the first of two swung notes (0.5 = straight)
    swing_unit: float = 0.25  # 0.25: 16th swing, 0.5: 8th swing
    arp_p: float = 0.3
    lead_p: float = 0.3
    vocal_p: float = 0.4
    sevenths_p: float = 0.0
    minimal_p: float = 0.0
    breaks: str | None = None  # "jungle" (chopped) or "breakbeat" (mostly intact)
    hat_rolls: bool = False
    sidechain: bool = False
    ramp: bool = False
    matchable: bool = True  # can be beat-matched against 4/4 neighbours
    tight_kick: bool = False
    song_intro_p: float = 0.0  # chance that the intro opens with keys/pads before the drums
    bars_per_chord: tuple[int, ...] = (1, 2)


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style(
            "house",
            (120, 126),
            {
                "kick": (_FOUR,),
                "clap": (_BACK,),
                "hat": ("o.o.o.o.o.o.o.o.", "oooooooooooooooo"),
                "ohat": ("..x...x...x...x.",),
                "shaker": ("oxoooxoooxoooxoo",),
                "rim": ("......x..x....x.", "...x..x....x..x."),
            },
            "house",
            ("pluck", "organ"),
            ("organ", "stab", "keys"),
            vocal_p=0.55,
            arp_p=0.3,
            sevenths_p=0.3,
            sidechain=True,
        ),
        Style(
            "deep house",
            (118, 124),
            {
                "kick": (_FOUR,),
                "snare": ("....x.......x...",),
                "hat": ("..x...x...x...x.",),
                "shaker": ("oooooooooooooooo", "xooxxooxxooxxoox"),
                "rim": ("...x..x..x....x.", "......x.....x.x."),
            },
            "house",
            ("sub", "pluck"),
            ("keys", "stab"),
            swing=(0.52, 0.57),
            vocal_p=0.5,
            sevenths_p=0.7,
            sidechain=True,
        ),
        Style(
            "tech house",
            (124, 128),
            {
                "kick": (_FOUR,),
                "clap": (_BACK,),
                "hat": ("..X...X...X...X.",),
                "shaker": ("oxooox.ooxooox.o",),
                "rim": ("x..x..x...x..x..", "..x..x....x..x.."),
                "cowbell": ("......x.......x.",),
            },
            "rolling",
            ("pluck", "saw"),
            ("stab", "pluck"),
            swing=(0.5, 0.55),
            vocal_p=0.35,
            arp_p=0.2,
            sidechain=True,
            minimal_p=0.4,
        ),
        Style(
            "techno",
            (128, 140),
            {
                "kick": (_FOUR,),
                "hat": ("xoxoxoxoxoxoxoxo", "oooxoooxoooxooox"),
                "ohat": ("..x...x...x...x.",),
                "clap": (_BACK, "............x..."),
                "ride": ("x.x.x.x.x.x.x.x.",),
                "tom_lo": ("..........x..x..", "...x......x....."),
            },
            "techno",
            ("saw", "pluck"),
            ("stab",),
            vocal_p=0.15,
            arp_p=0.45,
            lead_p=0.15,
            sidechain=True,
            minimal_p=0.7,
            bars_per_chord=(2, 4),
        ),
        Style(
            "trance",
            (134, 142),
            {
                "kick": (_FOUR,),
                "ohat": ("..X...X...X...X.",),
                "clap": (_BACK,),
                "hat": ("o.o.o.o.o.o.o.o.",),
                "ride": ("x...x...x...x...",),
            },
            "rolling",
            ("saw", "pluck"),
            ("stab", "pluck"),
            vocal_p=0.4,
            arp_p=0.85,
            lead_p=0.7,
            sidechain=True,
            bars_per_chord=(2, 4),
        ),
        Style(
            "drum and bass",
            (165, 178),
            {
                "kick": ("X.........X.....", "X.........X..x..", "X......x..X....."),
                "snare": ("....X.......X...", "....X.......X..o"),
                "hat": ("x.x.x.x.x.x.x.x.", "x.xox.xox.xox.xo"),
                "ride": ("x...x...x...x...",),
                "shaker": ("oooooooooooooooo",),
            },
            "dnb",
            ("reese", "sub"),
            ("pluck", "keys", "stab"),
            vocal_p=0.4,
            arp_p=0.3,
            lead_p=0.3,
            tight_kick=True,
            bars_per_chord=(2, 4),
        ),
        Style(
            "jungle",
            (160, 175),
            {"ride": ("x.x.x.x.x.x.x.x.",), "shaker": ("oooooooooooooooo",)},
            "dnb",
            ("sub", "reese"),
            ("keys", "stab"),
            vocal_p=0.3,
            arp_p=0.2,
            lead_p=0.2,
            breaks="jungle",
            bars_per_chord=(2, 4),
        ),
        Style(
            "dubstep",
            (138, 142),
            {
                "kick": ("X...............", "X.........X.....", "X.....X........."),
                "snare": ("........X.......",),
                "hat": ("x.x.x.x.x.x.x.x.", "x.xxx.x.x.xxx.x."),
                "ohat": ("......x.......x.",),
            },
            "dubstep",
            ("wobble",),
            ("stab", "keys"),
            vocal_p=0.35,
            arp_p=0.2,
            lead_p=0.3,
            tight_kick=True,
            bars_per_chord=(2, 4),
        ),
        Style(
            "trap",
            (130, 150),
            {
                "kick": ("X.....X.....X...", "X......X....X...", "X.....X...X..x.."),
                "clap": ("........X.......",),
                "hat": ("x.x.x.x.x.x.x.x.",),
                "ohat": ("..............x.",),
            },
            "808",
            ("808",),
            ("pluck", "keys"),
            vocal_p=0.45,
            arp_p=0.4,
            lead_p=0.3,
            hat_rolls=True,
            tight_kick=True,
            song_intro_p=0.4,
            bars_per_chord=(2, 4),
        ),
        Style(
            "hip-hop",
            (84, 100),
            {
                "kick": ("X......X..X.....", "X.......X.X.....", "X..x......X....."),
                "snare": (_BACK,),
                "hat": ("x.xox.xox.xox.xo", "x.x.x.x.x.x.x.x."),
                "shaker": ("..o...o...o...o.",),
            },
            "808",
            ("808", "sub"),
            ("keys",),
            swing=(0.56, 0.64),
            vocal_p=0.6,
            arp_p=0.2,
            lead_p=0.2,
            sevenths_p=0.6,
            song_intro_p=0.5,
        ),
        Style(
            "downtempo",
            (72, 96),
            {
                "kick": ("X.......X.x.....", "X.....x...X....."),
                "snare": (_BACK, "....x.......x..."),
                "hat": ("x.x.x.x.x.x.x.x.",),
                "shaker": ("oooooooooooooooo",),
                "rim": ("......x.......x.",),
            },
            "downtempo",
            ("sub", "pluck"),
            ("keys", "pluck"),
            swing=(0.56, 0.63),
            swing_unit=0.5,
            vocal_p=0.5,
            arp_p=0.4,
            lead_p=0.3,
            sevenths_p=0.6,
            song_intro_p=0.5,
        ),
        Style(
            "uk garage",
            (128, 136),
            {
                "kick": ("X.........X.....", "X.........X..x..", "X......x..X....."),
                "snare": (_BACK,),
                "hat": ("..x...x...x...x.", "ox.oox.oox.oox.o"),
                "shaker": ("oooooooooooooooo",),
                "rim": ("...x..x....x..x.",),
            },
            "ukg",
            ("organ", "sub"),
            ("organ", "stab"),
            swing=(0.6, 0.66),
            vocal_p=0.7,
            arp_p=0.15,
            sevenths_p=0.5,
        ),
        Style(
            "breakbeat",
            (125, 140),
            {
                "kick": ("X.......X.......",),  # a layered kick on 1 and 3 under the break, as producers do
                "hat": ("X.x.X.x.X.x.X.x.",),
                "ohat": ("..............x.",),
                "shaker": ("oooooooooooooooo",),
            },
            "breakbeat",
            ("saw", "pluck"),
            ("stab", "pluck"),
            vocal_p=0.35,
            arp_p=0.4,
            lead_p=0.3,
            breaks="breakbeat",
        ),
        Style(
            "afro house",
            (118, 124),
            {
                "kick": (_FOUR,),
                "clap": ("....x.......x...", "............x..."),
                "shaker": ("x.ox.ox.ox.o",),
                "conga": ("..x.x..x..x.x..x", "x..x..x...x.x..."),
                "bongo": ("x..x.x..x.x.", ".x.x..x..x.x"),
                "clave": ("x..x..x.x..x..x.",),
                "hat": ("..x...x...x...x.",),
                "conga_hi": ("...x.x.....x.x..",),
            },
            "afro",
            ("sub", "pluck"),
            ("keys", "pluck"),
            vocal_p=0.55,
            arp_p=0.3,
            lead_p=0.3,
            sevenths_p=0.3,
            sidechain=True,
        ),
        Style(
            "waltz",
            (100, 140),
            {
                "kick": ("X...........", "X.......x..."),
                "rim": ("....x...x...",),
                "hat": ("..x...x...x.", "x.x.x.x.x.x."),
                "snare": ("........o...",),
                "shaker": ("oooooooooooo",),
            },
            "waltz",
            ("sub", "pluck"),
            ("keys", "stab"),
            meter=3,
            vocal_p=0.4,
            arp_p=0.3,
            lead_p=0.4,
            matchable=False,
            song_intro_p=0.3,
        ),
        Style(
            "tempo ramp",
            (118, 132),
            {
                "kick": (_FOUR,),
                "clap": (_BACK,),
                "hat": ("oooooooooooooooo",),
                "ohat": ("..x...x...x...x.",),
                "rim": ("...x..x....x..x.",),
            },
            "offbeat",
            ("pluck", "saw"),
            ("stab", "organ"),
            vocal_p=0.35,
            arp_p=0.4,
            lead_p=0.3,
            sidechain=True,
            ramp=True,
        ),
    )
}

# Bass rhythms per bar: (position in beats, length in beats, interval: 0 root, 12 octave, 7 = the chord's fifth).
_BASS_RHYTHMS: dict[str, tuple[list[tuple[float, float, int]], ...]] = {
    "offbeat": (
        [(0.5, 0.35, 0), (1.5, 0.35, 0), (2.5, 0.35, 0), (3.5, 0.35, 0)],
        [(0.5, 0.3, 0), (1.5, 0.3, 12), (2.5, 0.3, 0), (3.5, 0.3, 12)],
    ),
    "rolling": (
        [(b + s, 0.2, 0) for b in range(4) for s in (0.25, 0.5, 0.75)],
        [(b + s, 0.2, 12 if s == 0.75 else 0) for b in range(4) for s in (0.25, 0.5, 0.75)],
    ),
    "house": (
        [(0, 0.4, 0), (0.75, 0.25, 0), (1.5, 0.4, 12), (2.5, 0.4, 0), (3.25, 0.25, 7), (3.5, 0.4, 0)],
        [(0.5, 0.4, 0), (1.75, 0.25, 0), (2.5, 0.4, 12), (3.5, 0.4, 7)],
        [(0, 0.75, 0), (1, 0.25, 0), (1.5, 0.5, 12), (2.75, 0.25, 0), (3, 0.5, 7)],
    ),
    "techno": ([(b + s, 0.2, 0) for b in range(4) for s in (0.5, 0.75)], [(b + 0.5, 0.45, 0) for b in range(4)]),
    "dnb": (
        [(0, 1.5, 0), (1.75, 0.75, 0), (2.5, 1.5, 0)],
        [(0, 2.5, 0), (2.5, 1.5, 7)],
        [(0, 1, 0), (1.5, 0.5, 12), (2.5, 1.5, 0)],
    ),
    "dubstep": (
        [(0, 1.5, 0), (2, 2, 0)],
        [(0, 1, 0), (1, 1, 0), (2.5, 1.5, 12)],
        [(0, 0.75, 0), (0.75, 0.75, 0), (2, 2, 0)],
    ),
    "ukg": (
        [(0, 0.5, 0), (0.75, 0.5, 0), (1.75, 0.25, 12), (2.5, 0.75, 0), (3.5, 0.25, 7)],
        [(0, 0.75, 0), (1.5, 0.5, 0), (2.75, 0.5, 12), (3.5, 0.5, 0)],
    ),
    "breakbeat": (
        [(0, 0.5, 0), (0.75, 0.25, 0), (1.5, 0.5, 12), (2.5, 0.5, 0), (3, 0.5, 7), (3.75, 0.25, 0)],
        [(0, 1, 0), (1.75, 0.5, 0), (2.5, 1, 12)],
    ),
    "afro": (
        [(0, 0.5, 0), (0.75, 0.25, 0), (2, 0.5, 0), (2.75, 0.5, 7), (3.5, 0.25, 0)],
        [(0, 0.75, 0), (1.5, 0.5, 0), (2.5, 0.5, 7), (3.25, 0.5, 0)],
    ),
    "downtempo": ([(0, 1.5, 0), (1.75, 0.5, 0), (2.5, 1, 7), (3.5, 0.5, 0)], [(0, 2, 0), (2.5, 1.5, 0)]),
    "waltz": ([(0, 0.9, 0)], [(0, 0.9, 0), (2, 0.9, 7)]),
}

# Rhythmic chord patterns per meter: (position in beats, length in beats).
_CHORD_RHYTHMS: dict[int, dict[str, tuple[list[tuple[float, float]], ...]]] = {
    4: {
        "stab": (
            [(0.5, 0.25), (1.5, 0.25), (2.5, 0.25), (3.5, 0.25)],
            [(0.75, 0.5), (2.5, 0.5)],
            [(0, 0.25), (0.75, 0.25), (1.5, 0.25), (2.25, 0.25), (3, 0.25)],
            [(1.5, 0.5), (3.5, 0.5)],
        ),
        "organ": (
            [(0.5, 0.3), (1.5, 0.3), (2.5, 0.3), (3.5, 0.3)],
            [(0, 0.4), (0.75, 0.4), (1.75, 0.25), (2.5, 0.5), (3.5, 0.25)],
        ),
        "keys": ([(0, 1.5), (1.5, 0.5), (2.5, 1.5)], [(0, 0.75), (0.75, 1.25), (2.5, 0.5), (3, 1)], [(0, 4)]),
        "pluck": (
            [(0, 0.5), (0.75, 0.5), (1.5, 0.5), (2.25, 0.5), (3, 0.5)],
            [(0.5, 0.5), (1.5, 0.5), (2.5, 0.5), (3.5, 0.5)],
        ),
    },
    3: {
        "stab": ([(1, 0.4), (2, 0.4)],),
        "organ": ([(1, 0.4), (2, 0.4)],),
        "keys": ([(0, 1), (1, 0.8), (2, 0.8)], [(0, 3)]),
        "pluck": ([(1, 0.5), (2, 0.5)], [(0, 0.5), (1, 0.5), (1.5, 0.5), (2, 0.5)]),
    },
}

# Two-bar breakbeats (16ths) rendered with their own kit, then played intact or chopped into 8th slices.
_BREAKS = (
    {
        "brk_kick": "X.X.......XX....|X.X.......X.....",
        "brk_snare": "....X..o.o..X..o|....X..o.o....X.",
        "ride": "x.x.x.x.x.x.x.x.|x.x.x.x.x.x.x.x.",
    },
    {
        "brk_kick": "X.........X.....|X.X.......X.....",
        "brk_snare": "....X..o.o..X..o|....X..o.o..X..o",
        "hat": "x.x.x.x.x.x.x.x.|x.x.x.x.x.x.x.x.",
    },
    {
        "brk_kick": "X......X..X.....|X.....X..X......",
        "brk_snare": "....X.......X...|....X..o....X...",
        "hat": "x.xox.xox.xox.xo|x.xox.xox.xox.xo",
    },
)


def _parse_pattern(pattern: str, meter: int) -> tuple[list[tuple[float, float]], int]:
    """(positions in beats from the pattern start, velocities) and the pattern's length in bars."""
    bars = pattern.split("|")
    hits = []
    for b, bar in enumerate(bars):
        step = meter / len(bar)
        for i, ch in enumerate(bar):
            v = _VEL.get(ch)
            if v:
                hits.append((b * meter + i * step, v))
    return hits, len(bars)


def _swing(pos: Array, ratio: float, unit: float) -> Array:
    """Delay the second note of every pair of `unit`-long steps so the pair splits ratio : 1-ratio."""
    if abs(ratio - 0.5) < 1e-9:
        return pos
    pair = 2.0 * unit
    k = np.floor(pos / pair + 1e-9)
    f = pos - k * pair
    f2 = np.where(f < unit, f / unit * ratio * pair, ratio * pair + (f - unit) / unit * (1.0 - ratio) * pair)
    return k * pair + f2


# ------------------------------------------------------------------------------------------------ plan


@dataclass
class Grid:
    """Beat grid of one track in track-local seconds; beats[-1] is the end of the last bar (not a beat)."""

    beats: Array
    meter: int

    @property
    def n_beats(self) -> int:
        return len(self.beats) - 1

    @property
    def end(self) -> float:
        return float(self.beats[-1])

    def time(self, pos: float | Array) -> Array:
        """Seconds of (fractional) beat positions: inside a beat the tempo is taken as constant."""
        return np.interp(pos, np.arange(len(self.beats)), self.beats)

    def bar_time(self, bar: int) -> float:
        return float(self.beats[min(bar * self.meter, self.n_beats)])

    def beat_len(self, beat: int) -> float:
        b = min(max(beat, 0), self.n_beats - 1)
        return float(self.beats[b + 1] - self.beats[b])


def _make_grid(bpm0: float, bpm1: float, meter: int, n_bars: int, ramp: tuple[int, int]) -> Grid:
    """Tempo constant at bpm0 before beat ramp[0], constant at bpm1 after ramp[1], linear in between."""
    n = n_bars * meter
    mid = np.arange(n) + 0.5
    bpm = np.interp(mid, [ramp[0], ramp[1]], [bpm0, bpm1]) if ramp[1] > ramp[0] else np.full(n, bpm0)
    return Grid(np.concatenate([[0.0], np.cumsum(60.0 / bpm)]), meter)


@dataclass
class Section:
    name: str
    bar0: int
    n_bars: int

    @property
    def bar1(self) -> int:
        return self.bar0 + self.n_bars


@dataclass
class TrackPlan:
    """Everything decided before rendering: the parts of a track the mix placement and the truth depend on."""

    index: int
    style: Style
    bpm0: float
    bpm1: float
    key_pc: int
    mode: str
    n_bars: int
    sections: list[Section]
    vocals: bool
    gain_db: float
    seed: int
    grid: Grid
    offset: int = 0  # first sample of the track in the mix
    n_render: int = 0  # samples of the track that reach the mix


@dataclass
class Transition:
    """A crossfade between track i (outgoing) and i+1 (incoming); times in mix seconds."""

    kind: str  # linear | equal_power | bass_swap | filter_out
    beatmatched: bool
    bars: int  # length in the outgoing track's bars
    start: float = 0.0
    end: float = 0.0
    swap: float = 0.0  # bass-swap instant
    sweep: str = "hp"  # filter_out: high-pass up or low-pass down


@dataclass
class MixPlan:
    mix_id: str
    seed: int
    split: str
    tracks: list[TrackPlan]
    transitions: list[Transition]
    total: int = 0  # samples


def _pick_bpm(rng: np.random.Generator, style: Style) -> float:
    lo, hi = style.bpm
    bpm = rng.uniform(lo, hi)
    return float(round(bpm) if rng.random() < 0.7 else round(bpm, 1))


def _matchable_styles(bpm: float, exclude_waltz: bool = True) -> list[Style]:
    return [
        s
        for s in STYLES.values()
        if s.matchable and s.bpm[0] * 0.97 <= bpm <= s.bpm[1] * 1.03 and not (exclude_waltz and s.meter != 4)
    ]


def _choose_sequence(rng: np.random.Generator, n: int) -> tuple[list[Style], list[float], list[float], list[bool]]:
    """Styles and tempi such that the mix has both beat-matched blends and clashes of very different tempi."""
    bm = [bool(x) for x in rng.random(n - 1) < 0.55]
    if n - 1 >= 2:
        if all(bm):
            bm[int(rng.integers(n - 1))] = False
        if not any(bm):
            bm[int(rng.integers(n - 1))] = True
    used: dict[str, int] = {}

    def weight(s: Style, prev: Style | None) -> float:
        w = 1.0 / (1 + 2 * used.get(s.name, 0))
        return w * (0.3 if prev is not None and s.name == prev.name else 1.0)

    def draw(cands: list[Style], prev: Style | None) -> Style:
        w = np.array([weight(s, prev) for s in cands])
        return cands[int(rng.choice(len(cands), p=w / w.sum()))]

    def ramp_end(style: Style, bpm0: float) -> float:
        if not style.ramp:
            return bpm0
        return float(round(bpm0 + rng.choice([-1, 1]) * rng.uniform(2.0, 4.0), 2))

    styles: list[Style] = []
    bpm0s: list[float] = []
    bpm1s: list[float] = []
    for i in range(n):
        need_matchable = i < n - 1 and bm[i]
        prev = styles[-1] if styles else None
        if i == 0:
            cands = [s for s in STYLES.values() if s.matchable or not need_matchable]
            s = draw(cands, None)
            b0 = _pick_bpm(rng, s)
        else:
            t_prev = bpm1s[-1]
            s = None
            if bm[i - 1]:
                cands = _matchable_styles(t_prev)
                if cands:
                    s = draw(cands, prev)
                    b0 = t_prev
                else:
                    bm[i - 1] = False
            if s is None:
                cands = [x for x in STYLES.values() if x.matchable or not need_matchable]
                for _ in range(200):
                    s = draw(cands, prev)
                    b0 = _pick_bpm(rng, s)
                    if abs(b0 / t_prev - 1.0) >= 0.08:
                        break
        assert s is not None
        styles.append(s)
        bpm0s.append(b0)
        bpm1s.append(ramp_end(s, b0))
        used[s.name] = used.get(s.name, 0) + 1
    return styles, bpm0s, bpm1s, bm


def _sections(rng: np.random.Generator, n_bars: int, in_bars: int, out_bars: int, short: bool) -> list[Section]:
    """Intro / build / breakdown / drop (/ breakdown / drop) / outro in 8-bar units, sized around the blends."""
    u = n_bars // 8
    intro = min(4, max(1 if short else 2, math.ceil(in_bars / 8)))
    outro = min(4, max(1 if short else 2, math.ceil(out_bars / 8)))
    build = 1 if short else int(rng.choice([1, 2]))
    brk = 1 if short else int(rng.choice([1, 2, 2, 3, 4]))
    drop = u - intro - outro - build - brk
    min_drop = 1 if short else 2
    while drop < min_drop and brk > 1:
        brk -= 1
        drop += 1
    while drop < min_drop and build > (0 if short else 1):
        build -= 1
        drop += 1
    while drop < min_drop and intro > 1:
        intro -= 1
        drop += 1
    while drop < min_drop and outro > 1:
        outro -= 1
        drop += 1
    drop = max(drop, min_drop)
    parts: list[tuple[str, int]] = [("intro", intro)]
    if build:
        parts.append(("build", build))
    parts.append(("breakdown", brk))
    if not short and drop >= 10:
        d1 = int(rng.integers(4, drop - 5))
        b2 = int(rng.choice([1, 2]))
        parts += [("drop", d1), ("breakdown", b2), ("drop", drop - d1 - b2)]
    else:
        parts.append(("drop", drop))
    parts.append(("outro", outro))
    out, bar = [], 0
    for name, units in parts:
        out.append(Section(name, bar, units * 8))
        bar += units * 8
    return out


def plan_mix(seed: int, short: bool = False) -> MixPlan:
    """Decide styles, tempi, keys, lengths, blends and placement of every track of one mix."""
    rng = np.random.default_rng([seed, 0x5EED])
    n = int(rng.choice([4, 5, 6, 7, 8]) if short else rng.choice([3, 4, 4, 5, 5, 6, 6, 7, 8]))
    styles, bpm0s, bpm1s, bm = _choose_sequence(rng, n)
    durations = rng.uniform(45, 110, n) if short else rng.uniform(120, 360, n)
    if durations.sum() > MAX_MIX_SEC * 0.9:
        durations *= MAX_MIX_SEC * 0.9 / durations.sum()
    bar_sec = [s.meter * 60.0 / ((b0 + b1) / 2) for s, b0, b1 in zip(styles, bpm0s, bpm1s, strict=True)]
    end_bar_sec = [s.meter * 60.0 / b1 for s, b1 in zip(styles, bpm1s, strict=True)]

    transitions: list[Transition] = []
    for i in range(n - 1):
        # Beat-matched blends may be long (DJs ride two records for 32-64 bars); clashing tempi are kept short.
        if bm[i]:
            options = [8, 8, 16] if short else [8, 16, 16, 32, 32, 48, 64]
            kinds, kp = ["linear", "equal_power", "bass_swap", "filter_out"], [0.2, 0.3, 0.3, 0.2]
        else:
            options = [8] if short else [8, 16]
            kinds, kp = ["linear", "equal_power", "bass_swap", "filter_out"], [0.25, 0.35, 0.1, 0.3]
        limit = (0.35 if short else 0.5) * min(durations[i], durations[i + 1])
        fitting = [b for b in options if b * end_bar_sec[i] <= limit] or [8]
        bars = int(rng.choice(fitting))
        transitions.append(Transition(str(rng.choice(kinds, p=kp)), bm[i], bars, sweep=str(rng.choice(["hp", "lp"]))))

    tracks: list[TrackPlan] = []
    for i, style in enumerate(styles):
        in_bars = 0
        if i > 0:
            t = transitions[i - 1]
            in_bars = t.bars if t.beatmatched else math.ceil(t.bars * end_bar_sec[i - 1] / bar_sec[i])
        out_bars = transitions[i].bars if i < n - 1 else 0
        core = 16 if short else 32
        need = math.ceil((in_bars + out_bars + core) / 8) * 8
        n_bars = max(need, round(durations[i] / bar_sec[i] / 8) * 8, 24 if short else 48)
        sections = _sections(rng, n_bars, in_bars, out_bars, short)
        n_bars = sections[-1].bar1
        mode = str(rng.choice(["major", "minor"], p=[0.4, 0.6]))
        ramp = (0, 0)
        if style.ramp:
            intro_end = sections[0].bar1
            outro_start = sections[-1].bar0
            r0, r1 = max(intro_end, in_bars), min(outro_start, n_bars - out_bars)
            if r1 <= r0:  # never happens with the sizes above, but the ramp must stay inside the steady part
                r0, r1 = in_bars, n_bars - out_bars
            ramp = (r0 * style.meter, r1 * style.meter)
        grid = _make_grid(bpm0s[i], bpm1s[i], style.meter, n_bars, ramp)
        tracks.append(
            TrackPlan(
                index=i,
                style=style,
                bpm0=bpm0s[i],
                bpm1=bpm1s[i],
                key_pc=int(rng.integers(12)),
                mode=mode,
                n_bars=n_bars,
                sections=sections,
                vocals=bool(rng.random() < style.vocal_p),
                gain_db=float(rng.uniform(-4.0, 2.0)),
                seed=int(rng.integers(2**31)),
                grid=grid,
            )
        )

    # Placement: the incoming track's first downbeat starts where the blend starts, i.e. `bars` bars before the
    # outgoing track's last bar ends. When tempi are equal this lands on an outgoing downbeat: beat-matched.
    tracks[0].offset = round(rng.uniform(0.2, 1.0) * SR)
    for i, t in enumerate(transitions):
        out, inc = tracks[i], tracks[i + 1]
        inc.offset = out.offset + round(out.grid.bar_time(out.n_bars - t.bars) * SR)
        out.n_render = round(out.grid.end * SR)  # the outgoing track is cut at the end of its last bar
        t.start = inc.offset / SR  # both ends on exact samples, so truth and audio agree to the sample
        t.end = (out.offset + out.n_render) / SR
        if t.beatmatched:
            t.swap = inc.offset / SR + inc.grid.bar_time(t.bars // 2)
        else:
            t.swap = 0.5 * (t.start + t.end)
    last = tracks[-1]
    last.n_render = round((last.grid.end + TAIL_SEC) * SR)
    total = last.offset + last.n_render
    split = "tune" if seed % 2 == 0 else "test"
    mix_id = f"synth{'-short' if short else ''}-{seed:05d}"
    return MixPlan(mix_id, seed, split, tracks, transitions, total)


# ------------------------------------------------------------------------------------------------ melodic voices


def _q(gate: int) -> int:
    """Quantize a note length to 64 samples (1.5 ms) so repeated notes under a tempo ramp still share a render."""
    return max(64, (gate + 32) // 64 * 64)


def _pluck_filter(x: Array, f0: float, t: Array, bright: float, tau: float) -> Array:
    """Decaying low-pass 'filter envelope' approximated by crossfading a dark and the raw signal."""
    dark = _lp(x, min(f0 * bright, 0.4 * SR))
    return dark + (x - dark) * np.exp(-t / tau)


def _voice_bass(kind: str, f: float, gate: int, rng: np.random.Generator, f_from: float | None, lfo_hz: float) -> Array:
    if kind == "808":
        n = gate + int(0.03 * SR)
        t = _t(n)
        ff = np.full(n, f)
        if f_from is not None:
            ff = f + (f_from - f) * np.exp(-t / 0.05)
        ff = ff * (1 + 0.6 * np.exp(-t / 0.008))
        x = np.tanh(2.2 * _sine(ff, n)) * np.exp(-t / 0.9)
        x[gate:] *= np.linspace(1, 0, n - gate)
        x[: int(0.002 * SR)] *= np.linspace(0, 1, int(0.002 * SR))
        return x
    env = _adsr(gate, 0.004, 0.15, 0.7, 0.04)
    n = len(env)
    t = _t(n)
    if kind == "sub":
        x = _sine(f, n) + 0.15 * _sine(2 * f, n)
    elif kind == "pluck":
        x = _pluck_filter(_saw(f, n, rng.random()), f, t, 3.0, 0.06) + 0.5 * _sine(f, n)
    elif kind == "saw":
        x = _lp(_saw(f, n, rng.random()), 900) + 0.4 * _sine(f, n)
    elif kind == "organ":
        x = _harmonics(_TWO_PI * f * t, (1.0, 0.5, 0.3, 0.0, 0.1))
    elif kind == "reese":
        x = _saw(f * 2 ** (12 / 1200), n, rng.random()) + _saw(f * 2 ** (-12 / 1200), n, rng.random())
        x = _lp(x, 700) * 0.6 + 0.8 * _sine(f, n)
    elif kind == "wobble":
        lfo = 0.5 - 0.5 * np.cos(_TWO_PI * lfo_hz * t)
        raw = _saw(f * 2, n, rng.random()) + 0.6 * _square(f, n, rng.random())
        dark = _lp(raw, 180)
        x = np.tanh(1.8 * (dark + (raw - dark) * lfo)) * 0.7 + 0.8 * _sine(f, n)
    else:
        raise ValueError(kind)
    return x * env


def _voice_chord(kind: str, freqs: Sequence[float], gate: int, rng: np.random.Generator) -> Array:
    if kind == "pad":
        env = _adsr(gate, rng.uniform(0.2, 0.8), 0.5, 0.9, 0.8)
        n = len(env)
        x = np.zeros(n)
        det = rng.uniform(5, 14)
        for f in freqs:
            for d in (-det, det):
                x += _saw(f * 2 ** (d / 1200), n, rng.random())
        return x * env / len(freqs)
    if kind == "keys":  # two-operator FM e-piano: bright attack that mellows, plus a short "tine"
        env = _adsr(gate, 0.003, 1.2, 0.35, 0.25)
        n = len(env)
        t = _t(n)
        x = np.zeros(n)
        idx = 1.8 * np.exp(-t / 0.35)
        for f in freqs:
            x += np.sin(_TWO_PI * f * t + idx * np.sin(_TWO_PI * f * t)) + 0.15 * np.sin(_TWO_PI * 7 * f * t) * np.exp(
                -t / 0.03
            )
        return x * env / len(freqs)
    if kind == "organ":
        env = _adsr(gate, 0.005, 0.1, 0.85, 0.05)
        t = _t(len(env))
        x = sum(_harmonics(_TWO_PI * f * t, (1.0, 0.6, 0.3, 0.25)) for f in freqs)
        return x * env / len(freqs)
    if kind == "stab":
        env = _adsr(gate, 0.003, 0.12, 0.25, 0.12)
        n = len(env)
        x = np.zeros(n)
        for f in freqs:
            x += _saw(f, n, rng.random()) + _saw(f * 1.005, n, rng.random())
        return _hp(_lp(x, 2600), 180) * env / len(freqs)
    if kind == "pluck":
        env = _adsr(gate, 0.002, 0.15, 0.0, 0.1)
        n = len(env)
        t = _t(n)
        x = np.zeros(n)
        for f in freqs:
            x += _pluck_filter(_saw(f, n, rng.random()) + 0.5 * _square(f, n, rng.random()), f, t, 2.5, 0.07)
        return x * env / len(freqs)
    raise ValueError(kind)


def _voice_lead(f: float, gate: int, rng: np.random.Generator, kind: str, decay: float = 0.1) -> Array:
    if kind == "arp":
        env = _adsr(gate, 0.002, decay, 0.0, 0.05)
        n = len(env)
        x = _pluck_filter(_saw(f, n, rng.random()) + 0.6 * _square(f, n, rng.random()), f, _t(n), 3.0, 0.05)
        return x * env
    env = _adsr(gate, 0.01, 0.3, 0.7, 0.12)
    n = len(env)
    t = _t(n)
    vib = 1 + 0.004 * np.sin(_TWO_PI * 5.5 * t) * np.clip((t - 0.15) / 0.2, 0, 1)
    x = _saw(f * vib, n, rng.random()) + 0.7 * _saw(f * 1.006 * vib, n, rng.random()) + 0.5 * _square(f * 0.5, n)
    return _lp(x, 4500) * env


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
class _Singer:
    register: str
    lo: int
    hi: int
    vib_rate: float
    vib_depth: float
    breath: float


def _syllable(
    singer: _Singer, midi: int, prev: int | None, gate: int, vowel: str, consonant: bool, rng: np.random.Generator
) -> Array:
    env = _adsr(gate, rng.uniform(0.02, 0.05), 0.3, 0.8, 0.09)
    n = len(env)
    t = _t(n)
    start = prev if prev is not None and abs(prev - midi) <= 5 else midi - rng.uniform(0.3, 1.0)
    pitch = midi + (start - midi) * np.exp(-t / rng.uniform(0.03, 0.06))
    pitch = pitch + singer.vib_depth * np.sin(_TWO_PI * singer.vib_rate * t + rng.uniform(0, 6.28)) * np.clip(
        (t - 0.15) / 0.25, 0, 1
    )
    f = _midi_hz(pitch)
    f0 = float(_midi_hz(midi))
    theta = _TWO_PI * np.cumsum(f) / SR
    formants = _VOWELS[singer.register][vowel]
    amps = []
    for k in range(1, int(7000 / f0) + 1):
        fk = k * f0
        e = sum(
            a / math.sqrt(1 + ((fk - fc) / (bw / 2)) ** 2)
            for fc, bw, a in zip(formants, _FORMANT_BW, _FORMANT_AMP, strict=True)
        )
        amps.append((e + 0.03) / k**0.6)
    x = _harmonics(theta, amps)
    x = x / (np.max(np.abs(x)) + 1e-9)
    if singer.breath > 0:
        x += singer.breath * _peak1(_bp(rng.standard_normal(n), formants[1] * 0.8, formants[2] * 1.2))
    x *= env
    if consonant:
        k = int(rng.uniform(0.03, 0.07) * SR)
        c = _peak1(_hp(rng.standard_normal(k), rng.uniform(3500, 6000))) * np.exp(-np.arange(k) / (0.4 * k))
        x[: min(k, n)] += rng.uniform(0.15, 0.35) * c[: min(k, n)]
    return x


# ------------------------------------------------------------------------------------------------ rendering


class _Bus:
    """Stereo track bus plus a mono reverb send; layers are mono and panned in (keeps memory at ~3 buffers)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.lr = np.zeros((n, 2), np.float32)
        self.send = np.zeros(n, np.float32)

    def add(self, mono: Array, gain: float, pan: float = 0.0, send: float = 0.0, haas_ms: float = 0.0) -> None:
        a = (pan + 1.0) * math.pi / 4
        gl, gr = math.cos(a) * math.sqrt(2) * gain, math.sin(a) * math.sqrt(2) * gain
        self.lr[:, 0] += gl * mono
        d = int(haas_ms * SR / 1000)
        if d > 0:
            self.lr[d:, 1] += gr * mono[:-d]
        else:
            self.lr[:, 1] += gr * mono
        if send:
            self.send += (send * gain) * mono


class _TrackRenderer:
    """Turns a TrackPlan into audio; also reports when the singer is singing (truth for has_vocals)."""

    def __init__(self, plan: TrackPlan, n: int) -> None:
        self.p = plan
        self.s = plan.style
        self.rng = np.random.default_rng([plan.seed, 11])
        self.g = plan.grid
        self.m = plan.style.meter
        self.n = n
        self.bus = _Bus(n)
        # Producers tune the kick's tail to the key (tonic or fifth): a tonal kick in another key would be a
        # loud, wrong pitch class that no real record has.
        kick_midi = min(_place(plan.key_pc, 28), _place((plan.key_pc + 7) % 12, 28))
        self.kit = _Kit(self.rng, plan.style.tight_kick, float(_midi_hz(kick_midi)))
        self.scratch = np.zeros(n, np.float32)
        self.kick_samples: list[int] = []
        self.vocal_spans: list[tuple[float, float]] = []
        self._cache: dict[tuple, Array] = {}
        self._cache_bytes = 0
        self.swing = float(self.rng.uniform(*self.s.swing))
        self.n_bars_audible = min(plan.n_bars, int(np.searchsorted(self.g.beats, n / SR) // self.m) + 1)
        self._harmony()
        self._arrange()

    # ---- helpers
    def voice(self, key: tuple, make: Callable[[], Array]) -> Array:
        """Notes repeat (same pitch and length) bar after bar: render each distinct one once and reuse it."""
        x = self._cache.get(key)
        if x is None:
            x = make().astype(np.float32)
            if self._cache_bytes < 96 << 20:
                self._cache[key] = x
                self._cache_bytes += x.nbytes
        return x

    def layer(self) -> Array:
        self.scratch.fill(0.0)
        return self.scratch

    def sample(self, pos: float | Array) -> Array:
        return np.round(self.g.time(pos) * SR).astype(np.int64)

    # ---- harmony and arrangement
    def _harmony(self) -> None:
        r, p = self.rng, self.p
        minimal = r.random() < self.s.minimal_p
        progs = (_MINIMAL_PROGRESSIONS if minimal else _PROGRESSIONS)[p.mode]
        tokens = str(r.choice(progs)).split()
        seventh = r.random() < self.s.sevenths_p
        bpc = int(r.choice(self.s.bars_per_chord))
        chords = [_chord(p.mode, tok, seventh) for tok in tokens]
        self.chord_of_bar = [chords[(b // bpc) % len(chords)] for b in range(p.n_bars)]
        self.chord_change = [
            b == 0 or self.chord_of_bar[b] != self.chord_of_bar[b - 1] or b % (bpc * len(chords)) == 0
            for b in range(p.n_bars)
        ]

    def _arrange(self) -> None:
        """Per-bar on/off masks of each layer group, following intro/build/breakdown/drop/outro conventions."""
        r, s, nb = self.rng, self.s, self.p.n_bars
        M: dict[str, Array] = {
            k: np.zeros(nb, bool)
            for k in ("kick", "backbeat", "tops", "perc", "bass", "pad", "chords", "arp", "lead", "vocal")
        }
        self.sweeps: dict[str, list[tuple[int, int, float, float, str]]] = {
            k: [] for k in ("chords", "pad", "arp", "lead")
        }
        self.fills: dict[int, tuple[str, float]] = {}
        self.risers: list[tuple[int, int]] = []
        self.crashes: list[int] = []
        has_arp = r.random() < s.arp_p
        has_lead = r.random() < s.lead_p
        self.chord_kind = str(r.choice(s.chords))
        drums = ("kick", "backbeat", "tops", "perc")
        for k, sec in enumerate(self.p.sections):
            a, b, L = sec.bar0, sec.bar1, sec.n_bars
            if sec.name == "intro":
                d0 = a + 8 if (L >= 16 and r.random() < s.song_intro_p) else a
                if d0 > a:  # a song-like intro: chords first, drums come in after 8 bars
                    M["chords"][a:d0] = True
                    M["pad"][a:d0] = r.random() < 0.5
                M["kick"][d0:b] = True
                M["tops"][(d0 + 8 if L - (d0 - a) >= 16 and r.random() < 0.5 else d0) : b] = True
                M["backbeat"][(d0 + 8 if L - (d0 - a) >= 16 else d0) : b] = True
                M["perc"][a + L // 2 : b] = True
                if L >= 16 and r.random() < 0.3:
                    M["bass"][b - 8 : b] = True
                if d0 == a and L >= 16 and r.random() < 0.3:
                    M["chords"][b - 8 : b] = True
                    self.sweeps["chords"].append((b - 8, b, 250.0, 12000.0, "lp"))
            elif sec.name == "build":
                for d in drums:
                    M[d][a:b] = True
                M["bass"][a:b] = True
                M["chords"][a:b] = True
                self.sweeps["chords"].append((a, b, 300.0, 14000.0, "lp"))
                if has_arp:
                    M["arp"][a + L // 2 : b] = True
                    self.sweeps["arp"].append((a + L // 2, b, 400.0, 14000.0, "lp"))
                M["pad"][a:b] = r.random() < 0.3
                self.risers.append((max(a, b - int(r.choice([4, 8]))), b))
                self.fills[b - 1] = (str(r.choice(["snare_roll", "kick_drop", "tom_run"])), float(self.m - 2))
                self.crashes.append(a)
            elif sec.name == "breakdown":
                M["pad"][a:b] = True
                self.sweeps["pad"].append((a, a + max(4, L // 2), 300.0, 16000.0, "lp"))
                if has_arp and r.random() < 0.5:
                    M["arp"][a:b] = True
                if has_lead and r.random() < 0.4:
                    M["lead"][a + L // 2 : b] = True
                if r.random() < 0.3:
                    M["chords"][a:b] = True
                if self.p.vocals and r.random() < 0.85:
                    M["vocal"][a:b] = True
                self.risers.append((max(a, b - int(r.choice([4, 8]))), b))
                if k > 0 and M["kick"][a - 1]:
                    self.fills[a - 1] = (str(r.choice(["snare_roll", "open_hat", "tom_run"])), float(self.m - 1))
            elif sec.name == "drop":
                for d in drums:
                    M[d][a:b] = True
                M["bass"][a:b] = True
                M["chords"][a:b] = r.random() < 0.85 or not (has_arp or has_lead)
                M["pad"][a:b] = r.random() < 0.3
                if has_arp:
                    M["arp"][a:b] = True
                if has_lead:
                    first_on = r.random() < 0.5
                    for blk in range(a, b, 8):
                        M["lead"][blk : min(b, blk + 8)] = ((blk - a) // 8 % 2 == 0) == first_on
                if self.p.vocals:
                    first_on = r.random() < 0.6
                    for blk in range(a, b, 8):
                        M["vocal"][blk : min(b, blk + 8)] = ((blk - a) // 8 % 2 == 0) == first_on
                self.crashes.append(a)
                for blk in range(a + 16, b, 16):
                    if r.random() < 0.35:
                        self.fills[blk - 1] = (str(r.choice(["snare_roll", "open_hat", "tom_run"])), float(self.m - 1))
            elif sec.name == "outro":
                M["kick"][a:b] = True
                M["tops"][a:b] = True
                M["backbeat"][a : (b - 8 if L >= 16 else b)] = True
                M["perc"][a : a + max(8, L // 2)] = True
                M["bass"][a : a + max(8, L // 2)] = r.random() < 0.8
                if r.random() < 0.5:
                    M["chords"][a : a + 8] = True
                    self.sweeps["chords"].append((a, a + 8, 14000.0, 300.0, "lp"))
        if s.breaks:
            M["break"] = M["kick"] | M["backbeat"]
        self.masks = M

    # ---- drums
    def drums(self) -> None:
        s, r, m = self.s, self.rng, self.m
        M = self.masks
        self.kick_pattern = ""
        for inst, variants in s.drums.items():
            group, gain, pan, send = _DRUM_MIX[inst]
            mask = M[group]
            if not mask.any():
                continue
            main = str(r.choice(variants))
            alt = str(r.choice(variants))
            if inst == "kick":
                self.kick_pattern = main
            hits_main, len_main = _parse_pattern(main, m)
            hits_alt, len_alt = _parse_pattern(alt, m)
            swingable = len(main.split("|")[0]) in (4 * m, 2 * m)
            pos: list[float] = []
            vel: list[float] = []
            for bar in range(min(self.p.n_bars, self.n_bars_audible)):
                if not mask[bar]:
                    continue
                use_alt = bar % 4 == 3 and alt != main
                hits, plen = (hits_alt, len_alt) if use_alt else (hits_main, len_main)
                fill = self.fills.get(bar)
                cut = m + 1.0
                if fill and (group in ("backbeat", "perc") or (fill[0] == "kick_drop" and group == "kick")):
                    cut = fill[1]
                base = (bar % plen) * m
                bar_pos = [bar * m + p - base for p, _ in hits if 0 <= p - base < min(m, cut)]
                bar_vel = [v for p, v in hits if 0 <= p - base < min(m, cut)]
                if inst == "hat" and s.hat_rolls:
                    bar_pos, bar_vel = self._hat_roll(bar, bar_pos, bar_vel)
                pos += bar_pos
                vel += bar_vel
            if not pos:
                continue
            p_arr = np.asarray(pos, float)
            if swingable:
                p_arr = _swing(p_arr, self.swing, s.swing_unit)
            t = self.g.time(p_arr)
            human = group in ("tops", "perc")
            if human and self.swing > 0.5:
                t = t + r.normal(0, 0.002, len(t))
            v_arr = np.asarray(vel) * (r.uniform(0.88, 1.05, len(vel)) if human else 1.0)
            starts = np.round(t * SR).astype(np.int64)
            if inst == "kick":
                self.kick_samples = [int(x) for x in starts]
            self._hits(self.kit[inst], starts, v_arr, gain, pan, send)
        self._fills()
        self._crashes()
        if s.breaks:
            self._breaks()

    def _hits(self, sound: Array, starts: Array, vels: Array, gain: float, pan: float, send: float) -> None:
        buf = self.layer()
        for st, v in zip(starts, vels, strict=True):
            _add(buf, int(st), sound, float(v))
        self.bus.add(buf, gain, pan, send)

    def _hat_roll(self, bar: int, pos: list[float], vel: list[float]) -> tuple[list[float], list[float]]:
        """Trap hat rolls: now and then one beat of 8ths becomes 16ths, 32nds or triplets with a velocity ramp."""
        r, m = self.rng, self.m
        for beat in range(m):
            if r.random() < 0.3:
                b0 = bar * m + beat
                keep = [(p, v) for p, v in zip(pos, vel, strict=True) if not (b0 <= p < b0 + 1)]
                step = float(r.choice([0.25, 0.125, 1 / 6, 1 / 3]))
                k = round(1 / step)
                new = [(b0 + j * step, 0.45 + 0.45 * j / k) for j in range(k)]
                merged = sorted(keep + new)
                pos = [p for p, _ in merged]
                vel = [v for _, v in merged]
        return pos, vel

    def _fills(self) -> None:
        m = self.m
        snare_pos, snare_vel, tom_pos, tom_names, oh_pos = [], [], [], [], []
        for bar, (kind, start) in sorted(self.fills.items()):
            if bar >= self.n_bars_audible:
                continue
            b0 = bar * m
            if kind == "snare_roll":
                steps = np.arange(start, m, 0.25)
                snare_pos += list(b0 + steps)
                snare_vel += list(np.linspace(0.35, 1.0, len(steps)))
            elif kind == "tom_run":
                steps = np.arange(start, m, 0.25)
                names = ["tom_hi", "tom_hi", "tom_mid", "tom_mid", "tom_lo", "tom_lo", "tom_lo", "tom_lo"]
                tom_pos += list(b0 + steps)
                tom_names += names[: len(steps)]
            elif kind == "open_hat":
                oh_pos.append(b0 + m - 0.5)
            elif kind == "kick_drop":
                steps = np.arange(m - 1, m, 0.25)
                snare_pos += list(b0 + steps)
                snare_vel += [0.5, 0.65, 0.8, 1.0][: len(steps)]
        if snare_pos:
            self._hits(self.kit["snare"], self.sample(np.asarray(snare_pos)), np.asarray(snare_vel), 0.45, 0.0, 0.2)
        for name in ("tom_hi", "tom_mid", "tom_lo"):
            ps = [p for p, nm in zip(tom_pos, tom_names, strict=True) if nm == name]
            if ps:
                self._hits(self.kit[name], self.sample(np.asarray(ps)), np.full(len(ps), 0.8), 0.4, -0.2, 0.15)
        if oh_pos:
            self._hits(self.kit["ohat"], self.sample(np.asarray(oh_pos)), np.full(len(oh_pos), 0.9), 0.2, -0.15, 0.1)

    def _crashes(self) -> None:
        bars = [b for b in self.crashes if b < self.n_bars_audible]
        if bars:
            self._hits(
                self.kit["crash"],
                self.sample(np.asarray(bars, float) * self.m),
                np.full(len(bars), 1.0),
                0.22,
                0.1,
                0.25,
            )

    def _breaks(self) -> None:
        """Render a 2-bar break loop with its own kit and room, then play it per bar: intact or chopped in 8ths."""
        r, m, g = self.rng, self.m, self.g
        pattern = _BREAKS[int(r.integers(len(_BREAKS)))]
        beat = 60.0 / self.p.bpm0
        loop_n = round(2 * m * beat * SR)
        loop = np.zeros(loop_n + int(0.5 * SR))
        for inst, pat in pattern.items():
            hits, _ = _parse_pattern(pat, m)
            gain = {"brk_kick": 1.0, "brk_snare": 0.7, "ride": 0.25, "hat": 0.3}[inst]
            for p, v in hits:
                _add(loop, round(p * beat * SR), self.kit[inst], gain * v)
        room = r.standard_normal(int(0.35 * SR)) * np.exp(-_t(int(0.35 * SR)) / 0.07)
        loop = loop + 0.25 * signal.fftconvolve(loop, room / np.sqrt(np.sum(room**2)))[: len(loop)]
        loop = _peak1(np.tanh(1.5 * _lp(loop, 9000)))
        slice_n = loop_n // (4 * m)  # 8th-note slices over 2 bars
        slices = [loop[i * slice_n : (i + 1) * slice_n + int(0.004 * SR)].copy() for i in range(4 * m)]
        fade = int(0.004 * SR)
        for sl in slices:
            sl[-fade:] *= np.linspace(1, 0, fade)
        chop_p = 0.35 if self.s.breaks == "jungle" else 0.08
        buf = self.layer()
        for bar in range(min(self.p.n_bars, self.n_bars_audible)):
            if not self.masks["break"][bar]:
                continue
            fill = self.fills.get(bar)
            chopped = r.random() < chop_p * 2
            for j in range(2 * m):
                if fill and j / 2 >= fill[1]:
                    break
                idx = (bar % 2) * 2 * m + j
                if chopped and r.random() < 0.45:
                    idx = int(r.integers(len(slices)))
                sl = slices[idx]
                if chopped and r.random() < 0.15:  # stutter: the first 16th of the slice twice
                    half = len(sl) // 2
                    sl = np.concatenate([sl[:half], sl[:half]])
                _add(buf, round(g.time(bar * m + j / 2) * SR), sl, 1.0)
        self.kick_samples = [int(x) for x in self.sample(np.flatnonzero(self.masks["break"]).astype(float) * m)]
        self.bus.add(buf, 0.95, 0.0, 0.05)

    # ---- tonal layers
    def _sidechain(self, buf: Array, depth: float) -> None:
        if not self.s.sidechain or not self.kick_samples:
            return
        L = int(0.5 * self.g.beat_len(0) * SR)
        shape = (1.0 - depth * np.exp(-np.arange(L) / (0.3 * L))).astype(np.float32)
        env = np.ones(self.n, np.float32)
        for st in self.kick_samples:
            if st < self.n:
                e = min(self.n, st + L)
                np.minimum(env[st:e], shape[: e - st], out=env[st:e])
        buf *= env

    def _apply_sweeps(self, buf: Array, name: str) -> None:
        for b0, b1, f0, f1, kind in self.sweeps.get(name, []):
            s0, s1 = int(self.g.bar_time(b0) * SR), min(self.n, int(self.g.bar_time(b1) * SR))
            if s1 > s0:
                buf[s0:s1] = _sweep(buf[s0:s1], f0, f1, kind)

    def bass(self) -> None:
        r, m, p = self.rng, self.m, self.p
        mask = self.masks["bass"]
        if not mask.any():
            return
        voice = str(r.choice(self.s.bass_voices))
        lo = 28
        notes: list[tuple[float, float, int, float | None]] = []
        if self.s.bass == "808":
            hits, _ = _parse_pattern(self.kick_pattern or "X.........X.....", m)
            rhythm = []
            starts = [hp for hp, _ in hits if hp < m]
            for i, st in enumerate(starts):
                nxt = starts[i + 1] if i + 1 < len(starts) else m
                rhythm.append((st, min(nxt - st, 2.0), 0))
        else:
            rhythm = list(_BASS_RHYTHMS[self.s.bass][int(r.integers(len(_BASS_RHYTHMS[self.s.bass])))])
        prev_midi: int | None = None
        for bar in range(min(p.n_bars, self.n_bars_audible)):
            if not mask[bar]:
                prev_midi = None
                continue
            chord = self.chord_of_bar[bar]
            root = _place((p.key_pc + chord[0]) % 12, lo)
            for pos, dur, iv in rhythm:
                if pos >= m:
                    continue
                step = chord[2] - chord[0] if iv == 7 else iv
                midi = root + step
                glide = None
                if voice == "808" and prev_midi is not None and prev_midi != midi and r.random() < 0.35:
                    glide = float(_midi_hz(prev_midi))
                if voice == "808" and r.random() < 0.12:
                    midi = root + 12
                notes.append((bar * m + pos, dur, midi, glide))
                prev_midi = midi
        buf = self.layer()
        beat_sec = self.g.beat_len(0)
        for pos, dur, midi, glide in notes:
            s0 = round(self.g.time(pos) * SR)
            gate = max(64, round(self.g.time(pos + dur) * SR) - s0)
            lfo = float(r.choice([1, 2, 3, 4])) / beat_sec if voice == "wobble" else 0.0
            f = float(_midi_hz(midi))
            gate = _q(gate)
            key = ("bass", voice, f, gate, glide, lfo)
            _add(buf, s0, self.voice(key, lambda f=f, g=gate, gl=glide, lf=lfo: _voice_bass(voice, f, g, r, gl, lf)))
        _filter_inplace(buf, "highpass", 28)
        self._sidechain(buf, float(r.uniform(0.3, 0.6)))
        self.bus.add(buf, 0.38 if voice != "808" else 0.5, 0.0, 0.02)

    def _chord_events(self, mask: Array, rhythm: list[tuple[float, float]] | None) -> list[tuple[float, float, int]]:
        """(position, length in beats, bar) of chord hits; rhythm None means one sustained chord per chord span."""
        m, out = self.m, []
        nb = min(self.p.n_bars, self.n_bars_audible)
        if rhythm is None:
            bar = 0
            while bar < nb:
                if not mask[bar]:
                    bar += 1
                    continue
                end = bar + 1
                while end < nb and mask[end] and not self.chord_change[end]:
                    end += 1
                out.append((float(bar * m), float((end - bar) * m), bar))
                bar = end
            return out
        for bar in range(nb):
            if mask[bar]:
                out += [(bar * m + p, d, bar) for p, d in rhythm if p < m]
        return out

    def _voicing(self, bar: int, lo: int, root_below: bool) -> list[float]:
        chord = self.chord_of_bar[bar]
        midis = sorted(_place((self.p.key_pc + c) % 12, lo) for c in chord)
        if root_below:
            midis.insert(0, _place((self.p.key_pc + chord[0]) % 12, lo - 12))
        return [float(_midi_hz(x)) for x in midis]

    def pads(self) -> None:
        r = self.rng
        mask = self.masks["pad"]
        if not mask.any():
            return
        buf = self.layer()
        lo = int(r.integers(53, 60))
        for pos, dur, bar in self._chord_events(mask, None):
            s0 = round(self.g.time(pos) * SR)
            gate = _q(round(self.g.time(pos + dur) * SR) - s0)
            fr = self._voicing(bar, lo, True)
            _add(buf, s0, self.voice(("pad", *fr, gate), lambda fr=fr, g=gate: _voice_chord("pad", fr, g, r)))
        _filter_inplace(buf, "lowpass", r.uniform(1500, 3500))
        self._apply_sweeps(buf, "pad")
        self._sidechain(buf, 0.3)
        self.bus.add(buf, 0.2, 0.0, 0.35, haas_ms=float(r.uniform(8, 18)))

    def chords(self) -> None:
        r, m = self.rng, self.m
        mask = self.masks["chords"]
        if not mask.any():
            return
        kind = self.chord_kind
        table = _CHORD_RHYTHMS[m][kind]
        rhythm = list(table[int(r.integers(len(table)))])
        buf = self.layer()
        lo = int(r.integers(55, 62))
        for pos, dur, bar in self._chord_events(mask, rhythm):
            s0 = round(self.g.time(pos) * SR)
            gate = _q(round(self.g.time(pos + dur) * SR) - s0)
            fr = self._voicing(bar, lo, False)
            _add(buf, s0, self.voice((kind, *fr, gate), lambda fr=fr, g=gate: _voice_chord(kind, fr, g, r)))
        self._apply_sweeps(buf, "chords")
        self._sidechain(buf, 0.35)
        gain = {"stab": 0.3, "organ": 0.22, "keys": 0.3, "pluck": 0.25}[kind]
        send = 0.35 if kind == "stab" else 0.2
        self.bus.add(buf, gain, float(r.uniform(-0.2, 0.2)), send)

    def arp(self) -> None:
        r, m = self.rng, self.m
        mask = self.masks["arp"]
        if not mask.any():
            return
        step = 0.25 if self.p.bpm0 >= 100 else 0.5
        if self.s.name in ("afro house",):
            step = 1 / 3
        order = str(r.choice(["up", "down", "updown", "random"]))
        lo = int(r.integers(62, 70))
        seq_rand = r.integers(0, 6, 16)
        decay = float(r.uniform(0.06, 0.15))
        buf = self.layer()
        nb = min(self.p.n_bars, self.n_bars_audible)
        for bar in range(nb):
            if not mask[bar]:
                continue
            chord = self.chord_of_bar[bar]
            tones = sorted(_place((self.p.key_pc + c) % 12, lo) for c in chord[:3])
            tones = tones + [x + 12 for x in tones]
            k = round(m / step)
            for j in range(k):
                if order == "up":
                    idx = j % len(tones)
                elif order == "down":
                    idx = len(tones) - 1 - j % len(tones)
                elif order == "updown":
                    cyc = 2 * len(tones) - 2
                    q = j % cyc
                    idx = q if q < len(tones) else cyc - q
                else:
                    idx = int(seq_rand[j % 16]) % len(tones)
                pos = bar * m + j * step
                s0 = round(self.g.time(pos) * SR)
                gate = _q(round(self.g.time(pos + step * 0.8) * SR) - s0)
                f = float(_midi_hz(tones[idx]))
                x = self.voice(("arp", f, gate), lambda f=f, g=gate: _voice_lead(f, g, r, "arp", decay))
                _add(buf, s0, x, 0.8)
        self._apply_sweeps(buf, "arp")
        echo = self._delay(buf, 0.75 if step == 0.25 else 1.5, 0.35)
        self.bus.add(echo, 0.16, float(r.uniform(-0.4, 0.4)), 0.25, haas_ms=6.0)

    def _delay(self, buf: Array, beats: float, fb: float, taps: int = 3) -> Array:
        d = round(beats * self.g.beat_len(0) * SR)
        out = buf.copy()
        for k in range(1, taps + 1):
            if k * d < len(buf):
                out[k * d :] += (fb**k) * buf[: len(buf) - k * d]
        return out

    def _melody(
        self, lo: int, hi: int, phrase_beats: float, rhythms: Sequence[Sequence[tuple[float, float]]], start_bar: int
    ) -> list[tuple[float, float, int]]:
        """A phrase over chord tones (strong beats) and scale steps (weak beats), ending on a chord tone."""
        r, p, m = self.rng, self.p, self.m
        scale = _SCALES[p.mode]
        pool = [x for x in range(lo, hi + 1) if (x - p.key_pc) % 12 in scale]
        rhythm = rhythms[int(r.integers(len(rhythms)))]
        cur = int(r.integers(len(pool) // 3, 2 * len(pool) // 3 + 1))
        out = []
        for i, (pos, dur) in enumerate(rhythm):
            if pos >= phrase_beats:
                break
            bar = min(p.n_bars - 1, start_bar + int(pos // m))
            chord_pcs = {(p.key_pc + c) % 12 for c in self.chord_of_bar[bar]}
            strong = abs(pos - round(pos)) < 1e-9 or i == len(rhythm) - 1
            if strong:
                cands = [j for j in range(len(pool)) if pool[j] % 12 in chord_pcs]
                cands.sort(key=lambda j: abs(j - cur))
                cur = cands[int(r.integers(min(2, len(cands))))]
            else:
                cur = int(np.clip(cur + int(r.choice([-2, -1, -1, 1, 1, 2])), 0, len(pool) - 1))
            out.append((pos, min(dur, phrase_beats - pos), pool[cur]))
        return out

    def _phrase_rhythms(self) -> tuple[float, list[list[tuple[float, float]]]]:
        m = self.m
        if m == 3:
            base = [
                [(0, 1), (1, 1), (2, 1), (3, 2)],
                [(0, 1.5), (1.5, 0.5), (2, 1), (3, 1), (4, 1.5)],
                [(1, 0.5), (1.5, 0.5), (2, 1), (3, 2.5)],
            ]
            beats = 6.0
        else:
            base = [
                [(0, 1), (1, 0.5), (1.5, 0.5), (2, 1.5), (4, 0.5), (4.5, 0.5), (5, 1), (6, 1.5)],
                [(0.5, 0.5), (1, 0.5), (1.5, 1), (2.5, 0.5), (3, 1), (4.5, 0.5), (5, 0.5), (5.5, 0.5), (6, 1.75)],
                [(0, 0.75), (0.75, 0.75), (1.5, 1), (3, 0.5), (3.5, 0.5), (4, 1), (5, 1), (6, 1.5)],
                [(1, 0.5), (1.5, 0.5), (2, 0.5), (2.5, 1.5), (5, 0.5), (5.5, 0.5), (6, 0.5), (6.5, 1.25)],
            ]
            beats = 8.0
        if self.p.bpm0 > 150:  # fast tempi: sing in half time so syllables keep a human length
            base = [[(2 * a, 2 * b) for a, b in rh] for rh in base]
            beats *= 2
        return beats, [[(float(a), float(b)) for a, b in rh] for rh in base]

    def lead(self) -> None:
        r, m = self.rng, self.m
        mask = self.masks["lead"]
        if not mask.any():
            return
        beats, rhythms = self._phrase_rhythms()
        bars_per = int(beats // m)
        lo = int(r.integers(64, 71))
        motif = self._melody(lo, lo + 14, beats, rhythms, 0)
        buf = self.layer()
        nb = min(self.p.n_bars, self.n_bars_audible)
        for bar in range(0, nb, bars_per):
            if not mask[bar]:
                continue
            for pos, dur, midi in motif:
                b = bar + int(pos // m)
                if b >= nb or not mask[b]:
                    continue
                chord_pcs = {(self.p.key_pc + c) % 12 for c in self.chord_of_bar[b]}
                if midi % 12 not in chord_pcs and abs(pos - round(pos)) < 1e-9:
                    midi = min(
                        (x for x in range(midi - 3, midi + 4) if x % 12 in chord_pcs), key=lambda x: abs(x - midi)
                    )
                s0 = round(self.g.time(bar * m + pos) * SR)
                gate = _q(round(self.g.time(bar * m + pos + dur * 0.9) * SR) - s0)
                f = float(_midi_hz(midi))
                _add(buf, s0, self.voice(("lead", f, gate), lambda f=f, g=gate: _voice_lead(f, g, r, "lead")))
        self._apply_sweeps(buf, "lead")
        self.bus.add(self._delay(buf, 0.75, 0.3, 2), 0.17, float(r.uniform(-0.2, 0.2)), 0.3)

    def vocals(self) -> None:
        """Sung phrases (A A' B A' per 8 bars) in the vocal bars; records each phrase's span as vocal truth."""
        r, m, p = self.rng, self.m, self.p
        mask = self.masks["vocal"]
        if not p.vocals or not mask.any():
            return
        register = str(r.choice(["high", "low"]))
        lo = int(r.integers(60, 65)) if register == "high" else int(r.integers(50, 55))
        singer = _Singer(
            register, lo, lo + 14, float(r.uniform(4.8, 6.2)), float(r.uniform(0.2, 0.5)), float(r.uniform(0.0, 0.06))
        )
        beats, rhythms = self._phrase_rhythms()
        bars_per = int(beats // m)
        motifs = [self._melody(singer.lo, singer.hi, beats, rhythms, 0) for _ in range(2)]
        vowels = list("aaeeioou")
        buf = self.layer()
        nb = min(p.n_bars, self.n_bars_audible)
        slot = 0
        for bar in range(0, nb, bars_per):
            if not mask[bar : bar + bars_per].all():
                continue
            which = (0, 0, 1, 0)[slot % 4]
            slot += 1
            if r.random() < 0.15:
                continue  # a breath: vocals come and go
            motif = motifs[which]
            prev: int | None = None
            span0 = span1 = None
            for pos, dur, midi in motif:
                b = min(p.n_bars - 1, bar + int(pos // m))
                chord_pcs = {(p.key_pc + c) % 12 for c in self.chord_of_bar[b]}
                if midi % 12 not in chord_pcs and abs(pos - round(pos)) < 1e-9:
                    midi = min(
                        (x for x in range(midi - 3, midi + 4) if x % 12 in chord_pcs), key=lambda x: abs(x - midi)
                    )
                t0 = float(self.g.time(bar * m + pos))
                t1 = float(self.g.time(bar * m + pos + dur * 0.92))
                s0 = round(t0 * SR)
                gate = max(256, round(t1 * SR) - s0)
                syl = _syllable(singer, midi, prev, gate, str(r.choice(vowels)), bool(r.random() < 0.5), r)
                _add(buf, s0, syl.astype(np.float32))
                prev = midi
                span0 = t0 if span0 is None else span0
                span1 = t1
            if span0 is not None and span1 is not None and span0 < self.n / SR:
                self.vocal_spans.append((span0, min(span1, self.n / SR)))
        _filter_inplace(buf, "highpass", 120)
        self.bus.add(self._delay(buf, 1.5, 0.25, 2), 0.42, 0.0, 0.3)

    def fx(self) -> None:
        """Noise risers into section changes and a downlifter after crashes."""
        r = self.rng
        buf = self.layer()
        for b0, b1 in self.risers:
            s0, s1 = int(self.g.bar_time(b0) * SR), min(self.n, int(self.g.bar_time(b1) * SR))
            if s1 - s0 < SR // 4:
                continue
            x = r.standard_normal(s1 - s0).astype(np.float32)
            ramp = np.linspace(0, 1, s1 - s0, dtype=np.float32) ** 2
            buf[s0:s1] += _sweep(x, 300.0, float(r.uniform(6000, 12000)), "bp", q=1.5) * ramp * 0.6
        for b in self.crashes:
            if b == 0 or r.random() < 0.5:
                continue
            s0 = int(self.g.bar_time(b) * SR)
            s1 = min(self.n, int(self.g.bar_time(min(b + 2, self.p.n_bars)) * SR))
            if s1 - s0 < SR // 4:
                continue
            x = r.standard_normal(s1 - s0).astype(np.float32)
            env = np.linspace(1, 0, s1 - s0, dtype=np.float32) ** 2
            buf[s0:s1] += _sweep(x, 8000.0, 300.0, "lp") * env * 0.4
        self.bus.add(buf, 0.25, 0.0, 0.4, haas_ms=12.0)

    def reverb(self) -> None:
        r = self.rng
        rt60 = float(r.uniform(1.2, 2.8))
        n_ir = int(rt60 * SR)
        t = _t(n_ir)
        pre = int(r.uniform(0.008, 0.03) * SR)
        send = self.bus.send
        for c in range(2):
            ir = r.standard_normal(n_ir) * np.exp(-6.91 * t / rt60)
            ir = _hp(_lp(ir, r.uniform(4000, 8000)), 250)
            ir[:pre] = 0
            ir /= np.sqrt(np.sum(ir**2))
            _convolve_into(self.bus.lr[:, c], send, ir.astype(np.float32), 0.6)
        self.bus.send = np.zeros(0, np.float32)  # free it: the rest of the pipeline only needs the stereo bus

    def master(self) -> None:
        """Loudness-normalize and peak-limit like a mastered release, so tracks sit at realistic levels."""
        lr = self.bus.lr
        rms_db = 10 * math.log10(_mean_square(lr) + 1e-20)
        target = float(self.rng.uniform(-15.0, -11.0))
        lr *= np.float32(10 ** ((target - rms_db) / 20))
        _limit(lr, 0.93)

    def render(self) -> Array:
        self.drums()
        self.bass()
        self.pads()
        self.chords()
        self.arp()
        self.lead()
        self.vocals()
        self.fx()
        self.reverb()
        del self.scratch
        self.master()
        return self.bus.lr


def _limit(lr: Array, ceiling: float, look_ms: float = 4.0) -> None:
    """In-place look-ahead peak limiter: a windowed minimum of the needed gain, smoothed by a shorter box.

    The box average of a minimum over a window twice as wide never exceeds the needed gain at any sample, so the
    output peak is guaranteed <= ceiling while gain changes stay ~look_ms smooth.
    """
    L = max(1, int(look_ms * SR / 1000))
    peak = np.maximum(np.abs(lr[:, 0]), np.abs(lr[:, 1]))
    g = np.minimum(1.0, ceiling / np.maximum(peak, 1e-9)).astype(np.float32)
    del peak
    g = minimum_filter1d(g, 2 * L + 1)
    g = uniform_filter1d(g, L | 1)
    lr *= g[:, None]
    np.clip(lr, -ceiling, ceiling, out=lr)  # float rounding guard only


# ------------------------------------------------------------------------------------------------ mixing


def _smoothstep(x: Array) -> Array:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _crossover_low(seg: Array, fc: float) -> Array:
    """Zero-phase low band (so low + (seg - low) == seg exactly: the swap is transparent at unity gains)."""
    return signal.sosfiltfilt(_sos("lowpass", fc, 4), seg, axis=0).astype(np.float32)


def _apply_in(audio: Array, t: Transition, offset: int) -> None:
    """Incoming side of a crossfade, in the incoming track's local samples (it starts at the window start)."""
    a, b = round(t.start * SR) - offset, round(t.end * SR) - offset
    x = ((np.arange(b - a) + 0.5) / (b - a)).astype(np.float32)
    seg = audio[a:b]
    if t.kind == "linear":
        seg *= x[:, None]
    elif t.kind in ("equal_power", "filter_out"):
        seg *= np.sin(0.5 * np.pi * x)[:, None]
    elif t.kind == "bass_swap":
        hi_g = np.sin(0.5 * np.pi * np.clip(x / 0.5, 0, 1))
        ramp = max(0.05, 60.0 / 130.0) * SR
        lo_g = _smoothstep((np.arange(a, b) - (t.swap * SR - offset - ramp / 2)) / ramp)
        low = _crossover_low(seg, 180.0)
        seg[:] = low * lo_g[:, None] + (seg - low) * hi_g[:, None]


def _apply_out(audio: Array, t: Transition, offset: int) -> None:
    """Outgoing side of a crossfade; the track is cut at the window end by its render length."""
    a, b = round(t.start * SR) - offset, round(t.end * SR) - offset
    b = min(b, len(audio))
    x = ((np.arange(b - a) + 0.5) / (b - a)).astype(np.float32)
    seg = audio[a:b]
    if t.kind == "linear":
        seg *= (1 - x)[:, None]
    elif t.kind == "equal_power":
        seg *= np.cos(0.5 * np.pi * x)[:, None]
    elif t.kind == "bass_swap":
        hi_g = np.cos(0.5 * np.pi * np.clip((x - 0.5) / 0.5, 0, 1))
        ramp = max(0.05, 60.0 / 130.0) * SR
        lo_g = 1.0 - _smoothstep((np.arange(a, b) - (t.swap * SR - offset - ramp / 2)) / ramp)
        low = _crossover_low(seg, 180.0)
        seg[:] = low * lo_g[:, None] + (seg - low) * hi_g[:, None]
    elif t.kind == "filter_out":
        f0, f1 = (20.0, 2500.0) if t.sweep == "hp" else (18000.0, 250.0)
        for c in range(2):
            seg[:, c] = _sweep(seg[:, c], f0, f1, t.sweep)
        seg *= np.cos(0.5 * np.pi * np.clip((x - 0.7) / 0.3, 0, 1))[:, None]


def _lufs(x: Array) -> float:
    return float(pyloudnorm.Meter(SR).integrated_loudness(x))


@dataclass
class _TrackResult:
    lufs_pre: float  # LUFS of the steady part at the track's gain, before the master gain
    vocal_sec: float
    steady: tuple[float, float]


def render_mix(plan: MixPlan, log: Callable[[str], None] | None = None) -> tuple[Array, MixTruth]:
    """Render every track, crossfade it into the mix buffer and derive the truth from the plan's own events."""
    mix = np.zeros((plan.total, 2), np.float32)
    results: list[_TrackResult] = []
    n_tr = len(plan.tracks)
    for i, tp in enumerate(plan.tracks):
        t0 = time.time()
        rend = _TrackRenderer(tp, tp.n_render)
        audio = rend.render()
        t_in = plan.transitions[i - 1] if i > 0 else None
        t_out = plan.transitions[i] if i < n_tr - 1 else None
        start = tp.offset / SR
        end = (tp.offset + tp.n_render) / SR
        # the same window as TrackTruth.steady_window(): between the transitions, else the audible extent
        steady = (t_in.end if t_in else start, t_out.start if t_out else end)
        a, b = round(steady[0] * SR) - tp.offset, round(steady[1] * SR) - tp.offset
        gain = 10 ** (tp.gain_db / 20)
        lufs_pre = _lufs(audio[a:b]) + 20 * math.log10(gain)
        vocal = sum(max(0.0, min(s1 + start, steady[1]) - max(s0 + start, steady[0])) for s0, s1 in rend.vocal_spans)
        results.append(_TrackResult(lufs_pre, vocal, steady))
        if t_in:
            _apply_in(audio, t_in, tp.offset)
        if t_out:
            _apply_out(audio, t_out, tp.offset)
        else:  # the last track: fade its tail so the mix ends in silence
            k = tp.n_render - round(tp.grid.end * SR)
            if k > 0:
                audio[-k:] *= np.cos(0.5 * np.pi * np.linspace(0, 1, k, dtype=np.float32))[:, None]
        audio *= np.float32(gain)
        mix[tp.offset : tp.offset + tp.n_render] += audio[: tp.n_render]
        del audio, rend
        if log:
            log(
                f"  track {i}: {tp.style.name:13s} {tp.bpm0:6.1f} BPM  {tp.n_bars:3d} bars  "
                f"{tp.n_render / SR:6.1f}s rendered in {time.time() - t0:5.1f}s"
            )
    peak = _peak(mix)
    master = 10 ** (-1.0 / 20) / peak if peak > 0 else 1.0
    mix *= np.float32(master)
    return mix, _truth(plan, results, 20 * math.log10(master))


def _truth(plan: MixPlan, results: list[_TrackResult], master_db: float) -> MixTruth:
    tracks: list[TrackTruth] = []
    n_tr = len(plan.tracks)
    boundaries = [0.5 * (t.start + t.end) for t in plan.transitions]
    mix_beats: list[float] = []
    mix_downs: list[float] = []
    for i, (tp, res) in enumerate(zip(plan.tracks, results, strict=True)):
        t_in = plan.transitions[i - 1] if i > 0 else None
        t_out = plan.transitions[i] if i < n_tr - 1 else None
        start = tp.offset / SR
        end = (tp.offset + tp.n_render) / SR
        g = tp.grid
        beats = start + g.beats[:-1]
        idx = np.arange(g.n_beats)
        keep = (beats >= start - 1e-9) & (beats <= end + 1e-9)
        beats_k, downs_k = beats[keep], beats[keep & (idx % g.meter == 0)]
        lo_b = boundaries[i - 1] if i > 0 else -math.inf
        hi_b = boundaries[i] if i < n_tr - 1 else math.inf
        # Outgoing beats before the boundary, incoming beats from it on. A beat-matched boundary can fall on a
        # shared beat that both tracks place within half a sample: keep one (the outgoing's), and likewise drop an
        # incoming beat crowding the last outgoing one (< 40 % of a beat), which no annotator would mark twice.
        min_gap = 0.4 * 60.0 / max(tp.bpm0, tp.bpm1)
        accepted = [float(x) for x in beats_k if lo_b <= x < hi_b]
        if mix_beats:
            accepted = [x for x in accepted if x >= mix_beats[-1] + min_gap]
        accepted_set = set(accepted)
        mix_beats += accepted
        mix_downs += [float(x) for x in downs_k if float(x) in accepted_set]
        steady_len = res.steady[1] - res.steady[0]
        if not tp.vocals or res.vocal_sec <= 0:
            has_vocals: bool | None = False
        elif res.vocal_sec >= max(VOCAL_MIN_SEC, VOCAL_MIN_FRACTION * steady_len):
            has_vocals = True
        else:
            has_vocals = None  # a few stray phrases: ambiguous, so the evaluator skips it
        key = format_key(tp.key_pc, tp.mode)
        lo_bpm, hi_bpm = min(tp.bpm0, tp.bpm1), max(tp.bpm0, tp.bpm1)
        tracks.append(
            TrackTruth(
                index=i,
                title=f"{plan.mix_id} track {i + 1:02d} ({tp.style.name})",
                style=tp.style.name,
                start_sec=start,
                end_sec=end,
                transition_in=(t_in.start, t_in.end) if t_in else None,
                transition_out=(t_out.start, t_out.end) if t_out else None,
                bpm=0.5 * (tp.bpm0 + tp.bpm1),
                bpm_range=(lo_bpm, hi_bpm),
                meter=g.meter,
                key=key,
                has_vocals=has_vocals,
                lufs=res.lufs_pre + master_db,
                beats_sec=[float(x) for x in beats_k],
                downbeats_sec=[float(x) for x in downs_k],
            )
        )
    return MixTruth(
        corpus=CORPUS,
        mix_id=plan.mix_id,
        split=plan.split,
        sample_rate=SR,
        duration_sec=plan.total / SR,
        boundaries_sec=boundaries,
        beats_sec=mix_beats,
        downbeats_sec=mix_downs,
        tracks=tracks,
    )


def generate(out_dir: str | Path, seed: int, short: bool = False, verbose: bool = False) -> MixTruth:
    """Plan, render and write one mix; returns its truth."""
    plan = plan_mix(seed, short)
    audio, truth = render_mix(plan, print if verbose else None)
    write_mix(out_dir, plan.mix_id, audio, SR, truth)
    return truth


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="output directory (FLAC + JSON per mix)")
    ap.add_argument("--mixes", type=int, default=4, help="number of mixes; mix k uses seed S+k")
    ap.add_argument("--seed", type=int, default=0, help="first seed (even seeds: tune split, odd: test)")
    ap.add_argument("--short", action="store_true", help="45-110 s tracks instead of 2-6 min")
    ap.add_argument("--verbose", action="store_true", help="print per-track render times")
    args = ap.parse_args(argv)
    for k in range(args.mixes):
        seed = args.seed + k
        t0 = time.time()
        truth = generate(args.out, seed, args.short, args.verbose)
        styles = ", ".join(t.style for t in truth.tracks)
        print(
            f"{truth.mix_id}  {truth.split:4s}  {truth.duration_sec:7.1f}s  {len(truth.tracks)} tracks  "
            f"[{styles}]  ({time.time() - t0:.0f}s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
