"""A job's progress in Redis (README.md, "Progress"): records written by `JobProgress` to the machine's Redis and
read by a real subscriber, the writer's behaviour with Redis refusing or silent, and the listener end to end
(a real `offbeat listen` worker: stages in order, monotonic shares, a final record that agrees with the result).
"""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from offbeat.contract import Progress, json_schemas
from offbeat.pipeline import registry
from offbeat.service import transport
from offbeat.service.progress import JobProgress, final_record
from offbeat.settings import Settings

from .audio_files import write_wav
from .fleet import OFFBEAT, Fleet
from .processes import wait_until


class Subscriber:
    """Collects every record published on a queue's progress channel, from a thread of its own."""

    def __init__(self, url: str, queue: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(transport.progress_channel(queue))
        self.records: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message is not None:
                self.records.append(json.loads(message["data"]))

    def of(self, job_id: int) -> list[dict[str, Any]]:
        return [r for r in self.records if r["job_id"] == job_id]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.pubsub.close()
        self.client.close()


@pytest.fixture
def queue_settings(settings: Settings, redis_server: str) -> Iterator[Settings]:
    """Settings with a queue name of this test's own in the tests' Redis; its keys are deleted afterwards."""
    name = f"test-progress-{uuid.uuid4().hex[:8]}"
    yield settings.model_copy(update={"redis_url": redis_server, "queue_name": name, "progress_interval_sec": 0.1})
    client = redis.Redis.from_url(redis_server)
    for key in client.scan_iter(f"{name}*"):
        client.delete(key)
    client.close()


def check_sequence(records: list[dict[str, Any]]) -> None:
    """What every subscriber may rely on: each record valid, newer than the last, the share done and each stage's
    share never going back, finished stages only ever appended to."""
    for record in records:
        Progress.model_validate(record)
    for before, after in itertools.pairwise(records):
        assert after["sequence"] > before["sequence"]
        assert after["fraction"] >= before["fraction"], (before, after)
        assert after["stages_done"][: len(before["stages_done"])] == before["stages_done"], (before, after)
        was = {r["stage"]: r["fraction"] for r in before["running"]}
        for running in after["running"]:
            assert running["fraction"] >= was.get(running["stage"], 0.0), (before, after)
        assert after["started_at"] == before["started_at"]


def test_records_reach_a_subscriber_in_order_and_rate_limited(queue_settings: Settings) -> None:
    subscriber = Subscriber(queue_settings.redis_url, queue_settings.queue_name)
    try:
        progress = JobProgress(queue_settings, 7, ["decode", "trim", "activations", "separate", "track_features"])
        began = time.monotonic()
        for i in range(1, 201):  # far more reports than records: they are coalesced
            progress.started("decode") if i == 1 else progress.advance("decode", i / 200)
            time.sleep(0.002)
        progress.finished("decode", cached=False)
        progress.started("trim")
        progress.finished("trim", cached=True)
        progress.started("activations")
        progress.started("separate")
        for i in range(1, 51):
            progress.advance("activations", i / 50)
            progress.advance("separate", i / 100)
            progress.advance("separate", i / 200)  # going back is ignored
            time.sleep(0.004)
        progress.finished("activations", cached=False)
        progress.finished("separate", cached=False)
        progress.submitted("track_features", 3)
        for _ in range(3):
            progress.started("track_features")
            progress.finished("track_features", cached=False, mapped=True)
        progress.close()
        spent = time.monotonic() - began
        key = transport.progress_key(queue_settings.queue_name, 7)
        client = redis.Redis.from_url(queue_settings.redis_url)
        stored = json.loads(client.get(key))
        ttl = client.pttl(key)
        client.close()
        wait_until(lambda: subscriber.of(7) and subscriber.of(7)[-1] == stored, 30, "the last record to arrive")
    finally:
        subscriber.close()
    records = subscriber.of(7)
    check_sequence(records)
    assert len(records) == progress.written and progress.dropped == 0
    # The interval (0.1 s here) bounds the writes: one at the start, one per interval, one on closing.
    assert 3 <= len(records) <= spent / queue_settings.progress_interval_sec + 2
    last = records[-1]
    assert last["stages_done"] == ["decode", "trim", "activations", "separate", "track_features"]
    assert last["fraction"] == 1.0 and last["running"] == [] and last["state"] == "running" and not last["final"]
    assert 0 < ttl <= transport.PROGRESS_RUNNING_TTL_SEC * 1000
    assert any(r["stage"] == "decode" and 0 < r["stage_fraction"] < 1 for r in records)
    # separate (the costlier of the two running stages) is the one named while both ran
    both = [r for r in records if {"activations", "separate"} <= {x["stage"] for x in r["running"]}]
    assert both and all(r["stage"] == "separate" for r in both)


def test_time_left_follows_the_pace_of_computed_work(queue_settings: Settings) -> None:
    """A stage read from the store counts as done but not as pace: with half the work cached and a quarter
    computed in t seconds, the last quarter takes about t more."""
    progress = JobProgress(queue_settings, 8, ["a", "b", "c", "d"])
    try:
        progress.started("a")
        progress.finished("a", cached=True)
        progress.started("b")
        progress.finished("b", cached=True)
        progress.started("c")
        time.sleep(0.3)
        progress.finished("c", cached=False)
        record = progress.record()
    finally:
        progress.close()
    assert record["fraction"] == 0.75
    assert abs(record["eta_sec"] - record["elapsed_sec"]) <= 0.05 + 0.01  # told to a tenth of a second


class SilentServer:
    """A TCP port that accepts connections (the kernel's backlog) and never answers: a Redis that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"redis://127.0.0.1:{self.sock.getsockname()[1]}/0"


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_an_absent_or_hanging_redis_never_holds_the_analysis(settings: Settings, kind: str) -> None:
    silent = SilentServer() if kind == "silent" else None
    url = silent.url if silent else closed_port_url()
    progress = JobProgress(settings.model_copy(update={"redis_url": url, "progress_interval_sec": 0.05}), 9, ["decode"])
    slowest = 0.0
    for i in range(2000):
        began = time.perf_counter()
        progress.advance("decode", i / 2000)
        slowest = max(slowest, time.perf_counter() - began)
    wait_until(lambda: progress.dropped >= 1, 30, "a failed write")
    began = time.perf_counter()
    progress.close()
    closing = time.perf_counter() - began
    if silent:
        silent.sock.close()
    assert progress.written == 0
    assert slowest < 0.05  # reports never wait for Redis (a write takes up to 0.5 s when it hangs)
    assert closing < 0.3  # Redis failing: no last record is attempted, nothing is waited for


def test_final_record_agrees_with_the_result() -> None:
    schema = json_schemas()["progress"]  # `offbeat schema` documents the record
    assert {"stage", "fraction", "eta_sec", "started_at", "final"} <= set(schema["required"]) | set(
        schema["properties"]
    )
    prior = {"started_at": "2026-01-01T00:00:00.000Z", "stages_done": ["decode"], "fraction": 0.4, "sequence": 12}
    completed = {"job_id": 3, "status": "completed", "engine": {"analysis_id": "abc"}}
    final = Progress.model_validate(final_record(3, completed, prior, time.time()))
    assert (final.state, final.final, final.fraction, final.analysis_id, final.sequence) == (
        "completed",
        True,
        1.0,
        "abc",
        13,
    )
    assert final.started_at == prior["started_at"] and final.stages_done == ["decode"]
    failed = {"job_id": 3, "status": "failed", "error_code": "silent_audio", "stage": "trim"}
    final = Progress.model_validate(final_record(3, failed, None, time.time() - 5))
    assert (final.state, final.error_code, final.stage, final.fraction) == ("failed", "silent_audio", "trim", 0.0)
    assert 4.9 <= final.elapsed_sec < 60


# -- the listener end to end ---------------------------------------------------------------------------


@pytest.mark.slow
def test_listener_publishes_progress_that_agrees_with_the_result(fleet: Fleet) -> None:
    settings = fleet.settings
    (fleet.mount / "sets").mkdir()
    write_wav(fleet.mount / "sets" / "mix.wav", seconds=6.0)
    subscriber = Subscriber(settings.redis_url, settings.queue_name)
    try:
        worker = fleet.start("worker", OFFBEAT_PROGRESS_INTERVAL_SEC="0.05")
        fleet.push({"job_id": 21, "relative_path": "sets/mix.wav"})
        fleet.push({"job_id": 22, "relative_path": "sets/missing.wav"})
        results = {r["job_id"]: r for r in fleet.results(2, timeout=900)}  # a loaded machine: minutes
        wait_until(lambda: len([r for r in subscriber.records if r["final"]]) == 2, 60, "both final records")
        status = subprocess.run([OFFBEAT, "status", "21"], env=fleet.env, capture_output=True, text=True, check=True)
        missing = subprocess.run([OFFBEAT, "status", "23"], env=fleet.env, capture_output=True, text=True)
        assert fleet.stop(worker) == 0
    finally:
        subscriber.close()

    records = subscriber.of(21)
    check_sequence(records)
    final = records[-1]
    assert [r["final"] for r in records] == [False] * (len(records) - 1) + [True]
    assert final["state"] == results[21]["status"] == "completed"
    assert final["analysis_id"] == results[21]["engine"]["analysis_id"] and final["fraction"] == 1.0
    assert json.loads(status.stdout) == final  # `offbeat status` prints the stored record
    assert missing.returncode == 1 and "no progress for job 23" in missing.stderr

    # Every step of the graph finished, each after what it reads and waits for.
    done = final["stages_done"]
    assert sorted(done) == sorted(step.name for step in registry.GRAPH)
    for step in registry.GRAPH:
        assert all(done.index(name) < done.index(step.name) for name in (*step.inputs, *step.after)), done
    assert any(r["running"] for r in records)  # stages were seen running, not only finished

    (failed,) = subscriber.of(22)  # refused before any stage ran: only the final record
    assert failed["final"] and failed["state"] == "failed"
    assert failed["error_code"] == results[22]["error_code"] == "file_not_found"


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_a_job_completes_with_redis_unreachable(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The listener's hand-over (a job by reference, progress on) with nothing listening at the Redis address."""
    from flows.analyze import analyze_mix
    from flows.tasks import store
    from offbeat.settings import get_settings
    from offbeat.storage import JobLedger

    monkeypatch.setenv("OFFBEAT_REDIS_URL", closed_port_url())
    get_settings.cache_clear()
    write_wav(get_settings().shared_mount_path / "mix.wav", seconds=4.0)
    ref = JobLedger(store()).hand_over(json.dumps({"job_id": 31, "relative_path": "mix.wav"}))
    state = analyze_mix(job_ref=ref, job_id=31, return_state=True)
    document = state.result(raise_on_failure=False)
    assert state.is_completed() and document["status"] == "completed" and document["job_id"] == 31
