"""Typed views of what the stages store, read where the stages that read them need it.

A stage writes its entry's arrays and attrs by name; the stages after it read them through the view here, so a
field's name and meaning are written down once, beside the stage that writes it, and no stage imports another
stage's module to reuse a helper. Each view names the stage whose entry it reads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from offbeat.dsp import features
from offbeat.storage import Entry


def music_bounds(decode: Entry, trim: Entry) -> tuple[float, float]:
    """(start, end) of the music in seconds of the original file (`decode`'s duration, `trim`'s silences)."""
    duration = decode.attrs["duration_sec"]
    return trim.attrs["trimmed_start_sec"], duration - trim.attrs["trimmed_end_sec"]


@dataclass(frozen=True)
class FrameGrid:
    """The frame grids of the `envelopes` entry: analysis frames and chroma frames per second."""

    frame_rate: float
    chroma_rate: float
    frame_offset_sec: float
    frames: int

    @classmethod
    def of(cls, envelopes: Entry) -> FrameGrid:
        attrs = envelopes.attrs
        return cls(attrs["frame_rate"], attrs["chroma_rate"], attrs["frame_offset_sec"], attrs["frames"])

    def frames_between(self, lo: float, hi: float) -> slice:
        """The analysis frames of [lo, hi) seconds."""
        return slice(int(lo * self.frame_rate), int(hi * self.frame_rate))

    def chroma_between(self, lo: float, hi: float) -> slice:
        """The chroma frames of [lo, hi) seconds."""
        return slice(int(lo * self.chroma_rate), int(hi * self.chroma_rate))


def description(entry: Entry) -> dict[str, np.ndarray]:
    """The `description` entry: the mix second by second, one array per source the boundary cues read."""
    return {name: entry[name][...] for name in entry.array_specs}


def plays_summary(library_plays: Entry) -> dict[str, object]:
    """What the stages reading `library_plays` depend on (`Stage.summary`): the plays, the handovers and whether
    a library was searched, not which library or revision, so a revision that adds a track nobody plays, or an
    empty library of another name, recomputes nothing below it."""
    return {name: library_plays.attrs[name] for name in ("plays", "handovers", "searched")}


def plays_found(library_plays: Entry) -> dict[str, list]:
    """What the boundary finder reads of the `library_plays` entry (as `track_boundaries.Plays` takes it): where in
    each play no track changes, the handover between neighbours (None where a stranger may lie between), and each
    play's confidence."""
    plays = library_plays.attrs["plays"]
    return {
        "inside": [tuple(p["inside"]) for p in plays],
        "handovers": list(library_plays.attrs["handovers"]),
        "confidence": [p["confidence"] for p in plays],
    }


@dataclass(frozen=True)
class Cuts:
    """The `partition` entry: the boundaries found (seconds, in time order), the blend window around each and how
    sure each is, 0-1; and the evidence they were found in, the self-similarity of the music's stretches (every
    `similarity_step_sec` seconds from `similarity_start_sec`, thinned to a few hundred rows for the picture)."""

    times: np.ndarray
    transition_starts: np.ndarray
    transition_ends: np.ndarray
    confidence: np.ndarray

    @classmethod
    def of(cls, partition: Entry) -> Cuts:
        return cls(*(partition[name][...] for name in ("times", "transition_starts", "transition_ends", "confidence")))


@dataclass(frozen=True)
class Tracks:
    """The track list of the `segment` entry: spans, transition windows (one per boundary) and titles."""

    starts: list[float]
    ends: list[float]
    transition_starts: list[float]
    transition_ends: list[float]
    titles: list[str | None]
    confidence: list[float | None]  # one per boundary: how sure the boundary into the next track is (0-1)

    @classmethod
    def of(cls, segment: Entry) -> Tracks:
        attrs = segment.attrs
        return cls(
            list(attrs["starts"]),
            list(attrs["ends"]),
            list(attrs["transition_starts"]),
            list(attrs["transition_ends"]),
            list(attrs["titles"]),
            list(attrs["confidence"]),
        )

    def __len__(self) -> int:
        return len(self.starts)

    def steady_part(self, index: int) -> tuple[float, float]:
        """A track's span without the transitions into and out of it (the whole span when that leaves less than
        `features.STEADY_PART_MIN_SEC`)."""
        start, end = self.starts[index], self.ends[index]
        lo = self.transition_ends[index - 1] if index > 0 else start
        hi = self.transition_starts[index] if index < len(self) - 1 else end
        return (lo, hi) if hi - lo >= features.STEADY_PART_MIN_SEC else (start, end)

    def confidence_at(self, boundary: int) -> float | None:
        """The confidence of the boundary between tracks `boundary` and `boundary + 1`, if any (the result's
        `start_confidence` of track `boundary + 1`)."""
        return self.confidence[boundary] if 0 <= boundary < len(self.confidence) else None

    def window(self, boundary: int) -> list[float] | None:
        """[start, end] of the transition at `boundary` (between tracks boundary and boundary + 1), if any."""
        if not 0 <= boundary < len(self.transition_starts):
            return None
        return [self.transition_starts[boundary], self.transition_ends[boundary]]


def track_count(segment: Entry) -> int:
    """How many tracks the stages mapped over `segment` run for."""
    return len(segment.attrs["starts"])


def listed_tracks(segment: Entry) -> dict[str, list]:
    """What the stages reading `segment` depend on: the track list (not the transitions' descriptions or the
    picture's curves), so a change that moves no track recomputes nothing below `segment`."""
    return dataclasses.asdict(Tracks.of(segment))


def track_span(segment: Entry, index: int) -> dict[str, object]:
    """What one track's run of a stage mapped over `segment` depends on: its span and steady part."""
    tracks = Tracks.of(segment)
    return {"start": tracks.starts[index], "end": tracks.ends[index], "steady": list(tracks.steady_part(index))}
