"""segment: track boundaries and transition windows from the optimal partition of the mix into self-similar parts
(`offbeat.dsp.track_boundaries`); with cue hints, one track per cue, snapped to nearby boundaries; each transition
described (`offbeat.dsp.transitions`: length on the beat grid, tempo ratio, beat-matched, kind). The novelty of
per-second descriptions is kept for the picture of the mix."""

from __future__ import annotations

from typing import Any

import numpy as np

from offbeat.dsp import cues as cue_hints
from offbeat.dsp import levels, segmentation, series, track_boundaries, transitions
from offbeat.pipeline.stage import Stage
from offbeat.pipeline.views import FrameGrid, music_bounds, track_count, track_list, track_span
from offbeat.settings import Settings
from offbeat.storage import Entry, EntryWriter


def params(s: Settings) -> dict[str, Any]:
    return {"min_track_sec": s.min_track_sec, "cue_tolerance": s.cue_snap_tolerance_sec}


def described(envelopes: Entry, beats: Entry) -> tuple[np.ndarray, track_boundaries.Description]:
    """The mix second by second: the description the novelty curve is drawn from, and the one the boundaries are
    found in (also what `bench/boundaries.py` tunes on)."""
    grid = FrameGrid.of(envelopes)
    rate = grid.frame_rate
    seconds = beats["bpm_curve"].shape[0]
    chroma = series.means(envelopes["chroma"][...], grid.chroma_rate, count=seconds)
    centroid, rms, onset = (
        series.means(envelopes[n][...], rate, count=seconds)[:, 0] for n in ("centroid", "rms", "onset")
    )
    bands = levels.db(np.sqrt(series.means(envelopes["bands"][...], rate, count=seconds)), floor=1e-5)
    novelty_input = segmentation.describe(
        chroma, centroid, rms, onset, series.filled(beats["bpm_curve"][...]).astype(np.float32)
    )
    return novelty_input, track_boundaries.Description(bands, chroma, beats["bpm_curve"][...])


def transition_signals(envelopes: Entry, beats: Entry) -> transitions.Signals:
    """The mix as `offbeat.dsp.transitions` reads its transitions (also what `bench/transitions.py` scores)."""
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
    envelopes: Entry,
    beats: Entry,
    decode: Entry,
    trim: Entry,
    cues: list[tuple[str, float]] | None,
) -> None:
    """Track boundaries by partitioning the mix into self-similar parts; with cue hints, one track per cue,
    snapped to nearby boundaries; cues outside the music are dropped with a warning (`warnings`, read into the
    result's `engine.warnings`). Each transition window is described (`transitions`). The novelty curve is kept
    for the picture of the mix."""
    novelty_input, description = described(envelopes, beats)
    start, end = music_bounds(decode, trim)
    min_track_sec = params["min_track_sec"]
    curve = segmentation.novelty(novelty_input, segmentation.novelty_window(min_track_sec))
    out.put_array("novelty", curve.astype(np.float32))
    boundaries = track_boundaries.find_boundaries(description, start, end, min_track_sec)
    found, windows = boundaries.times, (boundaries.transition_starts, boundaries.transition_ends)
    titles: list[str | None]
    warnings: list[str] = []
    if cues:
        segments, titles = cue_hints.tracks_from_cues(cues, found, windows, start, end, params["cue_tolerance"])
        warnings = cue_hints.dropped_cues(cues, found, start, end, params["cue_tolerance"])
    else:
        segments = segmentation.segments_from_boundaries(found, windows, start, end)
        titles = [None] * len(segments.starts)
    # A boundary's confidence is the detected one it lies on; a cue kept where nothing was found has none.
    sure = {round(float(t), 3): round(float(c), 3) for t, c in zip(found, boundaries.confidence, strict=True)}
    out.attrs.update(
        starts=np.round(segments.starts, 3).tolist(),
        ends=np.round(segments.ends, 3).tolist(),
        transition_starts=np.round(segments.transition_starts, 3).tolist(),
        transition_ends=np.round(segments.transition_ends, 3).tolist(),
        titles=titles,
        boundary_confidence=[sure.get(round(float(t), 3)) for t in segments.starts[1:]],
        detected_boundaries=np.round(found, 3).tolist(),
        warnings=warnings,
        transitions=described_transitions(
            transition_signals(envelopes, beats), segments.transition_starts, segments.transition_ends
        ),
    )


STAGE = Stage("segment", 14, compute, params, items=track_count, summary=track_list, item=track_span)
