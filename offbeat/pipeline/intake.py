"""What audio must be to be analyzed, or fingerprinted into a track library: the intake checks that the decode and
trim stages and `offbeat library add` share, so a reference is refused exactly when a job's audio would be, with the
same error code. Each refusal is bad input: an `AnalysisError` that is not retryable.

`Intake` decodes a file in blocks and checks it as it goes (sample rate, length, samples that are numbers and that
the store can hold); `audible` refuses audio with no sound in it, from levels of the mono copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from offbeat.dsp import silence
from offbeat.errors import AnalysisError, ErrorCode
from offbeat.media.decode import decode_blocks, display_name, probe
from offbeat.settings import Settings
from offbeat.storage.entries import AUDIO_PEAK_LIMIT


def limits(s: Settings) -> dict[str, Any]:
    """The limits a file is held to (a stage's options: they decide whether a file is read, not what it reads as)."""
    return {
        "min_audio_sec": s.min_audio_sec,
        "max_audio_sec": s.max_audio_sec,
        "source_rates": (s.min_source_rate, s.max_source_rate),
    }


def check_rate(rate: int, bounds: tuple[int, int], stage: str | None = "decode") -> None:
    """Refuse sample rates no recording has: a 1 Hz header makes 600 frames a 600 s mix (and 800 MB of work)."""
    if not bounds[0] <= rate <= bounds[1]:
        raise AnalysisError(
            ErrorCode.CORRUPT_AUDIO,
            f"the file claims a sample rate of {rate} Hz; {bounds[0]}-{bounds[1]} Hz is accepted",
            stage=stage,
        )


def check_peak(peak: float, stage: str | None = "decode") -> None:
    """Refuse samples the store cannot hold (AUDIO_PEAK_LIMIT, +48 dBFS): stored, they would wrap into noise and
    be measured as such. Audio over full scale but within that range is analyzed as it is, with a warning
    (`trim`)."""
    if peak >= AUDIO_PEAK_LIMIT:
        raise AnalysisError(
            ErrorCode.CORRUPT_AUDIO,
            f"the audio's samples reach {peak:.4g} ({20 * np.log10(peak):+.1f} dBFS; 1.0 is full scale): at most "
            f"{AUDIO_PEAK_LIMIT:g}x full scale can be analyzed (a float file written without scaling?)",
            stage=stage,
        )


def check_finite(block: np.ndarray, stage: str | None = "decode") -> None:
    """Refuse samples that are not numbers (NaN, infinity): +24 LUFS and vocals everywhere otherwise."""
    if not np.isfinite(block).all():
        not_numbers = "the audio holds samples that are not numbers (NaN or infinity)"
        raise AnalysisError(ErrorCode.CORRUPT_AUDIO, not_numbers, stage=stage)


def check_duration(duration_sec: float, limits: dict[str, Any], stage: str | None = "decode") -> None:
    """Refuse audio shorter than `min_audio_sec` or longer than `max_audio_sec` (`limits`)."""
    if duration_sec < limits["min_audio_sec"]:
        raise AnalysisError(
            ErrorCode.AUDIO_TOO_SHORT,
            f"audio is {duration_sec:.2f} s long; at least {limits['min_audio_sec']:g} s is needed",
            stage=stage,
        )
    if duration_sec > limits["max_audio_sec"]:
        raise AnalysisError(
            ErrorCode.AUDIO_TOO_LONG,
            f"audio is over {duration_sec:.0f} s long; at most {limits['max_audio_sec']:g} s is analyzed",
            stage=stage,
        )


class Intake:
    """One file decoded in (stereo at `sample_rate`, mono at `analysis_rate`) float32 blocks, checked on the way:
    the header's sample rate and length when it is opened, then each block's samples and the length decoded so
    far (containers that do not say their length), then the whole length after the last block, and that the file
    did not change while it was read (`check_unchanged`). Iterate it once.
    `sample_rate` None keeps the source's rate for the stereo blocks.
    `peak` is the largest sample magnitude of the stereo blocks (the audio as stored, before any mono fold)."""

    def __init__(
        self,
        path: Path,
        limits: dict[str, Any],
        *,
        sample_rate: int | None,
        analysis_rate: int,
        block_sec: float,
        ffmpeg: str,
        stage: str | None = "decode",
    ) -> None:
        self.path, self.limits, self.stage, self.ffmpeg = path, limits, stage, ffmpeg
        self.identity = identity(path)
        self.info = probe(path, ffmpeg)
        self.sample_rate = sample_rate or self.info.sample_rate
        self.analysis_rate, self.block_sec = analysis_rate, block_sec
        check_rate(self.info.sample_rate, limits["source_rates"], stage)
        if self.info.duration_sec is not None:
            check_duration(self.info.duration_sec, limits, stage)
        self.frames = 0  # stereo frames decoded so far
        self.peak = 0.0

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        sr, stage = self.sample_rate, self.stage
        blocks = decode_blocks(
            self.path,
            self.info,
            sample_rate=sr,
            analysis_rate=self.analysis_rate,
            block_sec=self.block_sec,
            ffmpeg=self.ffmpeg,
        )
        for stereo, mono in blocks:
            check_finite(stereo, stage)
            self.peak = max(self.peak, float(np.abs(stereo).max(initial=0.0)))
            check_peak(max(self.peak, float(np.abs(mono).max(initial=0.0))), stage)
            self.frames += len(stereo)
            if self.frames > self.limits["max_audio_sec"] * sr:
                check_duration(self.frames / sr, self.limits, stage)
            yield stereo, mono
        check_duration(self.frames / sr, self.limits, stage)
        self.check_unchanged()

    def check_unchanged(self) -> None:
        """Refuse, as a retryable fault, what was decoded from a file that changed while it was read: the blocks
        may mix its old content with its new one, and what is stored from them is keyed by the digest of the old
        (every later job on that content would read the mixture back)."""
        if identity(self.path) != self.identity:
            raise AnalysisError(
                ErrorCode.INTERNAL,
                f"{display_name(self.path)} changed while it was read (is it still being written?); nothing was "
                "stored from it: try again once the file is complete",
                stage=self.stage,
                retryable=True,
            )


def identity(path: Path) -> tuple[int, ...]:
    """What changes when a file is written to or replaced: size, modification and change times, inode, device."""
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev


def audible(
    mono: Iterable[np.ndarray], rate: float, threshold_db: float, duration_sec: float, stage: str | None = "trim"
) -> tuple[float, float]:
    """The leading and trailing silence (seconds) of the mono audio given in blocks, from high-passed frame levels;
    audio with no sound in it (digital silence, a DC offset, a constant, noise below `threshold_db`) is refused as
    `silent_audio`."""
    levels = np.concatenate(
        [silence.frame_levels_db(block, silence.TRIM_FRAME) for block in silence.highpassed(mono, rate)]
        or [np.zeros(0, np.float32)]
    )
    bounds = silence.silence_bounds(levels, threshold_db, silence.TRIM_FRAME / rate, duration_sec)
    if bounds is None:
        raise AnalysisError(
            ErrorCode.SILENT_AUDIO,
            f"the audio is silent: no sound rises above {threshold_db:g} dBFS for {silence.MIN_SOUND_SEC:g} s "
            f"(a DC offset or sound below {silence.HIGHPASS_HZ:g} Hz does not count)",
            stage=stage,
        )
    return bounds
