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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prefect import flow, get_run_logger, tags

from offbeat.contract import FailedResult, Job, dump_result
from offbeat.errors import AnalysisError, ErrorCode
from offbeat.flows.analyze import analyze_mix
from offbeat.flows.tasks import store
from offbeat.pipeline.preflight import preflight
from offbeat.service.worker import Worker
from offbeat.settings import get_settings
from offbeat.storage import JobLedger

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
    (its worker died) is run again under the next key, up to WORK_POOL_ATTEMPTS times."""
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
            timeout=None,
            as_subflow=False,
            poll_interval=2,
        )
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
