"""The changes a DJ makes, applied on the fly to log-mel windows (dB, (N_MELS, frames)) while training: tempo by
varispeed (time axis resampled and the spectrum shifted with it) or key-locked (time axis only), EQ curves, filter
sweeps, bass swaps, a second track underneath at -20..-3 dB (summed in the power domain, its gain steady or
fading), level changes and limiting. Numpy in, numpy out; each function takes the generator it draws from."""

from __future__ import annotations

import librosa
import numpy as np

from offbeat.dsp import same_track as st

TEMPO = (0.92, 1.08)
VARISPEED_SHARE = 0.5  # the rest is key-locked
UNDER_DB = (-20.0, -3.0)
UNDER_SHARE = 0.5
EQ_SHARE = 0.7
EQ_DB = 4.0  # standard deviation of each cosine term of the EQ curve
SWEEP_SHARE = 0.3
BASS_SWAP_SHARE = 0.3
BASS_HZ = 150.0
LIMIT_SHARE = 0.3
LEVEL_DB = (-12.0, 6.0)

_CENTRES = librosa.mel_frequencies(n_mels=st.N_MELS + 2, fmax=st.FMAX)[1:-1]
_BASS_BANDS = int(np.searchsorted(_CENTRES, BASS_HZ))


def crop(mel: np.ndarray, rate: float, rng: np.random.Generator, frames: int = st.WINDOW_FRAMES) -> np.ndarray:
    """A window of `frames` frames as heard at `rate` times the original speed: `rate * frames` source frames
    from a random place, resampled on the time axis (a short track is padded at its floor)."""
    need = max(2, round(frames * rate))
    if mel.shape[1] < need:
        mel = np.pad(mel, ((0, 0), (0, need - mel.shape[1])), constant_values=float(mel.min()))
    start = int(rng.integers(0, mel.shape[1] - need + 1))
    src = mel[:, start : start + need].astype(np.float32)
    pos = np.linspace(0.0, need - 1.0, frames)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, need - 1)
    frac = (pos - lo).astype(np.float32)
    return src[:, lo] * (1 - frac) + src[:, hi] * frac


def pitch_shift(win: np.ndarray, rate: float) -> np.ndarray:
    """The spectrum of a window played `rate` times faster by varispeed: each band reads the band whose
    frequency is 1/rate of its own."""
    pos = np.interp(_CENTRES / rate, _CENTRES, np.arange(st.N_MELS, dtype=np.float64))
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, st.N_MELS - 1)
    frac = (pos - lo).astype(np.float32)[:, None]
    return win[lo] * (1 - frac) + win[hi] * frac


def power_sum(a_db: np.ndarray, b_db: np.ndarray) -> np.ndarray:
    """Two dB spectrograms summed as power."""
    m = np.maximum(a_db, b_db)
    return m + 10.0 * np.log10(10.0 ** ((a_db - m) / 10.0) + 10.0 ** ((b_db - m) / 10.0))


def eq_curve(rng: np.random.Generator) -> np.ndarray:
    """(N_MELS, 1) dB gains of a smooth EQ: three cosine terms over the bands."""
    x = np.linspace(0.0, np.pi, st.N_MELS)
    coef = rng.normal(0.0, EQ_DB, 3)
    return (coef[0] * np.cos(x) + coef[1] * np.cos(2 * x) + coef[2] * np.cos(3 * x))[:, None].astype(np.float32)


def sweep(frames: int, rng: np.random.Generator) -> np.ndarray:
    """(N_MELS, frames) dB gains of a low- or high-pass filter whose cutoff moves across the window."""
    a, b = rng.uniform(8, st.N_MELS - 4, 2)
    cutoff = np.linspace(a, b, frames)[None, :]
    bands = np.arange(st.N_MELS, dtype=np.float32)[:, None]
    slope = rng.uniform(1.5, 5.0)
    over = bands - cutoff if rng.random() < 0.5 else cutoff - bands  # low-pass, or high-pass
    return -np.minimum(np.maximum(over, 0.0) * slope, 45.0).astype(np.float32)


def bass_swap(frames: int, rng: np.random.Generator) -> np.ndarray:
    """(N_MELS, frames) dB gains that cut the bass on one side of a random frame, as in an EQ bass swap."""
    gains = np.zeros((st.N_MELS, frames), np.float32)
    at = int(rng.integers(0, frames))
    cut = -rng.uniform(15.0, 30.0)
    if rng.random() < 0.5:
        gains[:_BASS_BANDS, :at] = cut
    else:
        gains[:_BASS_BANDS, at:] = cut
    return gains


def limit(win: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A limiter/compressor on the frames' total level: above a threshold each frame is turned down by
    (level - threshold) * (1 - 1/ratio)."""
    level = 10.0 * np.log10(np.sum(10.0 ** (win / 10.0), axis=0) + 1e-10)
    threshold = np.quantile(level, rng.uniform(0.3, 0.9))
    ratio = rng.uniform(3.0, 20.0)
    return win - np.maximum(level - threshold, 0.0)[None, :] * (1.0 - 1.0 / ratio)


def view(mel: np.ndarray, others: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One augmented dB window of a track (`mel`), with `others` the tracks one may play underneath it."""
    rate = float(rng.uniform(*TEMPO))
    win = crop(mel, rate, rng)
    if rng.random() < VARISPEED_SHARE:
        win = pitch_shift(win, rate)
    frames = win.shape[1]
    if others and rng.random() < UNDER_SHARE:
        other = others[int(rng.integers(0, len(others)))]
        under = crop(other, float(rng.uniform(*TEMPO)), rng)
        g0, g1 = rng.uniform(*UNDER_DB, 2)
        gain = np.linspace(g0, g1 if rng.random() < 0.5 else g0, frames)[None, :].astype(np.float32)
        # the mix's two tracks at their own levels: `under` is measured against this window's level
        under = under - under.mean() + win.mean()
        win = power_sum(win, under + gain)
    if rng.random() < EQ_SHARE:
        win = win + eq_curve(rng)
    if rng.random() < SWEEP_SHARE:
        win = win + sweep(frames, rng)
    if rng.random() < BASS_SWAP_SHARE:
        win = win + bass_swap(frames, rng)
    win = win + rng.uniform(*LEVEL_DB)
    if rng.random() < LIMIT_SHARE:
        win = limit(win, rng)
    return np.maximum(win, -100.0).astype(np.float32)
