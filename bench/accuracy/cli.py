"""The bench's command line: which mixes (a split, or its development subset), engine runs or re-scoring or the
oracle, the tables on stdout and every number in a JSON report."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.accuracy.mixes import TrueMix, find_mixes
from bench.accuracy.report import GOALS, aggregate, group_rows, per_mix_table, summary_table, timing_table
from bench.accuracy.run import BIN, REPO, analyze_all, read_result, read_run, result_path, score_with_run
from bench.accuracy.score import MixScore, oracle_result, score_mix

STORE = REPO / ".bench-store" / "accuracy"
RESULTS = REPO / ".bench-store" / "accuracy-results"
DEV_RESULTS = REPO / ".bench-store" / "accuracy-dev-results"
# The development subset (--dev): in each corpus directory, its mixes of the split from the shortest up (ties by
# mix id) while they fit in this much audio, and always the shortest. With the corpora of docs/accuracy.md and --split
# test: synth-short-00003 and -00005, synth-00203 and the shortest recorded mix (about 40 minutes of audio).
DEV_AUDIO_SEC = 15 * 60.0


def dev_subset(mixes: Sequence[TrueMix]) -> list[TrueMix]:
    """The development subset of `mixes`: per corpus directory, its shortest mixes within DEV_AUDIO_SEC."""
    chosen: list[TrueMix] = []
    for directory in dict.fromkeys(m.truth_path.parent for m in mixes):
        audio = 0.0
        for mix in sorted((m for m in mixes if m.truth_path.parent == directory), key=lambda m: (m.duration, m.mix_id)):
            if audio and audio + mix.duration > DEV_AUDIO_SEC:
                break
            chosen.append(mix)
            audio += mix.duration
    return chosen


def _terminate(signum: int, _frame: Any) -> None:
    """SIGTERM acts like Ctrl-C: unwind, so the engine runs and the Prefect server are stopped."""
    raise KeyboardInterrupt(f"signal {signum}")


def _parser() -> argparse.ArgumentParser:
    from bench import accuracy  # its docstring is the help text (imported here: it imports this module)

    parser = argparse.ArgumentParser(
        prog="python -m bench.accuracy",
        description=accuracy.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("corpora", nargs="+", type=Path, metavar="CORPUS_DIR", help="<mix_id>.flac + .json files")
    parser.add_argument("--split", choices=("test", "tune", "all"), default="test", help="which mixes (default test)")
    parser.add_argument(
        "--dev",
        action="store_true",
        help="the development subset of the split: per corpus its shortest mixes within "
        f"{DEV_AUDIO_SEC / 60:.0f} min of audio (always one); prints the per-mix table; results default to "
        f"{DEV_RESULTS.relative_to(REPO)}",
    )
    parser.add_argument("--store", type=Path, default=STORE, help="artifact store, kept between runs")
    parser.add_argument(
        "--results",
        type=Path,
        help="result documents go to RESULTS/<corpus>/<mix_id>.json (with .log and .run.json); default "
        f"{RESULTS.relative_to(REPO)}",
    )
    parser.add_argument("--jobs", type=int, default=1, help="engine runs at once (default 1)")
    parser.add_argument("--reuse-results", action="store_true", help="score existing results; run nothing")
    parser.add_argument("--oracle", action="store_true", help="score the truth against itself (checks the scorer)")
    parser.add_argument("--per-mix", action="store_true", help="also print one row per mix")
    parser.add_argument("--json", type=Path, help="write every number (groups, mixes, tracks) here")
    parser.add_argument("--model", help="Spleeter model passed to the engine (default: its settings)")
    parser.add_argument(
        "--offbeat",
        default=str(BIN / "offbeat"),
        help="the engine's command line (default: this venv's offbeat); e.g. a launcher of another checkout",
    )
    parser.add_argument("--timeout", type=float, help="seconds one mix may take before it is stopped")
    parser.add_argument(
        "--embedded-prefect",
        action="store_true",
        help="start no server: every run uses Prefect's embedded one (default: one server for all runs, or the "
        "server of PREFECT_API_URL when it is set)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Score the chosen mixes and print the tables; 0, or 1 when nothing was scored, 130 when interrupted."""
    args = _parser().parse_args(argv)
    args.results = (args.results or (DEV_RESULTS if args.dev else RESULTS)).resolve()
    args.per_mix = args.per_mix or args.dev
    signal.signal(signal.SIGTERM, _terminate)

    mixes = find_mixes(args.corpora, args.split)
    if args.dev:
        mixes = dev_subset(mixes)
        for directory in dict.fromkeys(m.truth_path.parent for m in mixes):
            chosen = [m for m in mixes if m.truth_path.parent == directory]
            minutes = sum(m.duration for m in chosen) / 60
            names = ", ".join(m.mix_id for m in chosen)
            print(f"dev subset of {directory}: {names} ({minutes:.1f} min)", file=sys.stderr)
    if not mixes:
        print(f"no mixes of split {args.split!r} under {', '.join(map(str, args.corpora))}", file=sys.stderr)
        return 1
    print(f"{len(mixes)} mixes ({args.split}), {sum(len(m.tracks) for m in mixes)} tracks", file=sys.stderr)
    started = time.perf_counter()
    scores = _scores(mixes, args)
    if scores is None:
        print("interrupted; engine runs and the Prefect server stopped", file=sys.stderr)
        return 130
    if not scores:
        return 1
    rows = group_rows(scores)
    _print_report(rows, scores, args.per_mix, started)
    if args.json:
        _write_json(args, rows, scores)
    return 0


def _scores(mixes: list[TrueMix], args: argparse.Namespace) -> list[MixScore] | None:
    """The oracle's, the results' already in RESULTS, or the engine's on every mix; None when interrupted."""
    if args.oracle:
        return [score_mix(mix, oracle_result(mix)) for mix in mixes]
    if args.reuse_results:
        scores = []
        for mix in mixes:
            path = result_path(args.results, mix)
            doc = read_result(path)
            if doc is None:
                print(f"warning: no result {path}; {mix.corpus}/{mix.mix_id} left out", file=sys.stderr)
                continue
            scores.append(score_with_run(mix, doc, read_run(path)))
        return scores
    done = 0

    def progress(mix: TrueMix, score: MixScore) -> None:
        nonlocal done
        done += 1
        print(
            f"[{done}/{len(mixes)}] {mix.corpus}/{mix.mix_id}: {score.status}, {score.wall_sec or 0:.1f} s "
            f"({score.audio_sec_per_sec or 0:.1f} audio s/s)",
            file=sys.stderr,
            flush=True,
        )

    try:
        return analyze_all(mixes, args, progress)
    except KeyboardInterrupt:
        return None


def _print_report(rows: list[dict[str, Any]], scores: list[MixScore], per_mix: bool, started: float) -> None:
    print("## Accuracy\n")
    print(summary_table(rows))
    print(
        "\nbeat/downbeat F: corpus rows = mean whole-mix F over mixes; style rows = mean F over the tracks' steady "
        "parts. Boundaries: hits pooled over mixes. n/a: nothing to score (or no downbeats in the result)."
    )
    fields = sorted({m.downbeat_field for m in scores if m.downbeat_field})
    print(f"downbeats read from: {', '.join(fields) if fields else 'none (results.global has no downbeat list)'}")
    if per_mix:
        print("\n## Per mix\n")
        print(per_mix_table(scores))
    if any(m.wall_sec is not None for m in scores):
        print("\n## Speed\n")
        print(timing_table(scores))
    elapsed = time.perf_counter() - started
    audio = sum(m.duration_sec for m in scores)
    print(f"\nbenchmark wall time {elapsed:.1f} s for {audio:.0f} s of audio ({audio / elapsed:.2f} audio s per s)")
    for mix in scores:
        if mix.status != "completed":
            print(f"warning: {mix.corpus}/{mix.mix_id}: {mix.status} {mix.error or ''}".rstrip(), file=sys.stderr)


def _write_json(args: argparse.Namespace, rows: list[dict[str, Any]], scores: list[MixScore]) -> None:
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "goals": {k: {"op": op, "value": v} for k, (op, v) in GOALS.items()},
        "split": args.split,
        "corpora": [str(c) for c in args.corpora],
        "mode": "oracle" if args.oracle else "reuse-results" if args.reuse_results else "analyze",
        "groups": rows,
        "mixes": [asdict(m) | {"summary": aggregate(m.mix_id, [m])} for m in scores],
    }
    args.json.write_text(json.dumps(report, indent=1, default=_json_default))
    print(f"JSON: {args.json}", file=sys.stderr)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
