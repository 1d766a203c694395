"""Track identification at library scale: 10,000 generated tracks plus the bench library, index size and build
time, and the time to identify the tracks of a 60-minute mix.

Generated tracks are made at the fingerprint's own 8 kHz (seeded, 90-180 s): a bass line, chords and a melody
in a random key and tempo, harmonic notes with random timbres and decays, and noise drum hits. Their ranked
spectrogram peaks are cached under ``.bench-store/identification/scale`` (``--make``, in the background: about
0.2 CPU s per track); the reference quads are made from them with the current `fingerprint.REFERENCE` shape.

The mix: the test split plays of `bench.accuracy.identification` ("cut" spans and the engine's windows) are identified
against the 10,000 + bench-library index and against the bench library alone, on as many processes as
``--workers``; a 60-minute mix's time is given two ways: queried whole (the CPU time per minute of query audio
times 60, over the workers), and as the engine queries it (15 tracks at the CPU time per play, over the workers).

    .venv/bin/python -m bench.perf.identification_scale --make 10000 --workers 2   # cache the peaks
    .venv/bin/python -m bench.perf.identification_scale --tracks 10000 --json out.json

``--store N`` times the library as the engine keeps it instead (`offbeat.library`, the artifact store on local
disk): N members whose fingerprints are synthetic reference quads (random coordinates in the reference shape's
ranges, about 20 per second of 90-180 s tracks: they time the store and the index, not identification; written
once, about 20 ms each), the search index made over them, one real track added (a generated 30 s track, decoded,
fingerprinted and indexed as `offbeat library add` does), the index ready again afterwards in a fresh process's
state, and one search of that track against it.

    .venv/bin/python -m bench.perf.identification_scale --store 10000 --store-dir /tmp/scale-store
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.accuracy import identification as bi
from bench.corpus.library import STORE
from offbeat.dsp import fingerprint as fp

SR = fp.SAMPLE_RATE
CHUNK = 250  # generated tracks per cache file
SCALE = STORE / "scale"


def generated(seed: int) -> np.ndarray:
    """A generated track at 8 kHz."""
    rng = np.random.default_rng(1_000_000 + seed)
    seconds = float(rng.uniform(90, 180))
    n = int(seconds * SR)
    y = np.zeros(n + SR * 4, np.float32)
    beat = 60.0 / rng.uniform(80, 160)
    root = int(rng.integers(0, 12))
    scale = np.array([0, 2, 3, 5, 7, 8, 10] if rng.random() < 0.5 else [0, 2, 4, 5, 7, 9, 11])
    degrees = rng.integers(0, 7, size=8)
    timbres = [rng.uniform(0.1, 1.0, size=6) * (1.0 / np.arange(1, 7)) ** rng.uniform(0.3, 1.5) for _ in range(3)]

    def note(t: float, midi: float, dur: float, amp: float, timbre: np.ndarray, decay: float) -> None:
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        k = int(dur * SR)
        tt = np.arange(k, dtype=np.float32) / SR
        env = np.exp(-tt * decay) * np.minimum(1, tt / 0.005)
        x = np.zeros(k, np.float32)
        for h, a in enumerate(timbre, 1):
            if f0 * h < 3900:
                x += a * np.sin(2 * np.pi * f0 * h * tt, dtype=np.float32)
        s = int(t * SR)
        y[s : s + k] += (amp * env * x)[: len(y) - s]

    t, bar = 0.0, 0
    while t < seconds:
        chord = degrees[bar % 8]
        pcs = [root + scale[(chord + i) % 7] + 12 * ((chord + i) // 7) for i in (0, 2, 4)]
        for p in pcs:  # a chord per bar
            note(t, 48 + p, 4 * beat, 0.25, timbres[0], rng.uniform(0.5, 2))
        for b in range(4):  # bass on the beats
            note(t + b * beat, 36 + pcs[0] + (7 if b % 2 and rng.random() < 0.4 else 0), beat, 0.5, timbres[1], 4)
        step = t
        while step < t + 4 * beat:  # melody
            dur = beat * rng.choice([0.5, 1, 1, 2])
            p = root + scale[int(rng.integers(0, 7))] + 12 * int(rng.integers(0, 2))
            if rng.random() < 0.85:
                note(step, 64 + p, dur, rng.uniform(0.3, 0.7), timbres[2], rng.uniform(1, 6))
            step += dur
        for b in range(8):  # hats and snares as noise bursts
            if rng.random() < 0.7:
                k = int(0.04 * SR)
                s = int((t + b * beat / 2) * SR)
                y[s : s + k] += rng.normal(0, 0.15, k).astype(np.float32) * np.exp(-np.arange(k) / (0.008 * SR))
        t += 4 * beat
        bar += 1
    y = y[:n]
    return y / (np.max(np.abs(y)) + 1e-9) * 0.5


def ranked_peaks(seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    y = generated(seed)
    sec, hz = fp.peaks(fp.spectrogram(y, SR), 12)
    return sec.astype(np.float32), hz.astype(np.float32), len(y) / SR


def _make_chunk(c: int) -> str:
    path = SCALE / f"peaks-{c:04d}.npz"
    if path.exists():
        return f"{path.name} cached"
    t0 = time.process_time()
    got = [ranked_peaks(s) for s in range(c * CHUNK, (c + 1) * CHUNK)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        sec=np.concatenate([g[0] for g in got]),
        hz=np.concatenate([g[1] for g in got]),
        count=np.array([len(g[0]) for g in got]),
        seconds=np.array([g[2] for g in got]),
    )
    tmp.replace(path)
    return f"{path.name} made in {time.process_time() - t0:.0f} CPU s"


def load_generated(n_tracks: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    peaks, seconds = [], []
    for c in range((n_tracks + CHUNK - 1) // CHUNK):
        with np.load(SCALE / f"peaks-{c:04d}.npz") as z:
            ends = np.cumsum(z["count"])
            for k, (a, b) in enumerate(zip(ends - z["count"], ends, strict=True)):
                peaks.append((z["sec"][a:b].astype(np.float64), z["hz"][a:b].astype(np.float64)))
                seconds.append(z["seconds"][k])
    return peaks[:n_tracks], np.array(seconds[:n_tracks])


def _quads_job(p: tuple[np.ndarray, np.ndarray]) -> fp.Quads:
    return fp.quads(*p, fp.REFERENCE)


def synthetic_quads(seed: int) -> tuple[fp.Quads, float]:
    """Random reference quads of a track of 90-180 s (about 20 a second), and its length: the sizes and ranges of
    `fp.REFERENCE`'s quads, for timing the store and the index."""
    rng = np.random.default_rng(2_000_000 + seed)
    seconds = float(rng.uniform(90, 180))
    n = int(seconds * 20)
    hashes = rng.random((n, 4), dtype=np.float32)
    hashes[:, 2] = np.maximum(hashes[:, 0], hashes[:, 2])  # C no later than D
    sign = rng.choice(np.float32([-1, 1]), n)
    quads = fp.Quads(
        hashes,
        np.sort(rng.uniform(0, seconds, n)).astype(np.float32),
        rng.uniform(fp.MIN_HZ, fp.MAX_HZ, n).astype(np.float32),
        rng.uniform(fp.REFERENCE.box_min_sec, fp.REFERENCE.box_max_sec, n).astype(np.float32),
        (sign * rng.uniform(fp.REFERENCE.box_min_hz, 2000, n)).astype(np.float32),
    )
    return quads, seconds


def store_library(n_tracks: int, root: Path) -> list[str]:
    """Time the store-held library (see ``--store``): the lines printed."""
    import hashlib
    from dataclasses import asdict

    import soundfile as sf

    from offbeat import library as lib
    from offbeat.dsp import matching
    from offbeat.storage import ArtifactStore

    store = ArtifactStore(root / "artifacts", root / "index")
    library = lib.Library(store, "scale")
    indexed = getattr(library, "update_index", None)  # the segmented index; absent before it
    have = len(library.tracks())
    t0 = time.perf_counter()
    for k in range(have, n_tracks):
        digest = hashlib.blake2b(f"generated/{k}".encode(), digest_size=16).hexdigest()
        key = lib.fingerprint_key(digest, library.sample_rate)
        quads, seconds = synthetic_quads(k)
        with store.write(key, "fingerprint", source=digest) as out:
            lib.write_quads(out, quads)
            out.attrs.update(duration_sec=seconds, quads=len(quads.root_sec))
        member = lib.LibraryTrack(digest, f"generated {k}", "", f"generated/{k}", seconds, key, len(quads.root_sec), 0)
        store.index.set(library._record(digest), asdict(member))  # as `add` records it, without the audio
    if n_tracks > have:
        library._changed()
    lines = [
        f"library of {n_tracks} tracks: {n_tracks - have} synthetic fingerprints written in "
        f"{time.perf_counter() - t0:.0f} s"
    ]
    print(lines[0], flush=True)

    def timed(what: str, work: Any) -> Any:
        t0, c0 = time.perf_counter(), time.process_time()
        got = work()
        lines.append(f"{what}: {time.perf_counter() - t0:.1f} s ({time.process_time() - c0:.1f} CPU s)")
        print(lines[-1], flush=True)
        return got

    lib._LOADED.clear()
    if indexed is not None:
        timed("search index made over the members (update_index)", indexed)
    timed("search index ready in a fresh process (first search_index)", library.search_index)
    lib._LOADED.clear()
    timed("search index ready in a fresh process, library unchanged", library.search_index)
    audio = generated(n_tracks)[: 30 * SR]
    path = root / "added.wav"
    sf.write(str(path), audio, SR)

    def add() -> lib.LibraryTrack:
        member, _ = library.add(path, title="added")
        if indexed is not None:
            indexed()
        return member

    added = timed("library add of one 30 s track (fingerprint, record, index)", add)
    lib._LOADED.clear()
    searched = timed("search index ready after the add, in a fresh process", library.search_index)
    index, members = searched
    query = fp.fingerprint(audio[5 * SR : 25 * SR], SR)
    match = timed("one search of 20 s of the added track", lambda: matching.identify(index, query))
    lines.append(
        f"found {'the added track' if members[match.track].digest == added.digest else 'ANOTHER TRACK'} "
        f"(confidence {match.confidence:.2f}); index of {len(index.keys)} quads over {len(members)} tracks"
    )
    print(lines[-1], flush=True)
    library.remove([added])
    if indexed is not None:
        timed("library rm of the added track (index updated)", indexed)
    path.unlink()
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--make", type=int, help="cache the peaks of this many generated tracks, then stop")
    ap.add_argument("--tracks", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=0.6, help="the engine's default minimum confidence")
    ap.add_argument("--share", type=float, default=0.5, help="of the test split's tracks played")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--store", type=int, help="time the store-held library of this many tracks instead (see above)")
    ap.add_argument("--store-dir", type=Path, default=SCALE / "store", help="where --store keeps its store")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--ref", action="append", default=[])
    ap.add_argument("--query", action="append", default=[])
    args = ap.parse_args(argv)
    bi._apply(args.set, args.ref, args.query)
    if args.store:
        lines = store_library(args.store, args.store_dir)
        if args.json:
            args.json.write_text(json.dumps({"lines": lines}, indent=1))
        return
    if args.make:
        with multiprocessing.get_context("fork").Pool(args.workers) as pool:
            for line in pool.imap(_make_chunk, range((args.make + CHUNK - 1) // CHUNK)):
                print(line, flush=True)
        return
    tracks, out = bi.corpus(lambda s: print(s, file=sys.stderr))
    library = [t for t in tracks if t.key not in out]
    refs, _ = bi.references(library, args.workers)
    peaks, seconds = load_generated(args.tracks)
    t0 = time.time()
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        gen = pool.map(_quads_job, peaks, chunksize=50)
    t_quads = time.time() - t0
    keys = [t.key for t in library] + [f"generated/{k}" for k in range(len(gen))]
    all_q = {n: refs[t.key] for n, t in enumerate(library)} | {len(library) + k: q for k, q in enumerate(gen)}
    t0 = time.time()
    index = fp.build_index(all_q)
    t_build = time.time() - t0
    nbytes = (
        index.keys.nbytes
        + index.track.nbytes
        + sum(getattr(index.quads, f).nbytes for f in fp.Quads.__dataclass_fields__)
    )
    gen_quads = sum(len(q.root_sec) for q in gen)
    gen_sec = float(seconds.sum())
    n_all = len(keys)
    lines = [
        f"index of {n_all} tracks ({len(library)} bench library + {len(gen)} generated, "
        f"{(gen_sec + sum(t.seconds for t in library)) / 3600:.0f} h): {len(index.keys)} quads, {nbytes / 1e6:.0f} MB "
        f"in memory ({nbytes / n_all:.0f} B per track, {nbytes / len(index.keys):.1f} B per quad)",
        f"generated tracks: {gen_quads / gen_sec:.1f} reference quads/s, {gen_quads / len(gen):.0f} per track of "
        f"{gen_sec / len(gen):.0f} s, {gen_quads / gen_sec * 180:.0f} per 3 min = "
        f"{nbytes / len(index.keys) * gen_quads / gen_sec * 180 / 1e3:.1f} kB per 3 min",
        f"reference quads from cached peaks in {t_quads:.0f} s, index built in {t_build:.1f} s "
        f"({args.workers} processes)",
    ]
    print("\n".join(lines), flush=True)
    SCALE.mkdir(parents=True, exist_ok=True)
    np.savez(SCALE / "index-probe.npz", keys=index.keys, track=index.track)
    disk = (SCALE / "index-probe.npz").stat().st_size
    lines.append(
        f"keys and track ids on disk (np.savez): {disk / 1e6:.0f} MB; whole index uncompressed {nbytes / 1e6:.0f} MB"
    )
    (SCALE / "index-probe.npz").unlink()
    work = {t.key: t.work for t in tracks} | {k: k for k in keys[len(library) :]}
    mixes = bi.plan_mixes(tracks, out, "test", 1, seed=12, share=args.share)
    results = {}
    for name, idx in (
        ("bench library", fp.build_index({n: refs[t.key] for n, t in enumerate(library)})),
        (f"{n_all} tracks", index),
    ):
        all_rows = bi.run_mixes(mixes, idx, keys, tracks, args.workers)
        for span in ("cut", "engine"):
            rows = [r for r in all_rows if r["in_library"] and r["span"] == span]
            held = [r for r in all_rows if not r["in_library"] and r["span"] == span]
            secs = sum(r["seconds"] for r in rows + held)
            cpu = sum(r["extract_cpu"] + r["identify_cpu"] for r in rows + held)
            ident = sum(r["identify_cpu"] for r in rows + held)
            outc = [bi.outcome(r, args.threshold, work) for r in rows]
            false = sum(bi.outcome(r, args.threshold, work) == "false" for r in held)
            per_play = cpu / max(1, len(rows + held))
            r = results[f"{name}, {span}"] = {
                "right": outc.count("right"),
                "wrong": outc.count("wrong"),
                "tempo": outc.count("tempo"),
                "none": outc.count("none"),
                "plays": len(outc),
                "held_out_false": false,
                "held_out_plays": len(held),
                "query_sec_per_play": secs / max(1, len(rows + held)),
                "cpu_per_play": per_play,
                "cpu_per_min": 60 * cpu / secs,
                "identify_cpu_per_min": 60 * ident / secs,
            }
            lines.append(
                f"against {name}, {span} spans: right {r['right']}/{r['plays']}, wrong {r['wrong']}, tempo off "
                f"{r['tempo']}, none {r['none']}; held-out named {false}/{len(held)} (threshold {args.threshold}); "
                f"{r['query_sec_per_play']:.0f} s of query and {per_play:.2f} CPU s per play; CPU per minute of "
                f"query {r['cpu_per_min']:.2f} s ({r['identify_cpu_per_min']:.2f} s identify): a 60-minute mix "
                f"queried whole in {60 * r['cpu_per_min'] / args.workers:.0f} s on {args.workers} cores, its 15 "
                f"tracks queried as here in {15 * per_play / args.workers:.0f} s"
            )
            print(lines[-1], flush=True)
    if args.json:
        args.json.write_text(json.dumps({"lines": lines, "results": results}, indent=1))


if __name__ == "__main__":
    main()
