"""The track-boundary finder alone, for tuning: every mix of the corpora described once, then boundaries found and
scored in seconds.

The engine's stages up to the `description` entry (the mix second by second, as the partition reads it) run
through the accuracy bench's store, so entries computed by the bench are reused, and separation, which the
boundaries do not read, is never run. Then `offbeat.dsp.track_boundaries.find_boundaries` runs on every mix with
the boundary finder's configuration as it is, or with fields of it changed (`dataclasses.replace`) by
`--set NAME=VALUE` (repeatable) or `--sweep NAME=V1,V2,...` (NAME a field, or a cue of `track_boundaries.CUES`
whose weight it sets), and mir_eval's boundary detection at +-10 s and +-30 s
is printed per corpus (pooled), and per mix with `--per-mix`. What `segment` does besides (cue hints) is not
scored here; the accuracy bench scores the whole result.

    .venv/bin/python -m bench.accuracy.boundaries corpora/synthetic corpora/game --split tune --per-mix
    .venv/bin/python -m bench.accuracy.boundaries corpora/game --sweep penalty=3.5,4.5,5.5
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import itertools
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.accuracy.cli import STORE
from bench.accuracy.mixes import TrueMix, find_mixes
from bench.accuracy.score import BoundaryCounts, score_boundaries
from offbeat.dsp import track_boundaries
from offbeat.pipeline import registry
from offbeat.pipeline.runner import Run, StageRef, read
from offbeat.pipeline.stages import description as description_stage
from offbeat.pipeline.views import description, music_bounds
from offbeat.settings import Settings
from offbeat.storage import open_store

WINDOWS = (10.0, 30.0)


@dataclass(frozen=True)
class Described:
    """One mix as the boundary finder sees it."""

    mix: TrueMix
    description: Mapping[str, np.ndarray]
    start: float
    end: float


def settings_for(store: Path) -> Settings:
    """The settings of the accuracy bench's engine runs, so their entries are the ones found here."""
    return Settings(artifact_store=str(store), artifact_index_path=store / "index")


def run_stages(mix: TrueMix, settings: Settings, stages: list[str]) -> tuple[Run, dict[str, StageRef]]:
    """The run of `mix` through the store and the refs of `stages` (each read back, or computed when missing)."""
    run = Run(open_store(settings), settings, mix.audio)
    refs: dict[str, StageRef] = {}
    for name in stages:
        refs[name] = run.stage(name, refs)
    return run, refs


def stage_refs(
    mix: TrueMix, settings: Settings, stages: list[str], cache: Path
) -> tuple[Run, dict[str, StageRef], Path]:
    """`run_stages`, and the file in `cache` that holds what a bench derives from their entries: named by the
    audio file (path and modification time) and the stages' keys, so a changed mix or stage is read anew."""
    digest = hashlib.sha256(f"{mix.audio.resolve()}:{mix.audio.stat().st_mtime_ns}".encode()).hexdigest()[:16]
    run, refs = run_stages(mix, settings, stages)
    keys = hashlib.sha256("".join(refs[n].key for n in stages).encode()).hexdigest()[:16]
    return run, refs, cache / f"{mix.mix_id}-{digest}-{keys}.npz"


def describe(mix: TrueMix, settings: Settings, embedded: bool = False) -> Described:
    """The mix's `description` entry and music bounds, read from the store (computed there when missing); with
    `embedded`, the same-track embedding too where the entry lacks it (no cue of nonzero weight reads it as
    committed), computed as the stage would and kept beside the store."""
    stages = list(registry.needed_by("description"))
    run, refs, cached = stage_refs(mix, settings, stages, Path(settings.artifact_store) / "embeddings")
    entries = {name: read(run.store, refs[name]) for name in ("description", "decode", "trim")}
    start, end = music_bounds(entries["decode"], entries["trim"])
    desc = description(entries["description"])
    if embedded and "embedding" not in desc:
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            rows = description_stage.embedding(entries["decode"], len(desc["bpm"]))
            np.savez(cached, embedding=rows)
        desc["embedding"] = np.load(cached)["embedding"]
    return Described(mix, desc, start, end)


def configured(values: dict[str, Any], min_track_sec: float) -> track_boundaries.Config:
    """The boundary finder's configuration with `values` for its fields, or for the weights of its cues (names in
    any case); unknown names are refused."""
    fields = {field.name for field in dataclasses.fields(track_boundaries.Config)}
    weights = {cue.name: cue for cue in track_boundaries.CONFIG.cues}
    changes = {name.lower(): value for name, value in values.items()}
    unknown = sorted(name for name in changes if name not in fields and name not in weights)
    if unknown:
        raise SystemExit(f"track_boundaries.Config has no field or cue {', '.join(unknown)}")
    cues = tuple(
        dataclasses.replace(cue, weight=float(changes[cue.name])) if cue.name in changes else cue
        for cue in changes.get("cues", track_boundaries.CONFIG.cues)
    )
    fields_changed = {name: value for name, value in changes.items() if name in fields}
    return dataclasses.replace(
        track_boundaries.CONFIG, **{"min_track_sec": min_track_sec, **fields_changed, "cues": cues}
    )


def evaluate(
    mixes: list[Described], config: track_boundaries.Config
) -> tuple[dict[str, dict[float, BoundaryCounts]], dict[str, tuple[int, int]], list[str]]:
    """Pooled counts per corpus and window, (files found as one track, files of one track) per corpus, and one
    printable row per mix."""
    pooled: dict[str, dict[float, BoundaryCounts]] = {}
    singles: dict[str, tuple[int, int]] = {}
    rows = []
    for item in mixes:
        found = track_boundaries.find_boundaries(item.description, item.start, item.end, config).times
        if len(item.mix.boundaries) == 0:
            one, files = singles.get(item.mix.corpus, (0, 0))
            singles[item.mix.corpus] = (one + int(len(found) == 0), files + 1)
        per_window = pooled.setdefault(item.mix.corpus, {w: BoundaryCounts() for w in WINDOWS})
        cells = []
        for window in WINDOWS:
            _, counts, _ = score_boundaries(item.mix, [float(b) for b in found], window)
            per_window[window].add(counts)
            p, r, f = counts.prf()
            cells.append(f"F{window:.0f} {_fmt(f)} (P {_fmt(p)} R {_fmt(r)})")
        missed = [round(float(b)) for b in item.mix.boundaries if not np.any(np.abs(found - b) <= WINDOWS[0])]
        phantom = [round(float(b)) for b in found if not np.any(np.abs(item.mix.boundaries - b) <= WINDOWS[0])]
        rows.append(
            f"  {item.mix.corpus}/{item.mix.mix_id}: {len(item.mix.boundaries) + 1} tracks, {len(found) + 1} found; "
            f"{'; '.join(cells)}; missed {missed} phantom {phantom}"
        )
    return pooled, singles, rows


def _fmt(value: float | None) -> str:
    return "  - " if value is None else f"{value:.2f}"


def report(label: str, pooled: dict[str, dict[float, BoundaryCounts]], singles: dict[str, tuple[int, int]]) -> str:
    """One line per corpus and one for all of them: P/R/F at each window, and the single-track files found as one
    track (their boundaries, none, count only there)."""
    lines = [label]
    total = {w: BoundaryCounts() for w in WINDOWS}
    for corpus, per_window in sorted(pooled.items()):
        for window, counts in per_window.items():
            total[window].add(counts)
        one, files = singles.get(corpus, (0, 0))
        alone = f" | single tracks found as one: {one}/{files}" if files else ""
        lines.append(f"  {corpus:18s} " + _cells(per_window) + alone)
    lines.append(f"  {'all':18s} " + _cells(total))
    return "\n".join(lines)


def _cells(per_window: dict[float, BoundaryCounts]) -> str:
    cells = []
    for window, counts in per_window.items():
        p, r, f = counts.prf()
        cells.append(f"+-{window:.0f}s F {_fmt(f)} P {_fmt(p)} R {_fmt(r)}")
    return " | ".join(cells)


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _assignments(items: Sequence[str]) -> dict[str, str]:
    """NAME=TEXT pairs, by name."""
    return {name.strip(): text for name, _, text in (item.partition("=") for item in items)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy.boundaries", description=__doc__.split("\n\n")[0])
    parser.add_argument("corpora", nargs="+", type=Path, metavar="CORPUS_DIR")
    parser.add_argument("--split", choices=("test", "tune", "all"), default="tune", help="which mixes (default tune)")
    parser.add_argument("--store", type=Path, default=STORE, help="artifact store (default: the accuracy bench's)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a Config field's value")
    parser.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2", help="values to try")
    parser.add_argument("--min-track-sec", type=float, default=Settings().min_track_sec)
    parser.add_argument("--per-mix", action="store_true", help="one row per mix, with missed and phantom cuts")
    args = parser.parse_args(argv)

    settings = settings_for(args.store)
    mixes = find_mixes(args.corpora, args.split)
    if not mixes:
        raise SystemExit("no mixes of that split in those corpora")
    fixed = {name: _value(text) for name, text in _assignments(args.set).items()}
    sweeps = {name: [_value(v) for v in text.split(",")] for name, text in _assignments(args.sweep).items()}
    names = list(sweeps)
    combinations = [
        {**fixed, **dict(zip(names, combination, strict=True))}
        for combination in (itertools.product(*sweeps.values()) if sweeps else [()])
    ]
    configs = [configured(values, args.min_track_sec) for values in combinations]
    embedded = any("embedding" in track_boundaries.sources(config) for config in configs)
    started = time.perf_counter()
    described = []
    for mix in mixes:
        print(f"describing {mix.corpus}/{mix.mix_id} ({mix.duration / 60:.1f} min) ...", file=sys.stderr, flush=True)
        described.append(describe(mix, settings, embedded))
    print(f"{len(described)} mixes described in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    for values, config in zip(combinations, configs, strict=True):
        pooled, singles, rows = evaluate(described, config)
        label = ", ".join(f"{k}={v}" for k, v in values.items()) or "as committed"
        print(report(label, pooled, singles))
        if args.per_mix:
            print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
