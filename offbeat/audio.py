"""Decoding and silence trimming: numpy in, numpy out, no store and no Prefect.

Decoding streams fixed-size blocks so memory does not grow with the length of the mix: libsndfile reads
WAV/FLAC/OGG/MP3 and the rest of its formats; other containers (M4A/AAC, ...) go through an `ffmpeg`
binary when one is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from offbeat.errors import AnalysisError, ErrorCode

STAGE = "decode"
# Leading bytes of containers libsndfile reads: a file that starts like one but fails to open is damaged.
_AUDIO_MAGIC = (b"RIFF", b"RF64", b"FORM", b"fLaC", b"OggS", b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2")
_TRUNCATED_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_FFMPEG_AUDIO = re.compile(r"Audio: (\w+)[^\n]*?(\d+) Hz, ([\w.()]+)")


@dataclass(frozen=True)
class SourceInfo:
    """What the source file claims to be, as reported in the result and stored with the decode entry."""

    decoder: str  # "libsndfile" or "ffmpeg"
    format: str
    subtype: str
    sample_rate: int
    channels: int
    frames: int | None  # None when the container does not say (ffmpeg streams)

    @property
    def duration_sec(self) -> float | None:
        return None if self.frames is None else self.frames / self.sample_rate

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fail(code: ErrorCode, message: str) -> AnalysisError:
    return AnalysisError(code, message, stage=STAGE)


def check_file(path: Path) -> None:
    """Refuse what is not a readable, non-empty regular file, with the matching error code."""
    if not path.exists():
        raise _fail(ErrorCode.FILE_NOT_FOUND, f"file not found: {path.name}")
    if path.is_dir():
        raise _fail(ErrorCode.INVALID_PATH, f"{path.name} is a directory, not an audio file")
    if not path.is_file():
        raise _fail(ErrorCode.INVALID_PATH, f"{path.name} is not a regular file")
    if path.stat().st_size == 0:
        raise _fail(ErrorCode.UNSUPPORTED_AUDIO, f"{path.name} is empty (0 bytes)")


def find_ffmpeg(ffmpeg: str) -> str | None:
    """The ffmpeg executable named by settings (a name on PATH or a path), if present."""
    return shutil.which(ffmpeg)


def probe(path: Path, ffmpeg: str = "ffmpeg") -> SourceInfo:
    """Identify the file's audio, choosing libsndfile when it can read it and ffmpeg otherwise."""
    check_file(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        libsndfile_error = str(exc)
    else:
        truncated = _TRUNCATED_DATA.search(info.extra_info or "")
        if truncated and int(truncated.group(1)) > int(truncated.group(2)) and int(truncated.group(1)) < 0xFFFFFF00:
            raise _fail(
                ErrorCode.CORRUPT_AUDIO,
                f"{path.name} is truncated: its header declares {int(truncated.group(1))} bytes of audio, "
                f"the file holds {int(truncated.group(2))}",
            )
        if info.frames <= 0 or info.samplerate <= 0 or info.channels <= 0:
            raise _fail(ErrorCode.CORRUPT_AUDIO, f"{path.name} holds no audio frames")
        return SourceInfo("libsndfile", info.format, info.subtype, info.samplerate, info.channels, info.frames)

    binary = find_ffmpeg(ffmpeg)
    with path.open("rb") as fh:
        head = fh.read(16)
    looks_like_audio = head.startswith(_AUDIO_MAGIC)
    if binary is None:
        if looks_like_audio:
            raise _fail(ErrorCode.CORRUPT_AUDIO, f"{path.name} cannot be decoded (damaged?): {libsndfile_error}")
        raise _fail(
            ErrorCode.UNSUPPORTED_AUDIO,
            f"{path.name} is not in a format libsndfile reads (WAV, FLAC, OGG, MP3, AIFF, ...); "
            "M4A/AAC and other containers need ffmpeg, which is not installed (set OFFBEAT_FFMPEG_PATH)",
        )
    return _probe_ffmpeg(path, binary, looks_like_audio)


def _probe_ffmpeg(path: Path, binary: str, looks_like_audio: bool) -> SourceInfo:
    proc = subprocess.run(
        [binary, "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True, text=True, timeout=60
    )
    match = _FFMPEG_AUDIO.search(proc.stderr)
    if match is None:
        code = ErrorCode.CORRUPT_AUDIO if looks_like_audio else ErrorCode.UNSUPPORTED_AUDIO
        last = proc.stderr.strip().splitlines()[-1:] or ["no audio stream found"]
        raise _fail(code, f"{path.name} has no audio stream that ffmpeg can decode ({last[0]})")
    layout = match.group(3)
    channels = {"mono": 1, "stereo": 2}.get(layout, 2)
    return SourceInfo("ffmpeg", match.group(1), "", int(match.group(2)), channels, None)


def to_stereo(block: np.ndarray) -> np.ndarray:
    """(frames, channels) of any width to (frames, 2): mono is duplicated, wider layouts are folded
    evenly (even-indexed channels left, odd right), since libsndfile does not report speaker layouts."""
    if block.ndim == 1:
        block = block[:, None]
    channels = block.shape[1]
    if channels == 2:
        return block
    if channels == 1:
        return np.repeat(block, 2, axis=1)
    return np.stack([block[:, 0::2].mean(axis=1), block[:, 1::2].mean(axis=1)], axis=1)


def to_mono(stereo: np.ndarray) -> np.ndarray:
    """(frames, 2) to (frames,): the mean of the channels (as a sum of two columns: `mean(axis=1)` over
    the short rows of a (frames, 2) array is several times slower)."""
    return 0.5 * (stereo[:, 0] + stereo[:, 1])


def _raw_blocks(path: Path, info: SourceInfo, block_frames: int, ffmpeg: str) -> Iterator[np.ndarray]:
    """Float32 (frames, channels) blocks at the source rate."""
    if info.decoder == "libsndfile":
        try:
            with sf.SoundFile(str(path)) as fh:
                while True:
                    block = fh.read(block_frames, dtype="float32", always_2d=True)
                    if len(block) == 0:
                        return
                    yield block
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise _fail(ErrorCode.CORRUPT_AUDIO, f"{path.name} is damaged: {exc}") from exc
        return
    binary = find_ffmpeg(ffmpeg) or ffmpeg
    # ffmpeg knows speaker layouts, so it does the downmix to stereo itself.
    cmd = [binary, "-nostdin", "-v", "error", "-i", str(path), "-vn", "-f", "f32le", "-ac", "2", "pipe:1"]
    frame_bytes = 8
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        while chunk := proc.stdout.read(block_frames * frame_bytes):
            usable = len(chunk) - len(chunk) % frame_bytes
            yield np.frombuffer(chunk[:usable], dtype="<f4").reshape(-1, 2)
        stderr = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0:
            raise _fail(ErrorCode.CORRUPT_AUDIO, f"ffmpeg could not decode {path.name}: {stderr[-300:]}")


def decode_blocks(
    path: Path, info: SourceInfo, *, sample_rate: int, analysis_rate: int, block_sec: float, ffmpeg: str
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream (stereo at `sample_rate`, mono at `analysis_rate`) float32 blocks of the whole file."""
    block_frames = max(1, int(block_sec * info.sample_rate))
    stereo_rs = (
        None
        if info.sample_rate == sample_rate
        else soxr.ResampleStream(info.sample_rate, sample_rate, 2, dtype="float32", quality="HQ")
    )
    mono_rs = soxr.ResampleStream(sample_rate, analysis_rate, 1, dtype="float32", quality="HQ")
    for raw in _raw_blocks(path, info, block_frames, ffmpeg):
        stereo = to_stereo(raw)
        if stereo_rs is not None:
            stereo = stereo_rs.resample_chunk(stereo)
        yield stereo, mono_rs.resample_chunk(to_mono(stereo))
    tail = np.zeros((0, 2), dtype=np.float32)
    if stereo_rs is not None:
        tail = stereo_rs.resample_chunk(tail, last=True)
    yield tail, mono_rs.resample_chunk(to_mono(tail), last=True)


# -- trimming ---------------------------------------------------------------------------------------

TRIM_FRAME = 512  # samples at the analysis rate per level frame (23 ms at 22.05 kHz)


def frame_levels_db(mono: np.ndarray, frame: int = TRIM_FRAME) -> np.ndarray:
    """RMS level in dBFS of consecutive non-overlapping frames (a partial last frame counts)."""
    if len(mono) == 0:
        return np.zeros(0, dtype=np.float32)
    padded = np.pad(mono, (0, -len(mono) % frame))
    rms = np.sqrt(np.mean(np.square(padded.reshape(-1, frame), dtype=np.float64), axis=1))
    return (20 * np.log10(np.maximum(rms, 1e-10))).astype(np.float32)


def silence_bounds(
    levels_db: np.ndarray, threshold_db: float, frame_sec: float, duration_sec: float
) -> tuple[float, float] | None:
    """(leading silence, trailing silence) in seconds, or None when every frame is silent."""
    loud = np.flatnonzero(levels_db > threshold_db)
    if len(loud) == 0:
        return None
    start = float(loud[0]) * frame_sec
    end = min(duration_sec, float(loud[-1] + 1) * frame_sec)
    return round(start, 3), round(max(0.0, duration_sec - end), 3)
