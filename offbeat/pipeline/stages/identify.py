"""identify: which library track each detected track is (`offbeat.library`, `offbeat.dsp.fingerprint`), and at
what tempo ratio and pitch it plays, from query quads of a few windows of the track's steady part (the blends
carry the neighbour too), searched one after the other until the match is sure: most tracks of a library cost
one window. Keyed by the library's name and revision: adding or removing a track identifies again.
A track matched below the confidence floor, or any track while the library is empty, is not identified. Two
neighbours identified as one reference on one timeline are a track the segmenter split: said in a warning."""

from __future__ import annotations

import math
from typing import Any

from offbeat.dsp import matching
from offbeat.library import SearchIndex, library_revision, window_quads
from offbeat.pipeline.stage import Stage
from offbeat.pipeline.views import Tracks
from offbeat.settings import Settings
from offbeat.storage import Entry, EntryWriter

WINDOWS = 3  # query windows per track, spread over its steady part
WINDOW_SEC = 20.0  # length of each
SURE_CONFIDENCE = 0.8  # windows are searched one after the other until a match is this sure (or none are left)
SAME_TIMELINE_SEC = 2.0  # two tracks on one reference's timeline within this are one track split in two
EDGE_SEC = 8.0  # windows keep this far inside the steady part (at most a tenth of it): a blend's tail may reach in


def params(s: Settings) -> dict[str, Any]:
    return {
        "library": s.library,
        "revision": library_revision(s),
        "min_confidence": s.identify_min_confidence,
        "windows": WINDOWS,
        "window_sec": WINDOW_SEC,
        "edge_sec": EDGE_SEC,
        "sure_confidence": SURE_CONFIDENCE,
    }


def query_spans(lo: float, hi: float, windows: int, window_sec: float) -> list[tuple[float, float]]:
    """`windows` spans of `window_sec` spread evenly over [lo, hi) (the whole of it when shorter)."""
    if hi - lo <= windows * window_sec:
        return [(lo, hi)]
    step = (hi - lo - window_sec) / (windows - 1) if windows > 1 else 0.0
    first = lo if windows > 1 else (lo + hi - window_sec) / 2
    return [(first + i * step, first + i * step + window_sec) for i in range(windows)]


def described(found: matching.Identification | None, members: list[Any], start_sec: float, library: str) -> dict | None:
    """What the result says of an identification (see `offbeat.contract.Identified`)."""
    if found is None:
        return None
    member = members[found.track]
    return {
        "library": library,
        "track": member.digest,
        "title": member.title,
        "artist": member.artist,
        "confidence": round(found.confidence, 3),
        "tempo_ratio": round(found.tempo_ratio, 4),
        "pitch_shift_semitones": round(12 * math.log2(found.pitch_ratio), 2),
        "reference_start_sec": round(found.offset_sec + found.tempo_ratio * start_sec, 2),
    }


def compute(out: EntryWriter, params: dict[str, Any], library: SearchIndex, decode: Entry, segment: Entry) -> None:
    """One identification (or None) per track of the segment entry, in its attrs (`identified`)."""
    tracks = Tracks.of(segment)
    searched = library(params["library"]) if params["revision"] else None
    found: list[dict | None] = [None] * len(tracks)
    if searched is not None:
        index, members = searched
        mono, sr = decode["mono"], decode.attrs["analysis_sample_rate"]
        for i in range(len(tracks)):
            lo, hi = tracks.steady_part(i)
            edge = min(params["edge_sec"], (hi - lo) / 10)
            lo, hi = lo + edge, hi - edge
            # each window is read from the store only when the search asks for it, on the file's clock
            spans = query_spans(lo, hi, params["windows"], params["window_sec"])
            windows = (window_quads(mono, sr, [span]) for span in spans)
            match, _ = matching.identify_until_sure(index, windows, params["sure_confidence"])
            if match is not None and match.confidence >= params["min_confidence"]:
                found[i] = described(match, members, tracks.starts[i], params["library"])
    warnings = split_tracks(found, tracks.starts)
    if searched is None and params["library"] != Settings.model_fields["library"].default:
        warnings.append(f"library {params['library']} holds no tracks: no track was identified")
    out.attrs.update(identified=found, library=params["library"], searched=searched is not None, warnings=warnings)


def split_tracks(found: list[dict | None], starts: list[float]) -> list[str]:
    """Warnings for boundaries inside one library track: both sides identified as the same reference, the second
    where the first's timeline (its reference start, advanced at its tempo ratio) says it should be."""
    said = []
    for i in range(1, len(found)):
        before, after = found[i - 1], found[i]
        if before is None or after is None or before["track"] != after["track"]:
            continue
        expected = before["reference_start_sec"] + before["tempo_ratio"] * (starts[i] - starts[i - 1])
        if abs(after["reference_start_sec"] - expected) <= SAME_TIMELINE_SEC:
            said.append(
                f"tracks {i - 1} and {i} are one library track ({after['title']!r}) playing on: the boundary at "
                f"{starts[i]:.1f} s is likely not a new track"
            )
    return said


STAGE = Stage("identify", 1, compute, params)
