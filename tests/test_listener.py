"""The Redis listener end to end: real `offbeat listen` processes, the machine's Redis (own database and queue
names, cleaned up) or an own `redis-server` for the outage test, the session's Prefect API (a server on
PostgreSQL for the worker-crash test).

Each worker process pays TensorFlow's and numba's start-up on its first job (about 20 s), which is also the
window in which the fault tests stop or kill it mid-analysis.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from offbeat.settings import get_settings

from .audio_files import write_wav
from .conftest import REPO, require_program
from .fleet import Fleet
from .processes import free_port, kill_tree, stop_worker, wait_until

pytestmark = pytest.mark.slow  # runs flows or loads TensorFlow/Spleeter

PREFECT = str(Path(sys.executable).with_name("prefect"))


def by_id(results: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {r["job_id"]: r for r in results}


# -- a pushed job, every bad input, and nothing touched outside the mount --------------------------------


# Syscalls that only look at a path (needed to find out where it leads); anything else on a path outside
# the mount would be reading, writing or running it.
_LOOK_ONLY = {"stat", "lstat", "newfstatat", "statx", "readlink", "readlinkat", "access", "faccessat", "faccessat2"}
_CALL = re.compile(r"^\d+\s+(\w+)\((.*)$")
_AT = re.compile(r'^-?\d+<([^>]*)>,\s*"((?:[^"\\]|\\.)*)"')  # openat(5</dir>, "name", ...) under strace -y


def touched(trace: Path, cwd: Path) -> list[tuple[str, Path]]:
    """(syscall, absolute path) for every path-taking syscall in an strace log (-y: relative to the directory
    descriptor a call names, else to the working directory)."""
    calls = []
    for line in trace.read_text(errors="replace").splitlines():
        match = _CALL.match(line)
        if match:
            at = _AT.match(match.group(2))
            if at:
                calls.append((match.group(1), Path(at.group(1)) / at.group(2)))
                continue
            for raw in re.findall(r'"((?:[^"\\]|\\.)*)"', match.group(2)):
                path = Path(raw)
                calls.append((match.group(1), path if path.is_absolute() else cwd / path))
    return calls


def test_jobs_and_every_bad_input_get_their_result_and_nothing_outside_is_touched(fleet: Fleet, tmp_path: Path) -> None:
    mount = fleet.mount
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = write_wav(outside / "secret.wav", seconds=2.0)
    (mount / "sets").mkdir()
    (mount / "sets" / "link.wav").symlink_to(secret)
    write_wav(mount / "sets" / "good.wav", seconds=3.0)
    write_wav(mount / "sets" / "later.wav", seconds=2.5)
    write_wav(mount / "sets" / "short.wav", seconds=0.4, lead=0.0, tail=0.0)
    (mount / "sets" / "notes.txt").write_text("not audio at all\n" * 50)
    write_wav(mount / "sets" / "blocked.wav", seconds=2.0)
    (mount / "sets" / "blocked.stems").write_text("a file where the stems folder goes: export_stems cannot write")

    strace = tmp_path / "trace.log" if shutil.which("strace") else None
    worker = fleet.start("worker", strace=strace)

    cases: list[tuple[dict[str, Any] | str, int, str]] = [  # (message, job id in the result, expected status/code)
        ({"job_id": 1, "relative_path": "sets/good.wav", "cue_tracks": [{"title": "A", "start_time_sec": 0}]}, 1, ""),
        ("this is not json", -1, "invalid_job"),
        ("[1, 2, 3]", -1, "invalid_job"),
        ({"relative_path": "sets/good.wav"}, -1, "invalid_job"),
        ({"job_id": "7", "relative_path": "sets/good.wav"}, -1, "invalid_job"),
        ({"job_id": 8, "relative_path": 5}, 8, "invalid_job"),
        ({"job_id": -3, "relative_path": "sets/good.wav"}, -1, "invalid_job"),
        ({"job_id": 2**80, "relative_path": "sets/good.wav"}, -1, "invalid_job"),
        ({"job_id": 9, "relative_path": "sets/missing.mp3"}, 9, "file_not_found"),
        ({"job_id": 10, "relative_path": "../outside/secret.wav"}, 10, "invalid_path"),
        ({"job_id": 11, "file_path": str(secret)}, 11, "invalid_path"),
        ({"job_id": 12, "relative_path": "sets/link.wav"}, 12, "invalid_path"),
        ({"job_id": 13, "relative_path": "sets/notes.txt"}, 13, "unsupported_audio"),
        ({"job_id": 14, "relative_path": "sets/short.wav"}, 14, "audio_too_short"),
        ({"job_id": 15, "relative_path": "sets/blocked.wav"}, 15, "internal"),
        ({"job_id": 16, "relative_path": "sets/later.wav"}, 16, ""),
    ]
    for message, _, _ in cases:
        fleet.push(message)
    results = fleet.results(len(cases), quiet=1.0)
    assert fleet.stop(worker) == 0

    assert [r["job_id"] for r in results] == [job_id for _, job_id, _ in cases]  # one each, in queue order
    for result, (message, _, code) in zip(results, cases, strict=True):
        if not code:
            assert result["status"] == "completed", result
            continue
        assert result["status"] == "failed" and result["error_code"] == code, (message, result)
        assert result["error"] and "Traceback" not in result["error"]
        assert result["retryable"] is (code == "internal")
    assert by_id(results)[15]["stage"] == "export_stems"

    first = by_id(results)[1]  # the documented fields of a completed result (README.md, "Wire contract")
    assert set(first) >= {"job_id", "status", "results", "engine"}
    assert set(first["results"]) == {"global", "tracks", "cue_sheet"}
    assert 'TITLE "A"' in first["results"]["cue_sheet"] and "INDEX 01" in first["results"]["cue_sheet"]
    assert set(first["results"]["global"]) >= {
        "duration_sec",
        "trimmed_start_sec",
        "trimmed_end_sec",
        "global_beat_grid_timestamps",
        "global_drum_beat_grid_timestamps",
        "bpm_curve",
        "stems",
    }
    assert first["results"]["global"]["duration_sec"] == pytest.approx(4.5, abs=0.01)  # 1 s lead + 3 s + 0.5 s
    track = first["results"]["tracks"][0]
    assert track["title"] == "A" and {"track_id", "start_time_sec", "end_time_sec"} <= set(track)
    assert set(track["analysis"]) >= {
        "duration_sec",
        "stable_bpm",
        "bpm_confidence",
        "key",
        "loudness_lufs_total",
        "loudness_lufs_bass",
        "average_brightness",
        "has_vocals",
        "vocal_energy_rms",
    }
    assert set(first["engine"]) >= {"version", "analysis_id", "timings_sec"}
    assert first["results"]["global"]["stems"]["vocals"] == "sets/good.stems/vocals.wav"
    assert (mount / "sets" / "good.stems" / "vocals.wav").is_file()
    assert not list(outside.glob("*.stems")) and sorted(p.name for p in outside.iterdir()) == ["secret.wav"]

    require_program("strace")  # the rest is checked without it; the file-access trace needs it
    assert strace is not None
    calls = touched(strace, tmp_path / "cwd")
    # The trace does see the worker's reads: the mixes it analyzed inside the mount.
    assert any(path == mount / "sets" / "good.wav" and call.startswith("open") for call, path in calls)
    mine = [(call, path) for call, path in calls if path.is_relative_to(tmp_path)]
    allowed = (mount, Path(fleet.settings.artifact_store), tmp_path / "cwd")
    strays = [(c, p) for c, p in mine if c not in _LOOK_ONLY and not any(p.is_relative_to(a) for a in allowed)]
    assert strays == []
    assert all(call in _LOOK_ONLY for call, path in mine if path.is_relative_to(outside))


# -- two workers, twenty jobs ------------------------------------------------------------------------------


def test_twenty_jobs_over_two_workers_give_one_result_each(fleet: Fleet) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterTags

    files = [write_wav(fleet.mount / f"mix-{n}.wav", seconds=2.0 + 0.25 * n, lead=0.2) for n in range(10)]
    workers = [fleet.start("a", "--concurrency", "2"), fleet.start("b")]
    first_id = 1000 + int(uuid.uuid4().int % 10**6) * 100  # unique run names in the shared Prefect API
    ids = [first_id + n for n in range(20)]
    for n, job_id in enumerate(ids):
        fleet.push({"job_id": job_id, "relative_path": files[n % 10].name})
    results = fleet.results(20, quiet=3.0)
    assert sorted(r["job_id"] for r in results) == ids  # exactly one per job id
    assert all(r["status"] == "completed" for r in results), [r for r in results if r["status"] != "completed"]
    published = [fleet.log(name).count("result published") for name in ("a", "b")]
    assert sum(published) == 20 and min(published) > 0, published  # both workers served
    assert [fleet.stop(proc) for proc in workers] == [0, 0]
    assert fleet.registered() == set()  # both retired cleanly

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=[f"job-{job_id}" for job_id in ids]),
                tags=FlowRunFilterTags(all_=["offbeat", "redis-job"]),
            )
        )
    assert sorted(run.name for run in runs) == sorted(f"job-{job_id}" for job_id in ids)
    assert all(run.state is not None and run.state.is_completed() for run in runs)


# -- stopped and killed workers lose nothing ----------------------------------------------------------------


def test_a_stopped_or_killed_worker_loses_no_job(fleet: Fleet) -> None:
    write_wav(fleet.mount / "long.wav", seconds=45.0)
    queue = fleet.settings.queue_name
    job = {"job_id": 77, "relative_path": "long.wav"}

    # SIGTERM with no grace time: the running job goes back to the queue, the worker exits cleanly.
    first = fleet.start("first", OFFBEAT_SHUTDOWN_GRACE_SEC="0")
    fleet.wait_for_workers(1)
    fleet.push(job)
    wait_until(lambda: "job 77: analyzing" in fleet.log("first"), 60, "the first worker to start the job")
    assert fleet.stop(first) == 0
    assert "handed 1 unfinished job(s) back" in fleet.log("first")
    assert [json.loads(raw) for raw in fleet.client.lrange(queue, 0, -1)] == [job]
    assert fleet.client.llen(fleet.settings.results_queue_name) == 0 and fleet.registered() == set()

    # SIGKILL mid-analysis: the job stays in the dead worker's processing list ...
    second = fleet.start("second")
    wait_until(lambda: "job 77: analyzing" in fleet.log("second"), 120, "the second worker to take the job")
    (second_id,) = fleet.registered()
    third = fleet.start("third")  # a live worker beside it must not touch its job
    fleet.wait_for_workers(2)
    time.sleep(3)  # longer than the lease: the second worker renews it, so its job stays its own
    assert fleet.held_by(second_id) == 1 and fleet.client.llen(queue) == 0
    second.kill()
    second.wait()
    fleet.workers.remove(second)
    assert fleet.client.llen(fleet.settings.results_queue_name) == 0
    # ... until its lease expires; the third worker recovers and finishes it, exactly once.
    (result,) = fleet.results(1, timeout=180, quiet=3.0)
    assert result["job_id"] == 77 and result["status"] == "completed"
    assert f"worker {second_id} is gone (lease expired): 1 job(s) back in the queue" in fleet.log("third")
    assert second_id not in fleet.registered() and fleet.held_by(second_id) == 0
    assert fleet.stop(third) == 0


# -- Redis going away ------------------------------------------------------------------------------------


class RedisServer:
    """An own redis-server on a loopback port, without persistence (a restart loses everything)."""

    def __init__(self, folder: Path) -> None:
        self.port, self.folder = free_port(), folder
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(["redis-server", *args, "--dir", str(self.folder)], stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        wait_until(lambda: _pings(client), 120, "redis-server to start")

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.mark.program("redis-server")  # an own Redis, stopped and restarted
def test_a_redis_restart_during_a_job_is_survived(fleet: Fleet, tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    try:
        fleet.env["OFFBEAT_REDIS_URL"] = f"redis://127.0.0.1:{server.port}/0"
        fleet.client = redis.Redis(port=server.port, socket_timeout=30)
        write_wav(fleet.mount / "a.wav", seconds=12.0)
        write_wav(fleet.mount / "b.wav", seconds=3.0)
        worker = fleet.start("worker")
        fleet.wait_for_workers(1)
        fleet.push({"job_id": 1, "relative_path": "a.wav"})
        wait_until(lambda: "job 1: analyzing" in fleet.log("worker"), 60, "the job to start")
        server.stop()  # the queue, the processing list and the lease are gone with it
        time.sleep(4)
        assert worker.poll() is None  # waiting, not exiting
        server.start()
        (result,) = fleet.results(1, timeout=120)
        assert result["job_id"] == 1 and result["status"] == "completed"
        # Away again while the worker is idle, waiting on the queue.
        server.stop()
        time.sleep(3)
        assert worker.poll() is None
        server.start()
        fleet.push({"job_id": 2, "relative_path": "b.wav"})
        (result,) = fleet.results(1, timeout=120, quiet=2.0)
        assert result["job_id"] == 2 and result["status"] == "completed"
        log = fleet.log("worker")
        assert "Redis unavailable" in log and "Redis is back" in log
        assert fleet.stop(worker) == 0
    finally:
        server.stop()


def test_a_completed_job_id_is_answered_from_the_ledger_and_a_worker_fault_is_answered_too(fleet: Fleet) -> None:
    """In process (the Worker class the listener flow runs). The fault is injected into the analysis callable:
    a crash inside the worker's own code cannot be caused from outside."""
    from flows.listen import analyze_job
    from offbeat.service.worker import Worker

    write_wav(fleet.mount / "a.wav", seconds=2.0)
    analyzed: list[int] = []

    def analyze(job: Any) -> dict[str, Any]:
        analyzed.append(job.job_id)
        if job.job_id == 6:
            raise RuntimeError("injected fault")
        return analyze_job(job)

    worker = Worker(get_settings(), analyze)
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        job = {"job_id": 5, "relative_path": "a.wav"}
        fleet.push(job)
        (first,) = fleet.results(1, timeout=120)
        for message in (job, {"job_id": 6, "relative_path": "a.wav"}, {"job_id": 7, "relative_path": "a.wav"}):
            fleet.push(message)
        again, faulty, other = fleet.results(3, timeout=120)
    finally:
        worker.request_stop()
        runner.join(timeout=60)
    assert first["status"] == "completed" and again == first
    assert faulty["job_id"] == 6 and faulty["error_code"] == "internal" and faulty["retryable"] is True
    assert "injected fault" in faulty["error"]
    assert other["job_id"] == 7 and other["status"] == "completed"
    assert analyzed == [5, 6, 7]  # the repeated job 5 was not analyzed again
    assert not runner.is_alive() and fleet.registered() == set()


def deploy_to_pool(fleet: Fleet) -> dict[str, str]:
    """The `offbeat` work pool and prefect.yaml's deployments on the fleet's Prefect API, as the README's operator
    guide says; the environment of the pool's process workers."""
    env = {**fleet.env, "OFFBEAT_PROJECT_DIR": str(REPO), "PREFECT_WORKER_QUERY_SECONDS": "1"}
    pool = ["work-pool", "create", "offbeat", "--type", "process", "--overwrite"]
    for args in (pool, ["--no-prompt", "deploy", "--all"]):
        done = subprocess.run([PREFECT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    return env


def start_pool_worker(fleet: Fleet, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    """A `prefect worker` of the pool, its output (the flow runs' too) in the fleet's log `name`."""
    with (fleet.root / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", "offbeat"],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=log,
            start_new_session=True,  # stopped with the flow-run processes it starts (processes.stop)
        )


def test_work_pool_mode_runs_each_job_on_a_process_worker(fleet: Fleet) -> None:
    """OFFBEAT_LISTENER_MODE=work-pool: the listener only awaits; each job becomes a run of the analyze-mix
    deployment (idempotency key per job) that a process worker of the work pool executes, as a worker on another
    host would, and its result comes back through the ledger. A repeated job (taken while the first is running)
    joins the run its idempotency key already names instead of starting a second one."""
    import httpx

    write_wav(fleet.mount / "pool.wav", seconds=8.0)
    env = deploy_to_pool(fleet)
    pool_worker = start_pool_worker(fleet, env, "pool-worker")
    try:
        fleet.start("listener", OFFBEAT_LISTENER_MODE="work-pool", OFFBEAT_WORKER_CONCURRENCY="2")
        fleet.wait_for_workers(1)
        for job_id in (61, 62, 61):  # the third is the first again (same id and message)
            fleet.push({"job_id": job_id, "relative_path": "pool.wav"})
        results = fleet.results(3, timeout=900, quiet=2.0)
    finally:
        stop_worker(pool_worker)
    assert sorted(r["job_id"] for r in results) == [61, 61, 62], results
    assert all(r["status"] == "completed" and r["results"]["tracks"] for r in results), results
    assert results[0]["results"]["tracks"] == results[1]["results"]["tracks"]  # the same file, one answer

    api = fleet.env["PREFECT_API_URL"]
    filtered = {"flow_runs": {"tags": {"all_": ["redis-job"]}, "name": {"any_": ["job-61", "job-62"]}}}
    runs = httpx.post(f"{api}/flow_runs/filter", json=filtered, timeout=30).json()
    assert sorted(r["name"] for r in runs) == ["job-61", "job-62"], [r["name"] for r in runs]
    for run in runs:
        assert run["state_type"] == "COMPLETED" and run["work_pool_name"] == "offbeat", run
        assert run["idempotency_key"].startswith(f"offbeat-job-{run['name'].removeprefix('job-')}-"), run


def test_a_run_taken_by_a_worker_that_died_before_starting_it_is_run_again(
    prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process worker sets a run Pending when it takes it, and the run's own process sets it Running; a worker that
    dies between the two leaves the run Pending, where no other worker takes it, and the job would wait for ever.
    That moment cannot be hit on purpose, so the fault is made by hand: a run put in Pending with no worker at all.
    The listener's wait marks it crashed (which `_on_work_pool` answers by running the job again)."""
    from prefect import flow, get_client
    from prefect.states import Pending

    from flows.listen import _await_run

    @flow(name="taken-and-never-started")
    def taken() -> None:
        """Never runs: only its run record is made."""

    monkeypatch.setenv("OFFBEAT_RUN_START_LIMIT_SEC", "1")
    get_settings.cache_clear()
    try:
        with get_client(sync_client=True) as client:
            run = client.create_flow_run(taken, state=Pending())
        # A daemon thread: a wait that never ends fails the test after minutes and is not joined at exit (a pool's
        # worker thread would be, and would hang the whole session).
        ended: list[Any] = []
        waiting = threading.Thread(target=lambda: ended.append(_await_run(run.id, 0.2)), daemon=True)
        waiting.start()
        waiting.join(timeout=300)
    finally:
        get_settings.cache_clear()
    assert ended, "the listener still waits on a run that was never started"
    (done,) = ended
    assert done.state is not None and done.state.is_crashed(), done.state
    assert "not started within 1 s" in (done.state.message or ""), done.state


def test_a_pool_worker_killed_mid_run_leaves_one_result_and_only_whole_entries(
    fleet: Fleet, prefect_postgres: tuple[str, dict[str, str]]
) -> None:
    """Work-pool mode with Prefect on PostgreSQL: the process worker executing a job's run is killed with SIGKILL
    together with the run's process (its host went away) in the middle of separation. Nobody is left to
    report the run crashed; the listener finds its heartbeats stopped, marks it crashed and runs the job again,
    on a worker started afterwards (the host back, or another one): one result, and the store holds whole entries
    only (what the killed run was writing never became one)."""
    import httpx

    from offbeat.storage import open_store

    url, _ = prefect_postgres
    write_wav(fleet.mount / "crash.wav", seconds=30.0)
    # Heartbeats every 30 s (Prefect's shortest), the listener reading the same; a dead run's entry lease is
    # taken over after 6 s; separation in 12 s chunks, so that the run is killed with part of the stems written.
    fleet.env.update(
        PREFECT_API_URL=url,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY="30",
        OFFBEAT_ENTRY_LEASE_SEC="6",
        OFFBEAT_SEPARATION_CHUNK_SEC="12",
    )
    env = deploy_to_pool(fleet)
    workers = [start_pool_worker(fleet, env, "pool-a")]
    try:
        fleet.start("listener", OFFBEAT_LISTENER_MODE="work-pool")
        fleet.wait_for_workers(1)
        fleet.push({"job_id": 71, "relative_path": "crash.wav"})
        separating = re.compile(r"separate: [1-9]0%")  # a chunk of the stems written, more to come
        wait_until(lambda: separating.search(fleet.log("pool-a")), 600, "the run on pool-a to be separating")
        kill_tree(workers[0])
        workers.append(start_pool_worker(fleet, env, "pool-b"))
        results = fleet.results(1, timeout=900, quiet=3.0)
    finally:
        for worker in workers:
            stop_worker(worker)
    (result,) = results
    assert result["job_id"] == 71 and result["status"] == "completed" and result["results"]["tracks"], result
    assert "separate: computed" not in fleet.log("pool-a")  # killed in the middle of separation
    assert re.search(r"separate: computed in", fleet.log("pool-b"))  # recomputed, from what was whole
    assert "analysis run job-71: no heartbeat since" in fleet.log("listener")
    assert "job 71: analysis run job-71 crashed; running it again" in fleet.log("listener")

    filtered = {"flow_runs": {"name": {"any_": ["job-71"]}}}
    runs = httpx.post(f"{url}/flow_runs/filter", json=filtered, timeout=30).json()
    states = {r["idempotency_key"].rsplit("-", 1)[1]: r["state_type"] for r in runs}
    assert states == {"0": "CRASHED", "1": "COMPLETED"}, states

    store = open_store(fleet.settings)
    try:
        names = list(store.index.names("entry:"))
        assert names and all(store.get(n.removeprefix("entry:"), verify=True) is not None for n in names)
    finally:
        store.close()
