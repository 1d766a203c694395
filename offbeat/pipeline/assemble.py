"""The completed result document, put together from the stage entries; timestamps in original-file seconds."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from offbeat import __version__
from offbeat.contract import CompletedResult, EngineInfo, GlobalAnalysis, Results, Track, TrackAnalysis
from offbeat.pipeline.runner import StageRef
from offbeat.pipeline.views import Tracks
from offbeat.storage import Entry, entry_key

# The entries the document and its picture are made of (besides the per-track ones).
READS = ("decode", "trim", "envelopes", "beats", "drum_beats", "segment")


def warnings(entries: Mapping[str, Entry]) -> list[str]:
    """`engine.warnings`: what the stages found a person should know, in stage order: the file (decode), what
    the audio is (trim: far over full scale), the cue hints (segment: cues outside the music)."""
    return [text for name in ("decode", "trim", "segment") for text in entries[name].attrs.get("warnings", [])]


def assemble(
    job_id: int, refs: Mapping[str, StageRef], entries: Mapping[str, Entry], tracks: list[Entry]
) -> CompletedResult:
    """The completed result document from the stage entries; timestamps in original-file seconds."""
    listed = Tracks.of(entries["segment"])
    decoded, trimmed = entries["decode"], entries["trim"]
    analysis_id = entry_key(
        refs["decode"].source, "analysis", 1, {}, {name: ref.key for name, ref in sorted(refs.items())}
    )
    curve = entries["beats"]["bpm_curve"][...]
    return CompletedResult(
        job_id=job_id,
        results=Results(
            global_=GlobalAnalysis(
                duration_sec=round(decoded.attrs["duration_sec"], 3),
                trimmed_start_sec=trimmed.attrs["trimmed_start_sec"],
                trimmed_end_sec=trimmed.attrs["trimmed_end_sec"],
                global_beat_grid_timestamps=np.round(entries["beats"]["beats"][...], 3).tolist(),
                global_drum_beat_grid_timestamps=np.round(entries["drum_beats"]["beats"][...], 3).tolist(),
                global_downbeat_timestamps=np.round(entries["beats"]["downbeats"][...], 3).tolist(),
                beats_per_bar=entries["beats"]["meter"][...].astype(int).tolist(),
                bpm_curve=[None if np.isnan(v) else round(float(v), 2) for v in curve],
                stems=refs["export_stems"].outputs,
            ),
            tracks=[
                Track(
                    track_id=i,
                    title=listed.titles[i],
                    start_time_sec=listed.starts[i],
                    end_time_sec=listed.ends[i],
                    start_confidence=listed.sureness(i - 1),
                    transition_in=listed.window(i - 1),
                    transition_out=listed.window(i),
                    analysis=TrackAnalysis(**track.attrs["analysis"]),
                )
                for i, track in enumerate(tracks)
            ],
        ),
        engine=EngineInfo(
            version=__version__,
            analysis_id=analysis_id,
            timings_sec={name: round(ref.seconds, 4) for name, ref in refs.items()},
            cached_stages=[name for name, ref in refs.items() if ref.cached],
            warnings=warnings(entries),
        ),
    )
