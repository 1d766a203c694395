"""Benchmark `offbeat analyze` on a generated mix: cold (empty store) and cached.

Reports, for each run: wall seconds from command start to result, seconds of audio per second of work
(in total and per stage), and the peak resident memory of the analyzing process.

    .venv/bin/python bench/bench_analyze.py --minutes 10
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from offbeat import synth

OFFBEAT = str(Path(sys.executable).with_name("offbeat"))


def run_once(path: Path, env: dict[str, str]) -> tuple[dict, float, float]:
    """(result document, wall seconds, peak RSS in MiB) of one `offbeat analyze` process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([OFFBEAT, "analyze", str(path)], stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.stderr.write(err.read().decode(errors="replace")[-3000:])
            raise SystemExit(f"offbeat analyze failed with status {proc.returncode}")
        document = json.loads(out.read())
    return document, wall, usage.ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the mix and store here")
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="offbeat-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    mix = work / f"mix-{args.minutes:g}min.wav"
    spec = synth.demo_mix(args.minutes)
    if not mix.exists():
        synth.write_mix(spec, mix, subtype="PCM_16")
    env = dict(os.environ)
    env["OFFBEAT_ARTIFACT_STORE"] = str(work / "artifacts")
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    audio_sec = spec.duration_sec

    print(f"mix: {audio_sec / 60:.1f} min, {mix.stat().st_size / 2**20:.0f} MiB WAV; nproc={os.cpu_count()}")
    print(f"{'run':<8}{'wall s':>9}{'audio s/s':>11}{'flow s':>9}{'peak MiB':>10}  per stage (audio s per s of work)")
    for label in ("cold", "cached"):
        doc, wall, peak = run_once(mix, env)
        timings = doc["engine"]["timings_sec"]
        stages = ", ".join(
            f"{name} {timings[name]:.2f}s ({audio_sec / max(timings[name], 1e-6):.0f}x)"
            for name in timings
            if name != "total"
        )
        print(f"{label:<8}{wall:>9.1f}{audio_sec / wall:>11.1f}{timings['total']:>9.2f}{peak:>10.0f}  {stages}")
    store_mib = sum(f.stat().st_size for f in (work / "artifacts").rglob("*") if f.is_file()) / 2**20
    print(f"store size: {store_mib:.0f} MiB for {audio_sec / 60:.1f} min of audio")
    print(f"(bench process peak: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
