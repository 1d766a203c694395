"""The DJ mixes of `bench.accuracy.identification`: which tracks play where, at which tempo ratio and how (varispeed or
key lock), their rendering with crossfades and a bass swap, and the spans each play is identified from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal

from bench.corpus.library import SR, Track

RATIOS = (0.90, 0.93, 0.95, 0.97, 1.00, 1.03, 1.05, 1.07, 1.10)
MODES = ("varispeed", "keylock")


@dataclass(frozen=True)
class Play:
    key: str
    in_library: bool
    ratio: float
    mode: str
    source_start: float  # seconds into the track where the excerpt starts
    mix_start: float  # seconds into the mix where it is first heard
    mix_end: float
    blend_in: float  # seconds of the incoming blend (0 for a mix's first track)
    blend_out: float


def plan_mixes(tracks: list[Track], out: set[str], split: str, rounds: int, seed: int, share: float = 1.0):
    """Mixes (lists of plays) of the split's tracks; each library track once per round, held-out ones twice."""
    rng = np.random.default_rng(seed)
    pool = [t for t in tracks if t.split == split]
    if share < 1.0:
        pool = [pool[i] for i in np.sort(rng.choice(len(pool), max(8, int(len(pool) * share)), replace=False))]
    order: list[Track] = []
    for _ in range(rounds):
        for t in pool:
            order += [t] * (2 if t.key in out else 1)
    order = [order[i] for i in rng.permutation(len(order))]
    combos = [(r, m) for r in RATIOS for m in MODES]
    settings: list[tuple[float, str]] = []
    while len(settings) < len(order):
        settings += [combos[i] for i in rng.permutation(len(combos))]
    mixes: list[list[Play]] = []
    chunk: list[Track] = []
    size = int(rng.integers(4, 9))
    i = 0
    while order:
        t = order.pop(0)
        if any(t.key == c.key for c in chunk):  # a track twice in one mix would blend into itself
            order.append(t)
            if all(o.key == t.key or any(o.key == c.key for c in chunk) for o in order):
                size = len(chunk)
            else:
                continue
        else:
            chunk.append(t)
        if len(chunk) == size or not order:
            mixes.append(_mix(chunk, settings[i : i + len(chunk)], out, rng))
            i += len(chunk)
            chunk, size = [], int(rng.integers(4, 9))
    return mixes


def _mix(chunk: list[Track], settings: list[tuple[float, str]], out: set[str], rng: np.random.Generator) -> list[Play]:
    plays: list[Play] = []
    t = 0.0
    prev_blend = 0.0
    for j, (tr, (ratio, mode)) in enumerate(zip(chunk, settings, strict=False)):
        length = min(float(rng.uniform(30, 90)), (tr.seconds - 1.0) / ratio)  # played seconds
        start = float(rng.uniform(0, max(0.0, tr.seconds - length * ratio - 0.5)))
        last = j == len(chunk) - 1
        blend_out = 0.0 if last else float(min(rng.uniform(8, 32), 0.3 * length))
        blend_out = min(blend_out, length - prev_blend - 10.0) if not last else 0.0
        blend_out = max(blend_out, 0.0) if last else max(blend_out, 4.0)
        plays.append(Play(tr.key, tr.key not in out, ratio, mode, start, t, t + length, prev_blend, blend_out))
        t += length - blend_out
        prev_blend = blend_out
    return plays


def _low(x: np.ndarray, hz: float = 200.0) -> np.ndarray:
    sos = scipy.signal.butter(2, hz, "lowpass", fs=SR, output="sos")
    return scipy.signal.sosfilt(sos, x).astype(np.float32)


def render(plays: list[Play], audio: dict[str, Track], rng: np.random.Generator) -> np.ndarray:
    """The mix: each excerpt played at its ratio, faded in and out over its blends with equal-power curves, its
    lows cut (a low shelf of about -15 dB) for the first half of the incoming blend and faded back in over the
    second half, the outgoing track's lows cut over the second half of its blend (a bass swap)."""
    import librosa
    import soxr

    total = int(np.ceil(plays[-1].mix_end * SR)) + SR
    mix = np.zeros(total, np.float32)
    for p in plays:
        src = np.asarray(audio[p.key].audio())
        n_src = int((p.mix_end - p.mix_start) * p.ratio * SR) + SR // 4
        x = src[int(p.source_start * SR) : int(p.source_start * SR) + n_src].astype(np.float32)
        if p.mode == "varispeed":
            y = soxr.resample(x, SR * p.ratio, SR).astype(np.float32)
        else:
            y = librosa.effects.time_stretch(x, rate=p.ratio, n_fft=1024, hop_length=256).astype(np.float32)
        n = min(len(y), int((p.mix_end - p.mix_start) * SR))
        y = y[:n] / (np.sqrt(np.mean(y[:n] ** 2)) + 1e-9) * 0.1 * 10 ** (rng.uniform(-3, 3) / 20)
        g = np.ones(n, np.float32)
        lows = _low(y)
        bass = np.ones(n, np.float32)  # gain of the lows: 0.18 (-15 dB) when cut
        if p.blend_in > 0:
            k = min(n, int(p.blend_in * SR))
            g[:k] = np.sin(0.5 * np.pi * np.linspace(0, 1, k))
            h = k // 2
            bass[:h] = 0.18
            bass[h:k] = np.linspace(0.18, 1, k - h)
        if p.blend_out > 0:
            k = min(n, int(p.blend_out * SR))
            g[n - k :] *= np.cos(0.5 * np.pi * np.linspace(0, 1, k))
            h = k // 2
            bass[n - h :] = np.minimum(bass[n - h :], 0.18)
        y = (y + (bass - 1) * lows) * g
        s = int(p.mix_start * SR)
        mix[s : s + n] += y[: total - s]
    return mix


def spans(p: Play) -> dict[str, list[tuple[float, float]]]:
    """The windows of the mix a play is identified from: "solo", between its blends; "cut", from the middle of
    the incoming blend to the middle of the outgoing one (half of each neighbour in it); "engine", the solo span,
    where the engine's whole-mix search (`offbeat.dsp.anchors`, as the `library_plays` stage runs it) must have
    found a play of the track covering at least half of it (`identify`'s rule)."""
    lo, hi = p.mix_start + p.blend_in, p.mix_end - p.blend_out
    return {
        "solo": [(lo, hi)],
        "cut": [(p.mix_start + p.blend_in / 2, p.mix_end - p.blend_out / 2)],
        "engine": [(lo, hi)],
    }
