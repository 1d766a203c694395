"""beats: the beat grid, bar positions and meter, downbeats and BPM curve, from the network's activations and the
envelopes (backbeat onsets, chroma for chord changes, RMS for where the music is voiced)."""

from __future__ import annotations

from typing import Any

import numpy as np

from offbeat.dsp import bars, beat_grid, levels, rhythm
from offbeat.pipeline.stage import Stage
from offbeat.pipeline.views import FrameGrid, music_bounds
from offbeat.settings import Settings
from offbeat.storage import Entry, EntryWriter


def params(s: Settings) -> dict[str, Any]:
    return {"threshold_db": s.silence_threshold_db}


def compute(
    out: EntryWriter, params: dict[str, Any], decode: Entry, trim: Entry, activations: Entry, envelopes: Entry
) -> None:
    """Beats and bars of the whole music from the activations, with the envelopes' backbeat onsets and chroma."""
    sr = decode.attrs["analysis_sample_rate"]
    fps = FrameGrid.of(envelopes).frame_rate
    seconds = int(np.ceil(decode.attrs["duration_sec"]))
    voiced = levels.voiced_seconds(envelopes["rms"][...], fps, seconds, params["threshold_db"])
    act = activations["activation"][...]
    start, end = music_bounds(decode, trim)
    # Bridged before the backbeat rule, so that it weighs the right grid, and after, over what it moved.
    beats = beat_grid.bridged(beat_grid.track_beats(beat_grid.beat_strength(act), start, end))
    crack = envelopes["onset_crack"][...]
    beats = beat_grid.bridged(beat_grid.backbeat_phase(beats, crack, fps, rhythm.frame_time_offset(sr)))
    chroma = envelopes["chroma"][...]
    chroma_times = np.arange(len(chroma)) * rhythm.CHROMA_HOP / sr + rhythm.chroma_time_offset(sr)
    changes = bars.chord_changes(bars.chroma_at_beats(chroma, chroma_times, beats))
    position, meter = bars.bar_positions(beat_grid.at_beats(act[:, 1], beats), changes)
    out.put_array("beat_strength", beat_grid.at_beats(beat_grid.beat_strength(act), beats).astype(np.float32))
    curve = rhythm.bpm_from_beats(beats, seconds)
    curve[~voiced] = np.nan
    out.put_array("beats", beats.astype(np.float64))
    out.put_array("beat_position", position.astype(np.int8))
    out.put_array("meter", meter.astype(np.int8))
    out.put_array("downbeats", beats[position == 1].astype(np.float64))
    out.put_array("bpm_curve", curve)


STAGE = Stage("beats", 6, compute, params)
