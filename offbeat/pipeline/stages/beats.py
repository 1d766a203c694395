"""beats: frame envelopes from one STFT pass (kept for later stages), chroma, tempo curve, beat grid, BPM curve."""

from __future__ import annotations

from typing import Any

import numpy as np

from offbeat.dsp import levels, rhythm
from offbeat.pipeline.blocks import FRAMES_PER_BLOCK, chroma_slice, frame_blocks
from offbeat.pipeline.stage import Progress, Stage
from offbeat.pipeline.stages.trim import music_bounds
from offbeat.settings import Settings
from offbeat.storage import ChunkAppender, Entry, EntryWriter

ENVELOPES = (("onset", ()), ("onset_low", ()), ("rms", ()), ("centroid", ()), ("chroma", (12,)))


def params(s: Settings) -> dict[str, Any]:
    return {"threshold_db": s.silence_threshold_db}


def compute(out: EntryWriter, params: dict[str, Any], decode: Entry, trim: Entry, progress: Progress) -> None:
    """Frame envelopes (one STFT pass, stored for later stages), tempo curve, beat grid and BPM curve."""
    mono, sr = decode["mono"], decode.attrs["analysis_sample_rate"]
    chunk = 1 << 16
    arrays = {
        name: ChunkAppender(out.create_array(name, shape=(0, *tail), dtype="float32", chunks=(chunk, *tail)))
        for name, tail in ENVELOPES
    }
    total = rhythm.frame_count(mono.shape[0])
    for done, (samples, keep) in enumerate(frame_blocks(mono), start=1):
        frames = rhythm.frame_features(samples, sr).sliced(keep)
        for name in frames.__dataclass_fields__:
            arrays[name].append(getattr(frames, name))
        arrays["chroma"].append(rhythm.chroma_frames(samples, sr)[chroma_slice(keep)])
        if progress is not None:
            progress(min(1.0, done * FRAMES_PER_BLOCK / total))
    for appender in arrays.values():
        appender.close()

    onset_low = out.array("onset_low")[...]
    fps = sr / rhythm.HOP
    seconds = int(np.ceil(decode.attrs["duration_sec"]))
    voiced = levels.voiced_seconds(out.array("rms")[...], fps, seconds, params["threshold_db"])
    salience = rhythm.tempo_salience(rhythm.upsample(onset_low), fps * rhythm.UPSAMPLE)[:seconds]
    tempo = rhythm.tempo_curve(salience, voiced)
    start, end = music_bounds(decode, trim)
    beats = rhythm.beat_times(onset_low, sr, tempo, start, end)
    curve = rhythm.bpm_from_beats(beats, seconds)
    curve[~voiced] = np.nan
    out.put_array("tempo", tempo.astype(np.float32))
    out.put_array("beats", beats.astype(np.float64))
    out.put_array("bpm_curve", curve)
    out.attrs.update(
        frame_rate=fps,
        frame_offset_sec=rhythm.frame_time_offset(sr),
        frames=total,
        chroma_rate=fps / rhythm.CHROMA_STEP,
    )


STAGE = Stage("beats", 2, compute, params)
