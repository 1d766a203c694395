"""The generator's command line: plan, render and write mixes of consecutive seeds."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from bench.corpus.synthetic.dsp import SR
from bench.corpus.synthetic.mixing import render_mix
from bench.corpus.synthetic.plan import plan_mix
from bench.corpus.truth import MixTruth, write_mix


def generate(out_dir: str | Path, seed: int, short: bool = False, verbose: bool = False) -> MixTruth:
    """Plan, render and write one mix; returns its truth."""
    plan = plan_mix(seed, short)
    audio, truth = render_mix(plan, print if verbose else None)
    write_mix(out_dir, plan.mix_id, audio, SR, truth)
    return truth


def main(argv: Sequence[str] | None = None) -> None:
    """Write `--mixes` mixes of seeds `--seed`, `--seed` + 1, ... into `--out`, one summary line each."""
    from bench.corpus import synthetic  # its docstring is the help text (imported here: it imports this module)

    ap = argparse.ArgumentParser(
        prog="python -m bench.corpus.synthetic",
        description=synthetic.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--out", required=True, type=Path, help="output directory (FLAC + JSON per mix)")
    ap.add_argument("--mixes", type=int, default=4, help="number of mixes; mix k uses seed S+k")
    ap.add_argument("--seed", type=int, default=0, help="first seed (even seeds: tune split, odd: test)")
    ap.add_argument("--short", action="store_true", help="45-110 s tracks instead of 2-6 min")
    ap.add_argument("--verbose", action="store_true", help="print per-track render times")
    args = ap.parse_args(argv)
    for k in range(args.mixes):
        seed = args.seed + k
        t0 = time.time()
        truth = generate(args.out, seed, args.short, args.verbose)
        styles = ", ".join(t.style for t in truth.tracks)
        print(
            f"{truth.mix_id}  {truth.split:4s}  {truth.duration_sec:7.1f}s  {len(truth.tracks)} tracks  "
            f"[{styles}]  ({time.time() - t0:.0f}s)",
            flush=True,
        )
