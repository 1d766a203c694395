"""beats: frame envelopes from one STFT pass (kept for later stages), then the beat grid, bar positions and
BPM curve from the network's activations."""

from __future__ import annotations

from typing import Any

import numpy as np

from offbeat.dsp import bars, beat_grid, levels, rhythm
from offbeat.pipeline.blocks import FRAMES_PER_BLOCK, chroma_slice, frame_blocks
from offbeat.pipeline.stage import Progress, Stage
from offbeat.pipeline.stages.trim import music_bounds
from offbeat.settings import Settings
from offbeat.storage import ChunkAppender, Entry, EntryWriter

ENVELOPES = (
    ("onset", ()),
    ("onset_low", ()),
    ("onset_crack", ()),
    ("rms", ()),
    ("centroid", ()),
    ("bands", (rhythm.SHAPE_BANDS,)),
    ("chroma", (12,)),
)


def params(s: Settings) -> dict[str, Any]:
    return {"threshold_db": s.silence_threshold_db}


def compute(
    out: EntryWriter, params: dict[str, Any], decode: Entry, trim: Entry, activations: Entry, progress: Progress
) -> None:
    """Envelopes of the mono copy, block by block; beats and bars of the whole music from the activations."""
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

    fps = sr / rhythm.HOP
    seconds = int(np.ceil(decode.attrs["duration_sec"]))
    voiced = levels.voiced_seconds(out.array("rms")[...], fps, seconds, params["threshold_db"])
    act = activations["activation"][...]
    start, end = music_bounds(decode, trim)
    # Bridged before the backbeat rule, so that it weighs the right grid, and after, over what it moved.
    beats = beat_grid.bridged(beat_grid.track_beats(beat_grid.beat_strength(act), start, end))
    crack = out.array("onset_crack")[...]
    beats = beat_grid.bridged(beat_grid.backbeat_phase(beats, crack, fps, rhythm.frame_time_offset(sr)))
    chroma = out.array("chroma")[...]
    chroma_times = np.arange(len(chroma)) * rhythm.CHROMA_HOP / sr + rhythm.chroma_time_offset(sr)
    changes = bars.chord_changes(bars.chroma_at_beats(chroma, chroma_times, beats))
    position, meter = bars.bar_positions(beat_grid.at_beats(act[:, 1], beats), changes)
    out.put_array("beat_strength", beat_grid.at_beats(beat_grid.beat_strength(act), beats).astype(np.float32))
    curve = rhythm.bpm_from_beats(beats, seconds)
    curve[~voiced] = np.nan
    out.put_array("tempo", beat_grid.filled(curve).astype(np.float32))
    out.put_array("beats", beats.astype(np.float64))
    out.put_array("beat_position", position.astype(np.int8))
    out.put_array("meter", meter.astype(np.int8))
    out.put_array("downbeats", beats[position == 1].astype(np.float64))
    out.put_array("bpm_curve", curve)
    out.attrs.update(
        frame_rate=fps,
        frame_offset_sec=rhythm.frame_time_offset(sr),
        frames=total,
        chroma_rate=fps / rhythm.CHROMA_STEP,
    )


STAGE = Stage("beats", 6, compute, params)  # 6: bars weigh chord changes
