"""partition: the track boundaries found in the description, with the blend window around each and how sure
each is (`offbeat.dsp.track_boundaries`: the optimal partition of the mix into self-similar parts, then its
merge rules), and the self-similarity they were found in, thinned for the picture of the mix."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from offbeat.dsp import track_boundaries
from offbeat.pipeline.stage import Stage
from offbeat.pipeline.views import description as described
from offbeat.pipeline.views import music_bounds, plays_found
from offbeat.settings import Settings
from offbeat.storage import Entry, EntryWriter

PICTURE_ROWS = 400  # the similarity kept for the picture has at most this many rows and columns


def params(s: Settings) -> dict[str, Any]:
    return {"min_track_sec": s.min_track_sec}


def compute(
    out: EntryWriter, params: dict[str, Any], description: Entry, library_plays: Entry, decode: Entry, trim: Entry
) -> None:
    """The boundaries inside the music, with the boundary finder's configuration (`track_boundaries.CONFIG`) and
    the minimum track length of the settings; where the track library knows the tracks (`library_plays`), no cut
    inside a play and one at each handover between plays."""
    start, end = music_bounds(decode, trim)
    config = dataclasses.replace(track_boundaries.CONFIG, min_track_sec=params["min_track_sec"])
    plays = track_boundaries.Plays(**plays_found(library_plays))
    found = track_boundaries.find_boundaries(described(description), start, end, config, plays)
    out.put_array("times", found.times.astype(np.float64))
    out.put_array("transition_starts", found.transition_starts.astype(np.float64))
    out.put_array("transition_ends", found.transition_ends.astype(np.float64))
    out.put_array("confidence", found.confidence.astype(np.float64))
    step = max(1, -(-len(found.similarity) // PICTURE_ROWS))
    out.put_array("similarity", found.similarity[::step, ::step].astype(np.float16))
    out.attrs.update(similarity_start_sec=found.similarity_start, similarity_step_sec=found.frame_sec * step)


STAGE = Stage("partition", 1, compute, params)
