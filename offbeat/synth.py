"""Synthetic mixes with known ground truth, for the demo command, the tests and the benchmark.

Everything is generated in blocks, so an hour-long benchmark mix is written without holding it in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    """Sections one after another; `crossfades[i]` seconds of section i+1 overlap the end of section i
    (linear fades, as a DJ's beat-matched blend), so a boundary is a region with a known midpoint."""

    sections: tuple[Section, ...]
    lead_silence_sec: float = 0.0
    tail_silence_sec: float = 0.0
    sample_rate: int = 44100
    seed: int = 7
    crossfades: tuple[float, ...] = ()

    def _fade(self, i: int) -> float:
        return self.crossfades[i] if i < len(self.crossfades) else 0.0

    def spans(self) -> list[tuple[float, float]]:
        """(start, end) of each section in seconds from the start of the file, fades included."""
        spans, offset = [], self.lead_silence_sec
        for i, section in enumerate(self.sections):
            spans.append((offset, offset + section.seconds))
            offset += section.seconds - self._fade(i)
        return spans

    def boundaries(self) -> list[float]:
        """Midpoints of the transitions between consecutive sections."""
        spans = self.spans()
        return [(spans[i + 1][0] + spans[i][1]) / 2 for i in range(len(spans) - 1)]

    @property
    def duration_sec(self) -> float:
        return self.spans()[-1][1] + self.tail_silence_sec

    def beats(self) -> list[float]:
        """True beat times in seconds from the start of the file (each section's own, fades included)."""
        times: list[float] = []
        for (start, _), section in zip(self.spans(), self.sections, strict=True):
            times.extend(start + np.arange(0, section.seconds - 1e-9, 60.0 / section.bpm))
        return sorted(float(t) for t in times)

    def render_section(self, index: int, start: float, seconds: float, *, faded: bool = True) -> np.ndarray:
        """Section `index` alone between `start` and `start + seconds`, stereo float32: as heard in the mix
        (`faded`), or as the source track before the DJ's fades."""
        return self._render(start, seconds, only=index, faded=faded)

    def _render(self, start: float, seconds: float, only: int | None = None, faded: bool = True) -> np.ndarray:
        sr = self.sample_rate
        t_abs = start + np.arange(round(seconds * sr)) / sr
        out = np.zeros(len(t_abs), dtype=np.float64)
        rng = np.random.default_rng(self.seed + int(start * 10))
        spans = self.spans()
        for i, (section, (lo, hi)) in enumerate(zip(self.sections, spans, strict=True)):
            mask = (t_abs >= lo) & (t_abs < hi)
            if (only is not None and i != only) or not mask.any():
                continue
            t = t_abs[mask] - lo
            gain = np.ones(len(t))
            if faded and i > 0 and self._fade(i - 1) > 0:
                gain = np.minimum(gain, t / self._fade(i - 1))
            if faded and self._fade(i) > 0:
                gain = np.minimum(gain, (section.seconds - t) / self._fade(i))
            out[mask] += _section_block(section, t, rng) * gain
        return np.stack([out, out * 0.9], axis=1).astype(np.float32)


def _section_block(section: Section, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mono samples of `section` at times `t` (seconds from the section start)."""
    period = 60.0 / section.bpm
    phase = np.mod(t, period)
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-phase * 30)) * phase) * np.exp(-phase * 12)
    kick += rng.standard_normal(len(t)) * np.exp(-phase * 400) * 0.5  # the beater's click: where the beat is heard
    off = np.mod(t + period / 2, period)
    hat = rng.standard_normal(len(t)) * np.exp(-off * 60) * 0.15
    third = 3 if section.minor else 4
    chord = sum(np.sin(2 * np.pi * section.root_hz * 2 ** (semi / 12) * t) for semi in (0, third, 7, 12)) * 0.06
    signal = kick * 0.8 + hat + chord
    if section.vocals:
        signal = signal + _voice(section, t, period)
    return signal * section.gain


VOWEL_FORMANTS = ((730.0, 90.0, 1.0), (1090.0, 110.0, 0.5), (2440.0, 170.0, 0.25))  # "ah": Hz, width, gain
_MINOR_STEPS, _MAJOR_STEPS = (0, 3, 7, 5), (0, 4, 7, 9)


def _voice(section: Section, t: np.ndarray, period: float) -> np.ndarray:
    """A sung-like line: a note of the key per four-beat phrase, sung for three beats, with vibrato and a
    glottal-like harmonic series shaped by vowel formants (what source separation models call a voice)."""
    phrase = (t // (4 * period)).astype(int)
    steps = _MINOR_STEPS if section.minor else _MAJOR_STEPS
    out = np.zeros(len(t))
    for i, step in enumerate(steps):
        mask = phrase % len(steps) == i
        if not mask.any():
            continue
        tt = t[mask]
        f0, rate, depth = section.root_hz * 2 * 2 ** (step / 12), 5.5, 0.015
        # Phase of f0 * (1 + depth sin(2 pi rate t)) in closed form, so blocks join seamlessly.
        ph = 2 * np.pi * f0 * (tt - depth * np.cos(2 * np.pi * rate * tt) / (2 * np.pi * rate))
        for k in range(1, int(4000 // f0) + 1):
            weight = sum(g * np.exp(-0.5 * ((k * f0 - fc) / bw) ** 2) for fc, bw, g in VOWEL_FORMANTS) + 0.05 / k
            out[mask] += weight * np.sin(k * ph)
    sung = (np.mod(t, 4 * period) < 3 * period).astype(np.float64)
    return out * sung * 0.12


def render(spec: MixSpec, start: float, seconds: float) -> np.ndarray:
    """Stereo float32 samples of the mix between `start` and `start + seconds`."""
    return spec._render(start, seconds)


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


def demo_mix(minutes: float = 2.0, track_sec: float = 150.0, crossfade_sec: float = 16.0) -> MixSpec:
    """A DJ-style mix: tracks at different tempos, keys, levels, with and without vocals, blended by
    crossfades, between leading and trailing silence. Short mixes get proportionally shorter tracks."""
    palette = (
        Section(0, 124, 110.00, True, False, 0.5),
        Section(0, 128, 146.83, True, True, 0.4),
        Section(0, 122, 98.00, False, False, 0.6),
        Section(0, 174, 130.81, False, True, 0.35),
        Section(0, 100, 123.47, True, True, 0.5),
        Section(0, 140, 164.81, True, False, 0.45),
    )
    body = minutes * 60.0
    count = max(1, round(body / min(track_sec, body / 3)))
    fade = min(crossfade_sec, body / count / 4) if count > 1 else 0.0
    seconds = (body + fade * (count - 1)) / count  # tracks overlap by the crossfades
    sections = tuple(
        Section(seconds, p.bpm, p.root_hz, p.minor, p.vocals, p.gain)
        for p in (palette[i % len(palette)] for i in range(count))
    )
    return MixSpec(sections, lead_silence_sec=2.0, tail_silence_sec=1.0, crossfades=(fade,) * (count - 1))
