"""decode: stream the file into 44.1 kHz stereo and a 22.05 kHz mono analysis copy, in 10 s blocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from offbeat.errors import AnalysisError, ErrorCode
from offbeat.media import decode
from offbeat.pipeline.stage import Progress, Stage
from offbeat.settings import Settings
from offbeat.storage import ChunkAppender, Entry, EntryWriter


def params(s: Settings) -> dict[str, Any]:
    return {
        "sample_rate": s.sample_rate,
        "analysis_sample_rate": s.analysis_sample_rate,
        "block_sec": s.decode_block_sec,
    }


def options(s: Settings) -> dict[str, Any]:
    """The decoder binary and the minimum length: they decide whether the file is read, not what it reads as."""
    return {"ffmpeg": s.ffmpeg_path, "min_audio_sec": s.min_audio_sec}


def compute(
    out: EntryWriter, params: dict[str, Any], options: dict[str, Any], source_path: Path, progress: Progress
) -> None:
    """Stream the file into 44.1 kHz stereo and analysis-rate mono arrays, one chunk at a time."""
    info = decode.probe(source_path, options["ffmpeg"])
    if info.duration_sec is not None:
        check_duration(info.duration_sec, options["min_audio_sec"])
    sr, ar, block_sec = params["sample_rate"], params["analysis_sample_rate"], params["block_sec"]
    stereo = out.create_array("stereo", shape=(0, 2), dtype="float32", chunks=(int(block_sec * sr), 2), audio=True)
    mono = out.create_array("mono", shape=(0,), dtype="float32", chunks=(int(block_sec * ar),), audio=True)
    stereo_out, mono_out = ChunkAppender(stereo), ChunkAppender(mono)
    expected = info.frames * sr / info.sample_rate if info.frames else None
    done = 0
    blocks = decode.decode_blocks(
        source_path, info, sample_rate=sr, analysis_rate=ar, block_sec=block_sec, ffmpeg=options["ffmpeg"]
    )
    for stereo_block, mono_block in blocks:
        stereo_out.append(stereo_block)
        mono_out.append(mono_block)
        done += len(stereo_block)
        if progress is not None and expected:
            progress(min(1.0, done / expected))
    stereo_out.close()
    mono_out.close()
    duration = stereo.shape[0] / sr
    check_duration(duration, options["min_audio_sec"])
    out.attrs.update(source=info.as_dict(), duration_sec=duration, sample_rate=sr, analysis_sample_rate=ar)


def check_duration(duration_sec: float, min_audio_sec: float) -> None:
    if duration_sec < min_audio_sec:
        raise AnalysisError(
            ErrorCode.AUDIO_TOO_SHORT,
            f"audio is {duration_sec:.2f} s long; at least {min_audio_sec:g} s is needed",
            stage="decode",
        )


def check(entry: Entry, options: dict[str, Any]) -> None:
    """A cached decode is refused too when the minimum length was raised since (it is not in the key)."""
    check_duration(entry.attrs["duration_sec"], options["min_audio_sec"])


STAGE = Stage("decode", 2, compute, params, options, check)  # 2: audio stored as 24-bit fixed point
