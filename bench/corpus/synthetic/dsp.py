"""Signal helpers of the generator: the sample rate, Butterworth and swept filters, block convolution, one-shot
normalization, buffer mixing, level measures of long buffers and the master limiter."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import signal
from scipy.ndimage import minimum_filter1d, uniform_filter1d

SR = 44100

Array = np.ndarray
TWO_PI = 2.0 * math.pi


def time_axis(n: int) -> Array:
    return np.arange(n) / SR


@lru_cache(maxsize=1024)
def butter_sos(kind: str, freq: float | tuple[float, float], order: int = 2) -> Array:
    return signal.butter(order, freq, btype=kind, fs=SR, output="sos")


def _clampf(f: float) -> float:
    return float(min(max(f, 15.0), 0.45 * SR))


def lowpass(x: Array, fc: float, order: int = 2) -> Array:
    return signal.sosfilt(butter_sos("lowpass", round(_clampf(fc)), order), x)


def highpass(x: Array, fc: float, order: int = 2) -> Array:
    return signal.sosfilt(butter_sos("highpass", round(_clampf(fc)), order), x)


def bandpass(x: Array, lo: float, hi: float, order: int = 2) -> Array:
    return signal.sosfilt(butter_sos("bandpass", (round(_clampf(lo)), round(_clampf(hi))), order), x)


def filter_inplace(x: Array, kind: str, fc: float, chunk: int = 1 << 18) -> None:
    """Butterworth-filter a long float32 buffer in place, chunk by chunk (no full-length float64 copies)."""
    sos = butter_sos(kind, round(_clampf(fc)), 2)
    zi = np.zeros((sos.shape[0], 2))
    for i in range(0, len(x), chunk):
        y, zi = signal.sosfilt(sos, x[i : i + chunk], zi=zi)
        x[i : i + chunk] = y


def convolve_into(dst: Array, x: Array, ir: Array, gain: float, block: int = 1 << 19) -> None:
    """dst += gain * (x conv ir), overlap-add over blocks of x so memory stays ~block + len(ir), not ~len(x)."""
    n = len(dst)
    for i in range(0, min(len(x), n), block):
        seg = x[i : i + block]
        if not seg.any():
            continue
        y = signal.fftconvolve(seg, ir)
        e = min(n, i + len(y))
        dst[i:e] += gain * y[: e - i]


def peak_normalize(x: Array) -> Array:
    p = float(np.max(np.abs(x))) if x.size else 0.0
    return (x / p if p > 0 else x).astype(np.float32)


def finish_hit(x: Array, fade_ms: float = 5.0) -> Array:
    """Normalize a one-shot to peak 1 and fade its end, so hits never click when they are cut."""
    k = min(len(x), int(fade_ms * SR / 1000))
    if k > 1:
        x = x.copy()
        x[-k:] *= np.linspace(1.0, 0.0, k)
    return peak_normalize(x)


def add_at(buf: Array, start: int, x: Array, gain: float = 1.0) -> None:
    """Mix x into buf at sample `start`, clipping at both ends (events may hang over the render edge)."""
    if start >= len(buf) or start + len(x) <= 0:
        return
    a = max(0, -start)
    b = min(len(x), len(buf) - start)
    buf[start + a : start + b] += gain * x[a:b]


def _biquad(kind: str, fc: float, q: float) -> tuple[Array, Array]:
    """RBJ-cookbook biquad; used for time-varying sweeps where designing Butterworths per block is too slow."""
    w0 = TWO_PI * _clampf(fc) / SR
    cw, alpha = math.cos(w0), math.sin(w0) / (2.0 * q)
    if kind == "lp":
        b = ((1 - cw) / 2, 1 - cw, (1 - cw) / 2)
    elif kind == "hp":
        b = ((1 + cw) / 2, -(1 + cw), (1 + cw) / 2)
    else:  # band-pass, 0 dB peak
        b = (alpha, 0.0, -alpha)
    a0 = 1.0 + alpha
    return np.array(b) / a0, np.array((1.0, -2 * cw / a0, (1 - alpha) / a0))


def sweep_filter(
    x: Array, f0: float, f1: float, kind: str, q: float = 0.707, stages: int = 2, block: int = 1024
) -> Array:
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


def mean_square(x: Array) -> float:
    """Mean square of a large float32 array without a full float64 copy."""
    flat = x.reshape(-1)
    total = 0.0
    step = 1 << 20
    for i in range(0, len(flat), step):
        c = flat[i : i + step].astype(np.float64)
        total += float(np.dot(c, c))
    return total / max(1, len(flat))


def peak_abs(x: Array) -> float:
    flat = x.reshape(-1)
    step = 1 << 21
    return max((float(np.max(np.abs(flat[i : i + step]))) for i in range(0, len(flat), step)), default=0.0)


def limit_peaks(lr: Array, ceiling: float, look_ms: float = 4.0) -> None:
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
