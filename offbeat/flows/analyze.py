"""The `analyze-mix` flow: intake (one parse of the job), the stage graph as Prefect tasks (`offbeat.flows.tasks`,
generated from the registry), and the `assemble` task that builds the result document and the UI's views.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_image_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from offbeat.contract import NO_JOB_ID, CueTrack, FailedResult, Job, dump_result, validate_job
from offbeat.dsp import levels, segmentation
from offbeat.errors import AnalysisError, ErrorCode
from offbeat.flows import report
from offbeat.flows.tasks import TASK_OPTIONS, run_graph, store
from offbeat.paths import resolve_job_source
from offbeat.pipeline import assemble as assembly
from offbeat.pipeline import registry
from offbeat.pipeline.runner import StageRef, read
from offbeat.settings import get_settings, overridden


def _run_name() -> str:
    params = flow_run.parameters
    job_id = params.get("job_id", NO_JOB_ID)
    job = params.get("job")
    if isinstance(job, dict) and isinstance(job.get("job_id"), int):
        job_id = job["job_id"]
    if isinstance(job, Job):
        job_id = job.job_id
    if isinstance(job_id, int) and job_id >= 0:
        return f"job-{job_id}"
    return Path(str(params.get("source") or "mix")).name


def _artifact_key(name: str, what: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "mix"
    return f"{slug}-{what}"


@task(name="assemble", **TASK_OPTIONS)
def assemble_task(job_id: int, refs: dict[str, StageRef], track_refs: list[StageRef]) -> dict[str, Any]:
    """The result document, and what the UI shows of it: a table of tracks and a picture of the mix."""
    logger = get_run_logger()
    entries = {name: read(store(), refs[name]) for name in assembly.READS}
    result = assembly.assemble(job_id, refs, entries, [read(store(), ref) for ref in track_refs])
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
        png = report.mix_picture(levels.db(rms), segment["novelty"][...], beats["bpm_curve"][...], document)
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
    job: Job | dict[str, Any] | None = None,
    job_id: int = NO_JOB_ID,
    cues: list[CueTrack] | None = None,
    refresh: list[registry.StageName] | None = None,  # type: ignore[name-defined]
    model: Literal["2stems", "4stems"] | None = None,
) -> dict[str, Any]:
    """Analyze one mix and return its result document (a failed result leaves the run Failed).

    `source`: a local path, analyzed in place. `job`: a wire-contract job instead (parsed already by the
    listener; a dict from the UI or API is validated here), its path confined to the shared mount. `cues`:
    track-start hints for a `source` (a job carries its own). `refresh`: stages to recompute, with everything
    that depends on them; the rest is read from the store. `model`: the Spleeter model for this run (default
    `OFFBEAT_SPLEETER_MODEL`).
    """
    with overridden(spleeter_model=model):
        return _analyze(source, job, job_id, cues, refresh)


def _analyze(
    source: str | None,
    job: Job | dict[str, Any] | None,
    job_id: int,
    cue_hints: list[CueTrack] | None,
    refresh: list[str] | None,
) -> dict[str, Any]:
    logger = get_run_logger()
    started = time.perf_counter()
    try:
        if job is not None:
            parsed = validate_job(job)
            job_id = parsed.job_id
            path = resolve_job_source(parsed, get_settings().shared_mount_path)
            cue_hints = parsed.cue_tracks
        elif source:
            path = Path(source).expanduser().resolve()
        else:
            raise AnalysisError(ErrorCode.INVALID_JOB, "either source or job is required", stage="intake")
        cues = [(cue.title, float(cue.start_time_sec)) for cue in cue_hints] if cue_hints else None
        redo = registry.dependents(set(refresh or []))
        if redo:
            logger.info("refreshing %s", ", ".join(name for name in registry.STAGES if name in redo))
        refs, by_track = run_graph(path, cues, redo)
        document = assemble_task(job_id, refs, by_track.get("track_features", []))
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
    except Exception as exc:
        if isinstance(exc, AnalysisError):
            logger.error("job %s failed at %s: [%s] %s", job_id, exc.stage, exc.code, exc.message)
        else:
            logger.exception("internal error")
        failed = FailedResult.from_error(job_id, exc)
        return Failed(message=f"{failed.error_code}: {failed.error}", data=dump_result(failed))  # type: ignore[return-value]
