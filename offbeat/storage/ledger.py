"""The job ledger: the answer given to each completed job id, so a repeated job is answered without analysis.

Why apart from the artifact store: the store caches stage outputs by content; the ledger remembers what the
engine answered to whom (job id, its exact message, the result document). It keeps its records in the store's
transactional index (`job:<id>`), so one backup or wipe covers both, but nothing else reads those records.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from offbeat.storage.store import ArtifactStore


class JobLedger:
    """Completed jobs by id: the job message as received and the result document published for it."""

    def __init__(self, store: ArtifactStore) -> None:
        self._store, self._index = store, store.index

    def answered(self, job_id: int) -> dict[str, Any] | None:
        """The record of a completed job id: {"job": its message, "result": the document, "at": time}."""
        return self._store.record(f"job:{job_id}")

    def record(self, job_id: int, job: str, result: dict[str, Any]) -> None:
        """Remember `result` as the answer to `job` (its message, compared verbatim on a repeat)."""
        self._index.set(f"job:{job_id}", {"job": job, "result": result, "at": time.time()})

    HANDOVER_SEC = 24 * 3600.0  # a handed-over job not picked up by then is dropped

    def hand_over(self, job: str) -> str:
        """Keep a job message for the analysis run that will take it (`take_over`), and return the short
        reference to pass instead: flow parameters travel through the Prefect API, which refuses large ones
        (a job with thousands of cues), and the UI shows parameters whole."""
        ref = hashlib.blake2b(job.encode(), digest_size=16).hexdigest()
        self._index.set(f"handover:{ref}", job, expire=self.HANDOVER_SEC)
        return ref

    KEEP_SEC = 30 * 24 * 3600.0  # the result of a run started from the UI or `prefect deployment run`

    def deliver(self, run_id: str, result: dict[str, Any], keep_sec: float = HANDOVER_SEC) -> None:
        """Keep the result document of analysis run `run_id` for `keep_sec` (`delivered`): for the listener that
        started it on a work pool (a run on another host returns nothing to its caller but its state), and, for
        `KEEP_SEC`, for a person who started it from the UI or `prefect deployment run` (the flow keeps no Prefect
        result: `offbeat result RUN_ID` reads it here)."""
        self._index.set(f"answer:{run_id}", result, expire=keep_sec)

    def delivered(self, run_id: str) -> dict[str, Any] | None:
        """The result document analysis run `run_id` delivered, or None."""
        return self._store.record(f"answer:{run_id}")  # type: ignore[no-any-return]

    def take_over(self, ref: str) -> str | None:
        """The job message handed over under `ref`, or None when unknown (expired, or never handed over)."""
        return self._store.record(f"handover:{ref}")  # type: ignore[no-any-return]
