"""trim: leading and trailing silence, from frame levels of the mono copy read in bounded blocks; audio with no
sound in it (digital silence, a DC offset, a constant, noise below the threshold) is refused as `silent_audio`,
and audio far over full scale is analyzed with a warning."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from offbeat.dsp import silence
from offbeat.errors import AnalysisError, ErrorCode
from offbeat.pipeline.stage import Stage
from offbeat.settings import Settings
from offbeat.storage import Entry, EntryWriter


def params(s: Settings) -> dict[str, Any]:
    return {"threshold_db": s.silence_threshold_db}


def compute(out: EntryWriter, params: dict[str, Any], decode: Entry) -> None:
    """Leading and trailing silence, from high-passed frame levels of the mono copy read in bounded blocks, and
    the warnings about what the audio is (`warnings`, read into the result's `engine.warnings`)."""
    mono = decode["mono"]
    rate = decode.attrs["analysis_sample_rate"]
    step = silence.TRIM_FRAME * 4096  # ~95 s per read at 22.05 kHz, a whole number of frames
    peak = 0.0

    def blocks() -> Iterator[np.ndarray]:
        nonlocal peak
        for i in range(0, mono.shape[0], step):
            block = mono[i : i + step]
            peak = max(peak, float(np.abs(block).max(initial=0.0)))
            yield block

    levels = np.concatenate(
        [silence.frame_levels_db(block, silence.TRIM_FRAME) for block in silence.highpassed(blocks(), rate)]
        or [np.zeros(0, np.float32)]
    )
    threshold = params["threshold_db"]
    bounds = silence.silence_bounds(levels, threshold, silence.TRIM_FRAME / rate, decode.attrs["duration_sec"])
    if bounds is None:
        raise AnalysisError(
            ErrorCode.SILENT_AUDIO,
            f"the audio is silent: no sound rises above {threshold:g} dBFS for {silence.MIN_SOUND_SEC:g} s "
            f"(a DC offset or sound below {silence.HIGHPASS_HZ:g} Hz does not count)",
            stage="trim",
        )
    over = silence.over_scale_warning(peak)
    out.attrs.update(trimmed_start_sec=bounds[0], trimmed_end_sec=bounds[1], warnings=[over] if over else [])


STAGE = Stage("trim", 2, compute, params)
