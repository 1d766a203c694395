"""Music theory (scales, chord progressions, pitches) and the rhythm tables the styles and the renderer share:
drum pattern strings, drum mix, bass and chord rhythms, breakbeats, pattern parsing and swing."""

from __future__ import annotations

import numpy as np

from bench.corpus.synthetic.dsp import Array

# ------------------------------------------------------------------------------------------------ music theory

SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# Scale-degree progressions that start on the tonic (so the key is unambiguous); "5+" is the harmonic-minor
# dominant (major V in a minor key), the strongest cue a listener or key detector has for minor.
PROGRESSIONS = {
    "major": ("1 5 6 4", "1 6 4 5", "1 4 5 4", "1 4 1 5", "1 2 4 5", "1 4 6 5", "1 1 4 5", "1 3 4 5"),
    "minor": ("1 6 3 7", "1 4 5+ 1", "1 7 6 7", "1 4 6 5+", "1 6 4 5+", "1 1 6 7", "1 4 1 5+", "1 6 7 1"),
}
MINIMAL_PROGRESSIONS = {"major": ("1 1 4 1", "1 1 1 5", "1 4 1 1"), "minor": ("1 1 6 1", "1 1 1 7", "1 4 1 1")}


def midi_hz(m: float | Array) -> float | Array:
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=float) - 69.0) / 12.0)


def chord_notes(mode: str, token: str, seventh: bool) -> tuple[int, ...]:
    """Semitone offsets above the tonic of the diatonic chord named by a scale degree ("1".."7", "5+")."""
    scale = SCALES[mode]
    deg = int(token.rstrip("+")) - 1
    notes = [scale[(deg + k) % 7] + 12 * ((deg + k) // 7) for k in (0, 2, 4)]
    if token.endswith("+"):
        notes[1] += 1
    if seventh:
        notes.append(scale[(deg + 6) % 7] + 12 * ((deg + 6) // 7))
    return tuple(notes)


def place_note(pc: int, lo: int) -> int:
    """Lowest MIDI note >= lo with pitch class pc."""
    return lo + ((pc - lo) % 12)


# ------------------------------------------------------------------------------------------------ rhythms

# Drum pattern strings: one character per step, bars separated by "|"; steps per bar = len(bar), spread evenly
# over the bar's beats (16 steps in 4/4 are 16ths, 12 are triplet 8ths, 12 in 3/4 are 16ths).
_VEL = {"X": 1.0, "x": 0.78, "o": 0.45}
FOUR = "X...X...X...X..."
BACK = "....X.......X..."

# instrument -> (group, gain, pan, reverb send); groups switch on and off with the arrangement.
DRUM_MIX: dict[str, tuple[str, float, float, float]] = {
    "kick": ("kick", 1.0, 0.0, 0.02),
    "snare": ("backbeat", 0.55, 0.0, 0.16),
    "clap": ("backbeat", 0.5, 0.05, 0.2),
    "hat": ("tops", 0.2, 0.18, 0.04),
    "ohat": ("tops", 0.17, -0.15, 0.08),
    "ride": ("tops", 0.12, 0.3, 0.1),
    "shaker": ("tops", 0.13, -0.3, 0.05),
    "rim": ("perc", 0.2, 0.3, 0.15),
    "conga": ("perc", 0.32, -0.35, 0.1),
    "conga_hi": ("perc", 0.28, 0.25, 0.1),
    "bongo": ("perc", 0.24, 0.4, 0.1),
    "tom_lo": ("perc", 0.38, -0.2, 0.12),
    "cowbell": ("perc", 0.12, -0.25, 0.1),
    "clave": ("perc", 0.16, 0.2, 0.12),
}


# Bass rhythms per bar: (position in beats, length in beats, interval: 0 root, 12 octave, 7 = the chord's fifth).
BASS_RHYTHMS: dict[str, tuple[list[tuple[float, float, int]], ...]] = {
    "offbeat": (
        [(0.5, 0.35, 0), (1.5, 0.35, 0), (2.5, 0.35, 0), (3.5, 0.35, 0)],
        [(0.5, 0.3, 0), (1.5, 0.3, 12), (2.5, 0.3, 0), (3.5, 0.3, 12)],
    ),
    "rolling": (
        [(b + s, 0.2, 0) for b in range(4) for s in (0.25, 0.5, 0.75)],
        [(b + s, 0.2, 12 if s == 0.75 else 0) for b in range(4) for s in (0.25, 0.5, 0.75)],
    ),
    "house": (
        [(0, 0.4, 0), (0.75, 0.25, 0), (1.5, 0.4, 12), (2.5, 0.4, 0), (3.25, 0.25, 7), (3.5, 0.4, 0)],
        [(0.5, 0.4, 0), (1.75, 0.25, 0), (2.5, 0.4, 12), (3.5, 0.4, 7)],
        [(0, 0.75, 0), (1, 0.25, 0), (1.5, 0.5, 12), (2.75, 0.25, 0), (3, 0.5, 7)],
    ),
    "techno": ([(b + s, 0.2, 0) for b in range(4) for s in (0.5, 0.75)], [(b + 0.5, 0.45, 0) for b in range(4)]),
    "dnb": (
        [(0, 1.5, 0), (1.75, 0.75, 0), (2.5, 1.5, 0)],
        [(0, 2.5, 0), (2.5, 1.5, 7)],
        [(0, 1, 0), (1.5, 0.5, 12), (2.5, 1.5, 0)],
    ),
    "dubstep": (
        [(0, 1.5, 0), (2, 2, 0)],
        [(0, 1, 0), (1, 1, 0), (2.5, 1.5, 12)],
        [(0, 0.75, 0), (0.75, 0.75, 0), (2, 2, 0)],
    ),
    "ukg": (
        [(0, 0.5, 0), (0.75, 0.5, 0), (1.75, 0.25, 12), (2.5, 0.75, 0), (3.5, 0.25, 7)],
        [(0, 0.75, 0), (1.5, 0.5, 0), (2.75, 0.5, 12), (3.5, 0.5, 0)],
    ),
    "breakbeat": (
        [(0, 0.5, 0), (0.75, 0.25, 0), (1.5, 0.5, 12), (2.5, 0.5, 0), (3, 0.5, 7), (3.75, 0.25, 0)],
        [(0, 1, 0), (1.75, 0.5, 0), (2.5, 1, 12)],
    ),
    "afro": (
        [(0, 0.5, 0), (0.75, 0.25, 0), (2, 0.5, 0), (2.75, 0.5, 7), (3.5, 0.25, 0)],
        [(0, 0.75, 0), (1.5, 0.5, 0), (2.5, 0.5, 7), (3.25, 0.5, 0)],
    ),
    "downtempo": ([(0, 1.5, 0), (1.75, 0.5, 0), (2.5, 1, 7), (3.5, 0.5, 0)], [(0, 2, 0), (2.5, 1.5, 0)]),
    "waltz": ([(0, 0.9, 0)], [(0, 0.9, 0), (2, 0.9, 7)]),
}

# Rhythmic chord patterns per meter: (position in beats, length in beats).
CHORD_RHYTHMS: dict[int, dict[str, tuple[list[tuple[float, float]], ...]]] = {
    4: {
        "stab": (
            [(0.5, 0.25), (1.5, 0.25), (2.5, 0.25), (3.5, 0.25)],
            [(0.75, 0.5), (2.5, 0.5)],
            [(0, 0.25), (0.75, 0.25), (1.5, 0.25), (2.25, 0.25), (3, 0.25)],
            [(1.5, 0.5), (3.5, 0.5)],
        ),
        "organ": (
            [(0.5, 0.3), (1.5, 0.3), (2.5, 0.3), (3.5, 0.3)],
            [(0, 0.4), (0.75, 0.4), (1.75, 0.25), (2.5, 0.5), (3.5, 0.25)],
        ),
        "keys": ([(0, 1.5), (1.5, 0.5), (2.5, 1.5)], [(0, 0.75), (0.75, 1.25), (2.5, 0.5), (3, 1)], [(0, 4)]),
        "pluck": (
            [(0, 0.5), (0.75, 0.5), (1.5, 0.5), (2.25, 0.5), (3, 0.5)],
            [(0.5, 0.5), (1.5, 0.5), (2.5, 0.5), (3.5, 0.5)],
        ),
    },
    3: {
        "stab": ([(1, 0.4), (2, 0.4)],),
        "organ": ([(1, 0.4), (2, 0.4)],),
        "keys": ([(0, 1), (1, 0.8), (2, 0.8)], [(0, 3)]),
        "pluck": ([(1, 0.5), (2, 0.5)], [(0, 0.5), (1, 0.5), (1.5, 0.5), (2, 0.5)]),
    },
}

# Two-bar breakbeats (16ths) rendered with their own kit, then played intact or chopped into 8th slices.
BREAKS = (
    {
        "brk_kick": "X.X.......XX....|X.X.......X.....",
        "brk_snare": "....X..o.o..X..o|....X..o.o....X.",
        "ride": "x.x.x.x.x.x.x.x.|x.x.x.x.x.x.x.x.",
    },
    {
        "brk_kick": "X.........X.....|X.X.......X.....",
        "brk_snare": "....X..o.o..X..o|....X..o.o..X..o",
        "hat": "x.x.x.x.x.x.x.x.|x.x.x.x.x.x.x.x.",
    },
    {
        "brk_kick": "X......X..X.....|X.....X..X......",
        "brk_snare": "....X.......X...|....X..o....X...",
        "hat": "x.xox.xox.xox.xo|x.xox.xox.xox.xo",
    },
)


def parse_pattern(pattern: str, meter: int) -> tuple[list[tuple[float, float]], int]:
    """(positions in beats from the pattern start, velocities) and the pattern's length in bars."""
    bars = pattern.split("|")
    hits = []
    for b, bar in enumerate(bars):
        step = meter / len(bar)
        for i, ch in enumerate(bar):
            v = _VEL.get(ch)
            if v:
                hits.append((b * meter + i * step, v))
    return hits, len(bars)


def swing_positions(pos: Array, ratio: float, unit: float) -> Array:
    """Delay the second note of every pair of `unit`-long steps so the pair splits ratio : 1-ratio."""
    if abs(ratio - 0.5) < 1e-9:
        return pos
    pair = 2.0 * unit
    k = np.floor(pos / pair + 1e-9)
    f = pos - k * pair
    f2 = np.where(f < unit, f / unit * ratio * pair, ratio * pair + (f - unit) / unit * (1.0 - ratio) * pair)
    return k * pair + f2
