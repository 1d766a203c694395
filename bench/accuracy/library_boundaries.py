"""Track boundaries where the track library knows the tracks: the whole-mix search of `offbeat.dsp.anchors`
(plays and the handovers between them) scored against the true boundaries of the DJ mixes of
`bench.accuracy.identification` (varispeed and key-locked plays at tempo 0.90-1.10, 8-32 s crossfades with a bass
swap, tracks held out of the library among them).

A true boundary is the middle of a crossfade. For mixes whose every track is in the library, the boundaries
found are the handovers alone: F(+-10 s) and F(+-30 s) with mir_eval, precision, recall and the median error
of the hits. For every mix, the handovers' precision (a handover is right within 10 s of a true boundary) and the
plays: how many library plays are covered by a play of the right track, and how many plays name a held-out
stretch.

    .venv/bin/python -m bench.accuracy.library_boundaries [--split test] [--share 0.35] [--workers 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections.abc import Sequence

import mir_eval
import numpy as np

from bench.accuracy.identification import corpus, references
from bench.accuracy.identification_mixes import Play, plan_mixes, render
from bench.corpus.library import SR, Track
from offbeat.dsp import anchors
from offbeat.dsp import fingerprint as fp

MIN_CONFIDENCE = 0.6  # the engine's default OFFBEAT_IDENTIFY_MIN_CONFIDENCE
_INDEX: fp.Index | None = None
_KEYS: list[str] = []
_TRACKS: dict[str, Track] = {}


def _mix_job(job: tuple[int, list[Play]]) -> dict:
    seed, plays = job
    assert _INDEX is not None
    mix = render(plays, _TRACKS, np.random.default_rng(seed))
    t0 = time.process_time()
    matches = anchors.MixMatches.of(_INDEX, anchors.mix_quads(mix, SR, 0.0, len(mix) / SR))
    found = anchors.plays(anchors.search(matches, anchors.windows(0.0, len(mix) / SR)), MIN_CONFIDENCE)
    handovers = anchors.boundaries(matches, found)
    cpu = time.process_time() - t0
    return {
        "seconds": len(mix) / SR,
        "cpu": cpu,
        "truth": [p.mix_start + p.blend_in / 2 for p in plays[1:]],
        "true_plays": [(p.key, p.in_library, p.mix_start, p.mix_end) for p in plays],
        "plays": [(_KEYS[p.track], p.start, p.end) for p in found],
        "handovers": [h for h in handovers if h is not None],
    }


def score(rows: list[dict]) -> str:
    """The table of one split."""
    whole = [r for r in rows if all(inside for _, inside, _, _ in r["true_plays"])]
    f10, f30, errors, hits, found, truth = [], [], [], 0, 0, 0
    for r in whole:
        ref, est = np.array(r["truth"]), np.array(sorted(r["handovers"]))
        f10.append(mir_eval.onset.f_measure(ref, est, window=10.0)[0] if len(ref) and len(est) else 0.0)
        f30.append(mir_eval.onset.f_measure(ref, est, window=30.0)[0] if len(ref) and len(est) else 0.0)
        matched = mir_eval.util.match_events(ref, est, 10.0)
        errors += [abs(ref[i] - est[j]) for i, j in matched]
        hits, found, truth = hits + len(matched), found + len(est), truth + len(ref)
    right = sum(min((abs(h - t) for t in r["truth"]), default=99) <= 10 for r in rows for h in r["handovers"])
    handovers = sum(len(r["handovers"]) for r in rows)
    covered = library_plays = claimed = 0
    for r in rows:
        for key, inside, start, end in r["true_plays"]:
            middle = (start + end) / 2
            over = [k for k, s, e in r["plays"] if s <= middle <= e]
            if inside:
                library_plays += 1
                covered += key in over
            else:
                claimed += bool(over)
    held_out = sum(not inside for r in rows for _, inside, _, _ in r["true_plays"])
    hours = sum(r["seconds"] for r in rows) / 3600
    lines = [
        f"mixes whose every track is in the library: {len(whole)} ({truth} boundaries)",
        f"  F(+-10 s) {np.mean(f10) if f10 else 0:.3f}  F(+-30 s) {np.mean(f30) if f30 else 0:.3f}  "
        f"P {hits / max(found, 1):.3f}  R {hits / max(truth, 1):.3f}  "
        f"median error {np.median(errors) if errors else float('nan'):.2f} s",
        f"all mixes: {len(rows)}; handovers right within 10 s {right}/{handovers}; "
        f"library plays covered by a play of their track {covered}/{library_plays}; "
        f"held-out plays claimed {claimed}/{held_out}",
        f"search CPU {sum(r['cpu'] for r in rows) / max(hours, 1e-9):.0f} s per hour of mix",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--splits", default="test")
    ap.add_argument("--share", type=float, default=0.35, help="share of each split's tracks played")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    global _INDEX, _KEYS, _TRACKS
    tracks, out = corpus(lambda s: print(s, file=sys.stderr))
    library = [t for t in tracks if t.key not in out]
    refs, _ = references(library, args.workers)
    _KEYS = [t.key for t in library]
    _INDEX = fp.build_index({n: refs[k] for n, k in enumerate(_KEYS)})
    _TRACKS = {t.key: t for t in tracks}
    for split in args.splits.split(","):
        mixes = plan_mixes(tracks, out, split, 1, seed=21 if split == "tune" else 22, share=args.share)
        t0 = time.time()
        with multiprocessing.get_context("fork").Pool(args.workers) as pool:
            rows = pool.map(_mix_job, list(enumerate(mixes)), chunksize=1)
        print(f"== {split}: {len(mixes)} mixes in {time.time() - t0:.0f} s ==\n{score(rows)}")


if __name__ == "__main__":
    main()
