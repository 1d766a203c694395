"""description: the mix second by second, as the boundary finder reads it: one array per source its cues name
(`offbeat.dsp.track_boundaries.CUES`): mean log-mel band levels, chroma and the beat grid's tempo, and the learned
same-track embedding while a cue of nonzero weight reads it.

An entry of its own, so the partition (and `bench/accuracy/boundaries.py`, which tunes it) reads the description without
the envelopes, and a new cue's array is one more line here."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from offbeat.dsp import levels, series
from offbeat.pipeline.blocks import read_padded
from offbeat.pipeline.stage import Stage, path_constants
from offbeat.pipeline.views import FrameGrid
from offbeat.settings import Settings
from offbeat.storage import Entry, EntryWriter

# Seconds embedded per block of the mono copy: a multiple of 512, so every block starts on the one-pass frame grid
# (22050 Hz, 1024-sample frames) and the rows are those of one pass; 512 s is 45 MB of samples.
EMBEDDING_BLOCK_SEC = 512
NOT_TUNING = ("EMBEDDING_BLOCK_SEC",)


def params(s: Settings) -> dict[str, Any]:
    """The embedding's code and weights key the entry only while a cue of nonzero weight reads it; imported here,
    the boundary finder's module does not key the description, so tuning it never describes a mix again."""
    from offbeat.dsp import track_boundaries

    if "embedding" not in track_boundaries.sources(track_boundaries.CONFIG):
        return {}
    from offbeat.dsp import same_track

    model = hashlib.sha256(same_track.MODEL_PATH.read_bytes()).hexdigest()
    return {"embedding": {"code": path_constants("offbeat.dsp.same_track"), "model": model}}


def embedding(decode: Entry, seconds: int) -> np.ndarray:
    """(seconds, dim) same-track embeddings of the mono analysis copy, row t of the 4.5 s around the middle of
    second t (`offbeat.dsp.same_track.per_second`), read a block of seconds at a time."""
    from offbeat.dsp import same_track

    mono, sr = decode["mono"], int(decode.attrs["analysis_sample_rate"])
    lead = same_track.WINDOW_FRAMES // 2 + 8  # frames read before each block's first second
    rows = []
    for first in range(0, seconds, EMBEDDING_BLOCK_SEC):
        count = min(EMBEDDING_BLOCK_SEC, seconds - first)
        start = first * sr - lead * same_track.HOP * sr // same_track.SAMPLE_RATE
        stop = (first + count) * sr + lead * same_track.HOP * sr // same_track.SAMPLE_RATE
        rows.append(same_track.per_second(read_padded(mono, start, stop), count, lead, sr))
    return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)


def compute(out: EntryWriter, params: dict[str, Any], envelopes: Entry, beats: Entry, decode: Entry) -> None:
    """Per second of the file: `mel_db` (seconds, bands) mean mel-band level in dB, `chroma` (seconds, 12) and
    `bpm` (seconds,) the BPM curve, NaN where there is no beat; `embedding` (seconds, dim) while `params` asks."""
    grid = FrameGrid.of(envelopes)
    bpm = beats["bpm_curve"][...]
    seconds = len(bpm)
    bands = series.means(envelopes["bands"][...], grid.frame_rate, count=seconds)
    out.put_array("mel_db", levels.db(np.sqrt(bands), floor=1e-5))
    out.put_array("chroma", series.means(envelopes["chroma"][...], grid.chroma_rate, count=seconds))
    out.put_array("bpm", bpm)
    if "embedding" in params:
        out.put_array("embedding", embedding(decode, seconds))


STAGE = Stage("description", 1, compute, params)
