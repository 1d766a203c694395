"""The corpus's command line: fetch and check the split's packages, analyze its pieces, write its mixes, their
truth, the manifest and the attribution."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.corpus.game.analysis import SAMPLE_RATE, analyze_all
from bench.corpus.game.plan import CORPUS, AudioCache, Queue, build
from bench.corpus.game.sources import PACKAGES, Piece, discover_pieces, fetch_packages, write_attribution
from bench.corpus.truth import SPLITS, write_mix

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_CACHE = REPO_ROOT / ".corpus-cache"


def piece_table(pieces: list[Piece]) -> str:
    """One line per piece: provenance, licence, length, estimated tempo and whether it counts as known."""
    head = f"{'piece':34s} {'title - artist':58s} {'split':5s} {'sec':>6s} {'bpm':>7s} {'reg':>5s} {'contr':>5s} known"
    lines = [head, "-" * len(head)]
    for p in pieces:
        a = p.analysis
        bpm = f"{a['bpm']:7.1f}" if a.get("bpm") else "      -"
        lines.append(
            f"{p.key:34s} {(p.title + ' - ' + p.artist)[:58]:58s} {p.split:5s} {p.duration:6.1f} {bpm} "
            f"{a.get('regularity', 0):5.2f} {a.get('contrast', 0):5.2f} {'yes' if p.bpm else 'no'}"
        )
    return "\n".join(lines)


def update_manifest(out: Path, fetched: dict[str, tuple[Path, str]], mixes: dict[str, dict[str, Any]]) -> None:
    """Merge this run's mixes into ``game-manifest.json`` (runs for the two splits share one folder)."""
    path = out / f"{CORPUS}-manifest.json"
    doc: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    doc["corpus"] = CORPUS
    doc["packages"] = {
        p.name: {"version": fetched[p.name][1], "licence": p.licence, "split": p.split}
        for p in PACKAGES
        if p.name in fetched
    }
    doc.setdefault("mixes", {}).update(mixes)
    path.write_text(json.dumps(doc, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Fetch, check licences, analyze the split's pieces, then write its whole, quick and single-track mixes."""
    from bench.corpus import game  # its docstring is the help text (imported here: it imports this module)

    parser = argparse.ArgumentParser(
        prog="python -m bench.corpus.game",
        description=game.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for <mix_id>.flac + <mix_id>.json")
    parser.add_argument("--split", choices=SPLITS, required=True)
    parser.add_argument("--mixes", type=int, default=4, help="whole-track mixes of 15-25 min")
    parser.add_argument("--quick", type=int, default=0, help="quick mixes of about 10 min (1-2 min excerpts)")
    parser.add_argument("--singles", type=int, default=0, help="files of one whole 3-8 min track each")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="downloaded packages and analysis")
    parser.add_argument("--list", action="store_true", help="print the split's pieces and stop")
    args = parser.parse_args(argv)

    packages = tuple(p for p in PACKAGES if p.split == args.split)
    fetched = fetch_packages(args.cache, packages)
    pieces = discover_pieces(fetched, packages)
    analyze_all(pieces, args.cache)
    print(piece_table(pieces))
    if args.list:
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    split_no = SPLITS.index(args.split)
    queue = Queue(pieces, np.random.default_rng([args.seed, split_no]))
    audio = AudioCache()
    manifest: dict[str, dict[str, Any]] = {}
    jobs = [("whole", args.mixes), ("quick", args.quick), ("single", args.singles)]
    for kind_no, (kind, count) in enumerate(jobs):
        for i in range(count):
            mix_id = f"{CORPUS}-{args.split}-{kind}-s{args.seed}-{i:03d}"
            rng = np.random.default_rng([args.seed, split_no, kind_no, i])
            mix, truth, entry = build(mix_id, args.split, kind, queue, audio, rng)
            write_mix(args.out, mix_id, mix, SAMPLE_RATE, truth)
            manifest[mix_id] = entry
            desc = " | ".join(
                f"{p['piece']}" + (f" x{p['stretch_ratio']:.3f}" if p["stretch_ratio"] != 1.0 else "")
                for p in entry["parts"]
            )
            print(
                f"{mix_id}: {truth.duration_sec / 60:.1f} min, {len(truth.tracks)} tracks, boundaries "
                f"{[round(b, 1) for b in truth.boundaries_sec]}: {desc}"
            )
            del mix
    update_manifest(args.out, fetched, manifest)
    write_attribution(args.out / f"{CORPUS}-{args.split}-ATTRIBUTION.txt", fetched, pieces)
    return 0
