"""decode: stream the file into 44.1 kHz stereo and a 22.05 kHz mono analysis copy, in 10 s blocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from offbeat.errors import AnalysisError, ErrorCode
from offbeat.media import decode
from offbeat.pipeline.stage import Progress, Stage
from offbeat.settings import Settings
from offbeat.storage import ChunkAppender, Entry, EntryWriter
from offbeat.storage.entries import AUDIO_PEAK_LIMIT


def params(s: Settings) -> dict[str, Any]:
    return {
        "sample_rate": s.sample_rate,
        "analysis_sample_rate": s.analysis_sample_rate,
        "block_sec": s.decode_block_sec,
    }


def options(s: Settings) -> dict[str, Any]:
    """The decoder binary and the minimum length: they decide whether the file is read, not what it reads as."""
    return {
        "ffmpeg": s.ffmpeg_path,
        "min_audio_sec": s.min_audio_sec,
        "max_audio_sec": s.max_audio_sec,
        "source_rates": (s.min_source_rate, s.max_source_rate),
    }


def compute(
    out: EntryWriter, params: dict[str, Any], options: dict[str, Any], source_path: Path, progress: Progress
) -> None:
    """Stream the file into 44.1 kHz stereo and analysis-rate mono arrays, one chunk at a time."""
    info = decode.probe(source_path, options["ffmpeg"])
    check_rate(info.sample_rate, options["source_rates"])
    if info.duration_sec is not None:
        check_duration(info.duration_sec, options)
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
        if not np.isfinite(stereo_block).all():  # +24 LUFS and vocals everywhere otherwise
            not_numbers = "the audio holds samples that are not numbers (NaN or infinity)"
            raise AnalysisError(ErrorCode.CORRUPT_AUDIO, not_numbers, stage="decode")
        check_peak(max(np.abs(stereo_block).max(initial=0.0), np.abs(mono_block).max(initial=0.0)))
        stereo_out.append(stereo_block)
        mono_out.append(mono_block)
        done += len(stereo_block)
        if done > options["max_audio_sec"] * sr:  # containers that do not say their length (ffmpeg streams)
            check_duration(done / sr, options)
        if progress is not None and expected:
            progress(min(1.0, done / expected))
    stereo_out.close()
    mono_out.close()
    duration = stereo.shape[0] / sr
    check_duration(duration, options)
    warnings = []
    if expected and duration * sr < expected * (1 - TRUNCATED_SHARE):
        warnings.append(
            f"the file is shorter than its header says: {duration:.1f} s decoded of {expected / sr:.1f} s "
            "declared (truncated or damaged?)"
        )
    out.attrs.update(
        source=info.as_dict(), duration_sec=duration, sample_rate=sr, analysis_sample_rate=ar, warnings=warnings
    )


TRUNCATED_SHARE = 0.01  # decoding this much less than the header declares is worth a warning


def check_rate(rate: int, bounds: tuple[int, int]) -> None:
    """Refuse sample rates no recording has: a 1 Hz header makes 600 frames a 600 s mix (and 800 MB of work)."""
    if not bounds[0] <= rate <= bounds[1]:
        raise AnalysisError(
            ErrorCode.CORRUPT_AUDIO,
            f"the file claims a sample rate of {rate} Hz; {bounds[0]}-{bounds[1]} Hz is accepted",
            stage="decode",
        )


def check_peak(peak: float) -> None:
    """Refuse samples the store cannot hold (AUDIO_PEAK_LIMIT, +48 dBFS): stored, they would wrap into noise and
    be measured as such. Audio over full scale but within that range is analyzed as it is, with a warning
    (`trim`)."""
    if peak >= AUDIO_PEAK_LIMIT:
        raise AnalysisError(
            ErrorCode.CORRUPT_AUDIO,
            f"the audio's samples reach {peak:.4g} ({20 * np.log10(peak):+.1f} dBFS; 1.0 is full scale): at most "
            f"{AUDIO_PEAK_LIMIT:g}x full scale can be analyzed (a float file written without scaling?)",
            stage="decode",
        )


def check_duration(duration_sec: float, options: dict[str, Any]) -> None:
    if duration_sec < options["min_audio_sec"]:
        raise AnalysisError(
            ErrorCode.AUDIO_TOO_SHORT,
            f"audio is {duration_sec:.2f} s long; at least {options['min_audio_sec']:g} s is needed",
            stage="decode",
        )
    if duration_sec > options["max_audio_sec"]:
        raise AnalysisError(
            ErrorCode.AUDIO_TOO_LONG,
            f"audio is over {duration_sec:.0f} s long; at most {options['max_audio_sec']:g} s is analyzed",
            stage="decode",
        )


def check(entry: Entry, options: dict[str, Any]) -> None:
    """A cached decode is refused too when the limits were changed since (they are not in the key)."""
    check_duration(entry.attrs["duration_sec"], options)


STAGE = Stage("decode", 2, compute, params, options, check)
