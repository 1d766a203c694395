"""Throughput of the Redis listener on queued short jobs.

Starts `offbeat listen` worker processes against Redis (`OFFBEAT_REDIS_URL`, own queue names, cleaned up),
a private store and shared mount, waits until they are registered and warmed up by one job each, then queues
`--jobs` distinct generated mixes of `--seconds` each and measures the time until every result is back:
jobs per minute, seconds of audio per second of work, and each worker's peak resident memory.

    .venv/bin/python -m bench.perf.listener --jobs 30 --seconds 30 --workers 1 --concurrency 1
    .venv/bin/python -m bench.perf.listener --jobs 8 --workers 2 --hosts --pin   # two "hosts", one core each

`--hosts`: the workers act as hosts sharing nothing but Redis and object storage: each its own HOME, working
folder and host name; the store's data in a bucket of an S3 server started here (moto's, on loopback) and its
index in Redis (`OFFBEAT_INDEX_URL`). `--pin`: worker i runs on core i only (`taskset`), so one worker is one
core's throughput and two are two cores'. Without PREFECT_API_URL each worker starts Prefect's embedded API
(about 15 s, before the clock starts).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import redis

from offbeat import synth
from offbeat.settings import Settings
from tests.loopback_s3 import shared_store

OFFBEAT = str(Path(sys.executable).with_name("offbeat"))


def short_mix(seconds: float, n: int) -> synth.MixSpec:
    bpm = 100 + (n * 7) % 60
    root = 110.0 * 2 ** ((n % 12) / 12)
    return synth.MixSpec((synth.Section(seconds, bpm, root, n % 2 == 0, n % 3 == 0),), lead_silence_sec=0.5)


def wait_results(client: redis.Redis, queue: str, count: int, timeout: float) -> list[dict]:
    found: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(found) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit(f"only {len(found)} of {count} results within {timeout} s")
        item = client.brpop([queue], timeout=min(5, max(1, int(left))))
        if item is not None:
            found.append(json.loads(item[1]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each queued mix")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=1, help="jobs per worker at once")
    parser.add_argument("--hosts", action="store_true", help="workers share only Redis and an S3 bucket")
    parser.add_argument("--pin", action="store_true", help="worker i on core i only (taskset)")
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="offbeat-bench-") as tmp:
        root = Path(tmp)
        mount = root / "shared"
        mount.mkdir()
        settings = Settings()  # Redis URL and model folder from the environment or .env
        env = {
            **os.environ,
            "OFFBEAT_MODEL_DIR": str(settings.model_dir.resolve()),
            "OFFBEAT_QUEUE_NAME": f"bench-jobs-{tag}",
            "OFFBEAT_RESULTS_QUEUE_NAME": f"bench-results-{tag}",
            "OFFBEAT_SHARED_MOUNT_PATH": str(mount),
            "OFFBEAT_ARTIFACT_STORE": str(root / "artifacts"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=30)
        stop_store: Callable[[], None] = lambda: None  # noqa: E731
        if args.hosts:
            variables, _, stop_store = shared_store()
            env.update(variables)
            env["OFFBEAT_ARTIFACT_STORE"] += "store"
        jobs, results = env["OFFBEAT_QUEUE_NAME"], env["OFFBEAT_RESULTS_QUEUE_NAME"]

        print(f"writing {args.jobs + args.workers} mixes of {args.seconds:g} s ...", file=sys.stderr)
        names = []
        for n in range(args.jobs + args.workers):
            path = synth.write_mix(short_mix(args.seconds, n), mount / f"mix-{n}.wav", subtype="PCM_16")
            names.append(path.name)

        procs = []
        for i in range(args.workers):
            own, cwd = env, root
            if args.hosts:
                home = root / f"host-{i}"
                (home / "work").mkdir(parents=True)
                own = {**env, "HOME": str(home), "OFFBEAT_HOST_NAME": f"host-{i}", "PREFECT_HOME": str(home / "p")}
                cwd = home / "work"
            command = [OFFBEAT, "listen", "--concurrency", str(args.concurrency)]
            if args.pin:
                command = ["taskset", "-c", str(i % (os.cpu_count() or 1)), *command]
            log = (root / f"worker-{i}.log").open("wb")
            procs.append(subprocess.Popen(command, env=own, stdout=log, stderr=log, cwd=cwd))
        try:
            # Warm-up: one job per worker pays TensorFlow's and numba's start-up before the clock starts.
            for n in range(args.workers):
                client.lpush(jobs, json.dumps({"job_id": n, "relative_path": names[n]}))
            wait_results(client, results, args.workers, timeout=600)
            started = time.perf_counter()
            for n in range(args.workers, args.workers + args.jobs):
                client.lpush(jobs, json.dumps({"job_id": n, "relative_path": names[n]}))
            done = wait_results(client, results, args.jobs, timeout=3600)
            wall = time.perf_counter() - started
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            peaks = []
            for proc in procs:
                _, _, usage = os.wait4(proc.pid, 0)  # each worker's own peak resident memory
                peaks.append(usage.ru_maxrss / 1024)
            for key in client.scan_iter(f"bench-*-{tag}*"):
                client.delete(key)
            stop_store()

    failed = [r for r in done if r["status"] != "completed"]
    figures = {
        "jobs": args.jobs,
        "seconds_per_job": args.seconds,
        "workers": args.workers,
        "concurrency": args.concurrency,
        "hosts": args.hosts,
        "pinned": args.pin,
        "failed": len(failed),
        "wall_sec": round(wall, 2),
        "jobs_per_minute": round(args.jobs / wall * 60, 1),
        "audio_sec_per_sec": round(args.jobs * args.seconds / wall, 1),
        "worker_peak_rss_mib": [round(peak) for peak in peaks],
        "nproc": os.cpu_count(),
    }
    print(json.dumps(figures, indent=2))
    if failed:
        raise SystemExit(f"{len(failed)} job(s) failed, e.g. {failed[0]}")


if __name__ == "__main__":
    main()
