"""The `analyze-mix` flow: intake (one parse of the job), the stage graph as Prefect tasks (`flows.tasks`,
generated from the registry), and the `assemble` task that builds the result document and the UI's views.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_image_artifact, create_link_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from flows import report
from flows.tasks import TASK_OPTIONS, run_graph, store
from offbeat import cue_sheet as sheets
from offbeat import html_report
from offbeat.contract import NO_JOB_ID, CueTrack, FailedResult, Job, dump_result, validate_job
from offbeat.errors import MESSAGE_CHARS, AnalysisError, ErrorCode, bounded, bounded_traceback, loggable
from offbeat.library import check_name
from offbeat.media import decode
from offbeat.paths import Source, open_job_source, open_local_source, reported_path
from offbeat.pipeline import assemble as assembly
from offbeat.pipeline import registry
from offbeat.pipeline.preflight import preflight
from offbeat.pipeline.runner import StageRef, StoreDamaged, healing, read
from offbeat.service.progress import CURRENT as JOB_PROGRESS
from offbeat.service.progress import JobProgress
from offbeat.settings import get_settings, overridden
from offbeat.split import split as split_tracks
from offbeat.storage import JobLedger


def _job_id(job: Job | dict[str, Any] | None, job_id: int) -> int:
    """The job id a run answers under: the job's own (a job that fails validation still has one), else `job_id`."""
    if isinstance(job, Job):
        return job.job_id
    if isinstance(job, dict) and isinstance(job.get("job_id"), int):
        return int(job["job_id"])
    return job_id


def _run_name() -> str:
    params = flow_run.parameters
    job_id = _job_id(params.get("job"), params.get("job_id", NO_JOB_ID))
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
    reads = {**{name: refs[name] for name in assembly.READS}, **{f"track-{i}": r for i, r in enumerate(track_refs)}}
    with healing(store(), reads, "assemble"):
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
        png = report.mix_picture(entries, document)
        create_image_artifact(
            image_url=report.data_uri(png),
            key=_artifact_key(name, "picture"),
            description=f"{name}: level and tracks, the self-similarity the cuts were found in, beat-grid tempo",
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
    job_ref: str | None = None,
    cue_sheet: str | None = None,
    library: str | None = None,
) -> dict[str, Any] | State:
    """Analyze one mix and return its result document; a failed result comes back as a Failed state carrying the
    failed-result document as its data, so the run ends Failed in the UI and the caller still gets the document.

    `source`: a local path, analyzed in place. `job`: a wire-contract job instead (parsed already by the
    listener; a dict from the UI or API is validated here), its path confined to the shared mount. `cues`:
    track-start hints for a `source` (a job carries its own); `cue_sheet`: the same as a CUE sheet's text, instead.
    `refresh`: stages to recompute, with everything that depends on them; the rest is read from the store.
    `model`: the Spleeter model for this run (default `OFFBEAT_SPLEETER_MODEL`); `library`: the track library to
    identify tracks against (default `OFFBEAT_LIBRARY`; a job's own `library` comes first). `job_ref`: a job
    handed over by the listener (`JobLedger.hand_over`), so that a job too large for a flow parameter still runs.
    """
    with overridden(spleeter_model=model, library=library):
        if job_ref is not None:
            job = JobLedger(store()).take_over(job_ref)
            if job is None:
                unknown = f"job reference {bounded(job_ref)} is unknown (expired?)"
                error = AnalysisError(ErrorCode.INTERNAL, unknown, retryable=True)
                failed = FailedResult.from_error(job_id, error)
                return Failed(message=str(error), data=dump_result(failed))
            job = json.loads(job)
        outcome = _analyze(source, job, job_id, (cues, cue_sheet), refresh, publish=job_ref is not None)
        document = outcome.data if isinstance(outcome, State) else outcome
        if job_ref is not None:  # the listener may be on another host (work-pool mode): it reads the ledger
            JobLedger(store()).deliver(str(flow_run.get_id()), document)
        else:  # a run from the UI or `prefect deployment run` keeps its document too (no Prefect result)
            _keep(str(flow_run.get_id()), document)
        return outcome


def _keep(run_id: str, document: dict[str, Any]) -> None:
    try:
        JobLedger(store()).deliver(run_id, document, keep_sec=JobLedger.KEEP_SEC)
        get_run_logger().info("result document kept for 30 days: offbeat result %s", run_id)
    except Exception:  # a convenience, like the artifacts: never fail an analysis over it
        get_run_logger().exception("could not keep the result document")


def _open(source: str | None, job: Job | dict[str, Any] | None) -> tuple[Source, Job | None]:
    """The mix, opened once (see `offbeat.paths`), and the job it came from."""
    settings = get_settings()
    if job is not None:
        parsed = validate_job(job, max_cues=settings.max_cues)
        return open_job_source(parsed, settings.shared_mount_path, settings.max_path_chars), parsed
    if source:
        return open_local_source(Path(source), settings.shared_mount_path), None
    raise AnalysisError(ErrorCode.INVALID_JOB, "either source or job is required", stage="intake")


Graphed = tuple[dict[str, Any], dict[str, StageRef]]  # the result document, and the entries it was made of


def _graph(opened: Source, cues: list[tuple[str, float]] | None, redo: set[str], job_id: int) -> Graphed:
    refs, by_track = run_graph(opened.path, cues, redo)
    return assemble_task(job_id, refs, by_track.get("track_features", [])), refs


def _healing_graph(opened: Source, cues: list[tuple[str, float]] | None, redo: set[str], job_id: int) -> Graphed:
    """The graph, run again as often as it finds damaged entries: each pass forgets the ones it found, and the next
    recomputes them, which may read (and so find) damage further up. Every pass forgets at least one entry, so
    the passes end; a pass per stored step and track covers damage in every entry of an analysis at once."""
    logger = get_run_logger()
    forgotten: set[str] = set()
    while True:
        try:
            document, refs = _graph(opened, cues, redo, job_id)
        except StoreDamaged as exc:  # forgotten by now: the next pass recomputes exactly those entries
            if set(exc.stages) <= forgotten and exc.stages:
                raise  # damaged again right after being recomputed: not the store's old damage
            forgotten.update(exc.stages)
            logger.warning("%s; running the stages again", loggable(exc.message, MESSAGE_CHARS))
            continue
        # A forgotten entry was recomputed by a later pass of this run: the last pass read it back, but it did not
        # come from the store as the run found it.
        engine = document["engine"]
        engine["cached_stages"] = [name for name in engine["cached_stages"] if name not in forgotten]
        return document, refs


def _publish_page(document: dict[str, Any], refs: dict[str, StageRef], source: Path) -> None:
    """The page `offbeat report` writes, written beside the stems (`html_report.publish`, its level read from the
    store, not decoded again) and linked from the run in the Prefect UI."""
    logger = get_run_logger()
    try:
        level = report.level_db({name: read(store(), refs[name]) for name in ("envelopes", "beats")})
        path = html_report.publish(source, document, get_settings(), level)
        create_link_artifact(
            link=path.as_uri(),
            link_text=re.sub(r"([\\`*_\[\]()<>])", r"\\\1", str(path)),  # markdown: the name stays text
            key=_artifact_key(_run_name(), "report"),
            description=f"{_run_name()}: the report page (tracks, keys, tempo, a player of the mix) beside its "
            "stems; open it in a browser where that folder is reachable",
        )
        logger.info("report page written: %s", reported_path(path, get_settings().shared_mount_path))
    except Exception:  # a convenience, like the other artifacts: never fail an analysis over it
        logger.exception("could not write the report page")


def _hints(
    cue_tracks: list[CueTrack] | None, sheet_text: str | None, opened: Source
) -> tuple[list[tuple[str, float]] | None, sheets.CueSheet | None]:
    """The cue hints as the pipeline takes them, (title, start) pairs, from `cue_tracks` or a CUE sheet (not
    both), and the sheet. A sheet starting a track past the end of the audio is refused here, before any work,
    where the file's header tells its length (`_check_sheet` checks again against what decodes)."""
    if sheet_text is None:
        return ([(cue.title, float(cue.start_time_sec)) for cue in cue_tracks] if cue_tracks else None), None
    if cue_tracks:
        raise AnalysisError(ErrorCode.INVALID_JOB, "give cue hints or a CUE sheet, not both", stage="intake")
    sheet = sheets.parse(sheet_text, max_tracks=get_settings().max_cues)
    try:
        duration = decode.probe(opened.path, get_settings().ffmpeg_path).duration_sec
    except AnalysisError:  # not audio, damaged: `decode` says so with its own code
        duration = None
    if duration is not None:
        sheet.check_within(duration)
    return sheet.cues(), sheet


def _with_cue_sheet(document: dict[str, Any], file_name: str, sheet: sheets.CueSheet | None) -> dict[str, Any]:
    """The document with `results.cue_sheet`, its tracks as a CUE sheet for the audio file; a hints' sheet that
    starts a track past the end of the audio as decoded (a header may promise more) is refused after all."""
    results = document["results"]
    if sheet is not None:
        sheet.check_within(results["global"]["duration_sec"])
    tracks = [(track["title"], track["start_time_sec"]) for track in results["tracks"]]
    results["cue_sheet"] = sheets.render(sheets.sheet_for(tracks, Path(file_name).name, sheet))
    return document


def _analyze(
    source: str | None,
    job: Job | dict[str, Any] | None,
    job_id: int,
    hints: tuple[list[CueTrack] | None, str | None],
    refresh: list[str] | None,
    publish: bool = False,
) -> dict[str, Any] | State:
    """`publish`: write the job's progress to Redis (a job handed over by the listener, whose application waits)."""
    logger = get_run_logger()
    started = time.perf_counter()
    opened: Source | None = None
    progress: JobProgress | None = None
    try:
        job_id = _job_id(job, job_id)
        preflight(get_settings())
        opened, parsed = _open(source, job)
        if parsed is not None:
            job_id, hints = parsed.job_id, (parsed.cue_tracks, parsed.cue_sheet)
        if parsed is not None and publish:  # the listener writes the final record, with the result
            steps = [step.name for step in registry.GRAPH] + (["split"] if parsed.split else [])
            progress = JobProgress(get_settings(), job_id, steps)
            JOB_PROGRESS.set(progress)
        cues, sheet = _hints(*hints, opened)
        redo = registry.dependents(set(refresh or []))
        if redo:
            logger.info("refreshing %s", ", ".join(name for name in registry.STAGES if name in redo))
        library = parsed.library if parsed is not None else None
        try:
            check_name(library or get_settings().library)
        except ValueError as exc:
            raise AnalysisError(ErrorCode.INVALID_JOB, str(exc), stage="intake") from None
        with overridden(library=library):
            graphed, refs = _healing_graph(opened, cues, redo, job_id)
            document = _with_cue_sheet(graphed, opened.name, sheet)
        if parsed is not None and parsed.split is not None:  # the job asks for its tracks as files
            if progress is not None:
                progress.started("split")
            document["results"]["split"] = split_tracks(
                opened.path, document, get_settings(), parsed.split, parsed.split_at or "boundary"
            )
            if progress is not None:
                progress.finished("split", cached=False)
        _publish_page(document, refs, opened.path)
        document["engine"]["timings_sec"]["total"] = round(time.perf_counter() - started, 4)
        cached = document["engine"]["cached_stages"]
        logger.info(
            "analysis %s done in %.2f s; computed: %s; from the store: %s",
            document["engine"]["analysis_id"],
            time.perf_counter() - started,
            ", ".join(n for n in document["engine"]["timings_sec"] if n not in cached and n != "total") or "nothing",
            ", ".join(cached) or "nothing",
        )
        return document
    except Exception as exc:
        if isinstance(exc, AnalysisError):
            logger.error(
                "job %s failed at %s: [%s] %s", job_id, exc.stage, exc.code, loggable(exc.message, MESSAGE_CHARS)
            )
        else:
            logger.error("internal error: %s", bounded_traceback(exc))
        failed = FailedResult.from_error(job_id, exc)
        return Failed(message=f"{failed.error_code}: {failed.error}", data=dump_result(failed))
    finally:
        if progress is not None:
            JOB_PROGRESS.set(None)
            progress.close()
        if opened is not None:
            opened.close()
