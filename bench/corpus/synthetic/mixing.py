"""The mix: each track rendered, crossfaded into the mix buffer (linear, equal-power, bass swap, filter sweep)
and mastered; the truth derived from the plan's own events and the rendered signals."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyloudnorm
from scipy import signal

from bench.corpus.synthetic.dsp import SR, Array, butter_sos, peak_abs, sweep_filter
from bench.corpus.synthetic.plan import MixPlan, Transition
from bench.corpus.synthetic.render import TrackRenderer
from bench.corpus.truth import MixTruth, TrackTruth, format_key

CORPUS = "synthetic-v1"
VOCAL_MIN_FRACTION = 0.10  # vocals must cover this much of the steady part (and VOCAL_MIN_SEC) to count
VOCAL_MIN_SEC = 8.0
# The truth's name for each crossfade (`bench.corpus.truth.BLENDS`): a fade curve is a blend whatever its shape.
BLEND_OF = {"linear": "blend", "equal_power": "blend", "bass_swap": "bass_swap", "filter_out": "filter"}


def _smoothstep(x: Array) -> Array:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _crossover_low(seg: Array, fc: float) -> Array:
    """Zero-phase low band (so low + (seg - low) == seg exactly: the swap is transparent at unity gains)."""
    return signal.sosfiltfilt(butter_sos("lowpass", fc, 4), seg, axis=0).astype(np.float32)


def _apply_in(audio: Array, t: Transition, offset: int) -> None:
    """Incoming side of a crossfade, in the incoming track's local samples (it starts at the window start)."""
    a, b = round(t.start * SR) - offset, round(t.end * SR) - offset
    x = ((np.arange(b - a) + 0.5) / (b - a)).astype(np.float32)
    seg = audio[a:b]
    if t.kind == "linear":
        seg *= x[:, None]
    elif t.kind in ("equal_power", "filter_out"):
        seg *= np.sin(0.5 * np.pi * x)[:, None]
    elif t.kind == "bass_swap":
        hi_g = np.sin(0.5 * np.pi * np.clip(x / 0.5, 0, 1))
        ramp = max(0.05, 60.0 / 130.0) * SR
        lo_g = _smoothstep((np.arange(a, b) - (t.swap * SR - offset - ramp / 2)) / ramp)
        low = _crossover_low(seg, 180.0)
        seg[:] = low * lo_g[:, None] + (seg - low) * hi_g[:, None]


def _apply_out(audio: Array, t: Transition, offset: int) -> None:
    """Outgoing side of a crossfade; the track is cut at the window end by its render length."""
    a, b = round(t.start * SR) - offset, round(t.end * SR) - offset
    b = min(b, len(audio))
    x = ((np.arange(b - a) + 0.5) / (b - a)).astype(np.float32)
    seg = audio[a:b]
    if t.kind == "linear":
        seg *= (1 - x)[:, None]
    elif t.kind == "equal_power":
        seg *= np.cos(0.5 * np.pi * x)[:, None]
    elif t.kind == "bass_swap":
        hi_g = np.cos(0.5 * np.pi * np.clip((x - 0.5) / 0.5, 0, 1))
        ramp = max(0.05, 60.0 / 130.0) * SR
        lo_g = 1.0 - _smoothstep((np.arange(a, b) - (t.swap * SR - offset - ramp / 2)) / ramp)
        low = _crossover_low(seg, 180.0)
        seg[:] = low * lo_g[:, None] + (seg - low) * hi_g[:, None]
    elif t.kind == "filter_out":
        f0, f1 = (20.0, 2500.0) if t.sweep == "hp" else (18000.0, 250.0)
        for c in range(2):
            seg[:, c] = sweep_filter(seg[:, c], f0, f1, t.sweep)
        seg *= np.cos(0.5 * np.pi * np.clip((x - 0.7) / 0.3, 0, 1))[:, None]


def _lufs(x: Array) -> float:
    return float(pyloudnorm.Meter(SR).integrated_loudness(x))


@dataclass
class _TrackResult:
    lufs_pre: float  # LUFS of the steady part at the track's gain, before the master gain
    vocal_sec: float
    steady: tuple[float, float]


def render_mix(plan: MixPlan, log: Callable[[str], None] | None = None) -> tuple[Array, MixTruth]:
    """Render every track, crossfade it into the mix buffer and derive the truth from the plan's own events."""
    mix = np.zeros((plan.total, 2), np.float32)
    results: list[_TrackResult] = []
    n_tr = len(plan.tracks)
    for i, tp in enumerate(plan.tracks):
        t0 = time.time()
        rend = TrackRenderer(tp, tp.n_render)
        audio = rend.render()
        t_in = plan.transitions[i - 1] if i > 0 else None
        t_out = plan.transitions[i] if i < n_tr - 1 else None
        start = tp.offset / SR
        end = (tp.offset + tp.n_render) / SR
        # the same window as TrackTruth.steady_window(): between the transitions, else the audible extent
        steady = (t_in.end if t_in else start, t_out.start if t_out else end)
        a, b = round(steady[0] * SR) - tp.offset, round(steady[1] * SR) - tp.offset
        gain = 10 ** (tp.gain_db / 20)
        lufs_pre = _lufs(audio[a:b]) + 20 * math.log10(gain)
        vocal = sum(max(0.0, min(s1 + start, steady[1]) - max(s0 + start, steady[0])) for s0, s1 in rend.vocal_spans)
        results.append(_TrackResult(lufs_pre, vocal, steady))
        if t_in:
            _apply_in(audio, t_in, tp.offset)
        if t_out:
            _apply_out(audio, t_out, tp.offset)
        else:  # the last track: fade its tail so the mix ends in silence
            k = tp.n_render - round(tp.grid.end * SR)
            if k > 0:
                audio[-k:] *= np.cos(0.5 * np.pi * np.linspace(0, 1, k, dtype=np.float32))[:, None]
        audio *= np.float32(gain)
        mix[tp.offset : tp.offset + tp.n_render] += audio[: tp.n_render]
        del audio, rend
        if log:
            log(
                f"  track {i}: {tp.style.name:13s} {tp.bpm0:6.1f} BPM  {tp.n_bars:3d} bars  "
                f"{tp.n_render / SR:6.1f}s rendered in {time.time() - t0:5.1f}s"
            )
    peak = peak_abs(mix)
    master = 10 ** (-1.0 / 20) / peak if peak > 0 else 1.0
    mix *= np.float32(master)
    return mix, _truth(plan, results, 20 * math.log10(master))


def _truth(plan: MixPlan, results: list[_TrackResult], master_db: float) -> MixTruth:
    tracks: list[TrackTruth] = []
    n_tr = len(plan.tracks)
    boundaries = [0.5 * (t.start + t.end) for t in plan.transitions]
    mix_beats: list[float] = []
    mix_downs: list[float] = []
    for i, (tp, res) in enumerate(zip(plan.tracks, results, strict=True)):
        t_in = plan.transitions[i - 1] if i > 0 else None
        t_out = plan.transitions[i] if i < n_tr - 1 else None
        start = tp.offset / SR
        end = (tp.offset + tp.n_render) / SR
        g = tp.grid
        beats = start + g.beats[:-1]
        idx = np.arange(g.n_beats)
        keep = (beats >= start - 1e-9) & (beats <= end + 1e-9)
        beats_k, downs_k = beats[keep], beats[keep & (idx % g.meter == 0)]
        lo_b = boundaries[i - 1] if i > 0 else -math.inf
        hi_b = boundaries[i] if i < n_tr - 1 else math.inf
        # Outgoing beats before the boundary, incoming beats from it on. A beat-matched boundary can fall on a
        # shared beat that both tracks place within half a sample: keep one (the outgoing's), and likewise drop an
        # incoming beat crowding the last outgoing one (< 40 % of a beat), which no annotator would mark twice.
        min_gap = 0.4 * 60.0 / max(tp.bpm0, tp.bpm1)
        accepted = [float(x) for x in beats_k if lo_b <= x < hi_b]
        if mix_beats:
            accepted = [x for x in accepted if x >= mix_beats[-1] + min_gap]
        accepted_set = set(accepted)
        mix_beats += accepted
        mix_downs += [float(x) for x in downs_k if float(x) in accepted_set]
        steady_len = res.steady[1] - res.steady[0]
        if not tp.vocals or res.vocal_sec <= 0:
            has_vocals: bool | None = False
        elif res.vocal_sec >= max(VOCAL_MIN_SEC, VOCAL_MIN_FRACTION * steady_len):
            has_vocals = True
        else:
            has_vocals = None  # a few stray phrases: ambiguous, so the evaluator skips it
        key = format_key(tp.key_pc, tp.mode)
        lo_bpm, hi_bpm = min(tp.bpm0, tp.bpm1), max(tp.bpm0, tp.bpm1)
        tracks.append(
            TrackTruth(
                index=i,
                title=f"{plan.mix_id} track {i + 1:02d} ({tp.style.name})",
                style=tp.style.name,
                start_sec=start,
                end_sec=end,
                transition_in=(t_in.start, t_in.end) if t_in else None,
                transition_out=(t_out.start, t_out.end) if t_out else None,
                bpm=0.5 * (tp.bpm0 + tp.bpm1),
                bpm_range=(lo_bpm, hi_bpm),
                meter=g.meter,
                key=key,
                has_vocals=has_vocals,
                lufs=res.lufs_pre + master_db,
                beats_sec=[float(x) for x in beats_k],
                downbeats_sec=[float(x) for x in downs_k],
                blend_in=BLEND_OF[t_in.kind] if t_in else None,
                beatmatched_in=t_in.beatmatched if t_in else None,
            )
        )
    return MixTruth(
        corpus=CORPUS,
        mix_id=plan.mix_id,
        split=plan.split,
        sample_rate=SR,
        duration_sec=plan.total / SR,
        boundaries_sec=boundaries,
        beats_sec=mix_beats,
        downbeats_sec=mix_downs,
        tracks=tracks,
    )
