"""Three hosts sharing nothing but Redis (queues, store index, job ledger) and an S3 bucket (the store's data): each
an `offbeat listen` process with its own HOME, working folder, Prefect home and host name; the mixes are on the
shared mount that jobs name. Twenty jobs over three files; one host is killed with SIGKILL in the middle of an
analysis. Real parts throughout: the machine's Redis, moto's S3 server on loopback, a Prefect server on the
machine's PostgreSQL (a database of its own, dropped afterwards).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

from offbeat.pipeline.registry import STAGES
from offbeat.settings import Settings
from offbeat.storage import open_store
from tests.audio_files import write_wav
from tests.conftest import REDIS_URL
from tests.fleet import OFFBEAT
from tests.processes import wait_until

pytestmark = pytest.mark.slow  # runs flows and loads TensorFlow/Spleeter in three processes

JOBS = 20
WAIT = 1200.0  # upper bound for twenty analyses on a loaded 2-core machine


def test_three_hosts_answer_every_job_once_and_compute_each_stage_once(
    tmp_path: Path,
    settings: Settings,
    bucket: tuple[str, dict[str, Any]],
    redis_url: str,
    prefect_postgres: tuple[str, dict[str, str]],
) -> None:
    name, options = bucket
    prefect_api, _ = prefect_postgres
    files = [write_wav(settings.shared_mount_path / f"set-{i}.wav", seconds=6.0 + 2 * i).name for i in range(3)]
    tag = uuid.uuid4().hex[:8]
    queue, results = f"test-jobs-{tag}", f"test-results-{tag}"
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=30)
    store = {
        "OFFBEAT_ARTIFACT_STORE": f"s3://{name}/store",
        "OFFBEAT_STORE_OPTIONS": json.dumps(options),
        "OFFBEAT_INDEX_URL": redis_url,
        "OFFBEAT_REDIS_URL": REDIS_URL,
        "OFFBEAT_QUEUE_NAME": queue,
        "OFFBEAT_RESULTS_QUEUE_NAME": results,
        "OFFBEAT_WORKER_LEASE_SEC": "10",  # a busy host renews late: shorter leases recover jobs for nothing
        "OFFBEAT_ENTRY_LEASE_SEC": "6",
        "PREFECT_API_URL": prefect_api,
    }
    hosts: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for host in ("host-a", "host-b", "host-c"):
            home = tmp_path / host
            (home / "work").mkdir(parents=True)
            env = {
                **os.environ,
                **store,
                "HOME": str(home),
                "OFFBEAT_HOST_NAME": host,
                "OFFBEAT_LOCAL_EXPORTS_PATH": str(home / "exports"),
                "PREFECT_HOME": str(home / ".prefect"),
            }
            log = (home / "listen.log").open("wb")
            hosts[host] = subprocess.Popen(
                [OFFBEAT, "listen"],
                env=env,
                cwd=home / "work",
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(lambda: client.scard(f"{queue}:workers") == 3, 300, "three workers to register")
        for job_id in range(1, JOBS + 1):
            client.lpush(queue, json.dumps({"job_id": job_id, "relative_path": files[job_id % 3]}))

        # host-a dies during separation (which starts once its job is decoded and takes the longest): its job goes
        # back to the queue, and what it was writing never becomes an entry.
        log_a = tmp_path / "host-a" / "listen.log"
        wait_until(lambda: "decode: computed" in log_a.read_text(errors="replace"), 300, "host-a to decode a job")
        time.sleep(2.0)
        os.killpg(hosts["host-a"].pid, signal.SIGKILL)
        hosts["host-a"].wait()

        answers: list[dict[str, Any]] = []

        def collected() -> bool:
            item = client.brpop([results], timeout=5)
            if item is not None:
                answers.append(json.loads(item[1]))
            return len(answers) >= JOBS

        wait_until(collected, WAIT, f"{JOBS} results")
        time.sleep(3.0)
        answers += [json.loads(raw) for raw in client.lrange(results, 0, -1)]
        client.delete(results)
        # A job sent again is answered from the shared ledger, by whichever host takes it.
        client.lpush(queue, json.dumps({"job_id": 1, "relative_path": files[1]}))
        again = client.brpop([results], timeout=300)
        assert again is not None, "no answer to the repeated job"
    finally:
        for proc in hosts.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for key in client.scan_iter(f"test-*-{tag}*"):
            client.delete(key)

    assert sorted(a["job_id"] for a in answers) == list(range(1, JOBS + 1))  # each job once, the killed one too
    first = next(a for a in answers if a["job_id"] == 1)
    assert json.loads(again[1])["engine"]["analysis_id"] == first["engine"]["analysis_id"]
    logs = "".join((tmp_path / h / "listen.log").read_text(errors="replace") for h in ("host-b", "host-c"))
    assert "job 1 was completed before: answered from the job ledger" in logs
    assert all(a["status"] == "completed" for a in answers), [a.get("error") for a in answers]
    by_file: dict[str, list[dict[str, Any]]] = {}
    for a in answers:
        by_file.setdefault(files[a["job_id"] % 3], []).append(a)
    for done in by_file.values():
        assert len({json.dumps(a["results"]["tracks"], sort_keys=True) for a in done}) == 1  # one answer per file
        computed = Counter(
            s for a in done for s in a["engine"]["timings_sec"] if s in STAGES and s not in a["engine"]["cached_stages"]
        )
        # No stage of a file computed twice (sinks aside). Once, or not at all in the published answers: the run
        # that computed it may be the killed host's, or one whose job another worker recovered meanwhile.
        assert max(computed.values(), default=1) == 1, computed
    config = (f"s3://{name}/store", str(tmp_path / "index"), redis_url, "test", 60.0, json.dumps(options))
    shared = open_store(config=config)
    records = [shared.record(n) for n in shared.index.names("entry:")]
    assert records and {r["host"] for r in records} <= {"host-a", "host-b", "host-c"}
    assert len({r["host"] for r in records}) >= 2  # the work was shared
    referenced = {r["data"] for r in records if r["data"]}  # entries with attributes only have no folder
    folders = [path for path, _ in shared.location.folders("data/*/*")]
    assert referenced <= set(folders)  # every entry's data is whole in the bucket
    assert len(set(folders) - referenced) <= 2  # only what host-a was writing when killed (swept later)
