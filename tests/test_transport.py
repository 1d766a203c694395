"""The Redis side an operator or the application's developers use: redis-check, push-job, pop-result.

Runs against the machine's real Redis with its own database number and queue names, cleaned up after; skipped when
Redis does not answer (failed under CI).
"""

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from offbeat.redis_client import shown
from offbeat.service.transport import redis_origin
from offbeat.settings import Settings, get_settings

from .audio_files import write_wav
from .conftest import REDIS_URL

OFFBEAT = str(Path(sys.executable).with_name("offbeat"))


@pytest.fixture
def queues(settings: Settings, redis_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """A client of the test database; settings (`get_settings()`) name this test's own queues."""
    tag = uuid.uuid4().hex[:8]
    monkeypatch.setenv("OFFBEAT_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("OFFBEAT_QUEUE_NAME", f"test-jobs-{tag}")
    monkeypatch.setenv("OFFBEAT_RESULTS_QUEUE_NAME", f"test-results-{tag}")
    get_settings.cache_clear()
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    for key in client.scan_iter(f"test-*-{tag}*"):
        client.delete(key)


def with_password(url: str, password: str = "s3cret-pass") -> str:
    """The test Redis's URL with a password: `default:<password>@` where it has none (a Redis without a password
    takes any for its passwordless default user), else the URL as it is, naming its own."""
    if urlsplit(url).password is not None:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://default:{password}@{rest}"


def test_a_shown_url_never_carries_its_password() -> None:
    assert shown("redis://default:hunter2@db.example:6380/3") == "redis://default:***@db.example:6380/3"
    assert shown("rediss://:hunter2@db.example/0?ssl_cert_reqs=none") == "rediss://:***@db.example/0?ssl_cert_reqs=none"
    assert shown("unix:///run/redis.sock?db=2&password=hunter2") == "unix:///run/redis.sock?db=2&password=***"
    assert shown("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    # Without OFFBEAT_REDIS_URL (nor a .env), the line says the URL is only the default.
    default = Settings(_env_file=None)  # type: ignore[call-arg]
    assert redis_origin(default) == "redis://127.0.0.1:6379/0 (the default: OFFBEAT_REDIS_URL is not set)"
    assert redis_origin(Settings(_env_file=None, redis_url="redis://:pw@h/1")) == "redis://:***@h/1"  # type: ignore[call-arg]


def test_the_listener_says_at_start_which_redis_it_serves(queues: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker the `redis-listener` flow runs logs one line at start naming the Redis, its password masked."""
    from offbeat.service.worker import Worker

    url = with_password(REDIS_URL)
    monkeypatch.setenv("OFFBEAT_REDIS_URL", url)
    get_settings.cache_clear()
    said: list[str] = []
    serving = threading.Event()

    class Heard(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())
            if "serving" in said[-1]:
                serving.set()

    log = logging.getLogger(f"offbeat.test-worker-{uuid.uuid4().hex[:8]}")
    log.addHandler(Heard())
    log.setLevel(logging.INFO)

    def analyze(job: Any) -> dict[str, Any]:
        raise AssertionError("no job was pushed")

    worker = Worker(get_settings(), analyze, log=log)
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        assert serving.wait(timeout=120), said
    finally:
        worker.request_stop()
        runner.join(timeout=120)
    (line,) = [message for message in said if "serving" in message]
    password = urlsplit(url).password
    assert f"serving {get_settings().queue_name} on Redis {shown(url)} (results to" in line
    assert password and password not in line and "***" in line and "not set" not in line


def offbeat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OFFBEAT, *args], capture_output=True, text=True, env=dict(os.environ), timeout=600)


@pytest.mark.slow  # `offbeat` in processes of its own
def test_redis_check(queues: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    ok = offbeat("redis-check")
    assert ok.returncode == 0 and ok.stdout.startswith(f"Redis OK at {REDIS_URL}")
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("OFFBEAT_REDIS_URL", f"redis://127.0.0.1:{port}/0")
    down = offbeat("redis-check")
    assert down.returncode == 1 and f"Redis unreachable at redis://127.0.0.1:{port}/0" in down.stderr
    monkeypatch.setenv("OFFBEAT_REDIS_URL", with_password(REDIS_URL))
    masked = offbeat("redis-check")
    assert masked.returncode == 0 and masked.stdout.startswith(f"Redis OK at {shown(with_password(REDIS_URL))}")
    assert urlsplit(with_password(REDIS_URL)).password not in masked.stdout + masked.stderr


@pytest.mark.slow  # `offbeat` in processes of its own
def test_push_job_queues_a_valid_job(queues: redis.Redis, tmp_path: Path) -> None:
    settings = get_settings()
    path = write_wav(settings.shared_mount_path / "sets" / "a.wav", seconds=2.0)
    first, second = offbeat("push-job", str(path)), offbeat("push-job", str(path))
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    jobs = [json.loads(raw) for raw in queues.lrange(settings.queue_name, 0, -1)][::-1]  # oldest first
    assert jobs == [{"job_id": 1, "relative_path": "sets/a.wav"}, {"job_id": 2, "relative_path": "sets/a.wav"}]

    cues = tmp_path / "cues.json"
    cues.write_text(json.dumps([{"title": "Intro", "start_time_sec": 0}, {"title": "B", "start_time_sec": 61.5}]))
    with_cues = offbeat("push-job", str(path), "--job-id", "42", "--cue-file", str(cues))
    assert with_cues.returncode == 0
    job = json.loads(queues.lindex(settings.queue_name, 0))
    assert job["job_id"] == 42 and [c["title"] for c in job["cue_tracks"]] == ["Intro", "B"]

    sheet = tmp_path / "a.cue"
    sheet.write_text('FILE "a.wav" WAVE\n  TRACK 01 AUDIO\n    TITLE "Intro"\n    INDEX 01 00:00:00\n')
    with_sheet = offbeat("push-job", str(path), "--job-id", "43", "--cue-file", str(sheet))
    assert with_sheet.returncode == 0, with_sheet.stderr
    job = json.loads(queues.lindex(settings.queue_name, 0))
    assert job == {"job_id": 43, "relative_path": "sets/a.wav", "cue_sheet": sheet.read_text()}


@pytest.mark.slow  # `offbeat` in processes of its own
@pytest.mark.parametrize("problem", ["outside", "bad-cues", "bad-cue-sheet", "negative-id"])
def test_push_job_refuses_what_the_engine_would_refuse(queues: redis.Redis, tmp_path: Path, problem: str) -> None:
    settings = get_settings()
    inside = write_wav(settings.shared_mount_path / "a.wav", seconds=2.0)
    cues = tmp_path / "cues.json"
    cues.write_text('[{"title": "no start time"}]')
    sheet = tmp_path / "a.cue"
    sheet.write_text("TRACK 01 AUDIO\n  INDEX 01 00:61:00\n")
    args = {
        "outside": [str(write_wav(tmp_path / "elsewhere.wav", seconds=2.0))],
        "bad-cues": [str(inside), "--cue-file", str(cues)],
        "bad-cue-sheet": [str(inside), "--cue-file", str(sheet)],
        "negative-id": [str(inside), "--job-id", "-5"],
    }[problem]
    result = offbeat("push-job", *args)
    assert result.returncode == 1 and result.stderr.startswith("error:")
    assert queues.llen(settings.queue_name) == 0
    # A refused push used up no job id: the next accepted one gets the counter's first.
    accepted = offbeat("push-job", str(inside))
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout)["job_id"] == 1 == json.loads(queues.lindex(settings.queue_name, 0))["job_id"]


@pytest.mark.slow  # `offbeat` in processes of its own
def test_pop_result(queues: redis.Redis) -> None:
    settings = get_settings()
    document = {"job_id": 7, "status": "failed", "error": "file not found: x.mp3", "error_code": "file_not_found"}
    queues.lpush(settings.results_queue_name, json.dumps(document))
    popped = offbeat("pop-result", "--timeout", "2")
    assert popped.returncode == 0 and json.loads(popped.stdout) == document
    empty = offbeat("pop-result", "--timeout", "1")
    assert empty.returncode == 1 and "no result within 1 s" in empty.stderr


def test_a_worker_back_from_a_lapsed_lease_does_not_answer_a_recovered_job(queues: redis.Redis) -> None:
    """Two workers' queues on the real Redis: A takes a job, stalls past its lease, B recovers the job; A's late
    result is dropped (and its lock released), B's is the one result."""
    import time

    from offbeat.service.transport import WorkerQueue

    settings = get_settings().model_copy(update={"worker_lease_sec": 0.5})
    a, b = WorkerQueue(settings, "worker-a"), WorkerQueue(settings, "worker-b")
    a.renew()
    b.renew()
    queues.lpush(settings.queue_name, json.dumps({"job_id": 3, "relative_path": "x.wav"}))
    taken = a.take(timeout=1)
    assert taken is not None and a.lock(3)
    assert b.recover() == {} and not b.lock(3)  # A's lease is live: its job and lock are its own
    time.sleep(0.7)  # A stalls: no renewal
    b.renew()
    assert b.recover() == {"worker-a": 1}
    a.renew()  # A is back ...
    assert not a.publish(taken, 3, {"job_id": 3, "status": "completed"}, locked=True)  # ... and too late
    again = b.take(timeout=1)
    assert again is not None and b.lock(3)
    assert b.publish(again, 3, {"job_id": 3, "status": "completed", "by": "b"}, locked=True)
    results = [json.loads(raw) for raw in queues.lrange(settings.results_queue_name, 0, -1)]
    assert results == [{"job_id": 3, "status": "completed", "by": "b"}]
    assert b.held() == 0 and a.held() == 0 and queues.llen(settings.queue_name) == 0
