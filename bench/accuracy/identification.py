"""Track identification (`offbeat.dsp.fingerprint`) through DJ mixes: tempo changes with and without key lock,
crossfades with EQ, and tracks that are not in the library.

The library is every real track (the game soundtrack pieces and the recorded songs) and 200 synthetic ones
(`bench.corpus.library`), less the held-out tracks: about one synthetic track in five and one game piece in
eight, which are played in the mixes but never indexed. Mixes are built per split: each track of the split is
played (once per round; a held-out one twice per round) as a 30-90 s excerpt at a ratio from RATIOS, by
varispeed (resampled: the pitch follows) or with key lock (librosa's phase-vocoder time stretch with its default
93 ms window, n_fft 1024 at 11.025 kHz), in sequences of
4-8 tracks crossfaded over 8-32 s with a bass swap (the incoming track's lows cut, then handed over). Every play
is then identified from the query quads of its span of the mix (`bench.accuracy.identification_mixes.spans`): the
"solo" span (between its blends, as the truth times give them), the "cut" span (from the middle of the
incoming blend to the middle of the outgoing one, half of each neighbour included) and the "engine" (the whole
mix searched as the `library_plays` stage searches it, 20 s windows every 10 s joined into plays, and the play
covering at least half of the solo span names it, as the `identify` stage decides; its seconds and CPU are the
play's share of the whole search).

A play of a library track is right when the track (or another version of the same work) is named with
confidence at least the threshold and the tempo ratio within 0.5 %; wrong when another track is named with
that confidence; none otherwise. A held-out track named with that confidence is a false identification. The
threshold is chosen on the tune split (the lowest that keeps its false rate of held-out plays at most 1 %
over every span) and applied to the test split.

    .venv/bin/python -m bench.accuracy.identification [--quick] [--json out.json] [--set HASH_TOLERANCE=0.03]
        [--ref peaks_per_sec=8] [--query boxes_per_root=6]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import multiprocessing
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.accuracy.identification_mixes import MODES, RATIOS, Play, plan_mixes, render, spans
from bench.corpus.library import SR, STORE, Track, real_tracks, synthetic_tracks
from offbeat.dsp import anchors, matching
from offbeat.dsp import fingerprint as fp
from offbeat.library import window_quads
from offbeat.settings import Settings

SPANS = ("solo", "cut", "engine")
SYNTH_TRACKS = 200
TEMPO_TOLERANCE = 0.005
THRESHOLDS = tuple(np.round(np.arange(0.0, 0.801, 0.02), 2))
MAX_TUNE_FALSE = 0.01


def held_out(t: Track, index_in_kind: int) -> bool:
    """Tracks played but never indexed: one synthetic track in five, one game piece in eight."""
    if t.kind == "synth":
        return index_in_kind % 5 == 2
    if t.kind == "game":
        return index_in_kind % 8 == 3
    return False


def corpus(log=print) -> tuple[list[Track], set[str]]:
    tracks = real_tracks(log) + synthetic_tracks(SYNTH_TRACKS, log)
    out: set[str] = set()
    for kind in ("game", "recorded", "synth"):
        for n, t in enumerate(x for x in tracks if x.kind == kind):
            if held_out(t, n):
                out.add(t.key)
    return tracks, out


# ---------------------------------------------------------------- reference fingerprints, cached per shape


def _ref_tag() -> str:
    names = ("SAMPLE_RATE", "N_FFT", "HOP", "MIN_HZ", "MAX_HZ", "PEAK_FREQ_BINS", "PEAK_FRAMES", "PEAK_FLOOR_DB")
    text = repr((fp.VERSION, fp.REFERENCE, [getattr(fp, n) for n in names]))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _ref_job(t: Track) -> tuple[str, fp.Quads, float]:
    path = STORE / "refs" / _ref_tag() / (t.path.stem + ".npz")
    if path.exists():
        with np.load(path) as z:
            return t.key, fp.Quads(*(z[n] for n in fp.Quads.__dataclass_fields__)), 0.0
    t0 = time.process_time()
    q = fp.reference_fingerprint(np.asarray(t.audio()), SR)
    cpu = time.process_time() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **{n: getattr(q, n) for n in fp.Quads.__dataclass_fields__})
    tmp.replace(path)
    return t.key, q, cpu


def references(tracks: list[Track], workers: int) -> tuple[dict[str, fp.Quads], float]:
    """Reference quads of `tracks` (from the cache when there) and the CPU seconds spent making new ones."""
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        done = pool.map(_ref_job, tracks, chunksize=2)
    return {k: q for k, q, _ in done}, sum(c for _, _, c in done)


# ---------------------------------------------------------------- identification, in workers

_INDEX: fp.Index | None = None
_KEYS: list[str] = []
_TRACKS: dict[str, Track] = {}


def _engine_plays(mix: np.ndarray) -> tuple[list[anchors.Play], float, float, int]:
    """The whole-mix search as the engine runs it: the plays found, the CPU seconds of the quads and of the
    search, and how many quads the mix gave."""
    t0 = time.process_time()
    quads = anchors.mix_quads(mix, SR, 0.0, len(mix) / SR)
    t1 = time.process_time()
    assert _INDEX is not None
    matches = anchors.MixMatches.of(_INDEX, quads)
    floor = Settings.model_fields["identify_min_confidence"].default  # the engine's: windows under it join no play
    found = anchors.plays(anchors.search(matches, anchors.windows(0.0, len(mix) / SR)), floor)
    return found, t1 - t0, time.process_time() - t1, len(quads.root_sec)


def _engine_match(engine: list[anchors.Play], lo: float, hi: float) -> matching.Identification | None:
    """What the engine says of a track whose steady part is [lo, hi] (`anchors.named_by`, the `identify` stage's
    rule)."""
    named = anchors.named_by([(e.start, e.end) for e in engine], lo, hi)
    if named is None:
        return None
    best = engine[named]
    return matching.Identification(
        best.track, best.confidence, best.windows, 0, best.tempo_ratio, best.pitch_ratio, best.offset_sec
    )


def _mix_job(job: tuple[int, list[Play]]) -> list[dict]:
    seed, plays = job
    assert _INDEX is not None
    mix = render(plays, _TRACKS, np.random.default_rng(seed))
    engine, engine_extract, engine_identify, engine_quads = _engine_plays(mix)
    total = sum(p.mix_end - p.mix_start for p in plays)
    rows = []
    for n, p in enumerate(plays):
        heard = [plays[k].key for k in (n - 1, n + 1) if 0 <= k < len(plays)]
        for span, windows in spans(p).items():
            if span == "engine":  # shares of the whole-mix search's cost, by the play's length
                share = (p.mix_end - p.mix_start) / max(total, 1e-9)
                found_id = _engine_match(engine, *windows[0])
                q_count, t0, t1 = int(engine_quads * share), 0.0, engine_extract * share
                t2 = t1 + engine_identify * share
            else:
                t0 = time.process_time()
                q = window_quads(mix, SR, windows)
                t1 = time.process_time()
                found_id = matching.identify(_INDEX, q)
                t2 = time.process_time()
                q_count = len(q.root_sec)
            rows.append(
                {
                    **dataclasses.asdict(p),
                    "span": span,
                    "neighbours": heard if span == "cut" else [],
                    "seconds": sum(e - s for s, e in windows),
                    "query_quads": q_count,
                    "extract_cpu": t1 - t0,
                    "identify_cpu": t2 - t1,
                    "found": None if found_id is None else _KEYS[found_id.track],
                    "confidence": 0.0 if found_id is None else found_id.confidence,
                    "votes": 0 if found_id is None else found_id.votes,
                    "runner_up_votes": 0 if found_id is None else found_id.runner_up_votes,
                    "tempo_ratio": None if found_id is None else found_id.tempo_ratio,
                    "pitch_ratio": None if found_id is None else found_id.pitch_ratio,
                    "offset_sec": None if found_id is None else found_id.offset_sec,
                }
            )
    return rows


def run_mixes(
    mixes: list[list[Play]], index: fp.Index, keys: list[str], tracks: list[Track], workers: int
) -> list[dict]:
    global _INDEX, _KEYS, _TRACKS
    _INDEX, _KEYS, _TRACKS = index, keys, {t.key: t for t in tracks}
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        parts = pool.map(_mix_job, list(enumerate(mixes)), chunksize=1)
    return [r for part in parts for r in part]


# ---------------------------------------------------------------- scoring


def outcome(row: dict, threshold: float, work: dict[str, str]) -> str:
    """right, tempo (the track but the tempo ratio off), neighbour (a track that plays in the span's blends),
    wrong, false (a held-out track named) or none."""
    if row["found"] is None or row["confidence"] < threshold:
        return "none"
    if row["found"] in row.get("neighbours", ()) and work[row["found"]] != work[row["key"]]:
        return "neighbour"
    if not row["in_library"]:
        return "false"
    if work[row["found"]] != work[row["key"]]:
        return "wrong"
    return "right" if abs(row["tempo_ratio"] / row["ratio"] - 1) <= TEMPO_TOLERANCE else "tempo"


def choose_threshold(rows: list[dict], work: dict[str, str]) -> float:
    out = [r for r in rows if not r["in_library"]]
    for th in THRESHOLDS:
        if sum(outcome(r, th, work) == "false" for r in out) <= MAX_TUNE_FALSE * max(1, len(out)):
            return float(th)
    return float(THRESHOLDS[-1])


def table(rows: list[dict], threshold: float, work: dict[str, str]) -> tuple[str, dict]:
    lines, summary = [], {}
    for span in SPANS:
        rs = [r for r in rows if r["span"] == span]
        lib = [r for r in rs if r["in_library"]]
        out = [r for r in rs if not r["in_library"]]
        lines.append(
            f"span {span}: {len(lib)} plays of library tracks, {len(out)} of held-out ones, threshold {threshold}"
        )
        lines.append("  ratio   varispeed right/wrong/neighbour/none  keylock right/wrong/neighbour/none   both right")
        per = {}
        for ratio in RATIOS:
            cells = []
            for mode in MODES:
                c = [outcome(r, threshold, work) for r in lib if r["ratio"] == ratio and r["mode"] == mode]
                cells.append(c)
            both = cells[0] + cells[1]
            per[str(ratio)] = {
                m: {o: c.count(o) for o in ("right", "wrong", "tempo", "neighbour", "none")}
                for m, c in zip(MODES, cells, strict=True)
            }
            lines.append(
                f"  {ratio:4.2f}   "
                + "   ".join(
                    f"{c.count('right'):3d}/{c.count('wrong') + c.count('tempo'):2d}/{c.count('neighbour'):2d}/"
                    f"{c.count('none'):2d} of {len(c):3d}          "
                    for c in cells
                )
                + f"{_pct(both.count('right'), len(both))}"
            )
        bands = {}
        for name, lim in (("within 5 %", 0.051), ("within 10 %", 0.101)):
            sel = [outcome(r, threshold, work) for r in lib if abs(r["ratio"] - 1) < lim]
            bands[name] = {o: sel.count(o) for o in ("right", "wrong", "tempo", "neighbour", "none")} | {
                "plays": len(sel)
            }
            lines.append(
                f"  {name}: right {_pct(sel.count('right'), len(sel))}, wrong {_pct(sel.count('wrong'), len(sel))}, "
                f"tempo off {_pct(sel.count('tempo'), len(sel))}, neighbour {_pct(sel.count('neighbour'), len(sel))}, "
                f"none {_pct(sel.count('none'), len(sel))}"
            )
        false = sum(outcome(r, threshold, work) == "false" for r in out)
        lines.append(f"  held-out tracks named: {_pct(false, len(out))} ({false} of {len(out)})")
        errs = [
            abs(r["tempo_ratio"] / r["ratio"] - 1)
            for r in lib
            if r["found"] is not None and work[r["found"]] == work[r["key"]] and r["confidence"] >= threshold
        ]
        if errs:
            lines.append(
                f"  tempo error of the right tracks: median {np.median(errs) * 100:.3f} %, 99th pct "
                f"{np.percentile(errs, 99) * 100:.3f} %, max {max(errs) * 100:.3f} %"
            )
        by_kind = {}
        for kind in ("game", "recorded", "synth"):
            sel = [outcome(r, threshold, work) for r in lib if r["key"].startswith(kind)]
            by_kind[kind] = {"right": sel.count("right"), "plays": len(sel)}
        lines.append("  right by kind: " + ", ".join(f"{k} {v['right']}/{v['plays']}" for k, v in by_kind.items()))
        secs = sum(r["seconds"] for r in rs)
        lines.append(
            f"  CPU per minute of query audio: extract {60 * sum(r['extract_cpu'] for r in rs) / secs:.2f} s, "
            f"identify {60 * sum(r['identify_cpu'] for r in rs) / secs:.2f} s; query quads/s "
            f"{sum(r['query_quads'] for r in rs) / secs:.0f}"
        )
        summary[span] = {
            "per_ratio": per,
            "bands": bands,
            "held_out_false": false,
            "held_out_plays": len(out),
            "by_kind": by_kind,
            "tempo_error_max": max(errs) if errs else None,
        }
    return "\n".join(lines), summary


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:5.1f} %" if b else "  -  "


def _apply(settings: Sequence[str], ref: Sequence[str], query: Sequence[str]) -> None:
    for s in settings:  # a constant of the fingerprint or the matching, set wherever it is named
        name, value = s.split("=", 1)
        owners = [m for m in (fp, matching) if hasattr(m, name)]
        if not owners:
            raise SystemExit(f"no constant {name} in offbeat.dsp.fingerprint or offbeat.dsp.matching")
        for module in owners:
            setattr(module, name, type(getattr(module, name))(value))
    for attr, changes in (("REFERENCE", ref), ("QUERY", query)):
        shape = getattr(fp, attr)
        for s in changes:
            name, value = s.split("=", 1)
            shape = dataclasses.replace(shape, **{name: type(getattr(shape, name))(value)})
        setattr(fp, attr, shape)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a third of each split's tracks, one round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--splits", default="tune,test")
    ap.add_argument("--threshold", type=float, help="instead of choosing one on tune")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--set", action="append", default=[], help="NAME=VALUE of a fingerprint or matching constant")
    ap.add_argument("--ref", action="append", default=[], help="FIELD=VALUE of the reference Shape")
    ap.add_argument("--query", action="append", default=[], help="FIELD=VALUE of the query Shape")
    args = ap.parse_args(argv)
    _apply(args.set, args.ref, args.query)
    t0 = time.time()
    tracks, out = corpus(lambda s: print(s, file=sys.stderr))
    library = [t for t in tracks if t.key not in out]
    refs, cpu = references(library, args.workers)
    keys = [t.key for t in library]
    index = fp.build_index({n: refs[k] for n, k in enumerate(keys)})
    n_quads = len(index.keys)
    nbytes = (
        index.keys.nbytes
        + index.track.nbytes
        + sum(getattr(index.quads, f).nbytes for f in fp.Quads.__dataclass_fields__)
    )
    ref_sec = sum(t.seconds for t in library)
    head = (
        f"library {len(library)} tracks ({sum(t.kind == 'game' for t in library)} game, "
        f"{sum(t.kind == 'recorded' for t in library)} recorded, {sum(t.kind == 'synth' for t in library)} synthetic; "
        f"{ref_sec / 3600:.1f} h), held out {len(out)}; reference quads {n_quads} ({n_quads / ref_sec:.1f}/s), "
        f"index {nbytes / 1e6:.1f} MB ({nbytes / len(library) / 1e3:.1f} kB per track, "
        f"{nbytes / ref_sec * 180 / 1e3:.1f} kB per 3 min)"
        + (f"; new references made in {cpu:.0f} CPU s" if cpu else "")
    )
    print(head)
    print("reference", fp.REFERENCE, "\nquery", fp.QUERY, f"\ntolerance {fp.HASH_TOLERANCE}, bins {fp.HASH_BINS}")
    work = {t.key: t.work for t in tracks}
    result: dict = {"library": head, "reference": repr(fp.REFERENCE), "query": repr(fp.QUERY), "work": work}
    result["splits"] = {}
    rows_by_split = {}
    for split in args.splits.split(","):
        mixes = plan_mixes(
            tracks,
            out,
            split,
            1 if args.quick else args.rounds,
            seed=11 if split == "tune" else 12,
            share=0.35 if args.quick else 1.0,
        )
        t1 = time.time()
        rows_by_split[split] = run_mixes(mixes, index, keys, tracks, args.workers)
        print(
            f"{split}: {len(mixes)} mixes, {len(rows_by_split[split]) // len(SPANS)} plays in {time.time() - t1:.0f} s"
        )
    threshold = args.threshold
    if threshold is None:
        threshold = choose_threshold(rows_by_split.get("tune", []), work) if "tune" in rows_by_split else 0.3
    for split, rows in rows_by_split.items():
        text, summary = table(rows, threshold, work)
        print(f"== {split} ==\n{text}")
        result["splits"][split] = {"threshold": threshold, "summary": summary, "rows": rows}
    print(f"total {time.time() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
