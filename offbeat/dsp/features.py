"""Per-track features: stable tempo, key (musical and Camelot), loudness, brightness, vocals.

Numpy in, numpy out. Each function returns None (with a reason) rather than a made-up number when the
track gives it nothing to measure.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyloudnorm
from scipy.signal import butter, lfilter, sosfilt

from offbeat.dsp import keys, levels

PITCHES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Krumhansl-Kessler key profiles (probe-tone ratings), tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
STEADY_BEAT_SHARE = 0.04  # beat intervals within this share of their median count towards the stable BPM
STEADY_PART_MIN_SEC = 10.0  # a track's steady part shorter than this is no measure of it: its whole span is used
BASS_CUTOFF_HZ = 150.0  # low band of the accompaniment that stands in for a bass stem
VOCAL_RATIO = 0.25  # vocal RMS relative to the whole track's RMS above which a frame "has vocals"
# Share of audible frames with vocals for the track to have vocals. Low enough that a track with a singer in
# one short section still has vocals (a higher share calls such tracks instrumental; a lower one gains nothing),
# and well above the instrumental tracks' leakage into the vocals stem, which real instruments raise.
VOCAL_FRACTION = 0.05


class Unmeasurable(ValueError):
    """A feature that cannot be computed for this track; the message is the reason, for the log."""


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class, C = 0
    minor: bool
    confidence: float

    @property
    def musical(self) -> str:
        return f"{PITCHES[self.tonic]} {'Minor' if self.minor else 'Major'}"

    @property
    def camelot(self) -> str:
        return keys.camelot(self.tonic, self.minor)


def profile_scores(chroma: np.ndarray) -> np.ndarray:
    """(2, 12) correlation of the mean of (frames, 12) chroma with the major (row 0) and minor (row 1) key profile
    on each tonic."""
    if len(chroma) == 0 or not np.isfinite(chroma).all() or chroma.sum() <= 0:
        raise Unmeasurable("no harmonic content")
    profile = chroma.mean(axis=0)
    if profile.std() < 1e-6:
        raise Unmeasurable("chroma is flat: no tonal centre")
    return np.array(
        [
            [np.corrcoef(profile, np.roll(template, tonic))[0, 1] for tonic in range(12)]
            for template in (MAJOR_PROFILE, MINOR_PROFILE)
        ]
    )


def estimate_key(chroma: np.ndarray) -> Key:
    """Key from (frames, 12) chroma by correlation with the 24 rotated key profiles."""
    scores = profile_scores(chroma)
    mode, tonic = np.unravel_index(np.argmax(scores), scores.shape)
    ranked = np.sort(scores.ravel())[::-1]
    confidence = float(np.clip((ranked[0] - ranked[1]) / max(ranked[0], 1e-9) * 5, 0.0, 1.0) * max(ranked[0], 0.0))
    return Key(int(tonic), bool(mode), round(confidence, 3))


def stable_bpm(beat_times: np.ndarray) -> tuple[float, float]:
    """(BPM, confidence) from the beats of a track's steady part.

    The tempo is the mean of the intervals within 4 % of the median (the median alone is not precise enough:
    beat times sit on a 10 ms frame grid, which puts single intervals of a 170 BPM track 3 % apart, while
    the mean of consecutive intervals telescopes that error away). Intervals outside, where the tracker
    lost the beat for a while (a breakdown, a fill), do not count. Confidence is the share that do.
    """
    if len(beat_times) < 8:
        raise Unmeasurable(f"only {len(beat_times)} beats in the steady part")
    intervals = np.diff(beat_times)
    period = float(np.median(intervals))
    steady = np.abs(intervals / period - 1) < STEADY_BEAT_SHARE
    return round(60.0 / float(intervals[steady].mean()), 2), round(float(steady.mean()), 3)


LOUDNESS_STEP_SEC = 0.1  # BS.1770 gating blocks are 400 ms long, one every 100 ms: four 100 ms steps each
ABSOLUTE_GATE_LUFS, RELATIVE_GATE_LU = -70.0, -10.0


def loudness(signal: np.ndarray | Iterable[np.ndarray], sr: int) -> float:
    """Integrated loudness (LUFS, ITU-R BS.1770-4, pyloudnorm's K-weighting) of a (frames, channels) signal,
    or of consecutive blocks of one.

    Blocks are filtered with the filter state carried across them and reduced to 100 ms mean squares at
    once, so memory stays that of one block however long the track (pyloudnorm's meter holds several
    float64 copies of the whole signal). Same result as pyloudnorm's meter, except that only whole 400 ms
    blocks count (pyloudnorm may add a shorter last one: a difference of a hundredth of a LU at most).
    """
    meter = pyloudnorm.Meter(sr)
    stages = [(f.passband_gain, f.b, f.a) for f in meter._filters.values()]
    step = round(sr * LOUDNESS_STEP_SEC)
    states: list[np.ndarray] | None = None
    carry: np.ndarray | None = None
    powers: list[np.ndarray] = []  # (steps, channels) sums of squares per 100 ms
    for block in [signal] if isinstance(signal, np.ndarray) else signal:
        x = np.asarray(block, dtype=np.float64).reshape(len(block), -1)
        if states is None:
            states = [np.zeros((max(len(a), len(b)) - 1, x.shape[1])) for _, b, a in stages]
        for i, (gain, b, a) in enumerate(stages):
            x, states[i] = lfilter(b, a, x, axis=0, zi=states[i])
            x *= gain
        if carry is not None:
            x = np.concatenate([carry, x])
        whole = len(x) // step * step
        powers.append(np.square(x[:whole]).reshape(-1, step, x.shape[1]).sum(axis=1))
        carry = x[whole:]
    steps = np.concatenate(powers) if powers else np.zeros((0, 1))
    if len(steps) < 4:
        raise Unmeasurable("shorter than one 400 ms loudness block")
    per_step = steps.sum(axis=1)  # channel weights are 1 for left and right
    mean_square = (per_step[:-3] + per_step[1:-2] + per_step[2:-1] + per_step[3:]) / (4 * step)
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10 * np.log10(mean_square)
    gated = mean_square[block_lufs >= ABSOLUTE_GATE_LUFS]
    if len(gated) == 0:
        raise Unmeasurable("silent: loudness is below the absolute gate")
    relative = -0.691 + 10 * np.log10(gated.mean()) + RELATIVE_GATE_LU
    kept = mean_square[(block_lufs > relative) & (block_lufs > ABSOLUTE_GATE_LUFS)]
    return round(float(-0.691 + 10 * np.log10(kept.mean())), 2)


def low_band(blocks: Iterable[np.ndarray], sr: int) -> Iterator[np.ndarray]:
    """The signal below BASS_CUTOFF_HZ (4th-order Butterworth), block by block with the filter state carried:
    the bass when there is no bass stem."""
    sos = butter(4, BASS_CUTOFF_HZ, btype="low", fs=sr, output="sos")
    state: np.ndarray | None = None
    for block in blocks:
        if state is None:
            state = np.zeros((sos.shape[0], 2, *block.shape[1:]))
        out, state = sosfilt(sos, block, axis=0, zi=state)
        yield out


def brightness(centroid: np.ndarray, rms: np.ndarray, floor: float) -> float:
    """Mean spectral centroid (Hz) over frames louder than `floor`."""
    loud = rms > floor
    if not loud.any():
        raise Unmeasurable("no frame above the silence threshold")
    return round(float(centroid[loud].mean()), 1)


def vocals(vocal_rms: np.ndarray, mix_rms: np.ndarray, floor: float) -> tuple[bool, float]:
    """(has vocals, vocal RMS) over the track's audible frames.

    The test is relative to the track's own level: a frame has vocals when the vocals stem carries at
    least VOCAL_RATIO of the mix's RMS there, so a quiet track with a voice qualifies and a loud
    instrumental (whose leakage into the vocals stem stays a small share) does not.
    """
    audible = mix_rms > floor
    if not audible.any():
        raise Unmeasurable("no frame above the silence threshold")
    share = vocal_rms[audible] / np.maximum(mix_rms[audible], 1e-9)
    has = float(np.mean(share >= VOCAL_RATIO)) >= VOCAL_FRACTION
    return bool(has), round(levels.rms(vocal_rms[audible]), 5)
