"""Decoding and per-piece analysis: the audible span (silence trimmed), the tempo where the pulse is clear, the
loudness, and the cache of these figures beside the downloaded packages (keyed by file content and
``ANALYSIS_VERSION``)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf

if TYPE_CHECKING:
    from bench.corpus.game.sources import Piece

SAMPLE_RATE = 44100  # every piece is decoded to it, and the mixes are written at it
ANALYSIS_VERSION = 1  # bump when the trim or tempo analysis changes, so cached figures are recomputed
ANALYSIS_FILE = "game_music_analysis.json"  # in the cache folder (the name from before the package: reused)
TRIM_DB = -50.0  # audible: a 46 ms frame within 50 dB of the piece's loudest frame
TEMPO_RANGE = (70.0, 180.0)
TEMPO_MIN_REGULARITY = 0.85
TEMPO_MIN_CONTRAST = 1.4


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def file_seconds(path: Path) -> float:
    """The file's length in seconds, from its header (libsndfile), else from ffmpeg's report."""
    try:
        return float(sf.info(str(path)).duration)
    except (RuntimeError, sf.LibsndfileError):
        return _ffmpeg_duration(path)


def _ffmpeg_duration(path: Path) -> float:
    proc = subprocess.run([_ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True, text=True, check=False)
    m = re.search(r"Duration: (\d+):(\d+):(\d+\.\d+)", proc.stderr)
    return 0.0 if m is None else int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])


def decode(path: Path) -> np.ndarray:
    """The file as (n, 2) float32 at 44.1 kHz: libsndfile (+ soxr) where it reads the format, else ffmpeg."""
    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError):
        raw = _run_bytes([_ffmpeg(), "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "2", "-ar", "44100", "-"])
        return np.frombuffer(raw, dtype=np.float32).reshape(-1, 2).copy()
    if x.shape[1] == 1:
        x = np.repeat(x, 2, axis=1)
    x = x[:, :2]
    if sr != SAMPLE_RATE:
        import soxr

        x = soxr.resample(x, sr, SAMPLE_RATE).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def _run_bytes(cmd: list[str]) -> bytes:
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-500:]}")
    return proc.stdout


def audible_span(x: np.ndarray, sample_rate: int = SAMPLE_RATE, floor_db: float = TRIM_DB) -> tuple[int, int]:
    """First and one-past-last sample of the frames within ``floor_db`` of the loudest frame.

    Game music often starts or ends with seconds of silence; a fade window laid over silence would put the
    boundary where nothing is heard, so the truth's "audible extent" starts after the trim.
    """
    hop = 2048
    mono = x.mean(axis=1) if x.ndim == 2 else x
    n = len(mono) // hop
    if n == 0:
        return 0, len(mono)
    rms = np.sqrt(np.mean(mono[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-20)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > floor_db)
    if loud.size == 0:
        return 0, len(mono)
    return int(loud[0] * hop), int(min((loud[-1] + 1) * hop, len(mono)))


def estimate_tempo(mono: np.ndarray, sample_rate: int) -> dict[str, Any]:
    """librosa's tempo and beats (seconds), with the two figures that decide whether the pulse is clear.

    ``regularity``: share of beat intervals within 5 % of their median (a tracker forced through music with no
    steady pulse wanders); ``contrast``: mean onset strength on the beats over the mean halfway between them
    (a real pulse has its onsets on the beats). ``tempo_known`` needs both, and a tempo in ``TEMPO_RANGE``.
    """
    import librosa
    import soxr

    sr = 22050
    y = soxr.resample(mono.astype(np.float32), sample_rate, sr) if sample_rate != sr else mono.astype(np.float32)
    hop = 512
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop)
    tempo, frames = librosa.beat.beat_track(onset_envelope=env, sr=sr, hop_length=hop, units="frames")
    frames = np.asarray(frames, dtype=np.int64)
    if len(frames) < 8:
        return {"bpm": None, "tempo_known": False, "beats": [], "regularity": 0.0, "contrast": 0.0}
    ibi = np.diff(frames).astype(np.float64)
    med = float(np.median(ibi))
    regularity = float(np.mean(np.abs(ibi - med) <= 0.05 * med))
    mids = (frames[:-1] + frames[1:]) // 2
    contrast = float(env[frames].mean() / max(float(env[mids].mean()), 1e-9))
    bpm = 60.0 * sr / hop / med
    known = (
        regularity >= TEMPO_MIN_REGULARITY
        and contrast >= TEMPO_MIN_CONTRAST
        and TEMPO_RANGE[0] <= bpm <= TEMPO_RANGE[1]
    )
    return {
        "bpm": round(bpm, 3),
        "librosa_tempo": round(float(np.atleast_1d(tempo)[0]), 3),
        "tempo_known": bool(known),
        "beats": [round(float(f) * hop / sr, 4) for f in frames],
        "regularity": round(regularity, 3),
        "contrast": round(contrast, 3),
    }


def loudness(x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """BS.1770 integrated loudness (LUFS); -inf for silence or audio under 0.4 s."""
    import pyloudnorm

    if len(x) < int(0.4 * sample_rate):
        return -math.inf
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(x.astype(np.float64)))


def _fingerprint(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as fh:
        h.update(fh.read(1 << 20))
    return f"{path.stat().st_size}:{h.hexdigest()}"


def analyze_piece(audio: np.ndarray) -> dict[str, Any]:
    """Trim (seconds of the file), tempo and beats (seconds from the trimmed start), loudness of the trimmed piece."""
    a, b = audible_span(audio)
    body = audio[a:b]
    tempo = estimate_tempo(body.mean(axis=1), SAMPLE_RATE)
    lufs = loudness(body)
    trim = {"trim_start": a / SAMPLE_RATE, "trim_end": b / SAMPLE_RATE}
    return trim | {"lufs": lufs if math.isfinite(lufs) else None} | tempo


def analyze_all(pieces: list[Piece], cache: Path, wanted: Callable[[Piece], bool] = lambda p: True) -> None:
    """Analyze the wanted pieces once (figures cached in the cache dir, keyed by file content and version)."""
    path = cache / ANALYSIS_FILE
    stored: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    if stored.get("_version") != ANALYSIS_VERSION:
        stored = {"_version": ANALYSIS_VERSION}
    for piece in pieces:
        if not wanted(piece):
            continue
        fp = _fingerprint(piece.path)
        entry = stored.get(piece.key)
        if not entry or entry.get("fingerprint") != fp:
            print(f"analyzing {piece.key} ...", file=sys.stderr)
            entry = analyze_piece(decode(piece.path)) | {"fingerprint": fp}
            stored[piece.key] = entry
            path.write_text(json.dumps(stored) + "\n")
        piece.analysis = entry
    path.write_text(json.dumps(stored) + "\n")
