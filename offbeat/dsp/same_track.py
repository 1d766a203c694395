"""A learned "same track" embedding: a few seconds of a mix's mono analysis copy in, a unit vector out, close for
two stretches of one track and far for stretches of two tracks, whatever a DJ did to them (tempo, EQ, filter
sweeps, bass swaps, a second track underneath, level and limiting). Numpy in, numpy out.

The network is the project's own (`training/same_track/`: trained on free game music and songs from Debian
packages) and ships as ONNX beside this package (`offbeat/models/same_track.onnx`); it runs through onnxruntime,
so the engine never needs the framework it was trained with. Its input is the log-mel spectrogram this module
defines, which training reads from the same function, so what the network saw in training is what it sees here.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import librosa
import numpy as np

SAMPLE_RATE = 22050  # the engine's mono analysis copy
N_FFT = 2048
HOP = 1024  # about 46 ms per frame
N_MELS = 64
FMAX = 11025.0
WINDOW_FRAMES = 96  # frames per embedded window, about 4.5 s
FLOOR_DB = 80.0  # dB under a window's loudest bin that count as silence
DB_SCALE = 20.0  # network input: dB over this
MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "same_track.onnx"


def log_mel(signal: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """(N_MELS, frames) mel power in dB (floor -100 dB) of a mono signal at `sr` (resampled to SAMPLE_RATE when
    it differs); one frame per HOP samples, centred."""
    x = np.asarray(signal, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError("log_mel takes a mono signal")
    if sr != SAMPLE_RATE:
        x = librosa.resample(x, orig_sr=sr, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    power = librosa.feature.melspectrogram(
        y=x, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, fmax=FMAX, power=2.0
    )
    return (10.0 * np.log10(np.maximum(power, 1e-10))).astype(np.float32)


def normalized(windows_db: np.ndarray) -> np.ndarray:
    """Network input from (..., N_MELS, frames) dB windows: each window less its mean level, floored FLOOR_DB
    under its peak, over DB_SCALE. A level change moves no input; silence reads as the floor."""
    w = np.asarray(windows_db, dtype=np.float32)
    peak = w.max(axis=(-2, -1), keepdims=True)
    w = np.maximum(w, peak - FLOOR_DB)
    return ((w - w.mean(axis=(-2, -1), keepdims=True)) / DB_SCALE).astype(np.float32)


def windows(mel_db: np.ndarray, hop_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, N_MELS, WINDOW_FRAMES) windows of a (N_MELS, frames) spectrogram every `hop_frames` frames, and each
    window's first frame; a spectrogram shorter than one window is padded at its floor."""
    frames = mel_db.shape[1]
    if frames < WINDOW_FRAMES:
        pad = np.full((mel_db.shape[0], WINDOW_FRAMES - frames), mel_db.min() if frames else -100.0, np.float32)
        mel_db = np.concatenate([mel_db, pad], axis=1)
        frames = WINDOW_FRAMES
    starts = np.arange(0, frames - WINDOW_FRAMES + 1, max(1, hop_frames))
    view = np.lib.stride_tricks.sliding_window_view(mel_db, WINDOW_FRAMES, axis=1)  # (bands, n, W)
    return np.ascontiguousarray(view[:, starts].transpose(1, 0, 2)), starts


@cache
def _session(path: str):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


def embed_windows(windows_db: np.ndarray, model: Path = MODEL_PATH, batch: int = 256) -> np.ndarray:
    """(n, dim) unit embeddings of (n, N_MELS, WINDOW_FRAMES) dB windows."""
    session = _session(str(model))
    name = session.get_inputs()[0].name
    x = normalized(windows_db)
    out = [session.run(None, {name: x[i : i + batch, None]})[0] for i in range(0, len(x), batch)]
    emb = np.concatenate(out, axis=0) if out else np.zeros((0, 1), np.float32)
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)


def embeddings(
    signal: np.ndarray, sr: int = SAMPLE_RATE, step_sec: float = 2.0, model: Path = MODEL_PATH
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of a mono signal every `step_sec` seconds: ((n, dim) unit vectors, (n,) each window's centre in
    seconds). Each vector describes the WINDOW_FRAMES frames (about 4.5 s) around its centre."""
    mel = log_mel(signal, sr)
    hop_frames = max(1, round(step_sec * SAMPLE_RATE / HOP))
    wins, starts = windows(mel, hop_frames)
    centres = (starts + WINDOW_FRAMES / 2) * HOP / SAMPLE_RATE
    return embed_windows(wins, model), centres.astype(np.float64)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cosine of the means of two sets of unit embeddings (rows): 0 for one direction, up to 2."""
    ma, mb = np.mean(a, axis=0), np.mean(b, axis=0)
    return float(1.0 - ma @ mb / max(float(np.linalg.norm(ma) * np.linalg.norm(mb)), 1e-12))


def per_second(samples: np.ndarray, count: int, lead_frames: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    """(count, dim) unit embeddings, row t of the window (WINDOW_FRAMES frames, about 4.5 s) centred on the middle
    of second t, where second 0 starts `lead_frames` frames (of HOP samples at SAMPLE_RATE) into the mono
    `samples` (at `sr`). The samples must reach half a window and a frame past both ends; a caller reading a long
    mix in blocks whose starts are whole frames gets the rows of one pass over the whole signal."""
    x = np.asarray(samples, dtype=np.float32)
    if sr != SAMPLE_RATE:
        x = librosa.resample(x, orig_sr=sr, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    if count <= 0:
        return np.zeros((0, 0), np.float32)
    mel = log_mel(x)
    centres = np.round(lead_frames + (np.arange(count) + 0.5) * SAMPLE_RATE / HOP).astype(int)
    starts = centres - WINDOW_FRAMES // 2
    if starts[0] < 0 or starts[-1] + WINDOW_FRAMES > mel.shape[1]:
        raise ValueError("per_second needs half a window of audio past both ends")
    view = np.lib.stride_tricks.sliding_window_view(mel, WINDOW_FRAMES, axis=1)  # (bands, n, W)
    return embed_windows(np.ascontiguousarray(view[:, starts].transpose(1, 0, 2)))
