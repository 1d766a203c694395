"""The Redis listener flow: serves the job queue, one `analyze-mix` flow run per job.

Each analysis run is named after its job (`job-42`, by the analysis flow's own run-name template) and
tagged `offbeat` and `redis-job`, so the Prefect UI lists them by job. The listener's own run logs what the
worker does (jobs taken, results published, recoveries, Redis outages).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prefect import flow, get_run_logger, tags

from flows.analyze import analyze_mix
from flows.tasks import store
from offbeat.contract import FailedResult, Job, dump_result
from offbeat.errors import AnalysisError, ErrorCode
from offbeat.pipeline.preflight import preflight
from offbeat.service.worker import Worker
from offbeat.settings import get_settings
from offbeat.storage import JobLedger

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

JOB_TAGS = ("offbeat", "redis-job")


WORK_POOL_ATTEMPTS = 3  # runs of one job on the work pool when a run crashes (its process worker died)


def analyze_job(job: Job) -> dict[str, Any]:
    """Run one analysis flow for a job (parsed once, by the worker) and return its result document: here, or on
    the work pool (`OFFBEAT_LISTENER_MODE`). The job goes by reference (`JobLedger.hand_over`): a whole job may be
    too large for a flow parameter."""
    ledger = JobLedger(store())
    ref = ledger.hand_over(job.model_dump_json())
    if get_settings().listener_mode == "work-pool":
        return _on_work_pool(job, ref, ledger)
    with tags(*JOB_TAGS):
        state = analyze_mix(job_ref=ref, job_id=job.job_id, return_state=True)
    return state.result(raise_on_failure=False)  # type: ignore[no-any-return]


def _on_work_pool(job: Job, ref: str, ledger: JobLedger) -> dict[str, Any]:
    """The job as a run of the analysis deployment, executed by whichever process worker of its work pool takes
    it, awaited here; the run delivers its result document through the ledger (`JobLedger.deliver`).

    The idempotency key names the job and its message, so a listener that takes over a job from one that died
    finds the run already created (running, or finished) instead of starting a second one. A run that crashed
    (its worker died: `_await_run`) is run again under the next key, up to WORK_POOL_ATTEMPTS times."""
    from prefect.deployments import run_deployment

    settings = get_settings()
    log = logging.getLogger(__name__)  # a worker thread: outside the listener flow's run context
    state_name = "never started"
    for attempt in range(WORK_POOL_ATTEMPTS):
        run = run_deployment(
            settings.analysis_deployment,
            parameters={"job_ref": ref, "job_id": job.job_id},
            idempotency_key=f"offbeat-job-{job.job_id}-{ref}-{attempt}",
            tags=list(JOB_TAGS),
            timeout=0,  # created (or found by its key) here, awaited by _await_run
            as_subflow=False,
        )
        run = _await_run(run.id)
        document = ledger.delivered(str(run.id))
        state_name = run.state.name if run.state else "unknown"
        if document is not None:
            return document
        if not (run.state and run.state.is_crashed()):
            break
        log.warning("job %d: analysis run %s crashed; running it again", job.job_id, run.name)
    error = AnalysisError(
        ErrorCode.INTERNAL, f"the analysis run on the work pool ended {state_name} without a result", retryable=True
    )
    return dump_result(FailedResult.from_error(job.job_id, error, stage="analysis"))


def _await_run(run_id: UUID, poll_sec: float = 2.0) -> FlowRun:
    """The run once it has ended. A run whose process worker dies together with it (its host went away: SIGKILL,
    power loss) is never marked crashed by Prefect, as nobody is left to report it: it would stay Running, and its
    job unanswered, for ever. Its heartbeats tell: a run process sends one every PREFECT_FLOWS_HEARTBEAT_FREQUENCY
    seconds (on every host alike; the listener reads its own setting). A run that has been Running for three
    periods with none in the last three is marked Crashed here, so that the caller runs the job again. So is a run
    that a worker took (Pending) and never started: the worker died between the two, and no other takes it."""
    from prefect import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter
    from prefect.settings import get_current_settings
    from prefect.states import Crashed

    frequency = get_current_settings().flows.heartbeat_frequency
    start_limit = timedelta(seconds=get_settings().run_start_limit_sec)
    log = logging.getLogger(__name__)
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(run_id)
            if run.state is not None and run.state.is_final():
                return run
            taken = run.state.timestamp if run.state is not None and run.state.is_pending() else None
            if taken is not None and taken < datetime.now(UTC) - start_limit:
                log.warning("analysis run %s: taken by a worker at %s, never started", run.name, taken)
                message = f"not started within {start_limit.total_seconds():g} s of being taken"
                client.set_flow_run_state(run_id, Crashed(message=message))
                continue
            if frequency and run.state is not None and run.state.is_running():
                since = datetime.now(UTC) - timedelta(seconds=3 * frequency)
                beats = EventFilter(
                    event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
                    resource=EventResourceFilter(id=[f"prefect.flow-run.{run_id}"]),
                    occurred=EventOccurredFilter(since=since),
                )
                if run.state.timestamp < since and not client.read_events(beats, limit=1).events:
                    log.warning("analysis run %s: no heartbeat since %s", run.name, since)
                    client.set_flow_run_state(run_id, Crashed(message=f"no heartbeat since {since.isoformat()}"))
                    continue  # read again: crashed, or ended meanwhile
            time.sleep(poll_sec)


@contextmanager
def stop_signals(handler: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM call `handler` while inside (where signals can be handled: the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: handler())
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@flow(
    name="redis-listener",
    flow_run_name=lambda: f"listener-{socket.gethostname()}-{os.getpid()}",
    log_prints=True,
    persist_result=False,
)
def redis_listener(concurrency: int | None = None) -> dict[str, Any]:
    """Serve the Redis job queue until SIGINT/SIGTERM (a second signal hands running jobs back at once).

    `concurrency`: jobs analyzed at once (default `OFFBEAT_WORKER_CONCURRENCY`).
    """
    preflight(get_settings())  # a worker that cannot analyze must not take jobs: it does not start
    worker = Worker(get_settings(), analyze_job, concurrency=concurrency, log=get_run_logger())
    with stop_signals(worker.request_stop):
        answered = worker.run()
    return {"worker": worker.queue.worker_id, "results_published": answered}
