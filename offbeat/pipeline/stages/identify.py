"""identify: which library track each detected track is, from the plays the whole-mix search found
(`library_plays`): the play that covers most of the track's steady part names it, with its tempo ratio, pitch
shift, where in the reference the track starts, where in the mix the reference's own start falls, and how much of
the reference the track plays. A track is identified by the windows inside it, whatever cut
the boundary finder chose; none while the library is empty. Two neighbours identified as one reference on one
timeline are a track the segmenter split: said in a warning."""

from __future__ import annotations

from typing import Any

from offbeat.dsp import anchors
from offbeat.pipeline.stage import Stage
from offbeat.pipeline.views import Tracks
from offbeat.settings import Settings
from offbeat.storage import Entry, EntryWriter

SAME_TIMELINE_SEC = 2.0  # two tracks on one reference's timeline within this are one track split in two


def params(s: Settings) -> dict[str, Any]:
    return {"library": s.library, "default_library": Settings.model_fields["library"].default}


def described(play: dict[str, Any], start_sec: float, end_sec: float, library: str) -> dict[str, Any]:
    """What the result says of the track [start_sec, end_sec] (mix seconds) a play names (see
    `offbeat.track_result.Identified`): on the play's line, reference time = offset + tempo ratio x mix time, so the
    reference's own start falls at -offset / ratio in the mix, and the track plays the reference from its start's
    reference time to its end's, within the reference's length."""
    ratio, offset, length = play["tempo_ratio"], play["offset_sec"], play["duration_sec"]
    first, last = (min(max(offset + ratio * t, 0.0), length) for t in (start_sec, end_sec))
    return {
        "library": library,
        "track": play["track"],
        "title": play["title"],
        "artist": play["artist"],
        "confidence": play["confidence"],
        "tempo_ratio": play["tempo_ratio"],
        "pitch_shift_semitones": play["pitch_shift_semitones"],
        "reference_start_sec": round(play["offset_sec"] + play["tempo_ratio"] * start_sec, 2),
        "reference_origin_sec": round(-offset / ratio, 2),
        "reference_played_sec": round(last - first, 2),
        "reference_played_share": round((last - first) / length, 3) if length > 0 else 0.0,
    }


def compute(out: EntryWriter, params: dict[str, Any], library_plays: Entry, segment: Entry) -> None:
    """One identification (or None) per track of the segment entry, in its attrs (`identified`)."""
    tracks = Tracks.of(segment)
    plays, library = library_plays.attrs["plays"], params["library"]
    found: list[dict | None] = [None] * len(tracks)
    spans = [(p["start"], p["end"]) for p in plays]
    for i in range(len(tracks)):
        named = anchors.named_by(spans, *tracks.steady_part(i))
        if named is not None:
            found[i] = described(plays[named], tracks.starts[i], tracks.ends[i], library)
    warnings = split_tracks(found, tracks.starts)
    if not library_plays.attrs["searched"] and library != params["default_library"]:
        warnings.append(f"library {library} holds no tracks: no track was identified")
    out.attrs.update(identified=found, library=library, searched=library_plays.attrs["searched"], warnings=warnings)


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


STAGE = Stage("identify", 3, compute, params)
