"""Mixes from pieces: which pieces (a seeded queue without repeats), which excerpts, which blends; the parts
joined (beat-matched, blends chosen, cuts aligned), assembled, and the exact truth of the result."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.corpus.game.analysis import SAMPLE_RATE, decode, loudness
from bench.corpus.game.blending import Blend, Part, align_cut, assemble, beat_match, cut, finish
from bench.corpus.game.sources import Piece
from bench.corpus.truth import MixTruth, TrackTruth

CORPUS = "game"
WHOLE_TRACK_SEC = (170.0, 480.0)  # 3-8 min; a 3:00 piece loses a few seconds to the silence trim
WHOLE_MIX_SEC = (15 * 60.0, 25 * 60.0)
QUICK_MIX_SEC = (9 * 60.0, 11 * 60.0)
EXCERPT_SEC = (60.0, 120.0)
WHOLE_BARS = (16, 32, 64)
QUICK_BARS = (8, 16)
WHOLE_TIME_BLEND_SEC = (16.0, 40.0)
QUICK_TIME_BLEND_SEC = (8.0, 20.0)
WHOLE_MAX_SHARE, QUICK_MAX_SHARE = 0.30, 0.25  # of either track's length, per blend
MAX_BLEND_SEC = 100.0
FADE_KINDS = (("equal_power", 0.5), ("bass_swap", 0.5))
TARGET_LUFS = (-14.0, -10.0)
BEATS_PER_BAR = 4
NOMINAL_METER = 4


def mix_truth(
    mix_id: str,
    split: str,
    parts: list[Part],
    blends: list[Blend],
    starts: list[int],
    scale: float,
    sample_rate: int = SAMPLE_RATE,
) -> MixTruth:
    """The exact truth of an assembled mix: extents, blend windows, boundaries at their middles, steady-part LUFS."""
    total = starts[-1] + len(parts[-1].audio)
    tracks: list[TrackTruth] = []
    boundaries: list[float] = []
    for i, p in enumerate(parts):
        a, n = starts[i], len(p.audio)
        fin = blends[i - 1].samples if i > 0 else 0
        fout = blends[i].samples if i < len(blends) else 0
        t_in = (a / sample_rate, (a + fin) / sample_rate) if i > 0 else None
        t_out = ((a + n - fout) / sample_rate, (a + n) / sample_rate) if i < len(blends) else None
        steady = p.audio[fin : n - fout] * np.float32(scale)
        lufs = loudness(steady, sample_rate)
        tracks.append(
            TrackTruth(
                index=i,
                title=p.title,
                style=p.style,
                start_sec=a / sample_rate,
                end_sec=(a + n) / sample_rate,
                transition_in=t_in,
                transition_out=t_out,
                bpm=0.0,  # unknown: no beat truth for this music (the scorer skips a zero tempo)
                bpm_range=(0.0, 0.0),
                meter=NOMINAL_METER,
                key=None,
                has_vocals=None,
                lufs=lufs if math.isfinite(lufs) else None,
            )
        )
        if t_out is not None:
            boundaries.append(0.5 * (t_out[0] + t_out[1]))
    return MixTruth(
        corpus=CORPUS,
        mix_id=mix_id,
        split=split,
        sample_rate=sample_rate,
        duration_sec=total / sample_rate,
        boundaries_sec=boundaries,
        beats_sec=[],
        downbeats_sec=[],
        tracks=tracks,
    )


def plan_blend(
    prev: Part, nxt: Part, matched: bool, rng: np.random.Generator, quick: bool, sample_rate: int = SAMPLE_RATE
) -> Blend:
    """Choose a blend: whole bars at the shared tempo when beat-matched, else a time-based one; within the share
    of either part that keeps both their steady parts long."""
    share = QUICK_MAX_SHARE if quick else WHOLE_MAX_SHARE
    limit = min(share * len(prev.audio), share * len(nxt.audio), MAX_BLEND_SEC * sample_rate) / sample_rate
    kinds, probs = zip(*FADE_KINDS, strict=True)
    kind = str(rng.choice(kinds, p=np.array(probs)))
    if matched and prev.bpm:
        bar_sec = BEATS_PER_BAR * 60.0 / prev.bpm
        options = [b for b in (QUICK_BARS if quick else WHOLE_BARS) if b * bar_sec <= limit]
        if options:
            bars = int(rng.choice(options))
            return Blend(round(bars * bar_sec * sample_rate), kind, bars)
    lo, hi = QUICK_TIME_BLEND_SEC if quick else WHOLE_TIME_BLEND_SEC
    hi = min(hi, limit)
    lo = min(lo, hi)
    return Blend(round(float(rng.uniform(lo, hi)) * sample_rate), kind, None)


def join(parts: list[Part], rng: np.random.Generator, quick: bool) -> tuple[list[Part], list[Blend], list[bool]]:
    """Beat-match, choose blends and align consecutive parts; returns the parts as they will sound."""
    out = [parts[0]]
    blends: list[Blend] = []
    matched_flags: list[bool] = []
    for nxt in parts[1:]:
        prev = out[-1]
        nxt2, matched = beat_match(prev, nxt)
        blend = plan_blend(prev, nxt2, matched, rng, quick)
        if matched:
            n = align_cut(prev, nxt2, blend.samples / SAMPLE_RATE)
            out[-1] = cut(prev, n)
        out.append(nxt2)
        blends.append(blend)
        matched_flags.append(matched)
    return out, blends, matched_flags


class AudioCache:
    """Decoded, trimmed pieces, a few at a time (a 6-min piece is 127 MB as float32 stereo)."""

    def __init__(self, keep: int = 8) -> None:
        self.keep = keep
        self._items: dict[str, np.ndarray] = {}

    def get(self, piece: Piece) -> np.ndarray:
        if piece.key not in self._items:
            if len(self._items) >= self.keep:
                self._items.pop(next(iter(self._items)))
            x = decode(piece.path)
            a = round(piece.analysis["trim_start"] * SAMPLE_RATE)
            b = round(piece.analysis["trim_end"] * SAMPLE_RATE)
            self._items[piece.key] = x[a:b]
        return self._items[piece.key]


def make_part(
    piece: Piece, audio: np.ndarray, rng: np.random.Generator, excerpt: tuple[float, float] | None = None
) -> Part:
    """A levelled part of ``piece`` (its trimmed whole, or ``excerpt`` seconds of it), with its estimated beats."""
    beats = np.asarray(piece.analysis.get("beats", []), dtype=np.float64) if piece.bpm else np.zeros(0)
    lo, hi = excerpt if excerpt else (0.0, len(audio) / SAMPLE_RATE)
    seg = audio[round(lo * SAMPLE_RATE) : round(hi * SAMPLE_RATE)]
    beats = beats[(beats >= lo) & (beats < hi)] - lo
    target = float(rng.uniform(*TARGET_LUFS))
    level = loudness(seg)
    gain = 10 ** ((target - level) / 20) if math.isfinite(level) else 1.0
    info = {
        "piece": piece.key,
        "package": piece.package,
        "file": piece.relpath,
        "source_sec": [round(piece.analysis["trim_start"] + lo, 4), round(piece.analysis["trim_start"] + hi, 4)],
        "estimated_bpm": piece.analysis.get("bpm"),
        "tempo_known": bool(piece.bpm),
        "gain_db": round(20 * math.log10(gain), 3),
        "stretch_ratio": 1.0,
    }
    title = f"{piece.title} - {piece.artist}" if piece.artist else piece.title
    return Part(title, piece.style, (seg * np.float32(gain)).astype(np.float32), beats, piece.bpm, info)


def _excerpt(piece: Piece, rng: np.random.Generator) -> tuple[float, float] | None:
    """A 60-120 s excerpt starting on a beat (where the tempo is known), away from the piece's first 10 %."""
    dur = piece.duration
    if dur <= EXCERPT_SEC[1] + 10.0:
        return None
    length = float(rng.uniform(*EXCERPT_SEC))
    lo, hi = 0.1 * dur, dur - length - 0.05 * dur
    if hi <= lo:
        return None
    start = float(rng.uniform(lo, hi))
    if piece.bpm:
        beats = np.asarray(piece.analysis["beats"])
        ok = beats[(beats >= lo) & (beats <= hi)]
        if ok.size:
            start = float(ok[np.argmin(np.abs(ok - start))])
    return start, start + length


class Queue:
    """The split's pieces in a seeded order, dealt out without repeats until all were used, then reshuffled."""

    def __init__(self, pieces: list[Piece], rng: np.random.Generator) -> None:
        self.pieces, self.rng, self.order = pieces, rng, list[Piece]()

    def draw(self, exclude: set[str], fits: Callable[[Piece], bool] = lambda p: True) -> Piece | None:
        """The next piece whose work is not in ``exclude`` and that ``fits``; None when no piece can."""
        for _ in range(2):
            for i, p in enumerate(self.order):
                if p.work not in exclude and fits(p):
                    return self.order.pop(i)
            self.order = [self.pieces[i] for i in self.rng.permutation(len(self.pieces))]
        return None


def build(
    mix_id: str, split: str, kind: str, queue: Queue, audio: AudioCache, rng: np.random.Generator
) -> tuple[np.ndarray, MixTruth, dict[str, Any]]:
    """Draw pieces for one mix of ``kind`` ("whole", "quick", "single"), join them and derive the truth."""
    quick = kind == "quick"
    lo, hi = QUICK_MIX_SEC if quick else WHOLE_MIX_SEC
    target = float(rng.uniform(lo, hi))
    used: set[str] = set()
    parts: list[Part] = []
    plan: tuple[list[Part], list[Blend], list[bool]] = ([], [], [])
    skipped = 0

    def fits(p: Piece) -> bool:
        return quick or WHOLE_TRACK_SEC[0] <= p.duration <= WHOLE_TRACK_SEC[1]

    def length(plan: tuple[list[Part], list[Blend], list[bool]]) -> float:
        return (sum(len(x.audio) for x in plan[0]) - sum(b.samples for b in plan[1])) / SAMPLE_RATE

    while True:
        piece = queue.draw(used, fits)
        if piece is None:
            break
        used.add(piece.work)
        part = make_part(piece, audio.get(piece), rng, _excerpt(piece, rng) if quick else None)
        if kind == "single":
            plan = ([part], [], [])
            break
        candidate = join([*parts, part], np.random.default_rng(int(rng.integers(1 << 62))), quick)
        if length(candidate) > hi and parts:
            queue.order.append(piece)  # too long to end this mix on: back into the queue for a later mix
            skipped += 1
            if skipped > 6:
                break
            continue
        parts.append(part)
        plan = candidate
        if length(plan) >= target:
            break
    if not plan[0]:
        raise RuntimeError(f"{mix_id}: no piece fits a {kind} mix in split {split}")
    joined, blends, matched = plan
    mix, starts = assemble(joined, blends)
    scale = finish(mix)
    truth = mix_truth(mix_id, split, joined, blends, starts, scale)
    manifest = {
        "split": split,
        "kind": kind,
        "duration_sec": round(truth.duration_sec, 3),
        "peak_scale": round(scale, 6),
        "parts": [
            p.info | {"mix_sec": [round(t.start_sec, 4), round(t.end_sec, 4)], "played_bpm": p.bpm}
            for p, t in zip(joined, truth.tracks, strict=True)
        ],
        "blends": [
            {
                "kind": b.kind,
                "bars": b.bars,
                "seconds": round(b.samples / SAMPLE_RATE, 4),
                "beat_matched": m,
                "window_sec": list(truth.tracks[i].transition_out or ()),
                "boundary_sec": round(truth.boundaries_sec[i], 4),
            }
            for i, (b, m) in enumerate(zip(blends, matched, strict=True))
        ],
    }
    return mix, truth, manifest
