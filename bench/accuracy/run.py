"""Running the engine: `offbeat analyze` per mix in a subprocess, against one Prefect server and one artifact
store, and the result documents and run records it leaves in the results folder."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.accuracy.mixes import TrueMix
from bench.accuracy.score import MixScore, score_mix
from tests.prefect_process import prefect_server, stop, tail

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's bin: `offbeat` and `prefect` live beside this interpreter

_LIVE: set[subprocess.Popen[bytes]] = set()
_LIVE_LOCK = threading.Lock()


@dataclass
class Run:
    """How one `offbeat analyze` went (also written beside the result as `<mix_id>.run.json`)."""

    wall_sec: float
    returncode: int
    log: str


def run_engine(
    offbeat: list[str], mix: TrueMix, output: Path, env: dict[str, str], timeout: float | None, extra: list[str]
) -> Run:
    """`offbeat analyze <audio> --output <output>` in a subprocess: wall seconds from start to exit."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)  # a stale result must not be scored as this run's
    log = output.with_suffix(".log")
    cmd = [*offbeat, "analyze", str(mix.audio), "--output", str(output), *extra]
    started = time.perf_counter()
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=REPO)
        with _LIVE_LOCK:
            _LIVE.add(proc)
        try:
            returncode = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop(proc, grace=10.0, group=False)
            returncode = -9
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(proc)
    run = Run(time.perf_counter() - started, returncode, str(log))
    output.with_suffix(".run.json").write_text(json.dumps(asdict(run) | {"command": cmd}, indent=1))
    return run


def read_result(path: Path) -> dict[str, Any] | None:
    """The result document at `path`; None when it is missing, unreadable or not a JSON object."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def read_run(path: Path) -> Run | None:
    """The run record beside the result at `path` (`.run.json`); None when there is none."""
    with contextlib.suppress(OSError, json.JSONDecodeError, TypeError, KeyError):
        data = json.loads(path.with_suffix(".run.json").read_text())
        return Run(float(data["wall_sec"]), int(data["returncode"]), str(data.get("log", "")))
    return None


def result_path(results: Path, mix: TrueMix) -> Path:
    """`<results>/<corpus>/<mix_id>.json`: mix ids are only unique within a corpus."""
    return results / mix.corpus / f"{mix.mix_id}.json"


def score_with_run(mix: TrueMix, doc: dict[str, Any] | None, run: Run | None) -> MixScore:
    """`score_mix` plus the run's wall time and speed; a run that left no result says why (its log's end)."""
    score = score_mix(mix, doc)
    if run is not None:
        score.wall_sec = run.wall_sec
        score.audio_sec_per_sec = mix.duration / run.wall_sec if run.wall_sec > 0 else None
        if doc is None:
            score.status = f"no result (exit {run.returncode})"
            score.error = tail(Path(run.log), 600)
    return score


def analyze_all(
    mixes: list[TrueMix], args: argparse.Namespace, on_done: Callable[[TrueMix, MixScore], None]
) -> list[MixScore]:
    """Run the engine on every mix (`--jobs` at a time) against one Prefect server and one artifact store."""
    store = Path(args.store).resolve()
    store.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "OFFBEAT_ARTIFACT_STORE": str(store),
        # the store's index inside it (the engine's default for a local store) whatever the caller's settings
        # say, so the store and its index are kept, or removed, together
        "OFFBEAT_ARTIFACT_INDEX_PATH": str(store / "index"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.setdefault("OFFBEAT_LOCAL_EXPORTS_PATH", str(store / "exports"))  # stems of the corpora stay with the store
    # numba's JIT cache beside the store: the one in the venv's site-packages is shared with every other process
    # (and machine) using that venv, and a stale one there crashed librosa's beat tracker (SIGSEGV)
    env.setdefault("NUMBA_CACHE_DIR", str(store / "numba-cache"))
    extra = ["--model", args.model] if args.model else []

    def one(mix: TrueMix) -> MixScore:
        out = result_path(args.results, mix)
        run = run_engine(shlex.split(args.offbeat), mix, out, env, args.timeout, extra)
        score = score_with_run(mix, read_result(out), run)
        on_done(mix, score)
        return score

    with contextlib.ExitStack() as stack:
        if args.embedded_prefect:
            env.pop("PREFECT_API_URL", None)
        elif "PREFECT_API_URL" not in os.environ:  # else: the caller's server is used as it is
            home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="offbeat-bench-prefect-")))
            url, variables = stack.enter_context(prefect_server(home, ui=False))
            print(f"prefect server at {url} (PREFECT_HOME {home})", file=sys.stderr)
            env |= variables
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=max(1, args.jobs)))
        futures = [pool.submit(one, mix) for mix in mixes]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            with _LIVE_LOCK:
                live = list(_LIVE)
            for proc in live:
                stop(proc, grace=10.0, group=False)
            raise
