"""Small synthesized audio files for tests (seconds long, written to a temporary folder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from offbeat import synth


def short_mix(seconds: float = 6.0, lead: float = 1.0, tail: float = 0.5) -> synth.MixSpec:
    return synth.MixSpec((synth.Section(seconds, 120.0, vocals=True),), lead_silence_sec=lead, tail_silence_sec=tail)


def write_wav(path: Path, seconds: float = 6.0, lead: float = 1.0, tail: float = 0.5, **kw: object) -> Path:
    return synth.write_mix(short_mix(seconds, lead, tail), path, **kw)  # type: ignore[arg-type]


def write_samples(path: Path, data: np.ndarray, rate: int, subtype: str | None = None) -> Path:
    sf.write(str(path), data, rate, subtype=subtype)
    return path
