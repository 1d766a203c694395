"""description: the mix second by second, as the boundary finder reads it: one array per source its cues name
(`offbeat.dsp.track_boundaries.CUES`): mean log-mel band levels, chroma and the beat grid's tempo.

An entry of its own, so the partition (and `bench/accuracy/boundaries.py`, which tunes it) reads the description without
the envelopes, and a new cue's array is one more line here."""

from __future__ import annotations

import numpy as np

from offbeat.dsp import levels, series
from offbeat.pipeline.stage import Stage
from offbeat.pipeline.views import FrameGrid
from offbeat.storage import Entry, EntryWriter


def compute(out: EntryWriter, envelopes: Entry, beats: Entry) -> None:
    """Per second of the file: `mel_db` (seconds, bands) mean mel-band level in dB, `chroma` (seconds, 12) and
    `bpm` (seconds,) the BPM curve, NaN where there is no beat."""
    grid = FrameGrid.of(envelopes)
    bpm = beats["bpm_curve"][...]
    seconds = len(bpm)
    bands = series.means(envelopes["bands"][...], grid.frame_rate, count=seconds)
    out.put_array("mel_db", levels.db(np.sqrt(bands), floor=1e-5))
    out.put_array("chroma", series.means(envelopes["chroma"][...], grid.chroma_rate, count=seconds))
    out.put_array("bpm", bpm)


STAGE = Stage("description", 1, compute)
