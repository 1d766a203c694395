"""A store many processes and hosts share: the index in Redis (or diskcache on one host), each entry computed once.

Runs against the machine's real Redis (conftest's `redis_url`: database 13 like the other Redis tests, under a key
prefix of its own that is deleted afterwards; the Redis cases are skipped when Redis does not answer, failed under
CI). "Hosts" are separate OS processes (spawned, so nothing is inherited) with their own store handle and host
name, sharing the data folder and the index. Waits are upper bounds for a loaded machine; each test goes on as
soon as the event it waits for happens.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from offbeat import synth
from offbeat.pipeline.runner import Run
from offbeat.settings import Settings
from offbeat.storage import ArtifactStore, DiskIndex, ExportRecords, Index, JobLedger, open_index, open_store
from offbeat.storage.lease import once
from offbeat.storage.redis_index import RedisIndex
from offbeat.storage.store import StoreConfig as Config

WAIT = 300.0  # upper bound for anything on a loaded machine
MIX = synth.MixSpec((synth.Section(24, 124.0, 110.0, True),), lead_silence_sec=1.0, tail_silence_sec=0.5)


@pytest.fixture(params=["disk", pytest.param("redis", marks=pytest.mark.redis)])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Index]:
    """Each kind of index; the Redis one (a key prefix of the test's own) only where Redis answers."""
    url = "" if request.param == "disk" else request.getfixturevalue("redis_url")
    handle = open_index(url, tmp_path / "index")
    yield handle
    handle.close()


@contextmanager
def reaped(*procs: BaseProcess) -> Iterator[None]:
    """Processes the test starts are gone when it ends, whatever happened."""
    try:
        yield
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
            if proc.pid is not None:
                proc.join(WAIT)


# -- the index contract, both kinds ----------------------------------------------------------------------


def test_open_index_chooses_by_url(tmp_path: Path, redis_url: str) -> None:
    assert isinstance(open_index("", tmp_path / "index"), DiskIndex)
    shared = open_index(redis_url, tmp_path / "unused")
    assert isinstance(shared, RedisIndex) and shared.prefix.startswith("test-index-")
    assert "prefix" not in shared.url and not (tmp_path / "unused").exists()
    with pytest.raises(ValueError, match="unsupported index URL"):
        open_index("s3://bucket/index", tmp_path / "index")


def test_put_if_absent_conditional_delete_and_names(index: Index) -> None:
    assert index.add("entry:k", {"data": "a", "n": 1}) and not index.add("entry:k", {"data": "b", "n": 2})
    assert index.get("entry:k") == {"data": "a", "n": 1}  # the first commit wins
    assert index.pop_if("entry:k", lambda r: r["data"] == "b") is None and index.get("entry:k") is not None
    assert index.pop_if("entry:k", lambda r: r["data"] == "a") == {"data": "a", "n": 1}
    assert index.get("entry:k") is None and index.pop_if("entry:k", lambda r: True) is None
    for name in ("export:/a/[x]*?.wav", "export:/a/b.wav", "exporter", "entry:z"):
        index.set(name, 1)
    assert sorted(index.names("export:/a/[x]")) == ["export:/a/[x]*?.wav"]  # glob characters are literal
    assert sorted(index.names("export:")) == ["export:/a/[x]*?.wav", "export:/a/b.wav"]
    assert index.delete("entry:z") and not index.delete("entry:z")


def test_expiring_records_and_leases(index: Index) -> None:
    index.set("handover:x", "job", expire=0.2)
    assert index.add("lease:k", "other", expire=0.2) is True
    assert index.take_lease("lease:k", "t1", 5.0) is False
    wait_until(lambda: index.get("handover:x") is None and index.lease_holder("lease:k") is None)
    assert index.take_lease("lease:k", "t1", 5.0) and not index.take_lease("lease:k", "t2", 5.0)
    assert not index.renew_lease("lease:k", "t2", 5.0) and index.renew_lease("lease:k", "t1", 5.0)
    index.drop_lease("lease:k", "t2")  # not the holder: nothing happens
    assert index.lease_holder("lease:k") == "t1"
    index.drop_lease("lease:k", "t1")
    assert index.lease_holder("lease:k") is None and index.take_lease("lease:k", "t2", 5.0)


def wait_until(condition: Any, timeout: float = WAIT) -> None:
    """Poll `condition` until it holds (an upper bound, not an expected time)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_failed_holder_lets_go_and_the_waiter_computes(index: Index) -> None:
    """A holder that fails drops its lease at once (no waiting out the lease); the waiter then computes."""
    waiting, fail, did = threading.Event(), threading.Event(), []
    looks: list[str] = []

    def done() -> bool:
        looks.append(threading.current_thread().name)
        if looks.count("second") == 2:
            waiting.set()  # its first look was before the lease; the second is polling for the commit
        return bool(did)

    def failing() -> None:
        assert fail.wait(WAIT)
        raise RuntimeError("stage crashed")

    errors: list[BaseException] = []
    first = threading.Thread(target=_catch, args=(errors, lambda: once(index, "lease:k", 60.0, "a", done, failing)))
    first.start()
    wait_until(lambda: index.lease_holder("lease:k") is not None)
    outcome: list[bool] = []

    def compute_second() -> None:
        outcome.append(once(index, "lease:k", 60.0, "b", done, lambda: did.append(1)))

    second = threading.Thread(target=compute_second, name="second")
    second.start()
    assert waiting.wait(WAIT)
    fail.set()
    first.join(WAIT)
    second.join(WAIT)
    assert [str(e) for e in errors] == ["stage crashed"] and outcome == [True] and did == [1]
    assert index.lease_holder("lease:k") is None


def _catch(errors: list[BaseException], work: Any) -> None:
    try:
        work()
    except BaseException as exc:
        errors.append(exc)


def test_a_store_on_the_redis_index(tmp_path: Path, redis_url: str) -> None:
    store = ArtifactStore(tmp_path / "artifacts", open_index(redis_url, tmp_path / "unused"), host="host-a")
    writes = []

    def compute(out: Any) -> None:
        writes.append(1)
        out.put_array("x", np.arange(100, dtype="float32"), chunk_len=30)
        out.attrs["n"] = 100

    assert store.produce("k" * 32, "decode", compute, source="src") is True
    assert store.produce("k" * 32, "decode", compute, source="src") is False and writes == [1]
    record = store.record(f"entry:{'k' * 32}")
    assert record["host"] == "host-a" and record["arrays"] == {"x": [[100], "float32"]}
    other = open_store(config=(str(tmp_path / "artifacts"), str(tmp_path / "unused"), redis_url, "host-b", 60.0, "{}"))
    entry = other.get("k" * 32)
    assert entry is not None and entry.attrs == {"n": 100} and float(entry["x"][99]) == 99.0
    assert [r["key"] for r in other.entries()] == ["k" * 32]
    other.invalidate("k" * 32, "data/elsewhere")  # points elsewhere now: left alone
    assert store.get("k" * 32) is not None
    other.invalidate("k" * 32)
    assert store.record(f"entry:{'k' * 32}") is None and store.sweep_orphans(older_than_sec=0) == 0


# -- separate processes ("hosts") sharing the data folder and the index -----------------------------------


def _stage_in_process(config: Config, source: str, events: dict[str, Any], results: Any) -> None:
    """One host: its own store handle and run computing `decode` of `source`. `started` is set when it computes
    (then it holds until `release`), `waiting` when it waits for another's commit (the store logs it)."""

    class Waiting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "waiting for its commit" in record.getMessage():
                events["waiting"].set()

    logger = logging.getLogger("offbeat.store")
    logger.addHandler(Waiting())
    logger.setLevel(logging.INFO)

    def progress(name: str) -> Any:
        def report(fraction: float) -> None:
            events["started"].set()  # mid-compute: a block of the decoded audio is written
            assert events["release"].wait(WAIT)

        return report

    ref = Run(open_store(config=config), Settings(), Path(source), progress=progress).stage("decode", {})
    results.put((config[3], ref.key, ref.cached))


def _host(
    ctx: Any,
    config: Config,
    source: Path,
    results: Any,
    released: bool = False,
    *,
    target: Any = None,
    before: tuple[Any, ...] = (),
) -> tuple[BaseProcess, dict]:
    """A host process running `target` (default `_stage_in_process`) with `before` ahead of its arguments."""
    events = {name: ctx.Event() for name in ("started", "waiting", "release")}
    if released:
        events["release"].set()
    proc = ctx.Process(target=target or _stage_in_process, args=(*before, config, str(source), events, results))
    return proc, events


def computed_once(a: BaseProcess, events_a: dict, b: BaseProcess, events_b: dict, results: Any) -> str:
    """Host b arrives while host a computes; b must wait for a's commit and read it. The entry's key."""
    with reaped(a, b):
        a.start()
        assert events_a["started"].wait(WAIT)
        b.start()
        assert events_b["waiting"].wait(WAIT)  # b found a's lease and polls for its commit
        events_a["release"].set()
        got = {results.get(timeout=WAIT) for _ in range(2)}
        a.join(WAIT)
        b.join(WAIT)
    assert a.exitcode == 0 and b.exitcode == 0
    (key,) = {k for _, k, _ in got}
    assert got == {("host-a", key, False), ("host-b", key, True)}  # computed by a, read back by b
    assert not events_b["started"].is_set()
    return key


def _configs(tmp_path: Path, index_url: str, lease_sec: float = 60.0) -> tuple[Config, Config]:
    root, index_path = str(tmp_path / "artifacts"), str(tmp_path / "index")
    return tuple((root, index_path, index_url, host, lease_sec, "{}") for host in ("host-a", "host-b"))  # type: ignore[return-value]


@pytest.mark.slow  # hosts are spawned processes
@pytest.mark.parametrize("kind", ["disk", pytest.param("redis", marks=pytest.mark.redis)])
def test_two_hosts_compute_a_stage_once(tmp_path: Path, request: pytest.FixtureRequest, kind: str) -> None:
    """Host b arrives while host a computes `decode` of the same file: b waits for a's commit and reads it."""
    source = synth.write_mix(MIX, tmp_path / "mix.wav")
    config_a, config_b = _configs(tmp_path, request.getfixturevalue("redis_url") if kind == "redis" else "")
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    (a, events_a), (b, events_b) = _host(ctx, config_a, source, results), _host(ctx, config_b, source, results)
    key = computed_once(a, events_a, b, events_b, results)
    record = open_store(config=config_b).record(f"entry:{key}")
    assert record["host"] == "host-a" and record["pid"] == a.pid


@pytest.mark.slow  # hosts are spawned processes
def test_a_holder_killed_mid_compute_is_taken_over_after_its_lease(tmp_path: Path, redis_url: str) -> None:
    """SIGKILL while a writes: no half entry; b waits out a's lease (2 s, never renewed again) and computes."""
    source = synth.write_mix(MIX, tmp_path / "mix.wav")
    config_a, config_b = _configs(tmp_path, redis_url, lease_sec=2.0)
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    a, events_a = _host(ctx, config_a, source, results)
    b, events_b = _host(ctx, config_b, source, results, released=True)
    with reaped(a, b):
        a.start()
        assert events_a["started"].wait(WAIT)
        b.start()
        assert events_b["waiting"].wait(WAIT)
        assert a.pid is not None
        os.kill(a.pid, signal.SIGKILL)
        host, key, cached = results.get(timeout=WAIT)
        b.join(WAIT)
    assert a.exitcode == -signal.SIGKILL and b.exitcode == 0
    assert (host, cached) == ("host-b", False) and events_b["started"].is_set()
    store = open_store(config=config_b)
    record = store.record(f"entry:{key}")
    assert record["host"] == "host-b" and record["pid"] == b.pid and store.verify(key)
    folders = {f"data/{key[:2]}/{p.name}" for p in (tmp_path / "artifacts" / "data").glob(f"*/{key}.*")}
    assert len(folders) == 2 and record["data"] in folders  # b's entry, and what a had written when killed
    assert store.sweep_orphans(older_than_sec=0) == 1  # a's partial data, never an entry
    assert store.verify(key) and store.index.lease_holder(f"lease:{key}") is None


def _answer_job(config: Config, export: str, refs: Any) -> None:
    store = open_store(config=config)
    ledger = JobLedger(store)
    ledger.record(7, '{"job_id": 7}', {"job_id": 7, "status": "completed"})
    refs.put(ledger.hand_over('{"job_id": 8, "cue_tracks": []}'))
    ExportRecords(store).written(Path(export), "e" * 32)


@pytest.mark.slow  # hosts are spawned processes
def test_the_ledger_answers_from_another_hosts_handle(tmp_path: Path, redis_url: str) -> None:
    """What one host records (a job's answer, a handed-over message, an exported file) another host reads."""
    config_a, config_b = _configs(tmp_path, redis_url)
    ledger = JobLedger(open_store(config=config_b))
    assert ledger.answered(7) is None
    export = tmp_path / "vocals.wav"
    export.write_bytes(b"RIFF")
    ctx = mp.get_context("spawn")
    refs = ctx.Queue()
    proc = ctx.Process(target=_answer_job, args=(config_a, str(export), refs))
    with reaped(proc):
        proc.start()
        ref = refs.get(timeout=WAIT)
        proc.join(WAIT)
    assert proc.exitcode == 0
    record = ledger.answered(7)
    assert record is not None and record["job"] == '{"job_id": 7}' and record["result"]["status"] == "completed"
    assert ledger.take_over(ref) == '{"job_id": 8, "cue_tracks": []}'
    exports = ExportRecords(open_store(config=config_b))
    assert exports.holds(export, "e" * 32) and not exports.holds(export, "f" * 32)
