"""`python -m bench.corpus.recorded`: the command line of the recorded corpus (see the package docstring)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bench.corpus.recorded.audio import SAMPLE_RATE
from bench.corpus.recorded.mixing import CORPUS, SONGS_PER_MIX, build_mix
from bench.corpus.recorded.sources import DEFAULT_CACHE, Song, discover_songs, fetch_packages, write_attribution
from bench.corpus.recorded.tempo import beat_grid
from bench.corpus.recorded.verify import verify_all
from bench.corpus.truth import write_mix


def song_table(songs: list[Song]) -> str:
    """One line per song: provenance, licence, what the map says, how it fits the audio, and its split."""
    head = (
        f"{'song':34s} {'package (version)':40s} {'licence':13s} {'dur s':>6s} {'tempo':>13s} {'meter':>5s} "
        f"{'offset ms':>13s} {'p90/drift':>11s} {'contr':>5s} {'hit25 (shift)':>13s} {'bars':>4s} "
        f"{'split':5s} status"
    )
    lines = [head, "-" * len(head)]
    for s in songs:
        v = s.verify
        beats, _, meter = beat_grid(s.tmap, s.duration)
        bpm = 60.0 / np.diff(beats)
        tempo = f"{bpm.min():.1f}" if np.ptp(bpm) < 0.05 else f"{bpm.min():.1f}-{bpm.max():.1f}"
        status = "ok" if v.get("ok") else "DROPPED: " + "; ".join(v.get("reasons", []))
        if v.get("ok") and not v.get("downbeat_ok"):
            status += " (downbeats unknown)"
        lines.append(
            f"{s.key:34s} {s.package + ' (' + s.package_version + ')':40s} {s.licence:13s} {s.duration:6.1f} "
            f"{tempo + ' BPM':>13s} {meter:>5d} "
            f"{v.get('offset_ms', 0):+6.1f}/{v.get('offset_mel_ms', 0):+5.1f} "
            f"{v.get('local_p90_ms', 0):4.1f}/{v.get('local_drift_ms', 0):+5.1f} {v.get('contrast', 0):5.2f} "
            f"{v.get('hit25', 0):5.2f} ({v.get('hit25_shifted', 0):.2f}) {'ok' if v.get('downbeat_ok') else '?':>4s} "
            f"{s.split:5s} {status}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Fetch, verify, print the song table, then write ``--mixes`` mixes alternating tune/test."""
    from bench.corpus import recorded  # its docstring is the help text (imported here: it imports this module)

    parser = argparse.ArgumentParser(
        prog="python -m bench.corpus.recorded",
        description=recorded.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for <mix_id>.flac + <mix_id>.json")
    parser.add_argument("--mixes", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="downloaded packages and verification")
    args = parser.parse_args(argv)

    fetched = fetch_packages(args.cache)
    songs = discover_songs(fetched)
    latency = verify_all(songs, args.cache)
    print(
        f"onset detector latency on a synthetic kit: flux {latency['flux'] * 1000:+.1f} ms, "
        f"mel {latency['mel'] * 1000:+.1f} ms (subtracted from the measured offsets)"
    )
    print(song_table(songs))
    usable = [s for s in songs if s.verify.get("ok")]
    pools = {split: [s for s in usable if s.split == split] for split in ("tune", "test")}
    print("songs per split: " + ", ".join(f"{k} {len(v)}" for k, v in pools.items()))
    splits = [sp for sp in ("tune", "test") if len(pools[sp]) >= SONGS_PER_MIX[0]]
    if not splits:
        print("no split has enough verified songs for a mix", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    write_attribution(args.out, songs, fetched)
    audio_cache: dict[str, np.ndarray] = {}
    for i in range(args.mixes):
        split = splits[i % len(splits)]
        rng = np.random.default_rng([args.seed, i])
        mix_id = f"{CORPUS}-s{args.seed}-{i:03d}"
        audio, truth, parts = build_mix(mix_id, split, pools[split], rng, audio_cache)
        write_mix(args.out, mix_id, audio, SAMPLE_RATE, truth)
        desc = " | ".join(
            f"{p.song.key} {p.start:.1f}-{p.end:.1f}s"
            + (f" -[{p.fade_out[1]} {p.fade_out[0]:.1f}s]->" if p.fade_out else "")
            for p in parts
        )
        print(
            f"{mix_id} [{split}] {truth.duration_sec / 60:.1f} min, boundaries "
            f"{[round(b, 1) for b in truth.boundaries_sec]}: {desc}"
        )
        if len(audio_cache) > 4:  # bound memory: songs are reloaded when needed again
            audio_cache.clear()
    return 0
