"""drum_beats: beat grid of the drums stem (4stems) or of the percussive part of the accompaniment (2stems)."""

from __future__ import annotations

import numpy as np

from offbeat.dsp import rhythm, series
from offbeat.pipeline.blocks import frame_blocks
from offbeat.pipeline.stage import Stage
from offbeat.pipeline.views import music_bounds
from offbeat.storage import Entry, EntryWriter


def compute(out: EntryWriter, separate: Entry, beats: Entry, decode: Entry, trim: Entry) -> None:
    """Beat grid of the drums: the drums stem where the model has one, else the percussive part of the
    accompaniment. It follows the global tempo curve, so both grids agree on the metrical level."""
    sr = separate.attrs["analysis_sample_rate"]
    if "drums" in separate.attrs["stems"]:
        stem, onset_of, source = "drums", rhythm.drum_onset, "drums stem"
    else:
        stem, onset_of, source = "accompaniment", rhythm.percussive_onset, "percussive part of the accompaniment"
    array = separate[f"{stem}_mono"]
    envelope = np.concatenate([onset_of(samples, sr)[keep] for samples, keep in frame_blocks(array)])
    start, end = music_bounds(decode, trim)
    times = rhythm.beat_times(envelope, sr, series.filled(beats["bpm_curve"][...]), start, end)
    out.put_array("beats", times.astype(np.float64))
    out.attrs.update(source=source)


STAGE = Stage("drum_beats", 1, compute)
