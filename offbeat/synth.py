"""Synthetic mixes with known ground truth, for the demo command, the tests and the benchmark.

Everything is generated in blocks, so an hour-long benchmark mix is written without holding it in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf


@dataclass(frozen=True)
class Section:
    """A stretch of music: a kick on every beat, a hat off-beat, a chord and optionally a sung line."""

    seconds: float
    bpm: float
    root_hz: float = 110.0  # A2
    minor: bool = True
    vocals: bool = False
    gain: float = 0.5


@dataclass(frozen=True)
class MixSpec:
    sections: tuple[Section, ...]
    lead_silence_sec: float = 0.0
    tail_silence_sec: float = 0.0
    sample_rate: int = 44100
    seed: int = 7
    beat_times: list[float] = field(default_factory=list, compare=False)

    @property
    def duration_sec(self) -> float:
        return self.lead_silence_sec + sum(s.seconds for s in self.sections) + self.tail_silence_sec

    def beats(self) -> list[float]:
        """True beat times in seconds from the start of the file."""
        times, offset = [], self.lead_silence_sec
        for section in self.sections:
            period = 60.0 / section.bpm
            times.extend(offset + np.arange(0, section.seconds - 1e-9, period))
            offset += section.seconds
        return [float(t) for t in times]


def _section_block(section: Section, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mono samples of `section` at times `t` (seconds from the section start)."""
    period = 60.0 / section.bpm
    phase = np.mod(t, period)
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-phase * 30)) * phase) * np.exp(-phase * 12)
    off = np.mod(t + period / 2, period)
    hat = rng.standard_normal(len(t)) * np.exp(-off * 60) * 0.15
    third = 3 if section.minor else 4
    chord = sum(np.sin(2 * np.pi * section.root_hz * 2 ** (semi / 12) * t) for semi in (0, third, 7, 12)) * 0.06
    signal = kick * 0.8 + hat + chord
    if section.vocals:
        # A sung-like line: vibrato, harmonics with a formant-ish tilt, phrases of four beats.
        # Phase of f0 * (1 + 0.01 sin(2 pi 5.5 t)) in closed form, so blocks join seamlessly.
        f0, rate, depth = section.root_hz * 4, 5.5, 0.01
        ph = 2 * np.pi * f0 * (t - depth * np.cos(2 * np.pi * rate * t) / (2 * np.pi * rate))
        voice = sum(np.sin(k * ph) / k for k in range(1, 6)) * 0.12
        voice *= (np.mod(t, 4 * period) < 3 * period).astype(np.float64)
        signal = signal + voice
    return signal * section.gain


def render(spec: MixSpec, start: float, seconds: float) -> np.ndarray:
    """Stereo float32 samples of the mix between `start` and `start + seconds`."""
    sr = spec.sample_rate
    n = round(seconds * sr)
    t_abs = start + np.arange(n) / sr
    out = np.zeros(n, dtype=np.float64)
    rng = np.random.default_rng(spec.seed + int(start * 10))
    offset = spec.lead_silence_sec
    for section in spec.sections:
        mask = (t_abs >= offset) & (t_abs < offset + section.seconds)
        if mask.any():
            out[mask] = _section_block(section, t_abs[mask] - offset, rng)
        offset += section.seconds
    stereo = np.stack([out, out * 0.9], axis=1)
    return stereo.astype(np.float32)


def write_mix(spec: MixSpec, path: Path, *, subtype: str | None = None, block_sec: float = 10.0) -> Path:
    """Write the mix to `path` (format from the extension) in blocks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    total = spec.duration_sec
    with sf.SoundFile(str(path), "w", samplerate=spec.sample_rate, channels=2, subtype=subtype) as fh:
        start = 0.0
        while start < total - 1e-9:
            seconds = min(block_sec, total - start)
            fh.write(render(spec, start, seconds))
            start += seconds
    return path


def demo_mix(minutes: float = 2.0) -> MixSpec:
    """A mix of alternating sections at different tempos and keys, with leading and trailing silence."""
    palette = (
        Section(60, 124, 110.0, True, False),
        Section(60, 128, 146.83, True, True),
        Section(60, 122, 98.0, False, False),
        Section(60, 174, 130.81, False, True),
    )
    body = minutes * 60.0
    sections, used, i = [], 0.0, 0
    while used < body - 1e-9:
        base = palette[i % len(palette)]
        seconds = min(base.seconds, body - used)
        sections.append(Section(seconds, base.bpm, base.root_hz, base.minor, base.vocals, base.gain))
        used += seconds
        i += 1
    return MixSpec(tuple(sections), lead_silence_sec=2.0, tail_silence_sec=1.0)
