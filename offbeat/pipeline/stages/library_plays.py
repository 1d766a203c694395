"""library_plays: where the mix plays tracks the track library knows, found before any boundary is
(`offbeat.dsp.anchors`): the music searched window by window, windows on one reference's timeline joined into
plays, and the handover between neighbouring plays placed from their matches. The boundary finder keeps each play
in one track and cuts at each handover; identification follows from the plays a track holds. Keyed by the
library's name and revision; an empty library (or none) searches nothing and costs nothing."""

from __future__ import annotations

import math
from typing import Any

from offbeat.dsp import anchors
from offbeat.library import SearchIndex, library_revision
from offbeat.pipeline.stage import Stage
from offbeat.pipeline.views import music_bounds, plays_summary
from offbeat.settings import Settings
from offbeat.storage import Entry, EntryWriter


def params(s: Settings) -> dict[str, Any]:
    return {"library": s.library, "revision": library_revision(s), "min_confidence": s.identify_min_confidence}


def compute(out: EntryWriter, params: dict[str, Any], library: SearchIndex, decode: Entry, trim: Entry) -> None:
    """The plays (attrs `plays`: reference, title, artist, span, tempo ratio, pitch shift, where the reference's
    time 0 falls, the reference's length, confidence) and the handover between each pair of neighbours
    (`handovers`, seconds; None where a track nobody knows may lie between)."""
    searched = library(params["library"]) if params["revision"] else None
    plays: list[dict[str, Any]] = []
    handovers: list[float | None] = []
    if searched is not None:
        index, members = searched
        lo, hi = music_bounds(decode, trim)
        matches = anchors.MixMatches.of(
            index, anchors.mix_quads(decode["mono"], decode.attrs["analysis_sample_rate"], lo, hi)
        )
        found = anchors.plays(anchors.search(matches, anchors.windows(lo, hi)), params["min_confidence"])
        handovers = [None if t is None else round(t, 2) for t in anchors.boundaries(matches, found)]
        plays = [described(play, members[play.track]) for play in found]
    out.attrs.update(plays=plays, handovers=handovers, library=params["library"], searched=searched is not None)


def described(play: anchors.Play, member: Any) -> dict[str, Any]:
    """A play as the entry keeps it."""
    return {
        "track": member.digest,
        "title": member.title,
        "artist": member.artist,
        "start": round(play.start, 2),
        "end": round(play.end, 2),
        "tempo_ratio": round(play.tempo_ratio, 4),
        "pitch_shift_semitones": round(12 * math.log2(play.pitch_ratio), 2),
        "offset_sec": round(play.offset_sec, 3),
        "duration_sec": member.duration_sec,  # the reference's length: how much of it a track plays (`identify`)
        "confidence": round(play.confidence, 3),
        "windows": play.windows,
        "inside": [round(x, 2) for x in anchors.interior(play)],
    }


STAGE = Stage("library_plays", 2, compute, params, summary=plays_summary)
