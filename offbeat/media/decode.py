"""Decoding audio files into float32 blocks: the one module that opens the user's audio files.

Pure sample math (channel folding) lives in `offbeat.dsp.channels`; this module is the part that touches files
and subprocesses, hence outside `offbeat.dsp`. Decoding streams fixed-size blocks so memory does not grow with
the length of the mix: libsndfile reads WAV/FLAC/OGG/MP3 and the rest of its formats; other containers
(M4A/AAC, ...) go through an `ffmpeg` binary when one is installed.
"""

from __future__ import annotations

import os
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

from offbeat.dsp.channels import to_mono, to_stereo
from offbeat.errors import AnalysisError, ErrorCode, bounded

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


def display_name(path: Path) -> str:
    """The file's name for messages: an opened job file is read through `/proc/<pid>/fd/<n>` (see
    `offbeat.paths`), whose own name is a number; the name it was opened under is what a person knows."""
    if path.parent.name == "fd" and path.parts[:2] == ("/", "proc"):
        try:
            return bounded(Path(os.readlink(path)).name)
        except OSError:
            pass
    return bounded(path.name)


def check_file(path: Path) -> None:
    """Refuse what is not a readable, non-empty regular file, with the matching error code."""
    if not path.exists():
        raise _fail(ErrorCode.FILE_NOT_FOUND, f"file not found: {display_name(path)}")
    if path.is_dir():
        raise _fail(ErrorCode.INVALID_PATH, f"{display_name(path)} is a directory, not an audio file")
    if not path.is_file():
        raise _fail(ErrorCode.INVALID_PATH, f"{display_name(path)} is not a regular file")
    if path.stat().st_size == 0:
        raise _fail(ErrorCode.UNSUPPORTED_AUDIO, f"{display_name(path)} is empty (0 bytes)")


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
                f"{display_name(path)} is truncated: its header declares {int(truncated.group(1))} bytes of audio, "
                f"the file holds {int(truncated.group(2))}",
            )
        if info.frames <= 0 or info.samplerate <= 0 or info.channels <= 0:
            raise _fail(ErrorCode.CORRUPT_AUDIO, f"{display_name(path)} holds no audio frames")
        return SourceInfo("libsndfile", info.format, info.subtype, info.samplerate, info.channels, info.frames)

    binary = find_ffmpeg(ffmpeg)
    with path.open("rb") as fh:
        head = fh.read(16)
    looks_like_audio = head.startswith(_AUDIO_MAGIC)
    if binary is None:
        if looks_like_audio:
            raise _fail(
                ErrorCode.CORRUPT_AUDIO, f"{display_name(path)} cannot be decoded (damaged?): {libsndfile_error}"
            )
        raise _fail(
            ErrorCode.UNSUPPORTED_AUDIO,
            f"{display_name(path)} is not in a format libsndfile reads (WAV, FLAC, OGG, MP3, AIFF, ...); "
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
        raise _fail(code, f"{display_name(path)} has no audio stream that ffmpeg can decode ({last[0]})")
    layout = match.group(3)
    channels = {"mono": 1, "stereo": 2}.get(layout, 2)
    return SourceInfo("ffmpeg", match.group(1), "", int(match.group(2)), channels, None)


_FFMPEG_TAG = re.compile(r"^\s{4}(title|artist)\s*:\s*(.*?)\s*$", re.MULTILINE | re.IGNORECASE)


def read_tags(path: Path, info: SourceInfo, ffmpeg: str = "ffmpeg") -> dict[str, str]:
    """The file's title and artist tags (lower-case names), those it has: through libsndfile for what it reads,
    else from ffmpeg's listing of the container's metadata. Unreadable tags are no tags."""
    tags: dict[str, str] = {}
    if info.decoder == "libsndfile":
        try:
            with sf.SoundFile(str(path)) as fh:
                found = fh.copy_metadata()
        except (sf.LibsndfileError, RuntimeError):
            return {}
        tags = {k: str(v).strip() for k, v in found.items() if k in ("title", "artist")}
    elif (binary := find_ffmpeg(ffmpeg)) is not None:
        proc = subprocess.run(
            [binary, "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True, text=True, timeout=60
        )
        for name, value in _FFMPEG_TAG.findall(proc.stderr):
            tags.setdefault(name.lower(), value)
    return {k: v for k, v in tags.items() if v}


def _raw_blocks(path: Path, info: SourceInfo, block_frames: int, ffmpeg: str) -> Iterator[np.ndarray]:
    """Float32 (frames, channels) blocks at the source rate."""
    if info.decoder == "libsndfile":
        done = 0
        try:
            with sf.SoundFile(str(path)) as fh:
                while True:
                    block = fh.read(block_frames, dtype="float32", always_2d=True)
                    if len(block) == 0:
                        return
                    done += len(block)
                    yield block
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise _fail(ErrorCode.CORRUPT_AUDIO, _damaged(path, info, done, exc)) from exc
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
            raise _fail(ErrorCode.CORRUPT_AUDIO, f"ffmpeg could not decode {display_name(path)}: {stderr[-300:]}")


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.1f} s"


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _damaged(path: Path, info: SourceInfo, frames_read: int, exc: BaseException) -> str:
    """What to say of a file libsndfile stopped decoding: its own words ("Internal psf_fseek() failed") tell a
    person nothing, so where it stopped and what the header declared, when that is more than was read."""
    read_sec = frames_read / info.sample_rate
    if info.duration_sec is None or info.duration_sec <= read_sec:
        return f"{display_name(path)} is damaged: {exc}"
    return (
        f"{display_name(path)} is damaged or truncated: its header declares {_duration(info.duration_sec)} of audio "
        f"(in a file of {_size(path.stat().st_size)}), and decoding failed {_duration(read_sec)} in "
        f"(libsndfile: {str(exc).strip()})"
    )


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
