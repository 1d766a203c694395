"""segment: the track list. Tracks between the boundaries the partition found (`partition`), or with cue hints one
track per cue, snapped to nearby boundaries (`offbeat.dsp.track_list`); each transition described
(`offbeat.dsp.transitions`: length on the beat grid, tempo ratio, beat-matched, kind)."""

from __future__ import annotations

from typing import Any

import numpy as np

from offbeat.dsp import series, track_list, transitions
from offbeat.pipeline.stage import Stage
from offbeat.pipeline.views import Cuts, FrameGrid, listed_tracks, music_bounds, track_count, track_span
from offbeat.settings import Settings
from offbeat.storage import Entry, EntryWriter


def params(s: Settings) -> dict[str, Any]:
    return {"cue_tolerance": s.cue_snap_tolerance_sec}


def transition_signals(envelopes: Entry, beats: Entry) -> transitions.Signals:
    """The mix as `offbeat.dsp.transitions` reads its transitions (also what `bench/accuracy/transitions.py` scores)."""
    grid = FrameGrid.of(envelopes)
    return transitions.Signals(
        series.means(envelopes["bands"][...], grid.frame_rate, transitions.STEP_SEC),
        beats["beats"][...],
        beats["beat_position"][...],
        beats["bpm_curve"][...],
    )


def described_transitions(signals: transitions.Signals, starts: list[float], ends: list[float]) -> list[dict[str, Any]]:
    """Each transition window described, as the entry's attrs keep it (`transitions`, one per boundary)."""
    out = []
    for start, end in zip(starts, ends, strict=True):
        found = transitions.describe(signals, float(start), float(end))
        out.append(
            {
                "start": round(found.start, 3),
                "end": round(found.end, 3),
                "beats": None if found.beats is None else round(found.beats, 2),
                "bars": None if found.bars is None else round(found.bars, 2),
                "beatmatched": found.beatmatched,
                "tempo_ratio": None if found.tempo_ratio is None else round(found.tempo_ratio, 4),
                "kind": found.kind,
            }
        )
    return out


def compute(
    out: EntryWriter,
    params: dict[str, Any],
    partition: Entry,
    envelopes: Entry,
    beats: Entry,
    decode: Entry,
    trim: Entry,
    cues: list[tuple[str, float]] | None,
) -> None:
    """Tracks between the boundaries found; with cue hints, one track per cue, snapped to nearby boundaries; cues
    outside the music are dropped with a warning (`warnings`, read into the result's `engine.warnings`). Each
    transition window is described (`transitions`)."""
    cuts = Cuts.of(partition)
    start, end = music_bounds(decode, trim)
    found, windows = cuts.times, (cuts.transition_starts, cuts.transition_ends)
    titles: list[str | None]
    warnings: list[str] = []
    if cues:
        segments, titles = track_list.tracks_from_cues(cues, found, windows, start, end, params["cue_tolerance"])
        warnings = track_list.dropped_cues(cues, found, start, end, params["cue_tolerance"])
    else:
        segments = track_list.segments_from_boundaries(found, windows, start, end)
        titles = [None] * len(segments.starts)
    # A boundary's confidence is the detected one it lies on; a cue kept where nothing was found has none.
    by_time = {round(float(t), 3): round(float(c), 3) for t, c in zip(found, cuts.confidence, strict=True)}
    out.attrs.update(
        starts=np.round(segments.starts, 3).tolist(),
        ends=np.round(segments.ends, 3).tolist(),
        transition_starts=np.round(segments.transition_starts, 3).tolist(),
        transition_ends=np.round(segments.transition_ends, 3).tolist(),
        titles=titles,
        confidence=[by_time.get(round(float(t), 3)) for t in segments.starts[1:]],
        detected_boundaries=np.round(found, 3).tolist(),
        warnings=warnings,
        transitions=described_transitions(
            transition_signals(envelopes, beats), segments.transition_starts, segments.transition_ends
        ),
    )


STAGE = Stage("segment", 15, compute, params, items=track_count, summary=listed_tracks, item=track_span)
