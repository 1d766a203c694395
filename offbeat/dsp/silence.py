"""Silence trimming: frame levels of the mono analysis copy and where the music starts and ends.

Levels are taken after a high-pass below hearing (`HIGHPASS_HZ`): a DC offset, a constant or subsonic rumble
has a large RMS but no sound in it, and used to pass for music (10 s of DC offset came back as a 66 BPM track
in F minor with vocals). Audible sound lasting less than `MIN_SOUND_SEC` in all (a click where an offset
switches on) is no music either.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from scipy.signal import butter, sosfilt, sosfilt_zi

from offbeat.dsp import levels

TRIM_FRAME = 512  # samples at the analysis rate per level frame (23 ms at 22.05 kHz)
HIGHPASS_HZ = 20.0  # below this is no sound a person hears: DC offset, constants, rumble are removed first
HIGHPASS_ORDER = 2  # Butterworth order: removes DC entirely and leaves 40 Hz kick drums within 0.3 dB
MIN_SOUND_SEC = 0.5  # less audible sound than this in the whole file is no music (a click, a step)
OVER_SCALE_DB = 6.0  # samples this far over full scale (dBFS) are no recording's: said in a warning


def frame_levels_db(mono: np.ndarray, frame: int = TRIM_FRAME) -> np.ndarray:
    """RMS level in dBFS of consecutive non-overlapping frames (a partial last frame counts)."""
    return levels.db(levels.frame_rms(mono, frame, dtype=np.float64)).astype(np.float32)


def highpassed(blocks: Iterable[np.ndarray], rate: float) -> Iterator[np.ndarray]:
    """The 1-D signal read in `blocks`, high-passed at HIGHPASS_HZ (float64, filter state carried across blocks).

    The filter starts as if the signal had held its first value forever, so an offset present from the first
    sample leaves nothing behind instead of a step that would sound like a click."""
    sos = butter(HIGHPASS_ORDER, HIGHPASS_HZ, btype="high", fs=rate, output="sos")
    state: np.ndarray | None = None
    for block in blocks:
        x = np.asarray(block, dtype=np.float64)
        if len(x) == 0:
            continue
        if state is None:
            state = sosfilt_zi(sos) * x[0]
        out, state = sosfilt(sos, x, zi=state)
        yield out


def peak_db(peak: float) -> float:
    """A sample peak (1.0 = full scale) in dBFS."""
    return float(levels.db(np.float64(abs(peak))))


def over_scale_warning(peak: float) -> str | None:
    """The warning for audio whose samples reach OVER_SCALE_DB over full scale (a float file written unscaled),
    or None. Such audio is measured as it is: its loudness, levels and stems follow the samples, and the exported
    stems (PCM, clipped at full scale) clip."""
    level = peak_db(peak)
    if level <= OVER_SCALE_DB:
        return None
    return (
        f"the audio is far over full scale: samples reach {abs(peak):.4g} ({level:+.1f} dBFS; 1.0 is full scale); "
        "it is measured as it is, so loudness and levels are that high and the exported stems clip"
    )


def silence_bounds(
    levels_db: np.ndarray, threshold_db: float, frame_sec: float, duration_sec: float
) -> tuple[float, float] | None:
    """(leading silence, trailing silence) in seconds, or None when no frame is above `threshold_db` or the
    frames above it add up to less than MIN_SOUND_SEC (no music: a click)."""
    loud = np.flatnonzero(levels_db > threshold_db)
    if len(loud) == 0 or len(loud) * frame_sec < min(MIN_SOUND_SEC, duration_sec):
        return None
    start = float(loud[0]) * frame_sec
    end = min(duration_sec, float(loud[-1] + 1) * frame_sec)
    return round(start, 3), round(max(0.0, duration_sec - end), 3)
