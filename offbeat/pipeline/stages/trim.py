"""trim: leading and trailing silence, from frame levels of the mono copy read in bounded blocks; audio with no
sound in it (digital silence, a DC offset, a constant, noise below the threshold) is refused as `silent_audio`,
and audio far over full scale is analyzed with a warning."""

from __future__ import annotations

from typing import Any

import numpy as np

from offbeat.dsp import silence
from offbeat.pipeline import intake
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
    blocks = (mono[i : i + step] for i in range(0, mono.shape[0], step))
    bounds = intake.audible(blocks, rate, params["threshold_db"], decode.attrs["duration_sec"])
    over = silence.over_scale_warning(stereo_peak(decode))
    out.attrs.update(trimmed_start_sec=bounds[0], trimmed_end_sec=bounds[1], warnings=[over] if over else [])


def stereo_peak(decode: Entry) -> float:
    """The largest sample magnitude of the stored stereo audio (the decode entry's `peak`; read from its stereo
    array when an older entry lacks it). Not the mono copy's: its fold of the channels may be lower."""
    if "peak" in decode.attrs:
        return float(decode.attrs["peak"])
    stereo, step = decode["stereo"], decode["stereo"].chunks[0]
    return max((float(np.abs(stereo[i : i + step]).max()) for i in range(0, stereo.shape[0], step)), default=0.0)


STAGE = Stage("trim", 2, compute, params)
