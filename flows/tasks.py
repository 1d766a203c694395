"""Prefect tasks generated from the stage registry: one task per step, named after it, and the wiring that runs
each step as soon as its inputs are done.

Tasks run with Prefect's own caching and result persistence off: the artifact store is the cache, and a stage
found there finishes in a "Cached" state so the UI shows hits and misses. A failed task carries its
AnalysisError as data; `run_graph` re-raises the first one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from prefect import Task, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.states import Completed, Failed, State

from offbeat.console import BOARD
from offbeat.contract import as_analysis_error
from offbeat.errors import MESSAGE_CHARS, AnalysisError, bounded_traceback, loggable
from offbeat.pipeline import registry
from offbeat.pipeline.runner import Cues, Run, StageRef
from offbeat.pipeline.stage import Sink, Step
from offbeat.pipeline.walk import Stuck, walk
from offbeat.service.progress import CURRENT as JOB_PROGRESS
from offbeat.settings import get_settings
from offbeat.storage import ArtifactStore, open_store, store_config
from offbeat.storage.store import StoreConfig

TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False, "retries": 0}


@lru_cache(maxsize=4)
def _store(config: StoreConfig) -> ArtifactStore:
    """One store handle per process and configuration, shared by every task thread."""
    return open_store(config=config)


def store() -> ArtifactStore:
    """The process's store handle, replaced when its folder was deleted or replaced since it was opened (a
    listener idles for days; the operator may wipe the store meanwhile)."""
    config = store_config(get_settings())
    handle = _store(config)
    if not handle.alive():
        _store.cache_clear()
        handle = _store(config)
    return handle


def _progress_logger(stage: str) -> Callable[[float], None]:
    """Progress of a long stage in 10 % steps: a log line and the task run's progress artifact in the UI; every
    report to the job's progress in Redis, when the run has a job (`offbeat.service.progress`)."""
    logger = get_run_logger()
    job = JOB_PROGRESS.get()
    last = [-1]
    artifact: list[Any] = []

    def progress(fraction: float) -> None:
        BOARD.update(stage, fraction)  # a bar on an interactive terminal; nothing otherwise
        if job is not None:
            job.advance(stage, fraction)
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


def _run_step(
    name: str, source_path: str, cues: Cues | None, refresh: bool, upstream: dict[str, StageRef], index: int | None
) -> StageRef | State:
    """Body of every step task: run it through the store; a store hit ends in a "Cached" Completed state.

    Bad input is logged in one line, any other exception (a bug, a broken store) with its traceback as a
    retryable internal error; either way the task ends Failed with the AnalysisError as data."""
    logger = get_run_logger()
    job = JOB_PROGRESS.get()
    if job is not None:
        job.started(name)
    try:
        run = Run(
            store(),
            get_settings(),
            Path(source_path),
            cues,
            frozenset({name} if refresh else ()),
            progress=_progress_logger,
            log=logger.warning,
        )
        ref = run.sink(name, upstream) if name in registry.SINKS else run.stage(name, upstream, index)
    except AnalysisError as exc:
        logger.error("%s: [%s] %s", exc.stage or name, exc.code, loggable(exc.message, MESSAGE_CHARS))
        return Failed(message=str(exc), data=exc)
    except Exception as exc:
        logger.error("%s: internal error: %s", name, bounded_traceback(exc))
        error = as_analysis_error(exc, name)
        return Failed(message=str(error), data=error)
    if job is not None:
        job.finished(name, ref.cached, mapped=index is not None)
    if ref.cached:
        logger.info("%s: read from the store (entry %s)", name, ref.key)
        return Completed(name="Cached", data=ref)
    logger.info("%s: computed in %.2f s (entry %s)", name, ref.seconds, ref.key)
    return ref


def _task(step: Step) -> Task:
    if step.per_track:

        def per_track(
            index: int, source_path: str, cues: Cues | None, refresh: bool, upstream: dict[str, StageRef]
        ) -> StageRef | State:
            return _run_step(step.name, source_path, cues, refresh, upstream, index)

        # One task run per track, named after it in the UI.
        return task(name=step.name, task_run_name="track-{index}", **TASK_OPTIONS)(per_track)

    def whole(source_path: str, cues: Cues | None, refresh: bool, upstream: dict[str, StageRef]) -> StageRef | State:
        return _run_step(step.name, source_path, cues, refresh, upstream, None)

    return task(name=step.name, **TASK_OPTIONS)(whole)


# The Prefect tasks, one per step of the registry, in its order.
TASKS: dict[str, Task] = {step.name: _task(step) for step in registry.GRAPH}


@dataclass
class PrefectExecutor:
    """Runs each step as a Prefect task on the flow's task runner, so `separate` and the trim -> beats -> segment
    chain run side by side on its threads."""

    path: Path
    cues: Cues | None
    redo: set[str]

    def start(self, step: Step, tracks: list[int | None], upstream: dict[str, StageRef]) -> list[Any]:
        refresh = step.name in self.redo and not isinstance(step, Sink)
        args = (str(self.path), self.cues, refresh, upstream)
        if step.per_track:
            if (job := JOB_PROGRESS.get()) is not None:
                job.submitted(step.name, len(tracks))
            return [TASKS[step.name].submit(index, *args) for index in tracks]
        return [TASKS[step.name].submit(*args)]

    def next_done(self, handles: list[Any]) -> tuple[Any, StageRef]:
        future = next(as_completed(handles))
        return future, future.result()  # raises the step's AnalysisError


def run_graph(path: Path, cues: Cues | None, redo: set[str]) -> tuple[dict[str, StageRef], dict[str, list[StageRef]]]:
    """Submit every step as soon as its inputs are done (`offbeat.pipeline.walk`). Returns the references by step
    name, in registry order (a per-track stage's as one combined reference), and each per-track stage's references
    by track. The first failed step's AnalysisError is raised."""

    def items(step: Step, refs: dict[str, StageRef]) -> int:  # the store is opened only once a stage needs it
        return Run(store(), get_settings(), path).items(step, refs)

    registry.read_code()
    try:
        return walk(items, PrefectExecutor(path, cues, redo))
    except Stuck as exc:
        raise as_analysis_error(exc, "flow") from exc
