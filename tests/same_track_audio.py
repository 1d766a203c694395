"""Two synthesized tone patterns that sound nothing alike, for the "same track" embedding's tests."""

from __future__ import annotations

import numpy as np

from offbeat.dsp.same_track import SAMPLE_RATE


def pattern(kind: str, seconds: float, seed: int = 0) -> np.ndarray:
    """`kind` "chords": a sustained major triad on A4 with a soft 120 BPM low thump; "hats": 16th-note noise
    bursts over a 55 Hz sawtooth bass at 140 BPM. Mono, SAMPLE_RATE, peak about 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    if kind == "chords":
        x = sum(np.sin(2 * np.pi * f * t) for f in (440.0, 554.37, 659.25)) / 3
        phase = (t * 2.0) % 1.0
        x = x + 0.6 * np.sin(2 * np.pi * 60 * t) * np.exp(-phase * 12)
    elif kind == "hats":
        phase = (t * 140 / 60 * 4) % 1.0
        x = 0.5 * rng.standard_normal(len(t)) * np.exp(-phase * 30)
        x = x + 0.4 * (2 * ((55.0 * t) % 1.0) - 1)
    else:
        raise ValueError(kind)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)
