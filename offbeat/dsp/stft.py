"""madmom's short-time Fourier transform with one FFT call per block of frames. Numpy in, numpy out.

madmom's `stft` cuts, windows and transforms one frame at a time in Python (with pyfftw, which is not installed
here, or scipy's fftpack otherwise): for the beat network's three STFTs that is 300 calls per second of audio,
and it was half the time of the activations stage's features. Here the frames are a strided view of the zero-padded
signal, windowed and transformed `BLOCK_FRAMES` at a time, with the same framing rules (frame i centred on sample
i * hop - origin, zeros outside the signal). The result equals madmom's to float32 rounding (a test compares
them); everything after the STFT (filterbanks, logarithm, differences, networks) stays madmom's. It replaces
madmom's function when madmom is imported (`offbeat.dsp.beat_activation.import_madmom`), for every madmom STFT
this project runs (beat, downbeat and key networks); cases it does not cover go to madmom's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

BLOCK_FRAMES = 2048  # frames windowed and transformed at once: 32 MB for 4096-sample frames
NOT_TUNING = ("BLOCK_FRAMES",)  # a memory setting: the frames come out the same whatever the block

Stft = Callable[..., np.ndarray]


def blocked(original: Stft) -> Stft:
    """A drop-in for madmom's `madmom.audio.stft.stft` that falls back to `original` where it must."""

    def stft(
        frames: Any,
        window: np.ndarray | None,
        fft_size: int | None = None,
        circular_shift: bool = False,
        include_nyquist: bool = False,
        fftw: Any = None,
    ) -> np.ndarray:
        signal = getattr(frames, "signal", None)
        hop = getattr(frames, "hop_size", None)
        covered = (
            not circular_shift
            and fftw is None
            and isinstance(signal, np.ndarray)
            and signal.ndim == 1
            and hop is not None
            and float(hop).is_integer()
        )
        if not covered:
            return original(frames, window, fft_size, circular_shift, include_nyquist, fftw)
        return framed(
            signal, frames.frame_size, int(hop), frames.origin, frames.num_frames, window, fft_size, include_nyquist
        )

    return stft


def framed(
    signal: np.ndarray,
    frame_size: int,
    hop: int,
    origin: float,
    num_frames: int,
    window: np.ndarray | None,
    fft_size: int | None = None,
    include_nyquist: bool = False,
) -> np.ndarray:
    """(num_frames, bins) complex64 STFT of `signal`, framed as madmom's FramedSignal frames it."""
    frame_size = int(frame_size)
    fft_size = fft_size or frame_size
    bins = (fft_size >> 1) + (1 if include_nyquist else 0)
    out = np.empty((num_frames, bins), np.complex64)
    if num_frames == 0:
        return out
    first = -(frame_size // 2) - int(origin)  # where frame 0 starts, in samples of the signal
    last = (num_frames - 1) * hop + first + frame_size  # where the last frame ends
    left, right = max(0, -first), max(0, last - len(signal))
    padded = np.pad(signal, (left, right)) if left or right else signal
    view = sliding_window_view(padded, frame_size)[first + left :: hop][:num_frames]
    for start in range(0, num_frames, BLOCK_FRAMES):
        block = view[start : start + BLOCK_FRAMES]
        if window is not None:
            block = block * window
        out[start : start + len(block)] = scipy.fft.rfft(block, fft_size, axis=1)[:, :bins]
    return out
