"""trim: leading and trailing silence, from frame levels of the mono copy read in bounded blocks."""

from __future__ import annotations

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
    """Leading and trailing silence, from frame levels of the mono copy read in bounded blocks."""
    mono = decode["mono"]
    rate = decode.attrs["analysis_sample_rate"]
    step = silence.TRIM_FRAME * 4096  # ~95 s per read at 22.05 kHz, a whole number of frames
    levels = np.concatenate(
        [silence.frame_levels_db(mono[i : i + step], silence.TRIM_FRAME) for i in range(0, mono.shape[0], step)]
        or [np.zeros(0, np.float32)]
    )
    threshold = params["threshold_db"]
    bounds = silence.silence_bounds(levels, threshold, silence.TRIM_FRAME / rate, decode.attrs["duration_sec"])
    if bounds is None:
        raise AnalysisError(
            ErrorCode.SILENT_AUDIO, f"the audio is silent: no part rises above {threshold:g} dBFS", stage="trim"
        )
    out.attrs.update(trimmed_start_sec=bounds[0], trimmed_end_sec=bounds[1])


STAGE = Stage("trim", 1, compute, params)
