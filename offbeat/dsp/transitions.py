"""What each transition between two tracks is: its extent and length on the beat grid, whether the two tracks
run at one tempo through it, and how it was mixed (cut, blend, bass swap, filter sweep). How the two tracks' keys
relate is read once their keys are known (`offbeat.dsp.keys.key_relation`).

Pure numpy: arrays in, arrays and plain values out. The mix is seen at `STEP_SEC` resolution through its mel
band powers (what a DJ's EQ and filters act on) and the beat grid with its BPM curve.

How it is mixed is read from a two-source model of the blend: every frame's band powers as a share of the
outgoing track's spectrum (measured just before the window) plus a share of the incoming one's (just after),
fitted on the bands above the bass. A crossfade moves the two shares smoothly; an EQ bass swap keeps both tracks
nearly full above the bass mid-blend while the bass band falls short of what the shares predict (only one
bass plays at a time); a filter sweep leaves the model's error tilted across the spectrum (the outgoing track
losing its lows or its highs) and growing through the window; a cut hands over within a bar.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STEP_SEC = 0.25  # resolution of the band powers the transitions are read from
REFERENCE_SEC = 12.0  # each track's own spectrum: this long beside the window
TEMPO_SEC = 16.0  # each track's tempo: the median BPM this long beside the window
BEATMATCH_TOLERANCE = 0.05  # tempo ratios within this of 1 (or of 2 and 1/2: a half-time grid) are one tempo
SHARE_FLOOR = 0.1  # a track is heard while its share of its own spectrum's power is over this
SWAP_DIP_DB = 3.0  # the bass band this far under the two shares' prediction mid-blend: a bass swap
SWAP_MAX_MISFIT_DB = 3.0  # unless the model's error above the bass grows this much: the whole spectrum is off
FILTER_TILT_DB = 12.0  # the model's error this far tilted across the spectrum, late in the window: a filter
SMOOTH_SEC = 2.0  # shares are averaged over this long before a fade is read from them
CUT_BARS = 1.0  # a handover within this many bars is a cut
LOW_BANDS = 1  # mel band groups of the bass (26-103 Hz at 22.05 kHz: the kick and the bass line)


@dataclass(frozen=True)
class Signals:
    """The mix as the transitions are read from it."""

    band_power: np.ndarray  # (steps, bands) mel band power, one row per STEP_SEC
    beats: np.ndarray  # beat times, seconds
    beat_position: np.ndarray  # position of each beat in its bar, 1 = downbeat
    bpm_curve: np.ndarray  # BPM for each second, NaN where there is none


@dataclass(frozen=True)
class Transition:
    """One transition: the window it was read in, its length on the beat grid, tempo and kind."""

    start: float
    end: float
    beats: float | None  # length in beats (fractional), None without a beat grid there
    bars: float | None
    tempo_ratio: float | None  # outgoing tempo / incoming tempo, None where either has none
    beatmatched: bool | None
    kind: str


def beat_length(beats: np.ndarray, beat_position: np.ndarray, start: float, end: float) -> tuple[float, float] | None:
    """(beats, bars) between `start` and `end` on the beat grid (fractional, the tempo taken as constant within a
    beat); bars are counted in the meter of the bars around; None where the grid does not cover the window."""
    if len(beats) < 2 or start < beats[0] or end > beats[-1]:
        return None
    index = np.interp([start, end], beats, np.arange(len(beats)))
    near = beat_position[max(int(index[0]) - 8, 0) : int(index[1]) + 9]
    meter = int(near.max()) if len(near) and near.max() >= 2 else 4
    length = float(index[1] - index[0])
    return length, length / meter


def side_tempo(bpm_curve: np.ndarray, lo: float, hi: float) -> float | None:
    """The median BPM of the seconds in [lo, hi), None where none has one."""
    values = bpm_curve[max(int(lo), 0) : max(int(np.ceil(hi)), 0)]
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else None


def one_tempo(ratio: float | None, tolerance: float = BEATMATCH_TOLERANCE) -> bool | None:
    """Whether a tempo ratio is one tempo (a half-time grid on one side counts: its beats fall on the other's)."""
    if ratio is None:
        return None
    return bool(min(abs(np.log(ratio * k)) for k in (1.0, 2.0, 0.5)) <= np.log1p(tolerance))


def shares(power: np.ndarray, out_ref: np.ndarray, in_ref: np.ndarray) -> np.ndarray:
    """(steps, 2) non-negative shares (a, b) fitting each row of `power` as a * out_ref + b * in_ref, every band
    weighed by the two references' mean (so each counts by how far it is off, in proportion, not by its power)."""
    scale = np.maximum(0.5 * (out_ref + in_ref), 1e-12)
    x = np.stack([out_ref / scale, in_ref / scale], axis=1)  # (bands, 2)
    y = power / scale  # (steps, bands)
    gram = x.T @ x + 1e-9 * np.eye(2)
    both = np.linalg.solve(gram, x.T @ y.T).T
    alone = np.stack([y @ x[:, 0] / gram[0, 0], y @ x[:, 1] / gram[1, 1]], axis=1)
    residual = [np.sum((y - np.outer(s, x[:, k])) ** 2, axis=1) for k, s in ((0, alone[:, 0]), (1, alone[:, 1]))]
    single = np.where((residual[0] <= residual[1])[:, None], alone * [1, 0], alone * [0, 1])
    return np.maximum(np.where((both >= 0).all(axis=1)[:, None], both, single), 0.0)


def heard(share: np.ndarray, floor: float = SHARE_FLOOR) -> np.ndarray:
    """Where a share is over `floor`, a short dip (a beat's rest) bridged: a running median over a second."""
    width = max(round(1.0 / STEP_SEC) | 1, 1)
    padded = np.pad(share, width // 2, mode="edge")
    smooth = np.median(np.lib.stride_tricks.sliding_window_view(padded, width), axis=1)
    return smooth > floor


def blend_features(band_power: np.ndarray, out_ref: np.ndarray, in_ref: np.ndarray) -> tuple[float, float, float]:
    """(bass dip, tilt swing, misfit growth), dB, of a blend (`band_power`'s rows: the window) against the
    two-source model fitted above the bass: how far the bass band falls under the model mid-blend, how far the
    model's error tilts across the spectrum from the window's start to its second half, and how much its error
    above the bass grows over that time."""
    n = len(band_power)
    high = slice(LOW_BANDS, None)
    fit = shares(band_power[:, high], out_ref[high], in_ref[high])
    model = fit[:, :1] * out_ref + fit[:, 1:] * in_ref
    error = 10 * np.log10(np.maximum(band_power, 1e-12) / np.maximum(model, 1e-12))
    dip = -float(np.mean(error[n // 4 : n - n // 4, :LOW_BANDS]))
    bands = np.arange(band_power.shape[1], dtype=float)
    tilt = np.polyfit(bands - bands.mean(), error.T, 1)[0] * (bands[-1] - bands[0])  # dB across the spectrum
    late, early = slice(n // 2, n - n // 8), slice(0, max(n // 8, 1))
    swing = abs(float(np.median(tilt[late])) - float(np.median(tilt[early])))
    misfit = np.sqrt(np.mean(error[:, high] ** 2, axis=1))
    grows = float(np.median(misfit[late]) - np.median(misfit[early]))
    return dip, swing, grows


def kind_of(
    band_power: np.ndarray, out_ref: np.ndarray, in_ref: np.ndarray, handover_sec: float, bar_sec: float
) -> str:
    """How the blend in `band_power` (its rows: the window) was mixed (see the module's docstring)."""
    if handover_sec < CUT_BARS * bar_sec:
        return "cut"
    if len(band_power) < 8:
        return "blend"
    dip, swing, grows = blend_features(band_power, out_ref, in_ref)
    if swing >= FILTER_TILT_DB:
        return "filter"
    if dip >= SWAP_DIP_DB and grows < SWAP_MAX_MISFIT_DB:
        return "bass_swap"
    return "blend"


def smoothed(values: np.ndarray, sec: float = SMOOTH_SEC) -> np.ndarray:
    """A running mean over `sec` (edges held), so one bar's fill or rest does not move a share."""
    width = max(round(sec / STEP_SEC), 1)
    padded = np.pad(values, (width // 2, width - 1 - width // 2), mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def describe(signals: Signals, start: float, end: float) -> Transition:
    """The transition read in the window [start, end] (seconds)."""
    power = signals.band_power
    length = beat_length(signals.beats, signals.beat_position, start, end)
    before = side_tempo(signals.bpm_curve, start - TEMPO_SEC, start)
    after = side_tempo(signals.bpm_curve, end, end + TEMPO_SEC)
    ratio = before / after if before and after else None
    a, b = (round(t / STEP_SEC) for t in (start, end))
    a, b = max(min(a, len(power)), 0), max(min(b, len(power)), 0)
    reference = round(REFERENCE_SEC / STEP_SEC)
    out_ref = power[max(a - reference, 0) : a].mean(axis=0) if a > 0 else None
    in_ref = power[b : b + reference].mean(axis=0) if b < len(power) else None
    bpm = before or after or 120.0
    bar_sec = 4 * 60.0 / bpm
    kind = "blend"
    if out_ref is not None and in_ref is not None and b > a:
        kind = kind_of(power[a:b], out_ref, in_ref, end - start, bar_sec)
    return Transition(
        start=start,
        end=end,
        beats=None if length is None else length[0],
        bars=None if length is None else length[1],
        tempo_ratio=ratio,
        beatmatched=one_tempo(ratio),
        kind=kind,
    )
