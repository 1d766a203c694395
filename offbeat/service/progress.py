"""A job's progress for the application (README.md, "Progress"): which stages run, the share done, the time left.

The analysis tells a `JobProgress` what happens (a stage started, reached a fraction, finished); each call only
updates a record in memory. A thread of its own writes the record to Redis (`transport.ProgressChannel`) at most
once per `OFFBEAT_PROGRESS_INTERVAL_SEC`, the latest state each time, and drops what Redis does not take within its
short timeout: a slow or absent Redis costs the analysis nothing. The final record, `final_record`, is written by
the worker in the same step that publishes the result.

The share done weighs each stage by its typical cost (`STAGE_COST`, seconds of a cold 60-minute mix on 2 cores,
the two parallel branches added up): finished stages count whole, running ones by their fraction.
"""

from __future__ import annotations

import logging
import threading
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from offbeat.service.transport import PROGRESS_TIMEOUT_SEC, ProgressChannel
from offbeat.settings import Settings

# Typical seconds per stage on a cold 60-minute mix (bench/perf/analyze.py, 2 cores); a stage not named costs 1.
STAGE_COST: dict[str, float] = {
    "decode": 12.0,
    "trim": 2.0,
    "activations": 86.0,
    "separate": 132.0,
    "envelopes": 4.0,
    "beats": 8.0,
    "drum_beats": 5.0,
    "export_stems": 6.0,
    "description": 1.0,
    "library_plays": 1.0,  # nothing without a library; about 50 s an hour of mix against a few hundred tracks
    "partition": 2.0,
    "segment": 1.0,
    "track_features": 15.0,
    "identify": 1.0,
    "split": 30.0,  # a job's tracks as files (decoding the mix again, encoding FLAC)
}
ETA_MIN_FRACTION = 0.02  # computed work before the time left is estimated from its pace
HEARTBEAT_SEC = 60.0  # a record is written again this often when nothing changes (it expires otherwise)

# The job progress of the analysis running in this context (the flow sets it; its task threads inherit it).
CURRENT: ContextVar[JobProgress | None] = ContextVar("offbeat_job_progress", default=None)

log = logging.getLogger(__name__)


def utc_iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JobProgress:
    """The progress of one job's analysis, written to Redis by a thread of its own until `close`.

    `stages`: the steps of the graph in order. Every method is cheap and never touches the network."""

    def __init__(self, settings: Settings, job_id: int, stages: list[str], *, channel: ProgressChannel | None = None):
        self.job_id = job_id
        self.interval = settings.progress_interval_sec
        self.cost = {name: STAGE_COST.get(name, 1.0) for name in stages}
        self.total = sum(self.cost.values()) or 1.0
        self.began = time.time()
        self._clock = time.monotonic()
        self._guard = threading.Lock()
        self._fraction: dict[str, float] = {}  # running stages' share done
        self._runs: dict[str, tuple[int, int]] = {}  # mapped stage -> (runs finished, runs)
        self._done: list[str] = []
        self._cached_cost = 0.0  # cost of the stages read back from the store: done, but at no pace
        self._sequence = 0
        self._changed = threading.Event()
        self._closed = threading.Event()
        self._channel = channel or ProgressChannel(settings)
        self.written = 0
        self.dropped = 0
        self._writer = threading.Thread(target=self._write_loop, name=f"offbeat-progress-{job_id}", daemon=True)
        self._changed.set()  # the first record says the job started
        self._writer.start()

    # -- what the analysis reports ------------------------------------------------------------------------

    def submitted(self, stage: str, runs: int) -> None:
        """A mapped stage fans out into `runs` runs (one per track)."""
        with self._guard:
            self._runs[stage] = (0, runs)
            if runs == 0 and stage not in self._done:
                self._done.append(stage)
        self._changed.set()

    def started(self, stage: str) -> None:
        with self._guard:
            if stage not in self._done:
                self._fraction.setdefault(stage, 0.0)
        self._changed.set()

    def advance(self, stage: str, fraction: float) -> None:
        """`stage` has done `fraction` of its work (never taken back: a lower value changes nothing)."""
        with self._guard:
            if stage in self._done or stage in self._runs:
                return  # a mapped stage's share is its runs finished
            if fraction > self._fraction.get(stage, 0.0):
                self._fraction[stage] = min(1.0, fraction)
                self._changed.set()

    def finished(self, stage: str, cached: bool, mapped: bool = False) -> None:
        """One run of `stage` finished (`mapped`: one of a mapped stage's runs); `cached`: read from the store."""
        with self._guard:
            if stage in self._done:
                return
            if mapped and stage in self._runs:
                done, runs = self._runs[stage]
                self._runs[stage] = (done + 1, runs)
                if done + 1 < runs:
                    self._fraction[stage] = (done + 1) / runs
                    self._changed.set()
                    return
            self._fraction.pop(stage, None)
            self._done.append(stage)
            if cached:
                self._cached_cost += self.cost.get(stage, 1.0)
        self._changed.set()

    # -- the record ------------------------------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """The current record (`offbeat.contract.Progress`, state running)."""
        with self._guard:
            done = sum(self.cost.get(name, 1.0) for name in self._done)
            running = dict(self._fraction)
            stages_done = list(self._done)
            cached = self._cached_cost
            self._sequence += 1
            sequence = self._sequence
        done += sum(self.cost.get(name, 1.0) * f for name, f in running.items())
        fraction = min(1.0, done / self.total)
        elapsed = time.monotonic() - self._clock
        computed = (done - cached) / self.total
        eta = None
        if computed >= ETA_MIN_FRACTION and elapsed > 0:
            eta = round(max(0.0, (1.0 - fraction) * elapsed / computed), 1)
        stage = max(running, key=lambda name: self.cost.get(name, 1.0) * (1.0 - running[name]), default=None)
        return {
            "job_id": self.job_id,
            "state": "running",
            "final": False,
            "stage": stage,
            "stage_fraction": None if stage is None else round(running[stage], 4),
            "running": [{"stage": name, "fraction": round(f, 4)} for name, f in running.items()],
            "stages_done": stages_done,
            "fraction": round(fraction, 4),
            "eta_sec": eta,
            "started_at": utc_iso(self.began),
            "updated_at": utc_iso(time.time()),
            "elapsed_sec": round(elapsed, 3),
            "sequence": sequence,
        }

    # -- writing ---------------------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        """Write the latest record whenever something changed, at most once per interval; once more on closing
        (unless Redis was failing), so the last running record holds every stage that finished."""
        backoff = 0.0
        last = -float("inf")
        while True:
            self._changed.wait(HEARTBEAT_SEC)
            closing = self._closed.is_set()
            if not closing:
                wait = max(backoff, last + self.interval - time.monotonic())
                closing = wait > 0 and self._closed.wait(wait)
            if closing and backoff:
                return
            self._changed.clear()
            last = time.monotonic()
            try:
                self._channel.write(self.job_id, self.record())
            except Exception as exc:  # Redis away or slow: this record is dropped, the next one may pass
                self.dropped += 1
                if not backoff:
                    log.warning("job %d: progress not written (%s); trying again later", self.job_id, exc)
                backoff = min(30.0, max(1.0, backoff * 2))
            else:
                self.written += 1
                backoff = 0.0
            if closing:
                return

    def close(self) -> None:
        """Write the last running record and stop: nothing of this run follows, so the worker's final record,
        written with the result, stays the last. Waits at most for one write (the channel's timeouts), and not
        at all while Redis is failing."""
        self._closed.set()
        self._changed.set()
        self._writer.join(timeout=2 * PROGRESS_TIMEOUT_SEC + 0.5)
        self._channel.close()


def final_record(job_id: int, document: dict[str, Any], prior: dict[str, Any] | None, started: float) -> dict[str, Any]:
    """The job's last progress record, agreeing with its result document: what the running records said, with
    the result's status, its error_code or analysis_id, and the share done at 1 for a completed job.

    `prior`: the last running record, if any (its start time and stages carry over); `started`: when the worker
    took the job, the start time when there was no running record."""
    now = time.time()
    completed = document.get("status") == "completed"
    began = prior.get("started_at") if prior else None
    started_at = began if isinstance(began, str) else utc_iso(started)
    try:
        elapsed = max(0.0, now - datetime.fromisoformat(started_at.replace("Z", "+00:00")).timestamp())
    except ValueError:
        elapsed = max(0.0, now - started)
    prior = prior or {}
    return {
        "job_id": job_id,
        "state": "completed" if completed else "failed",
        "final": True,
        "stage": None if completed else document.get("stage"),
        "stage_fraction": None,
        "running": [],
        "stages_done": list(prior.get("stages_done") or []),
        "fraction": 1.0 if completed else float(prior.get("fraction") or 0.0),
        "eta_sec": 0.0,
        "started_at": started_at,
        "updated_at": utc_iso(now),
        "elapsed_sec": round(elapsed, 3),
        "sequence": int(prior.get("sequence") or 0) + 1,
        "error_code": None if completed else document.get("error_code"),
        "analysis_id": (document.get("engine") or {}).get("analysis_id") if completed else None,
    }
