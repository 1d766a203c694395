"""Profile `offbeat analyze` on a generated mix with py-spy (sampling, every thread) and print the top entries.

Two views of the same samples, as shares of all samples taken while a thread was on the CPU:
- inclusive: the functions whose call trees took the most time (where the stages spend it);
- own: the functions that were running themselves (the hot spots to make cheaper).

    .venv/bin/python -m bench.perf.profile --minutes 10 [--workdir DIR] [--top 25]
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from offbeat import synth

BIN = Path(sys.executable).parent


def summarize(raw: Path, top: int) -> None:
    """Aggregate py-spy's collapsed stacks ("frame;frame;... count" per line) by function."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        frames = [_name(frame) for frame in stack.split(";")]
        total += samples
        own[frames[-1]] += samples
        for name in set(frames):
            inclusive[name] += samples
    print(f"{total} samples on the CPU")
    for title, counter in (("inclusive", inclusive), ("own", own)):
        print(f"\n{title:>9}  function")
        for name, samples in counter.most_common(top):
            print(f"{100 * samples / total:>8.1f}%  {name}")


def _name(frame: str) -> str:
    """'fn (path/to/module.py:123)' -> 'fn (module.py)': one entry per function, not per line."""
    fn, _, where = frame.partition(" (")
    return f"{fn} ({Path(where.split(':')[0]).name})" if where else fn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the mix and the profile here")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--rate", type=int, default=20, help="samples per second")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="offbeat-profile-"))
    work.mkdir(parents=True, exist_ok=True)
    mix = work / f"mix-{args.minutes:g}min.wav"
    if not mix.exists():
        synth.write_mix(synth.demo_mix(args.minutes), mix, subtype="PCM_16")
    raw = work / "profile.txt"
    env = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false", OFFBEAT_ARTIFACT_STORE=str(work / "artifacts"))
    env["OFFBEAT_LOCAL_EXPORTS_PATH"] = str(work / "exports")
    record = [str(BIN / "py-spy"), "record", "--format", "raw", "--rate", str(args.rate), "--nonblocking"]
    analyze = [str(BIN / "offbeat"), "analyze", str(mix), "--output", str(work / "result.json")]
    subprocess.run([*record, "--output", str(raw), "--", *analyze], env=env, check=True, stdout=subprocess.DEVNULL)
    summarize(raw, args.top)


if __name__ == "__main__":
    main()
