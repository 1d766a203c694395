"""Beat activations without a trained network, for the commercial-use setting. Numpy in, numpy out.

madmom's downbeat networks are licensed CC BY-NC-SA 4.0 (no commercial use). With `OFFBEAT_COMMERCIAL_USE` the
`activations` stage takes this module's activations instead: a superflux-style onset strength (log-mel spectral
flux with a maximum filter across bands, which keeps vibrato and slides from reading as onsets) on the network's
own frame grid (100 frames/s at 44.1 kHz), made to look like a beat probability (0 between onsets, up to 1 on the
strongest) by removing its local mean and dividing by its local peak level. madmom's DBN tracker (its code is
BSD, no model file) then follows it as it follows the network's output. The downbeat column is zero: the bar
phase comes from chord changes alone (`offbeat.dsp.bars`), and a constant column gives every beat the same
downbeat weight.

Blocks are cut on the network's grid (`beat_activation.span_plan`) with the same context on each side, so a long
mix costs memory that does not grow with it and the context absorbs the edge of each block's normalisation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import librosa
import numpy as np
from scipy.ndimage import maximum_filter1d, uniform_filter1d

from offbeat.dsp.beat_activation import CONTEXT_FRAMES, FPS, HOP, SAMPLE_RATE, frame_count, span_plan

N_FFT = 2048
N_MELS = 80
FMAX_HZ = 16000.0
DB_FLOOR = 1e-4  # mel power floor (-40 dB re 1): near-silence gives no flux
LAG = 2  # frames back that the flux compares with (superflux: less smearing by slow attacks)
MAX_BANDS = 3  # maximum filter across this many mel bands before the difference (superflux)
MEAN_SEC = 0.5  # the local mean removed from the onset strength (a sustained level is no onset)
PEAK_SEC = 3.0  # the local peak level the onset strength is divided by (loud and quiet passages alike)
EXPONENT = 2.0  # the normalised strength is raised to this power: weak onsets (hats, noise) fall towards 0
FLOOR, TOP = 0.01, 0.9  # activation between onsets and on the strongest: the DBN tracker takes log(a), log(1 - a)


def onset_strength(mono: np.ndarray) -> np.ndarray:
    """Superflux onset strength of 44.1 kHz mono audio, frame i centred at i * HOP samples."""
    frames = frame_count(len(mono))
    if frames == 0:
        return np.zeros(0, np.float32)
    mel = librosa.feature.melspectrogram(
        y=np.ascontiguousarray(mono, dtype=np.float32),
        sr=SAMPLE_RATE,
        hop_length=HOP,
        n_fft=N_FFT,
        n_mels=N_MELS,
        fmax=FMAX_HZ,
        center=True,
    )
    # A fixed dB reference and no top_db (librosa's default refers to each call's maximum): blocks then give the
    # frames a whole-signal pass gives.
    mel_db = librosa.power_to_db(mel, ref=1.0, amin=DB_FLOOR, top_db=None)
    env = librosa.onset.onset_strength(S=mel_db, sr=SAMPLE_RATE, hop_length=HOP, lag=LAG, max_size=MAX_BANDS)
    env = np.pad(env, (0, max(0, frames - len(env))))[:frames]
    return env.astype(np.float32)


def activation(strength: np.ndarray) -> np.ndarray:
    """(frames, 2) beat-like activation (column 0, FLOOR..TOP) and a zero downbeat column from an onset strength."""
    if len(strength) == 0:
        return np.zeros((0, 2), np.float32)
    rise = np.maximum(0.0, strength - uniform_filter1d(strength, max(1, int(MEAN_SEC * FPS)), mode="nearest"))
    peak = maximum_filter1d(rise, max(1, int(PEAK_SEC * FPS)), mode="nearest")
    beat = np.where(peak > 1e-9, rise / np.maximum(peak, 1e-9), 0.0) ** EXPONENT
    return np.stack([FLOOR + (TOP - FLOOR) * np.clip(beat, 0.0, 1.0), np.zeros_like(beat)], axis=1).astype(np.float32)


def blocked_activations(
    read: Callable[[int, int], np.ndarray], samples: int, progress: Callable[[float], None] | None = None
) -> Iterator[np.ndarray]:
    """Activations of a long signal, span by span of the network's plan; `read(a, b)` returns mono samples a..b
    (zeros outside the signal). Progress is reported after each span."""
    total = frame_count(samples)
    for first, last in span_plan(samples):
        mono = read((first - CONTEXT_FRAMES) * HOP, (last + CONTEXT_FRAMES) * HOP)
        act = activation(onset_strength(mono))
        yield act[CONTEXT_FRAMES : CONTEXT_FRAMES + last - first]
        if progress is not None and total:
            progress(min(1.0, last / total))
