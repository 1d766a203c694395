"""The Redis listener flow: serves the job queue, one `analyze-mix` flow run per job.

Each analysis run is named after its job (`job-42`, by the analysis flow's own run-name template) and
tagged `offbeat` and `redis-job`, so the Prefect UI lists them by job. The listener's own run logs what the
worker does (jobs taken, results published, recoveries, Redis outages).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prefect import flow, get_run_logger, tags

from offbeat.contract import Job
from offbeat.flows.analyze import analyze_mix
from offbeat.flows.tasks import store
from offbeat.pipeline.preflight import preflight
from offbeat.service.worker import Worker
from offbeat.settings import get_settings
from offbeat.storage import JobLedger

JOB_TAGS = ("offbeat", "redis-job")


def analyze_job(job: Job) -> dict[str, Any]:
    """Run one analysis flow for a job (parsed once, by the worker) and return its result document. The job
    goes by reference (`JobLedger.hand_over`): a whole job may be too large for a flow parameter."""
    ref = JobLedger(store()).hand_over(job.model_dump_json())
    with tags(*JOB_TAGS):
        state = analyze_mix(job_ref=ref, job_id=job.job_id, return_state=True)
    return state.result(raise_on_failure=False)  # type: ignore[no-any-return]


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
