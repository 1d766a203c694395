"""Delivery against the machine's real Redis (own database and queue names, cleaned up; skipped when Redis does
not answer, failed under CI): a poison message is answered and never kills the job thread; a message whose
deliveries keep ending unanswered is dead-lettered after `max_delivery_attempts`, listed and requeued by
`offbeat dead-letters`.

The worker runs in process (the class the listener flow runs) with a stand-in analysis: these tests are about
delivery, not analysis. A worker dying mid-job is played by a queue handle that takes the message and then
stops renewing its lease (a process dying is the one fault a thread cannot cause).
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from offbeat.errors import loggable
from offbeat.service.dead_letters import DeadLetter
from offbeat.service.transport import WorkerQueue
from offbeat.service.worker import Analyze, Worker
from offbeat.settings import Settings, get_settings

from .conftest import REDIS_URL

OFFBEAT = str(Path(sys.executable).with_name("offbeat"))


@pytest.fixture
def queue_settings(settings: Settings, redis_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    tag = uuid.uuid4().hex[:8]
    env = {
        "OFFBEAT_REDIS_URL": REDIS_URL,
        "OFFBEAT_QUEUE_NAME": f"test-jobs-{tag}",
        "OFFBEAT_RESULTS_QUEUE_NAME": f"test-results-{tag}",
        "OFFBEAT_WORKER_LEASE_SEC": "1",
        "OFFBEAT_REDIS_RETRY_MAX_SEC": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield get_settings()
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"test-*-{tag}*"):
        client.delete(key)
    get_settings.cache_clear()


def stand_in(job: Any) -> dict[str, Any]:
    return {"job_id": job.job_id, "status": "completed", "results": {}, "engine": {}}


class Running:
    """A Worker on its own thread, stopped (and joined) on exit even when the test fails."""

    def __init__(self, settings: Settings, analyze: Analyze = stand_in, log: logging.Logger | None = None) -> None:
        self.worker = Worker(settings, analyze, log=log)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self) -> Worker:
        self.thread.start()
        return self.worker

    def __exit__(self, *exc: object) -> None:
        self.worker.request_stop()
        self.thread.join(timeout=120)
        assert not self.thread.is_alive()


def results(client: redis.Redis, settings: Settings, count: int, timeout: float = 120) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(found) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(found)} of {count} results: {found}"
        item = client.brpop([settings.results_queue_name], timeout=max(1, min(left, 5)))
        if item is not None:
            found.append(json.loads(item[1]))
    return found


def processing_left(client: redis.Redis, settings: Settings) -> int:
    return sum(int(client.llen(k)) for k in client.scan_iter(f"{settings.queue_name}:processing:*"))


def test_a_poison_message_is_answered_and_the_worker_goes_on(queue_settings: Settings) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    q = queue_settings.queue_name
    client.lpush(q, "[" * 3000 + "]" * 3000)  # RecursionError in the JSON parser
    client.lpush(q, json.dumps({"job_id": 4, "relative_path": "[" * 3000}))
    client.lpush(q, b'{"job_id": 5, "relative_path": "x.wav", "pad": "' + b"x" * 2_000_000 + b'"}')
    client.lpush(
        q,
        json.dumps(
            {
                "job_id": 6,
                "relative_path": "a.wav",
                "cue_tracks": [{"title": str(n), "start_time_sec": n} for n in range(3000)],
            }
        ),
    )
    client.lpush(q, json.dumps({"job_id": 7, "relative_path": "a.wav"}))
    with Running(queue_settings):
        got = results(client, queue_settings, 5)
    assert [r["job_id"] for r in got] == [-1, 4, 5, 6, 7]
    assert [r.get("error_code") for r in got] == ["invalid_job", None, "invalid_job", "invalid_job", None]
    assert "1000" in got[3]["error"] and "bytes" in got[2]["error"]
    assert all(len(json.dumps(r)) < 2000 for r in got)
    assert processing_left(client, queue_settings) == 0 and client.llen(q) == 0


def ghost_delivery(settings: Settings, name: str) -> None:
    """A worker that takes the next message, counts the delivery like a worker does, and dies (stops renewing)."""
    ghost = WorkerQueue(settings, name)
    ghost.renew()
    delivery = ghost.take(timeout=5)
    assert delivery is not None
    ghost.attempt(delivery)


@pytest.mark.slow  # `offbeat` in processes of its own
def test_a_message_that_never_gets_answered_is_dead_lettered_then_requeued(queue_settings: Settings) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    q = queue_settings.queue_name
    message = json.dumps({"job_id": 21, "relative_path": "kills-workers.wav"})
    client.lpush(q, message)
    for n in range(queue_settings.max_delivery_attempts):  # three workers die holding it ...
        ghost_delivery(queue_settings, f"ghost-{n}")
        time.sleep(queue_settings.worker_lease_sec * 1.5)  # ... and their leases lapse
        recovered = WorkerQueue(queue_settings, "recoverer").recover()
        assert recovered.get(f"ghost-{n}") == 1
    with Running(queue_settings):  # the fourth delivery is not analyzed: answered and parked
        (dead,) = results(client, queue_settings, 1)
    assert dead["job_id"] == 21 and dead["error_code"] == "too_many_attempts" and dead["retryable"] is False
    assert client.lrange(f"{q}:dead", 0, -1) == [message.encode()]
    assert processing_left(client, queue_settings) == 0 and client.llen(q) == 0

    env = {**os.environ}
    listed = subprocess.run([OFFBEAT, "dead-letters", "ls"], capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0 and listed.stdout.startswith("job 21\t") and "kills-workers.wav" in listed.stdout
    requeued = subprocess.run(
        [OFFBEAT, "dead-letters", "requeue", "--job-id", "21"], capture_output=True, text=True, env=env, timeout=120
    )
    assert requeued.returncode == 0 and "1 dead letter(s) requeued" in requeued.stdout
    assert client.llen(f"{q}:dead") == 0 and client.lrange(q, 0, -1) == [message.encode()]
    with Running(queue_settings):  # a fresh count: analyzed this time
        (again,) = results(client, queue_settings, 1)
    assert again["job_id"] == 21 and again["status"] == "completed"
    assert not list(client.scan_iter(f"{q}:attempts:*"))  # answered: its count is forgotten


def test_a_graceful_hand_back_does_not_count_as_an_attempt(queue_settings: Settings) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    q = queue_settings.queue_name
    client.lpush(q, json.dumps({"job_id": 22, "relative_path": "a.wav"}))
    handle = WorkerQueue(queue_settings, "polite")
    handle.renew()
    delivery = handle.take(timeout=5)
    assert delivery is not None and handle.attempt(delivery) == 1
    assert handle.retire([]) == 1
    assert not list(client.scan_iter(f"{q}:attempts:*"))


FORGED = "FORGED job 1: completed result published"


def test_producer_text_is_escaped_in_the_worker_log(queue_settings: Settings) -> None:
    """A newline in a job's path (or in a message quoting it) must not start a log line of the producer's choosing:
    the analyzed path, a refusal quoting the path and an internal error quoting it are all logged escaped."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger(f"offbeat.test.forging.{uuid.uuid4().hex[:8]}")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

    def analyze(job: Any) -> dict[str, Any]:
        if job.relative_path.startswith("raise"):
            raise ValueError(f"cannot open {job.relative_path}")
        return stand_in(job)

    client = redis.Redis.from_url(REDIS_URL)
    q = queue_settings.queue_name
    client.lpush(q, json.dumps({"job_id": 901, "relative_path": f"sets/a.wav\n{FORGED}\r\x1b[2K"}))
    client.lpush(q, json.dumps({"job_id": 902, "relative_path": f"a\ud800.wav\n{FORGED}"}))  # refused, path quoted
    client.lpush(q, json.dumps({"job_id": 903, "relative_path": f"raise\n{FORGED}"}))  # internal error quoting it
    with Running(queue_settings, analyze, log):
        got = results(client, queue_settings, 3)
    assert [(r["job_id"], r["status"], r.get("error_code")) for r in got] == [
        (901, "completed", None),
        (902, "failed", "invalid_path"),
        (903, "failed", "internal"),
    ]
    text = stream.getvalue()
    lines = text.splitlines()
    assert not [line for line in lines if line.startswith(("FORGED", "INFO FORGED", "ERROR FORGED"))], text
    assert all("\r" not in line and "\x1b" not in line for line in lines), text
    assert f"INFO job 901: analyzing sets/a.wav\\n{FORGED}\\r\\x1b[2K" in lines, text
    refused = [line for line in lines if line.startswith("ERROR job 902 refused: [invalid_path]")]
    assert len(refused) == 1 and f".wav\\n{FORGED}" in refused[0], text
    assert any(line.startswith("ValueError: cannot open raise\\n" + FORGED) for line in lines), text


def test_loggable_escapes_what_is_not_printable_and_nothing_else() -> None:
    assert loggable("a\nb\r\tc\x1b[0m\u2028\u202e\ud800") == "a\\nb\\r\\tc\\x1b[0m\\u2028\\u202e\\ud800"
    assert loggable("back\\slash\\n") == "back\\\\slash\\\\n"  # a sent backslash never reads as an escape
    assert loggable("Café · 東京 😀 'x' \"y\"") == "Café · 東京 😀 'x' \"y\""
    assert loggable("\n" * 500).startswith("\\n" * 200 + "... (300 more characters)")
    listing = DeadLetter(f"not json\n{FORGED}".encode(), -1).summary()
    assert "\n" not in listing and listing.endswith(f"not json\\n{FORGED}")
