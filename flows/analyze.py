"""The analysis flow: one Prefect task per stage, handing each other references to store entries.

Tasks run with Prefect's own caching and result persistence off: the artifact store is the cache, and
a stage found there finishes in a "Cached" state so the UI shows hits and misses.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from prefect import Task, flow, get_run_logger, task, unmapped
from prefect.artifacts import (
    create_image_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from offbeat import report, segmentation, stages
from offbeat.audio import check_file
from offbeat.contract import NO_JOB_ID, CueTrack, FailedResult, dump_result, parse_job
from offbeat.errors import AnalysisError, ErrorCode
from offbeat.paths import export_folder, reported_path, resolve_job_source
from offbeat.settings import Settings, get_settings, overridden
from offbeat.stages import StageRef
from offbeat.store import ArtifactStore, Entry, EntryWriter


@lru_cache(maxsize=4)
def _store(root: str, index: str) -> ArtifactStore:
    """One store handle per process and configuration, shared by every task thread."""
    return ArtifactStore(root, Path(index))


def store() -> ArtifactStore:
    settings = get_settings()
    return _store(settings.artifact_store, str(settings.index_path))


def _finish(ref: StageRef) -> StageRef | State:
    """Log the outcome; a store hit ends in a "Cached" Completed state so the UI tells hits apart."""
    logger = get_run_logger()
    if ref.cached:
        logger.info("%s: read from the store (entry %s)", ref.stage, ref.key)
        return Completed(name="Cached", data=ref)
    logger.info("%s: computed in %.2f s (entry %s)", ref.stage, ref.seconds, ref.key)
    return ref


def _progress_logger(stage: str) -> Callable[[float], None]:
    """Progress of a long stage in 10 % steps: a log line and the task run's progress artifact in the UI."""
    logger = get_run_logger()
    last = [-1]
    artifact: list[Any] = []

    def progress(fraction: float) -> None:
        step = int(fraction * 10)
        if step <= last[0]:
            return
        last[0] = step
        logger.info("%s: %d%%", stage, step * 10)
        try:
            if not artifact:
                artifact.append(create_progress_artifact(step * 10.0, description=f"{stage} progress"))
            else:
                update_progress_artifact(artifact[0], step * 10.0)
        except Exception as exc:  # progress is a convenience: never fail a stage over it
            logger.debug("progress artifact not updated: %s", exc)

    return progress


_TASK = {"cache_policy": NO_CACHE, "persist_result": False, "retries": 0}


def stage_task(fn: Callable[..., StageRef | State]) -> Task:
    """A stage as a Prefect task that ends Failed with an AnalysisError as data: bad input is logged in one
    line, any other exception (a bug, a broken store) with its traceback as a retryable internal error."""
    name = fn.__name__.removesuffix("_task")

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> StageRef | State:
        try:
            return fn(*args, **kwargs)
        except AnalysisError as exc:
            get_run_logger().error("%s: [%s] %s", exc.stage or name, exc.code, exc.message)
            return Failed(message=str(exc), data=exc)
        except Exception as exc:
            get_run_logger().exception("%s: internal error", name)
            error = AnalysisError(ErrorCode.INTERNAL, f"internal error in {name}: {exc}", stage=name, retryable=True)
            return Failed(message=str(error), data=error)

    return task(name=name, **_TASK)(run)


def ref_of(outcome: State | PrefectFuture) -> StageRef:
    """The StageRef of a finished (or submitted) stage task; re-raises its AnalysisError when it failed."""
    return outcome.result()  # type: ignore[no-any-return]


@stage_task
def decode_task(path: str, refresh: bool = False) -> StageRef:
    settings, source_path = get_settings(), Path(path)
    check_file(source_path)
    digest = store().source_digest(source_path)
    ref = stages.run_stage(
        store(),
        "decode",
        digest,
        settings,
        {},
        lambda w: stages.compute_decode(w, source_path, settings, _progress_logger("decode")),
        refresh=refresh,
    )
    stages.check_duration(stages.read(store(), ref).attrs["duration_sec"], settings)
    return _finish(ref)  # type: ignore[return-value]


def _run(
    name: str,
    upstream: dict[str, StageRef],
    compute: Callable[[EntryWriter, dict[str, Entry], Settings], None],
    refresh: bool,
    inputs: dict[str, Any] | None = None,
) -> StageRef | State:
    """Run stage `name` through the store, handing `compute` the entries of its inputs by stage name."""
    settings = get_settings()
    entries = {stage: stages.read(store(), ref) for stage, ref in upstream.items()}
    source = next(iter(upstream.values())).source
    ref = stages.run_stage(
        store(),
        name,
        source,
        settings,
        upstream,
        lambda w: compute(w, entries, settings),
        refresh=refresh,
        inputs=inputs,
    )
    return _finish(ref)


@stage_task
def trim_task(decoded: StageRef, refresh: bool = False) -> StageRef:
    return _run("trim", {"decode": decoded}, lambda w, e, s: stages.compute_trim(w, e["decode"], s), refresh)  # type: ignore[return-value]


@stage_task
def beats_task(decoded: StageRef, trimmed: StageRef, refresh: bool = False) -> StageRef:
    progress = _progress_logger("beats")
    return _run(  # type: ignore[return-value]
        "beats",
        {"decode": decoded, "trim": trimmed},
        lambda w, e, s: stages.compute_beats(w, e["decode"], e["trim"], s, progress),
        refresh,
    )


@stage_task
def separate_task(decoded: StageRef, refresh: bool = False) -> StageRef:
    progress = _progress_logger("separate")
    return _run(  # type: ignore[return-value]
        "separate", {"decode": decoded}, lambda w, e, s: stages.compute_separate(w, e["decode"], s, progress), refresh
    )


@stage_task
def drum_beats_task(
    separated: StageRef, beats: StageRef, decoded: StageRef, trimmed: StageRef, refresh: bool = False
) -> StageRef:
    return _run(  # type: ignore[return-value]
        "drum_beats",
        {"separate": separated, "beats": beats, "decode": decoded, "trim": trimmed},
        lambda w, e, s: stages.compute_drum_beats(w, e["separate"], e["beats"], e["decode"], e["trim"], s),
        refresh,
    )


@stage_task
def export_stems_task(separated: StageRef, source: str) -> StageRef:
    """Stem WAV files beside the source (inside the shared mount) or under the local exports folder."""
    started = time.perf_counter()
    settings, entry = get_settings(), stages.read(store(), separated)
    mount = settings.shared_mount_path
    folder = export_folder(Path(source), separated.source, mount, settings.local_exports_path)
    # Stems computed in this run (new, or refreshed) are written out again; cached ones are checked.
    files, reused = stages.export_stems(store(), entry, folder, settings, rewrite=not separated.cached)
    ref = StageRef(
        "export_stems",
        separated.key,
        separated.source,
        reused,
        time.perf_counter() - started,
        {name: reported_path(path, mount) for name, path in files.items()},
    )
    return _finish(ref)  # type: ignore[return-value]


@stage_task
def segment_task(
    beats: StageRef, decoded: StageRef, trimmed: StageRef, cues: list[tuple[str, float]] | None, refresh: bool = False
) -> StageRef:
    return _run(  # type: ignore[return-value]
        "segment",
        {"beats": beats, "decode": decoded, "trim": trimmed},
        lambda w, e, s: stages.compute_segment(w, e["beats"], e["decode"], e["trim"], s, cues),
        refresh,
        inputs={"cues": cues or []},
    )


@stage_task
def track_features_task(
    index: int, segmented: StageRef, beats: StageRef, drums: StageRef, separated: StageRef, decoded: StageRef,
    refresh: bool = False,
) -> StageRef:  # fmt: skip
    upstream = {"segment": segmented, "beats": beats, "drum_beats": drums, "separate": separated, "decode": decoded}
    log = get_run_logger().warning
    return _run(  # type: ignore[return-value]
        "track_features",
        upstream,
        lambda w, e, s: stages.compute_track_features(w, index, *(e[name] for name in upstream), s, log),
        refresh,
        inputs={"track": index},
    )


def _run_name() -> str:
    params = flow_run.parameters
    job_id = params.get("job_id", NO_JOB_ID)
    job = params.get("job")
    if isinstance(job, dict) and isinstance(job.get("job_id"), int):
        job_id = job["job_id"]
    if isinstance(job_id, int) and job_id >= 0:
        return f"job-{job_id}"
    return Path(str(params.get("source") or "mix")).name


def _artifact_key(name: str, what: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "mix"
    return f"{slug}-{what}"


@task(name="assemble", **_TASK)
def assemble_task(job_id: int, refs: dict[str, StageRef], track_refs: list[StageRef]) -> dict[str, Any]:
    """The result document, and what the UI shows of it: a table of tracks and a picture of the mix."""
    logger = get_run_logger()
    entries = {name: stages.read(store(), refs[name]) for name in ("decode", "trim", "beats", "drum_beats", "segment")}
    result = stages.assemble(job_id, refs, entries, [stages.read(store(), ref) for ref in track_refs])
    document = dump_result(result)
    name = _run_name()
    try:
        create_table_artifact(
            key=_artifact_key(name, "tracks"),
            table=report.track_rows(document),
            description=f"Tracks of {name} (analysis {result.engine.analysis_id})",
        )
        beats, segment = entries["beats"], entries["segment"]
        seconds = beats["tempo"].shape[0]
        rms = segmentation.per_second(beats["rms"][...], beats.attrs["frame_rate"], seconds)[:, 0]
        png = report.mix_picture(
            20 * np.log10(np.maximum(rms, 1e-10)), segment["novelty"][...], beats["bpm_curve"][...], document
        )
        create_image_artifact(
            image_url=report.data_uri(png),
            key=_artifact_key(name, "picture"),
            description=f"{name}: level with the tracks found, novelty (boundaries at its peaks), beat-grid tempo",
        )
    except Exception:  # the UI's views are a convenience: never fail an analysis over them
        logger.exception("could not publish the result artifacts")
    return document


@flow(
    name="analyze-mix",
    flow_run_name=_run_name,
    log_prints=True,
    persist_result=False,
    task_runner=ThreadPoolTaskRunner(max_workers=2),
)
def analyze_mix(
    source: str | None = None,
    job: dict[str, Any] | None = None,
    job_id: int = NO_JOB_ID,
    cues: list[CueTrack] | None = None,
    refresh: list[stages.StageName] | None = None,
    model: Literal["2stems", "4stems"] | None = None,
) -> dict[str, Any]:
    """Analyze one mix and return its result document (a failed result leaves the run Failed).

    `source`: a local path, analyzed in place. `job`: a wire-contract job instead, its path confined to
    the shared mount. `cues`: track-start hints for a `source` (a job carries its own). `refresh`: stages
    to recompute, with everything that depends on them; the rest is read from the store. `model`: the
    Spleeter model for this run (default `OFFBEAT_SPLEETER_MODEL`).
    """
    with overridden(spleeter_model=model):
        return _analyze(source, job, job_id, cues, refresh)


def _analyze(
    source: str | None,
    job: dict[str, Any] | None,
    job_id: int,
    cue_hints: list[CueTrack] | None,
    refresh: list[str] | None,
) -> dict[str, Any]:
    logger = get_run_logger()
    started = time.perf_counter()
    try:
        if job is not None:
            parsed = parse_job(json.dumps(job))
            job_id = parsed.job_id
            path = resolve_job_source(parsed, get_settings().shared_mount_path)
            cue_hints = parsed.cue_tracks
        elif source:
            path = Path(source).expanduser().resolve()
        else:
            raise AnalysisError(ErrorCode.INVALID_JOB, "either source or job is required", stage="intake")
        cues = [(cue.title, float(cue.start_time_sec)) for cue in cue_hints] if cue_hints else None
        redo = stages.dependents(set(refresh or []))
        if redo:
            logger.info("refreshing %s", ", ".join(name for name in stages.STAGES if name in redo))
        decoded = ref_of(decode_task(str(path), refresh="decode" in redo, return_state=True))
        # Separation (TensorFlow) and the trim -> beats chain do not depend on each other: run them side by side.
        separating = separate_task.submit(decoded, refresh="separate" in redo)
        trimmed = ref_of(trim_task(decoded, refresh="trim" in redo, return_state=True))
        beats = ref_of(beats_task(trimmed=trimmed, decoded=decoded, refresh="beats" in redo, return_state=True))
        separated = ref_of(separating)
        exporting = export_stems_task.submit(separated, str(path))
        drums = ref_of(
            drum_beats_task(separated, beats, decoded, trimmed, refresh="drum_beats" in redo, return_state=True)
        )
        segmented = ref_of(segment_task(beats, decoded, trimmed, cues, refresh="segment" in redo, return_state=True))
        count = len(stages.read(store(), segmented).attrs["starts"])
        per_track = track_features_task.map(
            range(count), unmapped(segmented), unmapped(beats), unmapped(drums), unmapped(separated),
            unmapped(decoded), refresh=unmapped("track_features" in redo),
        )  # fmt: skip
        track_refs = [ref_of(future) for future in per_track]
        refs = {
            "decode": decoded, "trim": trimmed, "beats": beats, "separate": separated, "drum_beats": drums,
            "export_stems": ref_of(exporting), "segment": segmented,
            "track_features": stages.combined("track_features", track_refs),
        }  # fmt: skip
        document = assemble_task(job_id, refs, track_refs)
        document["engine"]["timings_sec"]["total"] = round(time.perf_counter() - started, 4)
        cached = document["engine"]["cached_stages"]
        logger.info(
            "analysis %s done in %.2f s; computed: %s; from the store: %s",
            document["engine"]["analysis_id"],
            time.perf_counter() - started,
            ", ".join(name for name in refs if name not in cached) or "nothing",
            ", ".join(cached) or "nothing",
        )
        return document
    except AnalysisError as exc:
        failed = dump_result(FailedResult.from_error(job_id, exc))
        logger.error("job %s failed at %s: [%s] %s", job_id, exc.stage, exc.code, exc.message)
        return Failed(message=f"{exc.code}: {exc.message}", data=failed)  # type: ignore[return-value]
    except Exception as exc:
        logger.exception("internal error")
        failed = dump_result(
            FailedResult(job_id=job_id, error=f"internal error: {exc}", error_code=ErrorCode.INTERNAL, retryable=True)
        )
        return Failed(message=f"internal: {exc}", data=failed)  # type: ignore[return-value]


# One task run per track, named after it in the UI.
track_features_task = track_features_task.with_options(task_run_name="track-{index}")
