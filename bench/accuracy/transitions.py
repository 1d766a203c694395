"""The transition descriptions (`offbeat.dsp.transitions`) scored against the synthetic corpus, whose generator
knows every blend's length, kind and whether it was beat-matched.

The engine's stages up to `segment` run once per mix through a store of the bench's own (separation, which
`segment` does not read, never runs); the signals the transitions are read from and the segment stage's windows
are kept beside it, so the descriptions are recomputed in seconds with the module's constants as committed or
as `--set NAME=VALUE` changes them. Every true boundary is matched to the nearest detected one within 10 s (one
each); on the matched ones it prints the share whose length is within one bar of the true blend's, whose kind
is right, and whose beat-matched flag is right, per split, and per transition with `--per-transition`.

    .venv/bin/python -m bench.accuracy.transitions corpora/synthetic-tr --split tune --store .bench-store/transitions
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bench.accuracy.boundaries import _value, settings_for, stage_refs
from bench.accuracy.mixes import TrueMix, find_mixes
from bench.accuracy.run import REPO
from bench.corpus.truth import read_mix
from offbeat.dsp import transitions
from offbeat.pipeline import registry
from offbeat.pipeline.runner import read
from offbeat.pipeline.stages import segment

MATCH_SEC = 10.0
STORE = REPO / ".bench-store" / "transitions"


@dataclass(frozen=True)
class TrueBlend:
    """One blend as the generator made it."""

    middle: float
    seconds: float
    bars: float
    kind: str | None
    beatmatched: bool | None


@dataclass(frozen=True)
class Described:
    """One mix as the transition reader sees it: its signals, the detected windows and the truth."""

    mix: TrueMix
    signals: transitions.Signals
    starts: np.ndarray  # detected transition windows
    ends: np.ndarray
    truth: list[TrueBlend]


def true_blends(mix: TrueMix) -> list[TrueBlend]:
    """Every blend of the mix: its middle, length (seconds, and the outgoing track's bars), kind, beat-matching."""
    tracks = read_mix(mix.truth_path).tracks
    out = []
    for before, track in itertools.pairwise(tracks):
        start, end = track.transition_in or (track.start_sec, track.start_sec)
        beat = float(np.median(np.diff(before.beats_sec[-9:]))) if len(before.beats_sec) > 2 else 60.0 / before.bpm
        bars = (end - start) / beat / before.meter
        out.append(TrueBlend(0.5 * (start + end), end - start, bars, track.blend_in, track.beatmatched_in))
    return out


@contextmanager
def constants(module: ModuleType, values: dict[str, Any]) -> Iterator[None]:
    """`module`'s constants set to `values` for the block; unknown names are refused."""
    unknown = sorted(name for name in values if not hasattr(module, name))
    if unknown:
        raise SystemExit(f"{module.__name__} has no constant {', '.join(unknown)}")
    before = {name: getattr(module, name) for name in values}
    try:
        for name, value in values.items():
            setattr(module, name, value)
        yield
    finally:
        for name, value in before.items():
            setattr(module, name, value)


def describe(mix: TrueMix, store: Path) -> Described:
    """The mix's signals and detected windows: read from the cache beside the store, or computed through it."""
    stages = list(registry.needed_by("segment"))
    run, refs, path = stage_refs(mix, settings_for(store), stages, store.parent / "transitions-cache")
    if not path.exists():
        entries = {name: read(run.store, refs[name]) for name in stages}
        signals = segment.transition_signals(entries["envelopes"], entries["beats"])
        attrs = entries["segment"].attrs
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            path,
            band_power=signals.band_power,
            beats=signals.beats,
            beat_position=signals.beat_position,
            bpm_curve=signals.bpm_curve,
            starts=np.asarray(attrs["transition_starts"], float),
            ends=np.asarray(attrs["transition_ends"], float),
        )
    data = np.load(path)
    signals = transitions.Signals(data["band_power"], data["beats"], data["beat_position"], data["bpm_curve"])
    return Described(mix, signals, data["starts"], data["ends"], true_blends(mix))


def matched(truth: list[TrueBlend], starts: np.ndarray, ends: np.ndarray) -> list[tuple[TrueBlend, int]]:
    """True blends paired with the nearest detected window (by its middle) within MATCH_SEC, one each."""
    middles = 0.5 * (starts + ends)
    pairs = sorted((abs(blend.middle - m), i, j) for i, blend in enumerate(truth) for j, m in enumerate(middles))
    used_true: set[int] = set()
    used_found: set[int] = set()
    out = []
    for gap, i, j in pairs:
        if gap <= MATCH_SEC and i not in used_true and j not in used_found:
            used_true.add(i)
            used_found.add(j)
            out.append((truth[i], j))
    return out


def evaluate(mixes: list[Described]) -> tuple[dict[str, list[bool]], list[str]]:
    """Per criterion, one verdict per matched transition (where the truth knows it); one printable row each."""
    verdicts: dict[str, list[bool]] = {"length": [], "kind": [], "beatmatched": []}
    rows = []
    for item in mixes:
        for blend, j in matched(item.truth, item.starts, item.ends):
            found = transitions.describe(item.signals, float(item.starts[j]), float(item.ends[j]))
            length_ok = found.bars is not None and abs(found.bars - blend.bars) <= 1.0
            verdicts["length"].append(length_ok)
            if blend.kind is not None:
                verdicts["kind"].append(found.kind == blend.kind)
            if blend.beatmatched is not None:
                verdicts["beatmatched"].append(found.beatmatched == blend.beatmatched)
            bars = "-" if found.bars is None else f"{found.bars:5.1f}"
            ratio = "-" if found.tempo_ratio is None else f"{found.tempo_ratio:.3f}"
            rows.append(
                f"  {item.mix.mix_id} @{blend.middle:6.1f}s: bars {bars} (true {blend.bars:5.1f}, window "
                f"{found.end - found.start:5.1f}s, true {blend.seconds:5.1f}s) kind {found.kind} (true {blend.kind}) "
                f"matched {found.beatmatched} (true {blend.beatmatched}, ratio {ratio})"
            )
    return verdicts, rows


def report(label: str, verdicts: dict[str, list[bool]], true_count: int) -> str:
    """One line: each criterion's share right, of the matched transitions."""
    cells = [f"{name} {np.mean(v):.2f} ({sum(v)}/{len(v)})" if v else f"{name} -" for name, v in verdicts.items()]
    matched_count = len(verdicts["length"])
    return f"{label}: matched {matched_count}/{true_count} boundaries within {MATCH_SEC:.0f} s | " + " | ".join(cells)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy.transitions", description=__doc__.split("\n\n")[0])
    parser.add_argument("corpora", nargs="+", type=Path, metavar="CORPUS_DIR")
    parser.add_argument("--split", choices=("test", "tune", "all"), default="tune", help="which mixes (default tune)")
    parser.add_argument("--store", type=Path, default=STORE, help=f"artifact store (default {STORE.relative_to(REPO)})")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a constant's value")
    parser.add_argument("--per-transition", action="store_true", help="one row per matched transition")
    args = parser.parse_args(argv)

    mixes = find_mixes(args.corpora, args.split)
    if not mixes:
        raise SystemExit("no mixes of that split in those corpora")
    described = []
    for mix in mixes:
        print(f"describing {mix.corpus}/{mix.mix_id} ({mix.duration / 60:.1f} min) ...", file=sys.stderr, flush=True)
        described.append(describe(mix, args.store))
    values = {name.strip(): _value(text) for name, _, text in (item.partition("=") for item in args.set)}
    with constants(transitions, values):
        verdicts, rows = evaluate(described)
    label = ", ".join(f"{k}={v}" for k, v in values.items()) or "as committed"
    print(report(f"{args.split} ({label})", verdicts, sum(len(d.truth) for d in described)))
    if args.per_transition:
        print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
