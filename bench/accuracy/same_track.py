"""The "same track" embedding measured alone, on the test packages of `training.same_track.sources` (never
trained on): how well its cosine distance separates true boundaries from a track's own section changes, against
a plain distance over today's hand-made per-second features (`offbeat.dsp.track_boundaries.Description`: mel-band
shape, chroma, level, tempo).

Each example is two 8-second spans of played audio (mono, 22.05 kHz):

* boundary: the end of one test track and the start of another, blended the way the game corpus blends (the
  incoming track varispeeded by 0.94-1.06, an equal-power fade of 8-32 s, half of them with an EQ bass swap, the
  two tracks 0-4 dB apart). ``outside``: the spans just before and just after the blend (each track alone);
  ``inside``: spans ending a quarter into the blend and starting three quarters into it (both tracks audible).
* in-track, one test track played at 0.94-1.06 by varispeed: ``far``, two spans at least 60 s apart;
  ``adjacent``, two spans 8-32 s apart (the blend's gap) at a random place; ``level``, two spans 8-32 s apart
  where the track's level changes most (its breakdown or drop).

The figure is the AUC of each distance for boundary pairs against in-track pairs (1.0: every boundary is farther
apart than every in-track pair; 0.5: chance), over all test packages and over the electronic ones alone.

Usage: ``python -m bench.accuracy.same_track [--boundaries 150] [--seed 7] [--models PATH ...]``
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import soxr

from bench.corpus.game.blending import apply_fade
from offbeat.dsp import same_track as st
from offbeat.dsp import track_boundaries
from training.same_track import features, sources

SR = st.SAMPLE_RATE
SPAN_SEC = 8.0
RATE = (0.94, 1.06)
BLEND_SEC = (8.0, 32.0)
FAR_SEC = 60.0
ELECTRONIC = ("colobot-common-sounds", "asc-music", "freedroidrpg-data", "redeclipse-data")
# Versions of one work in the test packages: never a "boundary" between them.
SAME_WORK = {
    "colobot-common-sounds/Hv2": "colobot-common-sounds/Humanitarian",
    "colobot-common-sounds/Infinite": "colobot-common-sounds/music008",
}
HAND_GROUPS = ("timbre", "chroma", "level", "tempo")


@dataclass
class Pair:
    """Two spans of audio and what they are."""

    kind: str  # "boundary" or "in-track"
    variant: str  # outside / inside, or far / adjacent / level
    electronic: bool
    a: np.ndarray
    b: np.ndarray


def play(audio: np.ndarray, rate: float) -> np.ndarray:
    """The audio played `rate` times faster by varispeed."""
    return soxr.resample(audio, SR * rate, SR).astype(np.float32) if abs(rate - 1) > 1e-9 else audio


def audible(audio: np.ndarray) -> tuple[int, int]:
    """First and last sample of the audible part (frames within 40 dB of the loudest second)."""
    hop = SR // 2
    n = len(audio) // hop
    if n < 2:
        return 0, len(audio)
    rms = np.sqrt(np.mean(audio[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    on = np.flatnonzero(20 * np.log10(rms / rms.max()) > -40)
    return int(on[0] * hop), int((on[-1] + 1) * hop)


def boundary_pairs(audio: dict[str, np.ndarray], keys: list[str], n: int, rng: np.random.Generator) -> list[Pair]:
    """`n` blends of two test tracks (see the module docstring), two pairs each (outside, inside)."""
    pairs: list[Pair] = []
    span = int(SPAN_SEC * SR)
    while len(pairs) < 2 * n:
        ka, kb = (keys[i] for i in rng.choice(len(keys), 2, replace=False))
        if SAME_WORK.get(ka, ka) == SAME_WORK.get(kb, kb):
            continue
        a, b = audio[ka], play(audio[kb], float(rng.uniform(*RATE)))
        a0, a1 = audible(a)
        b0, b1 = audible(b)
        blend = int(rng.uniform(*BLEND_SEC) * SR)
        if a1 - a0 < 2 * span + blend + 20 * SR or b1 - b0 < 2 * span + blend + 20 * SR:
            continue
        out_at = a1 - int(rng.uniform(0.0, 0.15) * (a1 - a0))  # where A's blend ends: its last 15 %
        out_at = max(out_at, a0 + span + blend)
        in_at = b0 + int(rng.uniform(0.0, 15.0) * SR)  # where B's blend starts: its first seconds
        in_at = min(in_at, b1 - span - blend)
        left = a[out_at - blend - span : out_at].copy()[:, None]
        right = b[in_at : in_at + blend + span].copy()[:, None]
        kind = "bass_swap" if rng.random() < 0.5 else "equal_power"
        apply_fade(left, blend, kind, incoming=False, sample_rate=SR)
        apply_fade(right, blend, kind, incoming=True, sample_rate=SR)
        right *= np.float32(10 ** (rng.uniform(-4, 4) / 20))
        mix = np.concatenate([left[:span, 0], left[span:, 0] + right[:blend, 0], right[blend:, 0]])
        electronic = all(k.split("/")[0] in ELECTRONIC for k in (ka, kb))
        pairs.append(Pair("boundary", "outside", electronic, mix[:span], mix[span + blend :]))
        q1, q3 = span + blend // 4, span + 3 * blend // 4
        pairs.append(Pair("boundary", "inside", electronic, mix[q1 - span : q1], mix[q3 : q3 + span]))
    return pairs


def in_track_pairs(
    audio: dict[str, np.ndarray], keys: list[str], per_track: int, rng: np.random.Generator
) -> list[Pair]:
    """Pairs of spans of one test track (far, adjacent, level; see the module docstring)."""
    pairs: list[Pair] = []
    span = int(SPAN_SEC * SR)
    for key in keys:
        x = play(audio[key], float(rng.uniform(*RATE)))
        x0, x1 = audible(x)
        electronic = key.split("/")[0] in ELECTRONIC
        for _ in range(per_track):
            gap = int(FAR_SEC * SR)
            if x1 - x0 > 2 * span + gap:
                s = int(rng.integers(x0, x1 - 2 * span - gap))
                t = int(rng.integers(s + span + gap, x1 - span + 1))
                pairs.append(Pair("in-track", "far", electronic, x[s : s + span], x[t : t + span]))
            gap = int(rng.uniform(*BLEND_SEC) * SR)
            if x1 - x0 > 2 * span + gap:
                s = int(rng.integers(x0, x1 - 2 * span - gap))
                pairs.append(
                    Pair("in-track", "adjacent", electronic, x[s : s + span], x[s + span + gap : s + 2 * span + gap])
                )
        gap = int(rng.uniform(*BLEND_SEC) * SR)
        if x1 - x0 > 2 * span + gap:
            # the place where the level of the span after differs most from the one before
            step = SR
            starts = np.arange(x0, x1 - 2 * span - gap, step)
            db = [abs(_db(x[s + span + gap : s + 2 * span + gap]) - _db(x[s : s + span])) for s in starts]
            s = int(starts[int(np.argmax(db))])
            pairs.append(Pair("in-track", "level", electronic, x[s : s + span], x[s + span + gap : s + 2 * span + gap]))
    return pairs


def _db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-12))


def hand_description(x: np.ndarray) -> dict[str, np.ndarray]:
    """A span described as today's boundary finder describes each second, averaged over the span: mel-band
    shape (dB less the level), chroma (summing to 1), level (mean dB over the bands) and log2 tempo."""
    mel = st.log_mel(x)
    frames_per_sec = SR / st.HOP
    seconds = max(1, int(mel.shape[1] / frames_per_sec))
    per_sec = np.array_split(mel, seconds, axis=1)
    mel_db = np.stack([10 * np.log10(np.mean(10 ** (m / 10), axis=1) + 1e-10) for m in per_sec])
    chroma = librosa.feature.chroma_stft(y=x, sr=SR, n_fft=st.N_FFT, hop_length=st.HOP)
    chroma = np.stack([c.mean(axis=1) for c in np.array_split(chroma, seconds, axis=1)])
    chroma = chroma / np.maximum(chroma.sum(axis=1, keepdims=True), 1e-9)
    onset = librosa.onset.onset_strength(y=x, sr=SR, hop_length=512)
    bpm = float(librosa.feature.tempo(onset_envelope=onset, sr=SR, hop_length=512)[0])
    level = mel_db.mean(axis=1, keepdims=True)
    return {
        "timbre": (mel_db - level).mean(axis=0),
        "chroma": chroma.mean(axis=0),
        "level": level.mean(axis=0),
        "tempo": np.array([np.log2(max(bpm, 1.0))]),
    }


def embedding(x: np.ndarray, model: Path) -> np.ndarray:
    """The span's window embeddings, one a second."""
    return st.embeddings(x, step_sec=1.0, model=model)[0]


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a positive scores above a negative (ties count half)."""
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.concatenate([pos, neg])
    ranks = np.empty(len(order))
    ranks[np.argsort(order, kind="mergesort")] = np.arange(1, len(order) + 1)
    for v in np.unique(order):  # average ranks of ties
        tie = order == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def distances(pairs: list[Pair], models: list[Path], log) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Each pair's distance under each method: each model's embedding cosine distance, the hand features' weighted
    standardized distance (each group standardized over all spans, weighted as the boundary finder weights
    them), and each hand group alone."""
    emb: dict[str, list[float]] = {f"embedding: {m.name}": [] for m in models}
    hand = []
    start = time.monotonic()
    for i, p in enumerate(pairs):
        for m in models:
            emb[f"embedding: {m.name}"].append(st.cosine_distance(embedding(p.a, m), embedding(p.b, m)))
        hand.append((hand_description(p.a), hand_description(p.b)))
        if (i + 1) % 100 == 0:
            log(f"{i + 1}/{len(pairs)} pairs described ({time.monotonic() - start:.0f} s)")
    out = {name: np.array(v) for name, v in emb.items()}
    grouped = {g: np.stack([d[g] for pair in hand for d in pair]) for g in HAND_GROUPS}
    z = track_boundaries.standardized(grouped)
    out["hand (all groups)"] = np.linalg.norm(z[0::2] - z[1::2], axis=1)
    for g in HAND_GROUPS:
        zg = track_boundaries.standardized({g: grouped[g]})
        out[f"hand: {g}"] = np.linalg.norm(zg[0::2] - zg[1::2], axis=1)
    return out


def table(pairs: list[Pair], dist: dict[str, np.ndarray]) -> str:
    """AUC per method (rows) and per boundary variant against in-track variant (columns), over all test
    packages and over the electronic ones."""
    kinds = np.array([p.kind for p in pairs])
    variants = np.array([p.variant for p in pairs])
    elec = np.array([p.electronic for p in pairs])
    cols = []
    for subset, mask in (("all", np.ones(len(pairs), bool)), ("elec", elec)):
        for bv, nv in (
            ("outside", "far"),
            ("outside", "adjacent"),
            ("outside", "level"),
            ("outside", "any"),
            ("inside", "any"),
        ):
            pos = mask & (kinds == "boundary") & (variants == bv)
            neg = mask & (kinds == "in-track") & ((variants == nv) if nv != "any" else True)
            cols.append((f"{subset} {bv[:3]}/{nv[:3]}", pos, neg))
    head = f"{'method':28s} " + " ".join(f"{c[0]:>12s}" for c in cols)
    lines = [head, "-" * len(head)]
    for name, d in dist.items():
        lines.append(f"{name:28s} " + " ".join(f"{auc(d[pos], d[neg]):12.3f}" for _, pos, neg in cols))
    counts = " ".join(f"{f'{int(pos.sum())}/{int(neg.sum())}':>12s}" for _, pos, neg in cols)
    lines.append(f"{'pairs (boundary/in)':28s} {counts}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.accuracy.same_track",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cache", type=Path, default=sources.DEFAULT_CACHE)
    parser.add_argument("--models", type=Path, nargs="+", default=[st.MODEL_PATH], help="ONNX models compared")
    parser.add_argument("--boundaries", type=int, default=150, help="blends built (two pairs each)")
    parser.add_argument("--per-track", type=int, default=3, help="far and adjacent pairs per test track")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    tracks = [t for t in sources.tracks(sources.fetch(args.cache)) if t.split == "test"]
    log(f"test packages:\n{sources.licences(tuple(p for p in sources.PACKAGES if p.split == 'test'))}")
    audio = {t.key: features.decode(t.files) for t in tracks}
    keys = sorted(audio)
    rng = np.random.default_rng(args.seed)
    pairs = boundary_pairs(audio, keys, args.boundaries, rng) + in_track_pairs(audio, keys, args.per_track, rng)
    log(f"{len(keys)} test tracks, {len(pairs)} pairs")
    dist = distances(pairs, args.models, log)
    print(f"AUC of each distance, boundary pairs against in-track pairs (seed {args.seed})")
    print(table(pairs, dist))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
