"""The Redis worker: takes jobs reliably, has each analyzed, publishes exactly one result per job.

It knows nothing of Prefect: the listener flow (`flows/listen.py`) hands it the callable that runs one
analysis flow per job, with the job parsed once here. Redis itself is reached only through
`offbeat.service.transport.WorkerQueue`; completed answers are kept in the job ledger (`offbeat.storage.ledger`).

Threads: the caller's thread takes jobs and recovers those of gone workers; one thread per running job
(at most `concurrency`); one heartbeat thread renews the lease. Every Redis call that fails because
Redis is away is retried with exponential backoff, so a restart or a network blip only pauses the work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from offbeat.contract import FailedResult, Job, dump_result, job_id_of, parse_job
from offbeat.errors import AnalysisError, ErrorCode, bounded, bounded_traceback, loggable
from offbeat.service.progress import final_record
from offbeat.service.transport import Delivery, RedisUnavailable, WorkerQueue, redis_origin
from offbeat.settings import Settings
from offbeat.storage import ArtifactStore, JobLedger, open_store

Analyze = Callable[[Job], dict[str, Any]]
T = TypeVar("T")


class _Abandoned(Exception):
    """The worker is leaving now: the job stays in the processing list and is handed back."""


class Worker:
    """Serve the job queue until `request_stop`: the first request stops taking jobs and lets the running
    ones finish (up to `shutdown_grace_sec`), a second one hands them back at once."""

    def __init__(
        self,
        settings: Settings,
        analyze: Analyze,
        *,
        concurrency: int | None = None,
        log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        store: ArtifactStore | None = None,
    ) -> None:
        self.settings = settings
        self.analyze = analyze
        self.concurrency = concurrency or settings.worker_concurrency
        self.log = log or logging.getLogger("offbeat.worker")
        self._store = store or open_store(settings)
        self.queue = WorkerQueue(settings)
        self.stopping = threading.Event()  # take no more jobs
        self.leaving = threading.Event()  # hand running jobs back now
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._running: dict[threading.Thread, int | None] = {}  # job thread -> job id once parsed
        self._guard = threading.Lock()
        self.answered = 0
        self._heartbeat_thread: threading.Thread | None = None

    @property
    def ledger(self) -> JobLedger:
        """The job ledger, on a fresh store handle when the store folder was deleted under this worker."""
        if not self._store.alive():
            self._store = open_store(self.settings)
        return JobLedger(self._store)

    # -- control ---------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        if self.stopping.is_set():
            self.log.warning("second stop request: handing running jobs back to the queue now")
            self.leaving.set()
        else:
            self.log.info("stop requested: taking no more jobs, letting running jobs finish")
        self.stopping.set()

    def run(self) -> int:
        """Serve until stopped; returns how many results this worker published."""
        try:
            self._register("register")
        except _Abandoned:
            return 0
        self.log.info(
            "worker %s serving %s on Redis %s (results to %s), %d job(s) at a time",
            self.queue.worker_id,
            self.queue.jobs,
            redis_origin(self.settings),
            self.queue.results,
            self.concurrency,
        )
        self._heartbeat_thread = threading.Thread(target=self._heartbeat, name="offbeat-heartbeat", daemon=True)
        self._heartbeat_thread.start()
        next_recovery = 0.0
        while not self.stopping.is_set():
            try:
                if time.monotonic() >= next_recovery:
                    self._recover()
                    next_recovery = time.monotonic() + self.settings.worker_lease_sec / 2
                if not self._slots.acquire(timeout=1.0):
                    continue
                try:
                    delivery = self._take()
                except _Abandoned:
                    self._slots.release()
                    raise
                if delivery is None:
                    self._slots.release()
                    continue
                thread = threading.Thread(target=self._serve, args=(delivery,), name="offbeat-job", daemon=True)
                with self._guard:
                    self._running[thread] = None
                thread.start()
            except _Abandoned:
                break
        self._shut_down()
        return self.answered

    def _register(self, what: str) -> None:
        if self._retrying(self.queue.renew, what, until=self.stopping):
            self.log.warning("Redis lost its data since the last renewal (restarted without persistence)")

    def _take(self) -> Delivery | None:
        """The next job, or None (no job within a second, or Redis was away and is back now)."""
        try:
            return self.queue.take(timeout=1.0)
        except RedisUnavailable as exc:
            self.log.warning("%s (taking jobs)", exc)
            self._register("reconnect")
            return None

    def _recover(self) -> None:
        for worker, count in self._retrying(self.queue.recover, "recover", until=self.stopping).items():
            if count:
                self.log.warning("worker %s is gone (lease expired): %d job(s) back in the queue", worker, count)

    def _shut_down(self) -> None:
        deadline = time.monotonic() + self.settings.shutdown_grace_sec
        while self._jobs_running() and not self.leaving.is_set() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.leaving.set()
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join(timeout=30)  # a renewal in flight must not re-register after retiring
        with self._guard:
            job_ids = [job_id for job_id in self._running.values() if job_id is not None]
        try:
            handed_back = self.queue.retire(job_ids)
        except RedisUnavailable as exc:
            self.log.error("%s; jobs still held return to the queue when this worker's lease expires", exc)
            return
        if handed_back:
            self.log.warning("handed %d unfinished job(s) back to the queue", handed_back)
        self.log.info("worker %s stopped after publishing %d result(s)", self.queue.worker_id, self.answered)

    def _jobs_running(self) -> bool:
        with self._guard:
            self._running = {t: j for t, j in self._running.items() if t.is_alive()}
            return bool(self._running)

    # -- Redis, patiently ------------------------------------------------------------------------------

    def _retrying(self, operation: Callable[[], T], what: str, until: threading.Event | None = None) -> T:
        """Run a Redis operation until it succeeds, waiting 0.25 s, 0.5 s, ... up to `redis_retry_max_sec`
        between attempts; gives up (`_Abandoned`) only once `until` (default: leaving) is set."""
        until = until or self.leaving
        delay = 0.0
        while True:
            try:
                result = operation()
                if delay:
                    self.log.info("Redis is back (%s)", what)
                return result
            except RedisUnavailable as exc:
                delay = min(self.settings.redis_retry_max_sec, max(0.25, delay * 2))
                self.log.warning("%s (%s); retrying in %.2f s", exc, what, delay)
                if until.wait(delay):
                    raise _Abandoned from exc

    def _heartbeat(self) -> None:
        interval = self.settings.worker_lease_sec / 3
        while not self.leaving.wait(interval):
            with self._guard:
                job_ids = [job_id for job_id in self._running.values() if job_id is not None]
            try:
                if self.queue.renew(job_ids):
                    self.log.warning("Redis lost its data (restarted without persistence): re-registered")
            except RedisUnavailable as exc:
                self.log.warning("%s (lease renewal)", exc)

    # -- one job ---------------------------------------------------------------------------------------

    def _serve(self, delivery: Delivery) -> None:
        try:
            self._answer(delivery)
        except _Abandoned:
            self.log.info("leaving: the job stays queued for another worker")
            return  # still listed as running, so retiring releases its lock
        except Exception as exc:  # a bug here must not leave the message held, unanswered, for ever
            self.log.error("job thread failed: %s", bounded_traceback(exc))
            self._answer_fault(delivery, exc)
        finally:
            self._slots.release()
        with self._guard:
            self._running.pop(threading.current_thread(), None)

    def _answer(self, delivery: Delivery) -> None:
        started = time.time()
        attempts = self._retrying(lambda: self.queue.attempt(delivery), "count the delivery")
        limit = self.settings.max_delivery_attempts
        if attempts > limit:
            self._dead_letter(delivery, attempts - 1)
            return
        try:
            job = parse_job(delivery.raw, max_bytes=self.settings.max_message_bytes, max_cues=self.settings.max_cues)
        except Exception as exc:  # parse_job raises AnalysisError only; anything else is the message's fault too
            job_id = job_id_of(delivery.raw)
            error = exc if isinstance(exc, AnalysisError) else AnalysisError(ErrorCode.INVALID_JOB, bounded(exc))
            self.log.error("job %s refused: [%s] %s", job_id, error.code, loggable(error.message))
            self._publish(delivery, job_id, dump_result(FailedResult.from_error(job_id, error)), locked=False)
            return
        with self._guard:
            self._running[threading.current_thread()] = job.job_id
        self._claim(job.job_id)
        try:
            document = self._from_ledger(job) or self._analyze(job)
        except Exception as exc:  # a fault outside the stages: still one failed result, never a lost job
            self.log.error("job %d: internal error: %s", job.job_id, bounded_traceback(exc))
            document = dump_result(FailedResult.from_error(job.job_id, exc, stage="analysis"))
        self._publish(delivery, job.job_id, document, locked=True, started=started)

    def _from_ledger(self, job: Job) -> dict[str, Any] | None:
        """The stored result of the same job completed before, if the ledger has it."""
        try:
            record = self.ledger.answered(job.job_id)
        except Exception as exc:  # an unreadable ledger costs a recomputation, nothing more
            self.log.warning("job ledger unreadable (%s): analyzing job %d again", loggable(exc), job.job_id)
            return None
        if record is None or record["job"] != job.model_dump_json():
            return None
        self.log.info("job %d was completed before: answered from the job ledger", job.job_id)
        return record["result"]  # type: ignore[no-any-return]

    def _claim(self, job_id: int) -> None:
        """Wait while another live worker analyzes the same job id (a duplicate message)."""
        announced = False
        while not self._retrying(lambda: self.queue.lock(job_id), f"lock job {job_id}"):
            if not announced:
                self.log.info("job %d is being analyzed by another worker; waiting for it", job_id)
                announced = True
            if self.leaving.wait(1.0):
                raise _Abandoned

    def _analyze(self, job: Job) -> dict[str, Any]:
        self.log.info("job %d: analyzing %s", job.job_id, loggable(job.relative_path or job.file_path))
        document = self.analyze(job)
        if not isinstance(document, dict) or "status" not in document:
            error = AnalysisError(ErrorCode.INTERNAL, "the analysis returned no result", retryable=True)
            return dump_result(FailedResult.from_error(job.job_id, error))
        if document["status"] == "completed":
            try:
                self.ledger.record(job.job_id, job.model_dump_json(), document)
            except Exception as exc:
                self.log.warning("job %d: not recorded in the job ledger (%s)", job.job_id, loggable(exc))
        return document

    def _dead_letter(self, delivery: Delivery, attempts: int) -> None:
        """Answer a message that ended `attempts` deliveries without an answer and park it in the dead letters."""
        job_id = job_id_of(delivery.raw)
        error = AnalysisError(
            ErrorCode.TOO_MANY_ATTEMPTS,
            f"the job was delivered {attempts} time(s) and never answered (each time its worker ended); "
            f"it is in the dead-letter list {self.queue.dead} (`offbeat dead-letters requeue` retries it)",
            stage="intake",
        )
        self.log.error("job %s: [%s] %s", job_id, error.code, error.message)
        self._publish(delivery, job_id, dump_result(FailedResult.from_error(job_id, error)), locked=False, dead=True)

    def _answer_fault(self, delivery: Delivery, exc: Exception) -> None:
        """One failed result for a job whose thread failed outside the analysis (the worker's own fault)."""
        job_id = job_id_of(delivery.raw)
        try:
            document = dump_result(FailedResult.from_error(job_id, exc, stage="worker"))
            self._publish(delivery, job_id, document, locked=False)
        except _Abandoned:
            pass
        except Exception as again:  # the message stays held; the worker's retirement hands it back
            self.log.error("job %s: no failed result could be published: %s", job_id, loggable(again))

    def _publish(
        self,
        delivery: Delivery,
        job_id: int,
        document: dict[str, Any],
        *,
        locked: bool,
        dead: bool = False,
        started: float | None = None,
    ) -> None:
        """Publish the result, and with it the job's final progress record (one for every job id that is known)."""
        progress = None
        if job_id >= 0:
            progress = final_record(job_id, document, self._last_progress(job_id), started or time.time())
        published = self._retrying(
            lambda: self.queue.publish(delivery, job_id, document, locked, dead=dead, progress=progress),
            f"publish job {job_id}",
        )
        if published:
            with self._guard:
                self.answered += 1
            self.log.info("job %s: %s result published", job_id, document.get("status"))
        else:
            self.log.warning("job %s: recovered by another worker meanwhile; this result is not published", job_id)

    def _last_progress(self, job_id: int) -> dict[str, Any] | None:
        """The job's running progress record, if it can be read now (the final one carries its start over)."""
        try:
            record = self.queue.progress(job_id)
        except Exception as exc:  # Redis away, a key the application overwrote: the record is only a nicety
            self.log.debug("job %d: progress record not read (%s)", job_id, exc)
            return None
        return record if isinstance(record, dict) and not record.get("final") else None
