"""The job ledger: the answer given to each completed job id, so a repeated job is answered without analysis.

Why apart from the artifact store: the store caches stage outputs by content; the ledger remembers what the
engine answered to whom (job id, its exact message, the result document). It keeps its records in the store's
transactional index (`job:<id>`), so one backup or wipe covers both, but nothing else reads those records.
"""

from __future__ import annotations

import time
from typing import Any

from offbeat.storage.store import ArtifactStore


class JobLedger:
    """Completed jobs by id: the job message as received and the result document published for it."""

    def __init__(self, store: ArtifactStore) -> None:
        self._index = store.index

    def answered(self, job_id: int) -> dict[str, Any] | None:
        """The record of a completed job id: {"job": its message, "result": the document, "at": time}."""
        return self._index.get(f"job:{job_id}")  # type: ignore[no-any-return]

    def record(self, job_id: int, job: str, result: dict[str, Any]) -> None:
        """Remember `result` as the answer to `job` (its message, compared verbatim on a repeat)."""
        self._index.set(f"job:{job_id}", {"job": job, "result": result, "at": time.time()})
