"""decode: stream the file into 44.1 kHz stereo and a 22.05 kHz mono analysis copy, in 10 s blocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from offbeat.pipeline import intake
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
    """The decoder binary and the limits (`offbeat.pipeline.intake`): they decide whether the file is read, not what
    it reads as."""
    return {"ffmpeg": s.ffmpeg_path, **intake.limits(s)}


def compute(
    out: EntryWriter, params: dict[str, Any], options: dict[str, Any], source_path: Path, progress: Progress
) -> None:
    """Stream the file into 44.1 kHz stereo and analysis-rate mono arrays, one chunk at a time, through the intake
    checks every audio file passes (`offbeat.pipeline.intake.Intake`)."""
    sr, ar, block_sec = params["sample_rate"], params["analysis_sample_rate"], params["block_sec"]
    source = intake.Intake(
        source_path, options, sample_rate=sr, analysis_rate=ar, block_sec=block_sec, ffmpeg=options["ffmpeg"]
    )
    info = source.info
    stereo = out.create_array("stereo", shape=(0, 2), dtype="float32", chunks=(int(block_sec * sr), 2), audio=True)
    mono = out.create_array("mono", shape=(0,), dtype="float32", chunks=(int(block_sec * ar),), audio=True)
    stereo_out, mono_out = ChunkAppender(stereo), ChunkAppender(mono)
    expected = info.frames * sr / info.sample_rate if info.frames else None
    for stereo_block, mono_block in source:
        stereo_out.append(stereo_block)
        mono_out.append(mono_block)
        if progress is not None and expected:
            progress(min(1.0, source.frames / expected))
    stereo_out.close()
    mono_out.close()
    duration = stereo.shape[0] / sr
    warnings = []
    if expected and duration * sr < expected * (1 - TRUNCATED_SHARE):
        warnings.append(
            f"the file is shorter than its header says: {duration:.1f} s decoded of {expected / sr:.1f} s "
            "declared (truncated or damaged?)"
        )
    out.attrs.update(
        source=info.as_dict(),
        duration_sec=duration,
        sample_rate=sr,
        analysis_sample_rate=ar,
        peak=source.peak,  # of the stereo samples: the mono copy's fold may be lower (channels in opposite phase)
        warnings=warnings,
    )


TRUNCATED_SHARE = 0.01  # decoding this much less than the header declares is worth a warning


def check(entry: Entry, options: dict[str, Any]) -> None:
    """A cached decode is refused too when the limits were changed since (they are not in the key)."""
    intake.check_duration(entry.attrs["duration_sec"], options)


STAGE = Stage("decode", 2, compute, params, options, check)
