"""library_plays: where the mix plays tracks the track library knows, found before any boundary is
(`offbeat.dsp.anchors`): the music searched window by window, windows on one reference's timeline joined into
plays, and the handover between neighbouring plays placed from their matches. The boundary finder keeps each play
in one track and cuts at each handover; identification follows from the plays a track holds. Keyed by the
library's name and revision; an empty library (or none) searches nothing and costs nothing."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from offbeat.dsp import anchors
from offbeat.dsp import fingerprint as fp
from offbeat.library import SearchIndex, library_revision
from offbeat.pipeline.stage import Stage
from offbeat.pipeline.views import music_bounds
from offbeat.settings import Settings
from offbeat.storage import Entry, EntryWriter

BLOCK_SEC = 60.0  # the mix is fingerprinted this much at a time (memory), each block with MARGIN_SEC each side
MARGIN_SEC = 4.0  # longer than a query box, so quads rooted near a block's edge are whole
NOT_TUNING = ("BLOCK_SEC",)


def params(s: Settings) -> dict[str, Any]:
    return {"library": s.library, "revision": library_revision(s), "min_confidence": s.identify_min_confidence}


def mix_quads(mono: Any, sr: int, lo: float, hi: float) -> fp.Quads:
    """The query quads of [lo, hi) seconds of `mono` (an array read in slices), on the mix's clock, computed
    block by block: each block's quads rooted inside it, from its audio and MARGIN_SEC each side."""
    parts = []
    for start in np.arange(lo, hi, BLOCK_SEC):
        end = min(start + BLOCK_SEC, hi)
        a, b = int(max(lo, start - MARGIN_SEC) * sr), int(min(hi, end + MARGIN_SEC) * sr)
        if b - a < sr:
            continue
        found = fp.fingerprint(np.asarray(mono[a:b], np.float32), sr)
        root = found.root_sec + np.float32(a / sr)
        keep = (root >= start) & (root < end)
        parts.append(
            fp.Quads(found.hashes[keep], root[keep], found.root_hz[keep], found.width_sec[keep], found.height_hz[keep])
        )
    return fp.concat(parts)


def compute(out: EntryWriter, params: dict[str, Any], library: SearchIndex, decode: Entry, trim: Entry) -> None:
    """The plays (attrs `plays`: reference, title, artist, span, tempo ratio, pitch shift, where the reference's
    time 0 falls, confidence) and the handover between each pair of neighbours (`handovers`, seconds; None
    where a track nobody knows may lie between)."""
    searched = library(params["library"]) if params["revision"] else None
    plays: list[dict[str, Any]] = []
    handovers: list[float | None] = []
    if searched is not None:
        index, members = searched
        lo, hi = music_bounds(decode, trim)
        matches = anchors.MixMatches.of(index, mix_quads(decode["mono"], decode.attrs["analysis_sample_rate"], lo, hi))
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
        "confidence": round(play.confidence, 3),
        "windows": play.windows,
    }


STAGE = Stage("library_plays", 1, compute, params)
