"""The analysis stages between the store and the pure audio functions, without Prefect.

Each stage has a version (bump it when its output changes) and the parameters that shape its output;
both go into the entry key with the keys of the entries it reads, so a change recomputes the stage and
whatever depends on it, and nothing else. Flows call `run_stage`, which reads the entry back when it
exists and computes it otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from offbeat import __version__, audio
from offbeat.contract import CompletedResult, EngineInfo, GlobalAnalysis, Results
from offbeat.errors import AnalysisError, ErrorCode
from offbeat.settings import Settings
from offbeat.store import ArtifactStore, ChunkAppender, Entry, EntryWriter, entry_key

Progress = Callable[[float], None]


@dataclass(frozen=True)
class StageSpec:
    name: str
    version: int
    upstream: tuple[str, ...]
    params: Callable[[Settings], dict[str, Any]]


STAGES: dict[str, StageSpec] = {
    spec.name: spec
    for spec in (
        StageSpec(
            "decode",
            1,
            (),
            lambda s: {
                "sample_rate": s.sample_rate,
                "analysis_sample_rate": s.analysis_sample_rate,
                "block_sec": s.decode_block_sec,
            },
        ),
        StageSpec(
            "trim",
            1,
            ("decode",),
            lambda s: {"threshold_db": s.silence_threshold_db, "frame": audio.TRIM_FRAME},
        ),
    )
}


def dependents(names: set[str]) -> set[str]:
    """The named stages and every stage that reads from them, directly or not."""
    result = set(names)
    changed = True
    while changed:
        changed = False
        for spec in STAGES.values():
            if spec.name not in result and result.intersection(spec.upstream):
                result.add(spec.name)
                changed = True
    return result


@dataclass(frozen=True)
class StageRef:
    """What tasks hand each other: a reference to a stored entry, never the arrays themselves."""

    stage: str
    key: str
    source: str  # content digest of the source file
    cached: bool
    seconds: float


def run_stage(
    store: ArtifactStore,
    name: str,
    source: str,
    settings: Settings,
    upstream: Mapping[str, StageRef],
    compute: Callable[[EntryWriter], None],
    *,
    refresh: bool = False,
) -> StageRef:
    """Read the stage's entry back, or compute and commit it (always, when `refresh`)."""
    started = time.perf_counter()
    spec = STAGES[name]
    key = entry_key(source, name, spec.version, spec.params(settings), {u: upstream[u].key for u in spec.upstream})
    if refresh:
        store.invalidate(key)
    elif store.get(key) is not None:
        return StageRef(name, key, source, True, time.perf_counter() - started)
    try:
        with store.write(key, name, source=source) as writer:
            compute(writer)
    except AnalysisError as exc:
        exc.stage = exc.stage or name
        raise
    return StageRef(name, key, source, False, time.perf_counter() - started)


def read(store: ArtifactStore, ref: StageRef) -> Entry:
    """The entry behind a reference; losing it between stages is an internal (retryable) fault."""
    entry = store.get(ref.key)
    if entry is None:
        raise AnalysisError(
            ErrorCode.INTERNAL,
            f"stored {ref.stage} output {ref.key} vanished",
            stage=ref.stage,
            retryable=True,
        )
    return entry


# -- decode -----------------------------------------------------------------------------------------


def compute_decode(writer: EntryWriter, path: Path, settings: Settings, progress: Progress | None = None) -> None:
    """Stream the file into 44.1 kHz stereo and analysis-rate mono arrays, one chunk at a time."""
    info = audio.probe(path, settings.ffmpeg_path)
    if info.duration_sec is not None:
        check_duration(info.duration_sec, settings)
    sr, ar = settings.sample_rate, settings.analysis_sample_rate
    stereo = writer.create_array(
        "stereo", shape=(0, 2), dtype="float32", chunks=(int(settings.decode_block_sec * sr), 2)
    )
    mono = writer.create_array("mono", shape=(0,), dtype="float32", chunks=(int(settings.decode_block_sec * ar),))
    stereo_out, mono_out = ChunkAppender(stereo), ChunkAppender(mono)
    expected = info.frames * sr / info.sample_rate if info.frames else None
    done = 0
    for stereo_block, mono_block in audio.decode_blocks(
        path,
        info,
        sample_rate=sr,
        analysis_rate=ar,
        block_sec=settings.decode_block_sec,
        ffmpeg=settings.ffmpeg_path,
    ):
        stereo_out.append(stereo_block)
        mono_out.append(mono_block)
        done += len(stereo_block)
        if progress is not None and expected:
            progress(min(1.0, done / expected))
    stereo_out.close()
    mono_out.close()
    duration = stereo.shape[0] / sr
    check_duration(duration, settings)
    writer.attrs.update(source=info.as_dict(), duration_sec=duration, sample_rate=sr, analysis_sample_rate=ar)


def check_duration(duration_sec: float, settings: Settings) -> None:
    if duration_sec < settings.min_audio_sec:
        raise AnalysisError(
            ErrorCode.AUDIO_TOO_SHORT,
            f"audio is {duration_sec:.2f} s long; at least {settings.min_audio_sec:g} s is needed",
            stage="decode",
        )


# -- trim -------------------------------------------------------------------------------------------


def compute_trim(writer: EntryWriter, decoded: Entry, settings: Settings) -> None:
    """Leading and trailing silence, from frame levels of the mono copy read in bounded blocks."""
    mono = decoded["mono"]
    rate = decoded.attrs["analysis_sample_rate"]
    step = audio.TRIM_FRAME * 4096  # ~95 s per read at 22.05 kHz, a whole number of frames
    levels = np.concatenate(
        [audio.frame_levels_db(mono[i : i + step], audio.TRIM_FRAME) for i in range(0, mono.shape[0], step)]
        or [np.zeros(0, np.float32)]
    )
    bounds = audio.silence_bounds(
        levels, settings.silence_threshold_db, audio.TRIM_FRAME / rate, decoded.attrs["duration_sec"]
    )
    if bounds is None:
        raise AnalysisError(
            ErrorCode.SILENT_AUDIO,
            f"the audio is silent: no part rises above {settings.silence_threshold_db:g} dBFS",
            stage="trim",
        )
    writer.attrs.update(trimmed_start_sec=bounds[0], trimmed_end_sec=bounds[1])


# -- assemble ---------------------------------------------------------------------------------------


def assemble(job_id: int, refs: Mapping[str, StageRef], entries: Mapping[str, Entry]) -> CompletedResult:
    """The completed result document from the stage entries; timestamps in original-file seconds."""
    decoded, trimmed = entries["decode"], entries["trim"]
    analysis_id = entry_key(
        refs["decode"].source, "analysis", 1, {}, {name: ref.key for name, ref in sorted(refs.items())}
    )
    return CompletedResult(
        job_id=job_id,
        results=Results(
            global_=GlobalAnalysis(
                duration_sec=round(decoded.attrs["duration_sec"], 3),
                trimmed_start_sec=trimmed.attrs["trimmed_start_sec"],
                trimmed_end_sec=trimmed.attrs["trimmed_end_sec"],
            ),
            tracks=[],
        ),
        engine=EngineInfo(
            version=__version__,
            analysis_id=analysis_id,
            timings_sec={name: round(ref.seconds, 4) for name, ref in refs.items()},
            cached_stages=[name for name, ref in refs.items() if ref.cached],
        ),
    )
