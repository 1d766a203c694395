"""Benchmark on generated mixes: the whole `offbeat analyze` command, and each stage on its own.

For each mix length it reports:
- `offbeat analyze` cold (empty store) and cached: wall seconds from command start to result, seconds of
  audio per second of work, flow time per stage, and peak resident memory of the analyzing process;
- each stage run alone, one after another, in a fresh process without Prefect: seconds, seconds of
  audio per second of work, and the peak resident memory while the stage ran;
- the store size.

    .venv/bin/python -m bench.perf.analyze --minutes 60 180
    .venv/bin/python -m bench.perf.analyze --minutes 10 --shared   # the store as several hosts share it
    .venv/bin/python -m bench.perf.analyze --minutes 180 --no-alone   # offbeat analyze only, cold and cached

`--shared`: the store's data in a bucket of an S3 server started here (moto's, on loopback) and its index in
Redis (`OFFBEAT_INDEX_URL`, a key prefix of its own, deleted afterwards), for the overhead of a shared store
against the local one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from offbeat import synth
from tests.loopback_s3 import shared_store

OFFBEAT = str(Path(sys.executable).with_name("offbeat"))


def run_command(cmd: list[str], env: dict[str, str]) -> tuple[str, float, float]:
    """(stdout, wall seconds, peak RSS MiB) of one child process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.stderr.write(err.read().decode(errors="replace")[-3000:])
            raise SystemExit(f"{' '.join(cmd[:3])} failed")
        return out.read().decode(), wall, usage.ru_maxrss / 1024  # ru_maxrss is KiB on Linux


class PeakRss:
    """Samples this process's resident memory; `peak()` is the highest seen since `reset()`."""

    def __init__(self, interval: float = 0.02) -> None:
        self._peak = 0
        self._interval = interval
        self._page = os.sysconf("SC_PAGE_SIZE")
        threading.Thread(target=self._run, daemon=True).start()

    def _current(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self._page

    def _run(self) -> None:
        while True:
            self._peak = max(self._peak, self._current())
            time.sleep(self._interval)

    def reset(self) -> None:
        self._peak = self._current()

    def peak(self) -> float:
        return max(self._peak, self._current()) / 2**20


def stages_alone(path: Path) -> None:
    """Child mode: run every step of the registry in turn through the store, without Prefect, and print JSON
    figures (seconds and peak resident memory per step)."""
    from offbeat.pipeline.runner import Run, run_all
    from offbeat.settings import get_settings
    from offbeat.storage import open_store

    rss = PeakRss()
    figures: dict[str, dict[str, float]] = {}

    def measure(name: str, work: Any) -> Any:
        rss.reset()
        started = time.perf_counter()
        result = work()
        figures[name] = {"seconds": time.perf_counter() - started, "peak_mib": rss.peak()}
        return result

    run_all(Run(open_store(), get_settings(), path), measure)
    print(json.dumps(figures))


def bench(minutes: float, work: Path, shared: bool = False, alone: bool = True) -> None:
    work.mkdir(parents=True, exist_ok=True)
    mix = work / f"mix-{minutes:g}min.wav"
    spec = synth.demo_mix(minutes)
    if not mix.exists():  # written aside and renamed: an interrupted run leaves no short mix behind
        synth.write_mix(spec, mix.with_suffix(".part.wav"), subtype="PCM_16").rename(mix)
    audio_sec = spec.duration_sec
    print(f"\n== {audio_sec / 60:.1f} min mix ({mix.stat().st_size / 2**20:.0f} MiB WAV), nproc={os.cpu_count()}")

    for store in ("artifacts", "artifacts-stages", "exports"):  # cold means cold, also in a reused workdir
        shutil.rmtree(work / store, ignore_errors=True)
    env = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env["OFFBEAT_ARTIFACT_STORE"] = str(work / "artifacts")
    stop: Callable[[], None] = lambda: None  # noqa: E731
    if shared:
        variables, bucket_mib, stop = shared_store()
        env.update(variables)
        bucket = variables["OFFBEAT_ARTIFACT_STORE"]
        env["OFFBEAT_ARTIFACT_STORE"] = bucket + "artifacts"
        print(f"  store: {bucket}artifacts on a loopback S3 server, index in Redis ({env['OFFBEAT_INDEX_URL']})")
    try:
        _bench_store(env, mix, audio_sec, work, bucket_mib if shared else None, alone)
    finally:
        stop()


def _bench_store(env: dict[str, str], mix: Path, audio_sec: float, work: Path, bucket_mib: Any, alone: bool) -> None:
    env["OFFBEAT_LOCAL_EXPORTS_PATH"] = str(work / "exports")
    print(f"{'offbeat analyze':<16}{'wall s':>8}{'audio s/s':>11}{'flow s':>8}{'peak MiB':>10}  flow seconds per stage")
    for label in ("cold", "cached"):
        out, wall, peak = run_command([OFFBEAT, "analyze", str(mix)], env)
        timings = json.loads(out)["engine"]["timings_sec"]
        per_stage = ", ".join(f"{k} {v:.2f}" for k, v in timings.items() if k != "total")
        print(f"  {label:<14}{wall:>8.1f}{audio_sec / wall:>11.1f}{timings['total']:>8.1f}{peak:>10.0f}  {per_stage}")
    if bucket_mib is not None:
        store_mib = bucket_mib("artifacts")
    else:
        store_mib = sum(f.stat().st_size for f in (work / "artifacts").rglob("*") if f.is_file()) / 2**20
    print(f"  store: {store_mib:.0f} MiB ({store_mib / (audio_sec / 60):.1f} MiB per minute of audio)")
    if not alone:
        return

    env["OFFBEAT_ARTIFACT_STORE"] = env["OFFBEAT_ARTIFACT_STORE"].removesuffix("artifacts") + "artifacts-stages"
    if bucket_mib is None:
        env["OFFBEAT_ARTIFACT_STORE"] = str(work / "artifacts-stages")
    else:  # an index of its own: a store's records name data under its own root
        env["OFFBEAT_INDEX_URL"] += "-stages"
    out, wall, peak = run_command([sys.executable, "-m", "bench.perf.analyze", "--stages-alone", str(mix)], env)
    print(f"{'stage alone':<16}{'seconds':>8}{'audio s/s':>11}{'peak MiB':>10}")
    total = 0.0
    for name, fig in json.loads(out).items():
        total += fig["seconds"]
        print(f"  {name:<14}{fig['seconds']:>8.1f}{audio_sec / fig['seconds']:>11.1f}{fig['peak_mib']:>10.0f}")
    print(f"  {'all stages':<14}{total:>8.1f}{audio_sec / total:>11.1f}{peak:>10.0f}  (process peak)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0])
    parser.add_argument("--workdir", type=Path, default=None, help="keep mixes and stores here")
    parser.add_argument("--shared", action="store_true", help="store on a loopback S3 server, index in Redis")
    parser.add_argument("--no-alone", action="store_true", help="skip the stages run one by one (halves the time)")
    parser.add_argument("--stages-alone", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stages_alone:
        stages_alone(args.stages_alone)
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="offbeat-bench-"))
    for minutes in args.minutes:
        bench(minutes, work / f"{minutes:g}min", args.shared, not args.no_alone)


if __name__ == "__main__":
    main()
