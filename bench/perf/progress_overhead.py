"""What publishing a job's progress costs a 60-minute mix: a `JobProgress` fed, against the machine's Redis, the
reports such a run makes (every stage started and finished, each long stage's progress calls), written at the
default interval for as long as the run takes; the CPU seconds of the process meanwhile (the reports, the writer
thread's records and writes; the replay itself only sleeps between reports) against the run's wall time.

    .venv/bin/python -m bench.perf.progress_overhead [--run-sec 213] [--replay-sec 20]

The replay compresses the run into `--replay-sec` seconds with the interval scaled alike, so the writer makes as
many writes as the whole run would; the run's wall time (default: 213 s, a cold 60-minute mix on 2 cores,
docs/performance.md) is what the cost is compared with. Redis keys of its own queue name, deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

import redis

from offbeat.service import transport
from offbeat.service.progress import STAGE_COST, JobProgress
from offbeat.settings import Settings

# Progress calls of a 60-minute mix per long stage: decode and envelopes per 10 s block, the activations per
# 95 s of frames (per network), separation per 60 s chunk; track_features: 20 tracks, one run each.
CALLS = {"decode": 360, "activations": 3 * 38, "envelopes": 360, "separate": 60}
TRACKS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-sec", type=float, default=213.0, help="wall time of the run compared with")
    parser.add_argument("--replay-sec", type=float, default=20.0, help="how long the replay takes")
    args = parser.parse_args()
    settings = Settings()
    interval = settings.progress_interval_sec
    scale = args.replay_sec / args.run_sec
    queue = f"bench-progress-{uuid.uuid4().hex[:8]}"
    fast = settings.model_copy(update={"queue_name": queue, "progress_interval_sec": interval * scale})
    stages = list(STAGE_COST)[:-1]  # the graph's steps (not a job's split)
    share = {name: STAGE_COST[name] / sum(STAGE_COST[n] for n in stages) for name in stages}

    progress = JobProgress(fast, 1, stages)
    began, cpu = time.monotonic(), time.process_time()  # the process: reports, the writer thread, Redis client
    for name in stages:
        stage_sec = share[name] * args.replay_sec
        progress.started(name)
        runs = TRACKS if name == "track_features" else 1
        if runs > 1:
            progress.submitted(name, runs)
        calls = CALLS.get(name, 0)
        for i in range(max(calls, runs)):
            time.sleep(stage_sec / max(calls, runs, 1))
            if runs > 1:
                progress.finished(name, cached=False, mapped=True)
            elif calls:
                progress.advance(name, (i + 1) / calls)
        if runs == 1:
            progress.finished(name, cached=False)
    progress.close()
    replay, spent = time.monotonic() - began, time.process_time() - cpu
    client = redis.Redis.from_url(settings.redis_url)
    for key in client.scan_iter(f"{queue}*"):
        client.delete(key)
    print(f"machine load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; Redis {settings.redis_url}")
    print(
        f"replay {replay:.1f} s; reports {sum(CALLS.values()) + TRACKS + 2 * len(stages)}; "
        f"records written {progress.written}, dropped {progress.dropped} "
        f"(interval {interval:g} s over a {args.run_sec:g} s run: at most {args.run_sec / interval:.0f})"
    )
    print(f"CPU of the process: {spent:.3f} s against the run's {args.run_sec:g} s: {100 * spent / args.run_sec:.3f} %")
    print(f"key {transport.progress_key(queue, 1)} (deleted)")


if __name__ == "__main__":
    main()
