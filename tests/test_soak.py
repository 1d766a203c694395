"""Soak: 100 jobs, good and hostile mixed, served by real `offbeat listen` processes on a private `redis-server`
(AOF persistence, own port and folder); half-way one worker is SIGKILLed mid-job (and replaced) and Redis is
shut down and started again on the same port and data folder.

Afterwards: exactly one result per job id (unparseable messages: one `job_id` -1 result each), every hostile
job failed with its documented, non-retryable error code, every good job completed, nothing left in a queue,
a processing list or the dead letters, nothing written outside the mount, and every committed store entry reads
back in full (every chunk's checksum tested).

The good jobs are three short synthesized mixes, each queued under many job ids: after the first analysis of a
file every stage is answered from the store, so the soak costs three cold analyses plus flow overhead.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from offbeat.storage import JobLedger, open_store

from .audio_files import write_samples, write_wav
from .fleet import Fleet
from .processes import free_port, stop, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.program("redis-server")]  # an own Redis, stopped and restarted

DEADLINE_SEC = 900.0  # for every result of the soak, on a loaded machine; the expected time is a few minutes
NON_RETRYABLE = {
    "invalid_job",
    "invalid_path",
    "file_not_found",
    "unsupported_audio",
    "corrupt_audio",
    "audio_too_short",
    "audio_too_long",
    "silent_audio",
    "too_many_attempts",
    "configuration",
}


class AofRedis:
    """An own redis-server with AOF persistence only: a clean shutdown and a start on the same port and folder
    keep every key (queues, processing lists, leases, attempt counts)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir()
        self.port, self.folder = free_port(), folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"]
        self.starts += 1
        log = (self.folder / f"redis-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            ["redis-server", *args, "--dir", str(self.folder)], stdout=log, stderr=subprocess.STDOUT
        )
        client = redis.Redis(port=self.port, socket_timeout=10)
        wait_until(lambda: _loaded(client), 120, "redis-server to start and load its AOF")

    def shutdown(self) -> None:
        """`SHUTDOWN` (no NOSAVE): Redis fsyncs the AOF and exits."""
        assert self.proc is not None
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown"], capture_output=True, timeout=120)
        assert self.proc.wait(timeout=120) == 0

    def close(self) -> None:
        if self.proc is not None:
            stop(self.proc, grace=60)


def _loaded(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
        return False


def _patiently(client: redis.Redis, call: Callable[[redis.Redis], Any], deadline: float) -> Any:
    """A command on the private Redis, retried while it is away (restarting) until `deadline`."""
    while True:
        try:
            return call(client)
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            assert time.monotonic() < deadline, "the private Redis stayed away"
            time.sleep(0.5)


def snapshot(root: Path, skip: set[Path]) -> dict[str, tuple[Any, ...]]:
    """Everything under `root` except `skip` (and the worker logs): kind, size, mtime, content digest."""
    found: dict[str, tuple[Any, ...]] = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d not in skip]
        for name in [*dirs, *files]:
            path = here / name
            if path.parent == root and path.suffix == ".log":
                continue
            info = path.lstat()
            if path.is_symlink():
                found[str(path)] = ("link", os.readlink(path))
            elif path.is_dir():
                found[str(path)] = ("dir", info.st_mtime_ns)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[str(path)] = ("file", info.st_size, info.st_mtime_ns, digest)
    return found


def test_soak_of_a_hundred_mixed_jobs_through_a_worker_kill_and_a_redis_restart(fleet: Fleet, tmp_path: Path) -> None:
    mount = fleet.mount
    queue, results_queue = fleet.settings.queue_name, fleet.settings.results_queue_name

    # -- the files: three good mixes, hostile inputs, a sentinel folder outside the mount -----------------
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = write_wav(outside / "secret.wav", seconds=2.0)
    (outside / "keep.txt").write_text("the sentinel: nothing may change here\n")
    sets = mount / "sets"
    sets.mkdir()
    good = [write_wav(sets / f"good-{n}.wav", seconds=2.0 + 0.5 * n, lead=0.5, tail=0.25).name for n in range(3)]
    durations = {name: 2.0 + 0.5 * n + 0.75 for n, name in enumerate(good)}
    (sets / "link.wav").symlink_to(secret)
    (sets / "out").symlink_to(outside)  # a symlinked folder leading out
    (sets / "notes.txt").write_text("not audio at all\n" * 50)
    (sets / "empty.wav").write_bytes(b"")
    (sets / "folder.wav").mkdir()
    write_wav(sets / "short.wav", seconds=0.4, lead=0.0, tail=0.0)
    sr = 44100
    write_samples(sets / "silent.wav", np.zeros((3 * sr, 2), np.float32), sr)
    noisy = (0.1 * np.random.default_rng(0).standard_normal((3 * sr, 2))).astype(np.float32)
    noisy[sr : sr + 5] = np.nan
    write_samples(sets / "nan.wav", noisy, sr, subtype="FLOAT")

    # -- the 100 messages ---------------------------------------------------------------------------------
    base = 9_000_000 + uuid.uuid4().int % 10**5 * 1000  # unique run names in the shared Prefect API
    ids = iter(range(base, base + 1000))
    unparseable: list[str | bytes] = [
        "this is not json",
        "[1, 2, 3]",
        "[" * 3000 + "]" * 3000,  # nested-bracket poison: RecursionError in the parser
        "{" * 3000,
        '{"job_id": 5, "relative_path": ',
        b"\xff\xfe\x00\x01 not utf-8",
        "null",
        json.dumps({"relative_path": f"sets/{good[0]}"}),  # no id
        json.dumps({"job_id": "7", "relative_path": f"sets/{good[0]}"}),
        json.dumps({"job_id": -3, "relative_path": f"sets/{good[0]}"}),
        json.dumps({"job_id": 2**80, "relative_path": f"sets/{good[0]}"}),
        json.dumps({"job_id": True, "relative_path": f"sets/{good[0]}"}),
    ]
    hostile_kinds: list[tuple[dict[str, Any], str]] = [  # (job without its id, expected error code)
        ({"relative_path": 5}, "invalid_job"),
        ({"relative_path": f"sets/{good[0]}", "cue_tracks": "nope"}, "invalid_job"),
        ({"relative_path": f"sets/{good[0]}", "file_path": str(mount / "sets" / good[0])}, "invalid_job"),
        ({"relative_path": "../outside/secret.wav"}, "invalid_path"),
        ({"relative_path": "sets/../../outside/secret.wav"}, "invalid_path"),
        ({"relative_path": str(secret)}, "invalid_path"),
        ({"file_path": str(secret)}, "invalid_path"),
        ({"relative_path": "sets/link.wav"}, "invalid_path"),
        ({"relative_path": "sets/out/secret.wav"}, "invalid_path"),
        ({"relative_path": "sets/folder.wav"}, "invalid_path"),
        ({"relative_path": "sets"}, "invalid_path"),
        ({"relative_path": "[" * 3000}, "invalid_path"),  # nested brackets as a path: over the path limit
        ({"relative_path": "sets/missing.wav"}, "file_not_found"),
        ({"relative_path": "sets/notes.txt"}, "unsupported_audio"),
        ({"relative_path": "sets/empty.wav"}, "unsupported_audio"),
        ({"relative_path": "sets/silent.wav"}, "silent_audio"),
        ({"relative_path": "sets/nan.wav"}, "corrupt_audio"),
        ({"relative_path": "sets/short.wav"}, "audio_too_short"),
    ]
    hostile: dict[int, tuple[str, str]] = {}  # job id -> (message, expected code)
    for n in range(40):
        body, code = hostile_kinds[n % len(hostile_kinds)]
        job_id = next(ids)
        hostile[job_id] = (json.dumps({"job_id": job_id, **body}), code)
    expected_good: dict[int, str] = {}  # job id -> file name
    good_messages: list[str] = []
    for n in range(48):
        job_id, name = next(ids), good[n % len(good)]
        job: dict[str, Any] = {"job_id": job_id, "relative_path": f"sets/{name}"}
        if n % 8 == 5:  # a cue hint now and then: segmentation and the tracks are recomputed, the rest read
            job["cue_tracks"] = [{"title": "Only", "start_time_sec": 0}]
        expected_good[job_id] = name
        good_messages.append(json.dumps(job))
    messages: list[str | bytes] = [*unparseable, *(m for m, _ in hostile.values()), *good_messages]
    assert len(messages) == 100
    random.Random(7).shuffle(messages)

    skip = {mount, Path(fleet.settings.artifact_store), tmp_path / "cwd", tmp_path / "redis"}
    before = snapshot(tmp_path, skip)

    # -- the soak -----------------------------------------------------------------------------------------
    server = AofRedis(tmp_path / "redis")
    shared_client = fleet.client
    found: list[dict[str, Any]] = []
    try:
        server.start()
        client = redis.Redis(port=server.port, socket_timeout=30)  # above the BRPOP waits
        fleet.client = client
        fleet.env.update(OFFBEAT_REDIS_URL=f"redis://127.0.0.1:{server.port}/0", OFFBEAT_WORKER_LEASE_SEC="3")
        for message in messages:
            client.lpush(queue, message)
        workers = {"a": fleet.start("a"), "b": fleet.start("b")}
        deadline = time.monotonic() + DEADLINE_SEC

        def collect(count: int) -> None:
            while len(found) < count:
                assert time.monotonic() < deadline, f"only {len(found)} of 100 results in {DEADLINE_SEC} s"
                item = _patiently(client, lambda c: c.brpop([results_queue], timeout=5), deadline)
                if item is not None:
                    found.append(json.loads(item[1]))

        def holding_a_good_job() -> tuple[str, subprocess.Popen[bytes]] | None:
            for worker in fleet.registered():
                proc = next((p for p in fleet.workers if f":{p.pid}:" in worker), None)
                held = client.lrange(f"{queue}:processing:{worker}", 0, -1)
                if proc is not None and any(m.decode(errors="replace") in good_messages for m in held):
                    return worker, proc
            return None

        # SIGKILL a worker while it holds a good job (mid-analysis or mid-flow), then start a replacement.
        collect(25)
        seen: list[tuple[str, subprocess.Popen[bytes]] | None] = []
        wait_until(lambda: seen.append(holding_a_good_job()) or seen[-1], 300, "a worker to hold a good job")
        victim = seen[-1]
        assert victim is not None
        killed_id, killed = victim
        killed.kill()
        killed.wait()
        fleet.workers.remove(killed)
        workers["c"] = fleet.start("c")
        killed_name = next(name for name, proc in workers.items() if proc is killed)

        # Redis shuts down (AOF fsynced) and starts again on the same port and folder, mid-soak.
        collect(60)
        epoch = client.get(f"{queue}:epoch")
        live = [name for name, proc in workers.items() if proc is not killed]
        missed = "(lease renewal)"  # a heartbeat (every third of the lease) that found Redis away
        noticed = {name: fleet.log(name).count(missed) for name in live}
        server.shutdown()
        # Down until every live worker has missed four renewals in a row: by then every lease and job lock in
        # the AOF has expired, so the first worker back may recover the jobs the others are still analyzing.
        wait_until(
            lambda: all(fleet.log(name).count(missed) >= noticed[name] + 4 for name in live),
            180,
            "every worker's lease to lapse while Redis is away",
        )
        server.start()
        assert _patiently(client, lambda c: c.get(f"{queue}:epoch"), deadline) == epoch  # the data came back
        collect(100)
        answered_at = len(found)

        # Graceful stops: anything a worker still had to publish (a duplicate) is out once it has exited.
        for name, proc in workers.items():
            if proc is not killed:
                assert fleet.stop(proc) == 0, fleet.log(name)[-3000:]
        extra = [json.loads(raw) for raw in reversed(client.lrange(results_queue, 0, -1))]
        found += extra

        # -- delivery: one result each, nothing held, nothing parked -----------------------------------
        assert answered_at == 100 and extra == [], f"duplicate results: {extra}"
        job_ids = [r["job_id"] for r in found]
        assert job_ids.count(-1) == len(unparseable)
        assert sorted(j for j in job_ids if j != -1) == sorted([*hostile, *expected_good])
        assert client.llen(queue) == 0 and client.llen(f"{queue}:dead") == 0
        assert sum(int(client.llen(k)) for k in client.scan_iter(f"{queue}:processing:*")) == 0
        assert list(client.scan_iter(f"{queue}:attempts:*")) == []  # every delivery answered
        assert fleet.registered() == set()  # the killed worker was recovered, the others retired
        logs = "".join(fleet.log(name) for name in workers if name != killed_name)
        assert f"worker {killed_id} is gone (lease expired)" in logs
        assert "Redis is back" in logs and server.starts == 2
    finally:
        fleet.client = shared_client  # not left pointing at the private server, stopped below
        for proc in list(fleet.workers):
            stop(proc, grace=30, sig=signal.SIGKILL)
        fleet.workers.clear()
        server.close()

    # -- each result -------------------------------------------------------------------------------------
    by_id = {r["job_id"]: r for r in found}
    for result in (r for r in found if r["job_id"] == -1):
        assert result["status"] == "failed" and result["error_code"] == "invalid_job", result
        assert result["retryable"] is False and len(json.dumps(result)) < 3000
    for job_id, (message, code) in hostile.items():
        result = by_id[job_id]
        assert result["status"] == "failed", (message[:200], result)
        assert result["error_code"] in NON_RETRYABLE and result["retryable"] is False, (message[:200], result)
        assert result["error_code"] == code, (message[:200], result)
        assert result["error"] and "Traceback" not in result["error"] and len(json.dumps(result)) < 3000
    for job_id, name in expected_good.items():
        result = by_id[job_id]
        assert result["status"] == "completed", result
        glob = result["results"]["global"]
        assert glob["duration_sec"] == pytest.approx(durations[name], abs=0.01)
        assert glob["stems"]["vocals"] == f"sets/{Path(name).stem}.stems/vocals.wav"
        assert (mount / glob["stems"]["vocals"]).is_file()

    # -- nothing outside the mount -----------------------------------------------------------------------
    assert snapshot(tmp_path, skip) == before  # the sentinel folder, the exports folder: untouched
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt", "secret.wav"]
    strays = [p for p in tmp_path.rglob("*.stems") if not p.is_relative_to(mount)]
    assert strays == []
    assert sorted(p.name for p in sets.glob("*.stems")) == sorted(f"{Path(n).stem}.stems" for n in good)

    # -- the store: every committed entry reads back in full, the ledger answers every good job -----------
    store = open_store(fleet.settings)
    try:
        records = list(store.entries())
        assert records, "the store holds no entry"
        for record in records:
            entry = store.get(record["key"])
            assert entry is not None, f"entry {record['key']} ({record['stage']}) does not open"
            for name, (shape, dtype) in entry.array_specs.items():
                data = np.asarray(entry[name][...])  # every chunk read: a damaged one fails its CRC32C
                assert list(data.shape) == shape and str(data.dtype) == dtype, (record["stage"], name)
            assert store.verify(record["key"]), (record["stage"], record["key"])
        sources = {r.get("source") for r in records}
        assert {store.source_digest(sets / name) for name in good} <= sources  # every good mix is stored
        ledger = JobLedger(store)
        for job_id in expected_good:
            answer = ledger.answered(job_id)
            assert answer is not None and answer["result"]["status"] == "completed", job_id
        assert all(ledger.answered(job_id) is None for job_id in hostile)
    finally:
        store.close()
