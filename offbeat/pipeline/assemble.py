"""The completed result document, put together from the stage entries; timestamps in original-file seconds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from offbeat import __version__
from offbeat.contract import (
    CompletedResult,
    EngineInfo,
    GlobalAnalysis,
    Results,
    Track,
    TrackAnalysis,
    Transition,
)
from offbeat.dsp.keys import key_relation
from offbeat.pipeline.runner import StageRef
from offbeat.pipeline.views import Tracks
from offbeat.storage import Entry, entry_key

# The entries the document and its picture are made of (besides the per-track ones).
READS = ("decode", "trim", "envelopes", "beats", "drum_beats", "partition", "segment", "identify")


def warnings(entries: Mapping[str, Entry]) -> list[str]:
    """`engine.warnings`: what the stages found a person should know, in stage order: the file (decode), what
    the audio is (trim: far over full scale), the cue hints (segment: cues outside the music), the library
    (identify: a library named that holds nothing)."""
    stages = ("decode", "trim", "segment", "identify")
    return [text for name in stages if name in entries for text in entries[name].attrs.get("warnings", [])]


def _camelot(track: Entry) -> str | None:
    key = track.attrs["analysis"].get("key")
    return key.get("camelot") if key else None


def transition(segment: Entry, tracks: list[Entry], index: int) -> Transition | None:
    """The transition into track `index` as the segment stage described it, with the Camelot relation of the two
    tracks' keys (known only once their features are); None for the first track."""
    described: list[dict[str, Any]] = segment.attrs.get("transitions", [])
    if not 0 < index <= len(described):
        return None
    found = described[index - 1]
    return Transition(
        start_time_sec=found["start"],
        end_time_sec=found["end"],
        length_beats=found["beats"],
        length_bars=found["bars"],
        beatmatched=found["beatmatched"],
        tempo_ratio=found["tempo_ratio"],
        kind=found["kind"],
        key_relation=key_relation(_camelot(tracks[index - 1]), _camelot(tracks[index])),
    )


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
                    start_confidence=listed.confidence_at(i - 1),
                    transition_in=listed.window(i - 1),
                    transition_out=listed.window(i),
                    transition=transition(entries["segment"], tracks, i),
                    identified=entries["identify"].attrs["identified"][i],
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
