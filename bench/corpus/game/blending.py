"""Mixing, pure (arrays in, arrays out): parts as they enter the mix, varispeed beat matching, the cut that puts
a beat on a beat, equal-power and EQ bass-swap fades, the sum of the faded parts and the final peak scaling."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bench.corpus.game.analysis import SAMPLE_RATE

MATCH_TOLERANCE = 0.06  # tempi within 6 % are beat-matched by varispeed
BASS_CUTOFF_HZ = 150.0
PEAK_CEILING = 0.98


@dataclass
class Part:
    """One track's audio as it enters the mix: already cut, stretched and levelled.

    ``beats`` and ``bpm`` are estimates in the part's own playing time, used to plan blends, never written as truth.
    """

    title: str
    style: str
    audio: np.ndarray  # (n, 2) float32 at the mix rate
    beats: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bpm: float | None = None
    info: dict[str, Any] = field(default_factory=dict)  # provenance for the manifest


@dataclass(frozen=True)
class Blend:
    """A crossfade between two consecutive parts: its length in samples, its kind, and its bars (None: by time)."""

    samples: int
    kind: str
    bars: int | None = None


def varispeed(part: Part, ratio: float, sample_rate: int = SAMPLE_RATE) -> Part:
    """Play ``part`` ``ratio`` times faster (tempo and pitch together, like a turntable's pitch fader)."""
    if abs(ratio - 1.0) < 1e-9:
        return part
    import soxr

    audio = soxr.resample(part.audio, sample_rate * ratio, sample_rate).astype(np.float32)
    return replace(
        part,
        audio=np.ascontiguousarray(audio),
        beats=part.beats / ratio,
        bpm=None if part.bpm is None else part.bpm * ratio,
        info=part.info | {"stretch_ratio": round(ratio, 6)},
    )


def beat_match(prev: Part, nxt: Part, tolerance: float = MATCH_TOLERANCE) -> tuple[Part, bool]:
    """Varispeed ``nxt`` to ``prev``'s playing tempo when both are known and within ``tolerance``.

    Returns the (possibly stretched) part and whether the two now share a tempo.
    """
    if prev.bpm is None or nxt.bpm is None:
        return nxt, False
    ratio = prev.bpm / nxt.bpm
    if abs(ratio - 1.0) > tolerance:
        return nxt, False
    out = varispeed(nxt, ratio)
    return replace(out, bpm=prev.bpm), True


def align_cut(prev: Part, nxt: Part, fade_sec: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Length (samples) to cut ``prev`` to, so that a ``fade_sec`` blend puts a beat of ``nxt`` on a beat of ``prev``.

    The blend ends where ``prev`` ends; without alignment it starts ``fade_sec`` before ``prev``'s end. With beats
    on both sides the start moves earlier, by less than one beat, until ``nxt``'s first beat falls on a beat of
    ``prev``, and ``prev`` is cut that much shorter (inside its fade-out, where it is nearly silent).
    """
    n = len(prev.audio)
    start = n / sample_rate - fade_sec
    if len(prev.beats) == 0 or len(nxt.beats) == 0:
        return n
    first = float(nxt.beats[0])
    target = start + first
    earlier = prev.beats[prev.beats <= target + 1e-9]
    if earlier.size == 0 or float(earlier[-1]) - first <= 0:
        return n
    new_start = float(earlier[-1]) - first
    if start - new_start > 60.0 / (prev.bpm or 60.0) + 1e-6:  # a gap in prev's beats: keep the plain placement
        return n
    return min(n, round((new_start + fade_sec) * sample_rate))


def cut(part: Part, n: int) -> Part:
    """The first ``n`` samples of ``part`` (beats after the cut dropped)."""
    end = n / SAMPLE_RATE
    return replace(part, audio=part.audio[:n], beats=part.beats[part.beats < end])


def _lowpass(x: np.ndarray, sample_rate: int, cutoff: float = BASS_CUTOFF_HZ) -> np.ndarray:
    """Zero-phase low band; the high band is ``x - low``, so the two always add back to the original."""
    from scipy import signal

    sos = signal.butter(4, cutoff, "low", fs=sample_rate, output="sos")
    return signal.sosfiltfilt(sos, x, axis=0).astype(np.float32)


def apply_fade(seg: np.ndarray, n: int, kind: str, incoming: bool, sample_rate: int = SAMPLE_RATE) -> None:
    """Shape the first (incoming) or last (outgoing) ``n`` samples of ``seg`` in place.

    ``equal_power``: sin/cos gains, so two uncorrelated tracks keep their summed power through the blend.
    ``bass_swap``: the same for the band above 150 Hz; the lows switch at the blend's midpoint over 1/8 s, the
    way a DJ swaps the low EQ of the two decks (two basslines at once sound muddy).
    """
    n = min(n, len(seg))
    if n <= 0:
        return
    u = (np.arange(n) + 0.5) / n
    region = seg[:n] if incoming else seg[len(seg) - n :]
    g = (np.sin(0.5 * np.pi * u) if incoming else np.cos(0.5 * np.pi * u)).astype(np.float32)
    if kind == "equal_power":
        region *= g[:, None]
        return
    if kind != "bass_swap":
        raise ValueError(f"unknown fade kind {kind!r}")
    pad = min(sample_rate, len(seg) - n)  # filter context outside the fade, so its edge has no transient
    ctx = seg[: n + pad] if incoming else seg[len(seg) - n - pad :]
    low_all = _lowpass(ctx, sample_rate)
    low = low_all[:n] if incoming else low_all[pad:]
    high = region - low
    ramp = np.clip((u - 0.5) / (0.125 * sample_rate / n) + 0.5, 0.0, 1.0)
    ramp = 0.5 - 0.5 * np.cos(np.pi * ramp)
    lg = (ramp if incoming else 1.0 - ramp).astype(np.float32)
    region[:] = high * g[:, None] + low * lg[:, None]


def assemble(parts: list[Part], blends: list[Blend], sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, list[int]]:
    """Fade and sum the parts; return the mix (not yet peak-limited) and each part's first sample in it.

    Part ``i+1`` starts ``blends[i].samples`` before part ``i`` ends, so the mix is as long as the parts together
    minus the blends.
    """
    if len(blends) != len(parts) - 1:
        raise ValueError(f"{len(blends)} blends for {len(parts)} parts")
    starts = [0]
    for p, b in zip(parts[:-1], blends, strict=True):
        if not 0 < b.samples <= len(p.audio):
            raise ValueError(f"blend of {b.samples} samples does not fit a part of {len(p.audio)}")
        starts.append(starts[-1] + len(p.audio) - b.samples)
    total = starts[-1] + len(parts[-1].audio)
    mix = np.zeros((total, 2), dtype=np.float32)
    for i, p in enumerate(parts):
        seg = p.audio.astype(np.float32, copy=True)
        if i > 0:
            apply_fade(seg, blends[i - 1].samples, blends[i - 1].kind, incoming=True, sample_rate=sample_rate)
        if i < len(blends):
            apply_fade(seg, blends[i].samples, blends[i].kind, incoming=False, sample_rate=sample_rate)
        mix[starts[i] : starts[i] + len(seg)] += seg
    return mix, starts


def finish(mix: np.ndarray, sample_rate: int = SAMPLE_RATE, ceiling: float = PEAK_CEILING) -> float:
    """Declick the file's first and last 5 ms and scale the mix under ``ceiling`` in place; return the scale."""
    ramp = min(int(0.005 * sample_rate), len(mix) // 2)
    if ramp:
        mix[:ramp] *= np.linspace(0, 1, ramp, dtype=np.float32)[:, None]
        mix[-ramp:] *= np.linspace(1, 0, ramp, dtype=np.float32)[:, None]
    peak = 0.0
    for i in range(0, len(mix), 1 << 20):
        peak = max(peak, float(np.max(np.abs(mix[i : i + (1 << 20)]))))
    scale = min(1.0, ceiling / peak) if peak > 0 else 1.0
    if scale < 1.0:
        mix *= np.float32(scale)
    return scale
