"""Mixing: parts cut on downbeats, levels, phrase-aligned crossfades, and the exact truth of each mix."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from bench.corpus.recorded.audio import SAMPLE_RATE, load_audio
from bench.corpus.recorded.sources import Song
from bench.corpus.truth import MixTruth, TrackTruth

CORPUS = "recorded"

# Mix parameters (the brief: parts of 60-240 s, fades of 8-20 s, 3-8 songs).
PART_SEC = (60.0, 240.0)
FADE_SEC = (8.0, 20.0)
SONGS_PER_MIX = (3, 8)
MIN_STEADY_SEC = 20.0
FADE_KINDS = (("equal_power", 0.6), ("linear", 0.2), ("bass_swap", 0.2))
TARGET_LUFS = (-16.0, -11.0)
PEAK_CEILING = 0.98


@dataclass
class Part:
    """A song's used part and where it sits in the mix."""

    song: Song
    start: float  # song seconds, a downbeat
    end: float  # song seconds, a downbeat
    place: float = 0.0  # mix seconds of ``start``
    gain: float = 1.0
    fade_in: tuple[float, str] | None = None  # (seconds, kind)
    fade_out: tuple[float, str] | None = None

    @property
    def length(self) -> float:
        return self.end - self.start


def _downbeats_for_cuts(song: Song) -> np.ndarray:
    _, down, _ = song.grid()
    lo, hi = song.charted_span()
    bar = float(np.median(np.diff(down))) if len(down) > 1 else 2.0
    return down[(down >= lo - bar) & (down <= hi + 0.5)]


def _choose_parts(pool: list[Song], rng: np.random.Generator) -> list[Part]:
    """Pick songs, their parts and phrase-aligned fades; retry a few times if a draw leaves no steady part."""
    n_max = min(SONGS_PER_MIX[1], len(pool))
    n = int(rng.integers(SONGS_PER_MIX[0], n_max + 1))
    order = [pool[i] for i in rng.permutation(len(pool))[:n]]
    parts: list[Part] = []
    for song in order:
        down = _downbeats_for_cuts(song)
        starts = down[down <= down[-1] - PART_SEC[0]]
        if len(starts) == 0:
            raise RuntimeError(f"{song.key}: charted span shorter than {PART_SEC[0]} s")
        start = float(starts[int(rng.integers(len(starts)))])
        want = float(rng.uniform(*PART_SEC))
        ends = down[(down >= start + PART_SEC[0]) & (down <= start + PART_SEC[1])]
        end = float(ends[np.argmin(np.abs(ends - (start + want)))])
        parts.append(Part(song, start, end))
    for a, b in itertools.pairwise(parts):
        kinds, probs = zip(*FADE_KINDS, strict=True)
        kind = str(rng.choice(kinds, p=np.array(probs)))
        down = _downbeats_for_cuts(a.song)
        # The fade starts on a downbeat of the outgoing song, where the incoming part's first downbeat lands.
        cands = down[(down >= a.end - FADE_SEC[1]) & (down <= a.end - FADE_SEC[0]) & (down > a.start)]
        fade = a.end - float(cands[int(rng.integers(len(cands)))]) if len(cands) else float(rng.uniform(*FADE_SEC))
        a.fade_out = (fade, kind)
        b.fade_in = (fade, kind)
    for p in parts:
        fin = p.fade_in[0] if p.fade_in else 0.0
        fout = p.fade_out[0] if p.fade_out else 0.0
        if p.length - fin - fout < MIN_STEADY_SEC:
            raise ValueError("steady part too short")
    t = 0.0
    for p in parts:
        p.place = t - (p.fade_in[0] if p.fade_in else 0.0)
        t = p.place + p.length
    return parts


def _lowpass(x: np.ndarray, cutoff: float = 150.0) -> np.ndarray:
    """Zero-phase low band; the high band is ``x - low``, so the two always add back to the original."""
    from scipy import signal

    sos = signal.butter(4, cutoff, "low", fs=SAMPLE_RATE, output="sos")
    return signal.sosfiltfilt(sos, x, axis=0).astype(np.float32)


def _apply_fade(seg: np.ndarray, fade_sec: float, kind: str, incoming: bool) -> None:
    """Shape the first (incoming) or last (outgoing) ``fade_sec`` of ``seg`` in place."""
    n = round(fade_sec * SAMPLE_RATE)
    n = min(n, len(seg))
    u = (np.arange(n) + 0.5) / n  # 0..1 through the window
    region = seg[:n] if incoming else seg[len(seg) - n :]
    if kind == "linear":
        g = u if incoming else 1.0 - u
        region *= g[:, None].astype(np.float32)
        return
    g = np.sin(0.5 * np.pi * u) if incoming else np.cos(0.5 * np.pi * u)
    if kind == "equal_power":
        region *= g[:, None].astype(np.float32)
        return
    # bass swap: mids/highs cross with equal power; the lows switch at the midpoint over 1/8 s (a DJ's EQ flick)
    pad = min(SAMPLE_RATE, len(seg) - n)
    ctx = seg[: n + pad] if incoming else seg[len(seg) - n - pad :]
    low_all = _lowpass(ctx)
    low = low_all[:n] if incoming else low_all[pad:]
    high = region - low
    ramp = np.clip((u - 0.5) / (0.125 * SAMPLE_RATE / n) + 0.5, 0.0, 1.0)
    ramp = 0.5 - 0.5 * np.cos(np.pi * ramp)
    lg = ramp if incoming else 1.0 - ramp
    region[:] = high * g[:, None].astype(np.float32) + low * lg[:, None].astype(np.float32)


def _loudness(x: np.ndarray) -> float:
    import pyloudnorm

    return float(pyloudnorm.Meter(SAMPLE_RATE).integrated_loudness(x.astype(np.float64)))


def build_mix(
    mix_id: str, split: str, pool: list[Song], rng: np.random.Generator, audio_cache: dict[str, np.ndarray]
) -> tuple[np.ndarray, MixTruth, list[Part]]:
    """Cut, level, crossfade and sum the parts; derive the exact truth from the same numbers."""
    for _attempt in range(20):
        try:
            parts = _choose_parts(pool, rng)
            break
        except ValueError:
            continue
    else:
        raise RuntimeError(f"{mix_id}: could not draw parts with a steady middle")
    total = round((parts[-1].place + parts[-1].length) * SAMPLE_RATE)
    mix = np.zeros((total, 2), dtype=np.float32)
    segs: list[tuple[int, np.ndarray]] = []
    for p in parts:
        if p.song.key not in audio_cache:
            audio_cache[p.song.key] = load_audio(p.song)
        audio = audio_cache[p.song.key]
        a = round(p.start * SAMPLE_RATE)
        n = round(p.length * SAMPLE_RATE)
        seg = audio[a : a + n].copy()
        target = float(rng.uniform(*TARGET_LUFS))
        p.gain = 10 ** ((target - _loudness(seg)) / 20)
        seg *= np.float32(p.gain)
        if p.fade_in:
            _apply_fade(seg, p.fade_in[0], p.fade_in[1], incoming=True)
        if p.fade_out:
            _apply_fade(seg, p.fade_out[0], p.fade_out[1], incoming=False)
        at = round(p.place * SAMPLE_RATE)
        seg = seg[: total - at]
        mix[at : at + len(seg)] += seg
        segs.append((at, seg))
    ramp = int(0.005 * SAMPLE_RATE)  # no click at the very start and end of the file
    mix[:ramp] *= np.linspace(0, 1, ramp, dtype=np.float32)[:, None]
    mix[-ramp:] *= np.linspace(1, 0, ramp, dtype=np.float32)[:, None]
    peak = float(np.max(np.abs(mix)))
    scale = min(1.0, PEAK_CEILING / peak) if peak > 0 else 1.0
    mix *= np.float32(scale)

    duration = total / SAMPLE_RATE
    tracks: list[TrackTruth] = []
    boundaries: list[float] = []
    for i, p in enumerate(parts):
        start_sec = max(p.place, 0.0)
        end_sec = min(p.place + p.length, duration)
        t_in = (p.place, p.place + p.fade_in[0]) if p.fade_in else None
        t_out = (end_sec - p.fade_out[0], end_sec) if p.fade_out else None
        beats_s, down_s, meter = p.song.grid()
        sel = (beats_s >= p.start - 1e-6) & (beats_s <= p.end + 1e-6)
        beats = beats_s[sel] - p.start + p.place
        ib = np.flatnonzero(sel)
        ib = ib[ib + 1 < len(beats_s)]
        local_bpm = 60.0 / np.diff(beats_s)[ib] if len(ib) else np.array([0.0])
        downs = down_s[(down_s >= p.start - 1e-6) & (down_s <= p.end + 1e-6)] - p.start + p.place
        if not p.song.verify.get("downbeat_ok", False):
            downs = np.array([])  # the bar phase of this map is not supported by the audio: unknown, not guessed
        keep = (beats >= start_sec) & (beats <= end_sec)
        keep_d = (downs >= start_sec) & (downs <= end_sec)
        lo, hi = t_in[1] if t_in else start_sec, t_out[0] if t_out else end_sec
        at, seg = segs[i]
        a, b = round(lo * SAMPLE_RATE) - at, round(hi * SAMPLE_RATE) - at
        lufs = _loudness(seg[max(a, 0) : b] * np.float32(scale))
        tracks.append(
            TrackTruth(
                index=i,
                title=f"{p.song.title} - {p.song.artist}" if p.song.artist else p.song.title,
                style=p.song.style,
                start_sec=start_sec,
                end_sec=end_sec,
                transition_in=t_in,
                transition_out=t_out,
                bpm=float(np.median(local_bpm)),
                bpm_range=(float(local_bpm.min()), float(local_bpm.max())),
                meter=meter,
                key=None,
                has_vocals=None,
                lufs=lufs if math.isfinite(lufs) else None,
                beats_sec=[float(x) for x in beats[keep]],
                downbeats_sec=[float(x) for x in downs[keep_d]],
            )
        )
        if t_out:
            boundaries.append(0.5 * (t_out[0] + t_out[1]))
    mix_beats: list[float] = []
    mix_downs: list[float] = []
    for i, tr in enumerate(tracks):
        lo = boundaries[i - 1] if i > 0 else -math.inf
        hi = boundaries[i] if i < len(boundaries) else math.inf
        mix_beats += [b for b in tr.beats_sec if lo <= b < hi]
        mix_downs += [b for b in tr.downbeats_sec if lo <= b < hi]
    truth = MixTruth(
        corpus=CORPUS,
        mix_id=mix_id,
        split=split,
        sample_rate=SAMPLE_RATE,
        duration_sec=duration,
        boundaries_sec=boundaries,
        beats_sec=mix_beats,
        downbeats_sec=mix_downs,
        tracks=tracks,
    )
    return mix, truth, parts
