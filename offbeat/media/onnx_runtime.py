"""Spleeter's separation with the U-Nets under onnxruntime: numpy STFT, the exported masks, numpy inverse STFT.

Frame for frame what SpleeterModel's TensorFlow graph does (one frame of zeros in front, `tf.signal.stft` with
pad_end, segments of T frames padded with zeros, ratio masks, the band's mask extension above F,
`tf.signal.inverse_stft` with the Hann window), so its stems equal TensorFlow's within float rounding
(measured 129-136 dB SNR). Measured on 2 cores, 300 s of audio: 1.75x TensorFlow's speed and 1.15 GB peak
instead of 1.8-2.7 GB, because only one segment's spectrogram and activations exist at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft

log = logging.getLogger(__name__)


def make_session(path: Path, threads: int = 0) -> Any:
    """An inference session on CUDA where onnxruntime has it, else on the CPU with spinning off.

    Spinning threads (onnxruntime's default) busy-wait between ops: on a shared machine that steals the cores
    the beats stage runs on beside separation, for no gain here (measured equal or faster without).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # 0: onnxruntime's default, one per physical core
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    session = ort.InferenceSession(str(path), options, providers=providers)
    log.info("separation on onnxruntime, providers %s, model %s", session.get_providers(), path.name)
    return session


class OnnxSeparator:
    """One model over one band: an inference session plus Spleeter's STFT parameters and mask extension."""

    def __init__(self, path: Path, params: dict[str, Any], threads: int = 0) -> None:
        self.session = make_session(path, threads)
        self.workers = threads or -1  # scipy.fft workers; -1: every core
        self.length, self.hop = int(params["frame_length"]), int(params["frame_step"])
        self.segment, self.bins, self.channels = int(params["T"]), int(params["F"]), int(params["n_channels"])
        self.extension = params["mask_extension"]
        if self.extension not in ("average", "zeros"):
            raise ValueError(f"unsupported mask extension {self.extension!r}")
        n = np.arange(self.length)
        self.window = (0.5 - 0.5 * np.cos(2 * np.pi * n / self.length)).astype(np.float32)  # periodic Hann
        # inverse_stft's window divided by the sum of squared windows overlapping each sample (constant: 3/8 L/H).
        self.scale = np.float32(1.0 / (0.375 * self.length / self.hop))
        self.input = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.stems = [name.split(":")[0].removesuffix("_mask") for name in self.outputs]

    def frames(self, n: int) -> int:
        """STFT frames of a whole-signal call on `n` samples: tf.signal.stft(pad_end=True) over L zeros, then
        the signal. Frame f covers the signal's samples [f * hop - L, f * hop)."""
        return -(-(n + self.length) // self.hop)

    def separate(self, waveform: np.ndarray) -> dict[str, np.ndarray]:
        """Stems of a (frames, channels) float32 waveform, each the same shape, one model segment at a time."""
        n = len(waveform)
        start, out = self.span(zero_padded(lambda a, b: waveform[a:b], n, self.channels), 0, self.frames(n))
        return {stem: self.finish(o[:, -start : n - start]) for stem, o in out.items()}

    def span(self, read: Callable[[int, int], np.ndarray], f_lo: int, f_hi: int) -> tuple[int, dict[str, np.ndarray]]:
        """The overlap-added, unscaled output of frames [f_lo, f_hi) of a whole-signal call, as (first signal
        sample covered, {stem: (channels, samples)}); `read(a, b)` gives the signal's samples [a, b) as
        (b - a, channels), zeros outside it. `f_lo` is a multiple of the model segment T, so every segment is
        the one a whole-signal call runs. Two spans that meet at a frame add up, over the L - hop samples both
        cover, to exactly what one call computes there: the U-Net sees each segment alone, and the inverse STFT
        is a sum over frames."""
        L, H, T, F, C = self.length, self.hop, self.segment, self.bins, self.channels
        first = f_lo * H - L
        signal = np.ascontiguousarray(read(first, (f_hi - 1) * H).T, dtype=np.float32)  # (C, samples)
        windows = np.lib.stride_tricks.sliding_window_view(signal, L, axis=1)[:, ::H]  # (C, frames, L), a view
        out = {stem: np.zeros_like(signal) for stem in self.stems}
        for f0 in range(0, f_hi - f_lo, T):
            f1 = min(f_hi - f_lo, f0 + T)
            count = f1 - f0
            spectrum, patch = self._patch(windows[:, f0:f1])
            masks = self.session.run(self.outputs, {self.input: patch})
            for stem, mask in zip(self.stems, masks, strict=True):
                m = mask[0, :count].transpose(2, 0, 1)  # (C, count, F)
                masked = np.empty_like(spectrum)
                masked[:, :, :F] = m * spectrum[:, :, :F]
                if self.extension == "average":  # each frame's mean mask over the network's band, upwards
                    masked[:, :, F:] = m.mean(axis=2, keepdims=True) * spectrum[:, :, F:]
                else:
                    masked[:, :, F:] = 0
                y = scipy.fft.irfft(masked, n=L, axis=-1, workers=self.workers) * self.window  # (C, count, L)
                target = out[stem]
                for k in range(L // H):  # overlap-add, one hop-sized slice of every frame at a time
                    target[:, (f0 + k) * H : (f1 + k) * H] += y[:, :, k * H : (k + 1) * H].reshape(C, -1)
        return first, out

    def _patch(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The spectrum of up to T (channels, frames, L) windows and the network's input from it: magnitudes of
        the F lowest bins as (1, T, F, channels), a short last segment padded with zero frames as Spleeter does."""
        count = windows.shape[1]
        spectrum = scipy.fft.rfft(windows * self.window, axis=-1, workers=self.workers)
        patch = np.zeros((1, self.segment, self.bins, self.channels), np.float32)
        patch[0, :count] = np.abs(spectrum[:, :, : self.bins]).transpose(1, 2, 0)
        return spectrum, patch

    def patches(self, waveform: np.ndarray) -> Iterator[np.ndarray]:
        """The network inputs a whole-signal `separate` of a (frames, channels) waveform runs, one per segment
        (what quantization calibrates its ranges on)."""
        n, L, H, T = len(waveform), self.length, self.hop, self.segment
        signal = zero_padded(lambda a, b: waveform[a:b], n, self.channels)(-L, (self.frames(n) - 1) * H)
        windows = np.lib.stride_tricks.sliding_window_view(np.ascontiguousarray(signal.T), L, axis=1)[:, ::H]
        for f0 in range(0, windows.shape[1], T):
            yield self._patch(windows[:, f0 : f0 + T])[1]

    def finish(self, summed: np.ndarray) -> np.ndarray:
        """(samples, channels) stem from an overlap-added (channels, samples) sum: the inverse STFT's scale."""
        return (summed * self.scale).T.copy()


def zero_padded(read: Callable[[int, int], np.ndarray], n: int, channels: int) -> Callable[[int, int], np.ndarray]:
    """`read` of an n-sample (samples, channels) signal as a reader of any range: zeros outside the signal."""

    def window(a: int, b: int) -> np.ndarray:
        out = np.zeros((b - a, channels), np.float32)
        lo, hi = max(a, 0), min(b, n)
        if hi > lo:
            out[lo - a : hi - a] = read(lo, hi)
        return out

    return window
