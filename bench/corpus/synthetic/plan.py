"""The mix plan, decided before any audio exists: styles and tempi in sequence (beat-matched blends and clashes
of tempi), track lengths and sections, transitions, keys and the sample placement of every track."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench.corpus.synthetic.dsp import SR, Array
from bench.corpus.synthetic.styles import STYLES, Style

TAIL_SEC = 2.0  # reverb/release tail rendered after a track's last bar (faded out on the final track)
MAX_MIX_SEC = 40 * 60  # keeps memory bounded: the mix buffer is float32 stereo


@dataclass
class Grid:
    """Beat grid of one track in track-local seconds; beats[-1] is the end of the last bar (not a beat)."""

    beats: Array
    meter: int

    @property
    def n_beats(self) -> int:
        return len(self.beats) - 1

    @property
    def end(self) -> float:
        return float(self.beats[-1])

    def time(self, pos: float | Array) -> Array:
        """Seconds of (fractional) beat positions: inside a beat the tempo is taken as constant."""
        return np.interp(pos, np.arange(len(self.beats)), self.beats)

    def bar_time(self, bar: int) -> float:
        return float(self.beats[min(bar * self.meter, self.n_beats)])

    def beat_len(self, beat: int) -> float:
        b = min(max(beat, 0), self.n_beats - 1)
        return float(self.beats[b + 1] - self.beats[b])


def _make_grid(bpm0: float, bpm1: float, meter: int, n_bars: int, ramp: tuple[int, int]) -> Grid:
    """Tempo constant at bpm0 before beat ramp[0], constant at bpm1 after ramp[1], linear in between."""
    n = n_bars * meter
    mid = np.arange(n) + 0.5
    bpm = np.interp(mid, [ramp[0], ramp[1]], [bpm0, bpm1]) if ramp[1] > ramp[0] else np.full(n, bpm0)
    return Grid(np.concatenate([[0.0], np.cumsum(60.0 / bpm)]), meter)


@dataclass
class Section:
    name: str
    bar0: int
    n_bars: int

    @property
    def bar1(self) -> int:
        return self.bar0 + self.n_bars


@dataclass
class TrackPlan:
    """Everything decided before rendering: the parts of a track the mix placement and the truth depend on."""

    index: int
    style: Style
    bpm0: float
    bpm1: float
    key_pc: int
    mode: str
    n_bars: int
    sections: list[Section]
    vocals: bool
    gain_db: float
    seed: int
    grid: Grid
    offset: int = 0  # first sample of the track in the mix
    n_render: int = 0  # samples of the track that reach the mix


@dataclass
class Transition:
    """A crossfade between track i (outgoing) and i+1 (incoming); times in mix seconds."""

    kind: str  # linear | equal_power | bass_swap | filter_out
    beatmatched: bool
    bars: int  # length in the outgoing track's bars
    start: float = 0.0
    end: float = 0.0
    swap: float = 0.0  # bass-swap instant
    sweep: str = "hp"  # filter_out: high-pass up or low-pass down


@dataclass
class MixPlan:
    mix_id: str
    seed: int
    split: str
    tracks: list[TrackPlan]
    transitions: list[Transition]
    total: int = 0  # samples


def _pick_bpm(rng: np.random.Generator, style: Style) -> float:
    lo, hi = style.bpm
    bpm = rng.uniform(lo, hi)
    return float(round(bpm) if rng.random() < 0.7 else round(bpm, 1))


def _matchable_styles(bpm: float, exclude_waltz: bool = True) -> list[Style]:
    return [
        s
        for s in STYLES.values()
        if s.matchable and s.bpm[0] * 0.97 <= bpm <= s.bpm[1] * 1.03 and not (exclude_waltz and s.meter != 4)
    ]


def _choose_sequence(rng: np.random.Generator, n: int) -> tuple[list[Style], list[float], list[float], list[bool]]:
    """Styles and tempi such that the mix has both beat-matched blends and clashes of very different tempi."""
    bm = [bool(x) for x in rng.random(n - 1) < 0.55]
    if n - 1 >= 2:
        if all(bm):
            bm[int(rng.integers(n - 1))] = False
        if not any(bm):
            bm[int(rng.integers(n - 1))] = True
    used: dict[str, int] = {}

    def weight(s: Style, prev: Style | None) -> float:
        w = 1.0 / (1 + 2 * used.get(s.name, 0))
        return w * (0.3 if prev is not None and s.name == prev.name else 1.0)

    def draw(cands: list[Style], prev: Style | None) -> Style:
        w = np.array([weight(s, prev) for s in cands])
        return cands[int(rng.choice(len(cands), p=w / w.sum()))]

    def ramp_end(style: Style, bpm0: float) -> float:
        if not style.ramp:
            return bpm0
        return float(round(bpm0 + rng.choice([-1, 1]) * rng.uniform(2.0, 4.0), 2))

    styles: list[Style] = []
    bpm0s: list[float] = []
    bpm1s: list[float] = []
    for i in range(n):
        need_matchable = i < n - 1 and bm[i]
        prev = styles[-1] if styles else None
        if i == 0:
            cands = [s for s in STYLES.values() if s.matchable or not need_matchable]
            s = draw(cands, None)
            b0 = _pick_bpm(rng, s)
        else:
            t_prev = bpm1s[-1]
            s = None
            if bm[i - 1]:
                cands = _matchable_styles(t_prev)
                if cands:
                    s = draw(cands, prev)
                    b0 = t_prev
                else:
                    bm[i - 1] = False
            if s is None:
                cands = [x for x in STYLES.values() if x.matchable or not need_matchable]
                for _ in range(200):
                    s = draw(cands, prev)
                    b0 = _pick_bpm(rng, s)
                    if abs(b0 / t_prev - 1.0) >= 0.08:
                        break
        assert s is not None
        styles.append(s)
        bpm0s.append(b0)
        bpm1s.append(ramp_end(s, b0))
        used[s.name] = used.get(s.name, 0) + 1
    return styles, bpm0s, bpm1s, bm


def _sections(rng: np.random.Generator, n_bars: int, in_bars: int, out_bars: int, short: bool) -> list[Section]:
    """Intro / build / breakdown / drop (/ breakdown / drop) / outro in 8-bar units, sized around the blends."""
    u = n_bars // 8
    intro = min(4, max(1 if short else 2, math.ceil(in_bars / 8)))
    outro = min(4, max(1 if short else 2, math.ceil(out_bars / 8)))
    build = 1 if short else int(rng.choice([1, 2]))
    brk = 1 if short else int(rng.choice([1, 2, 2, 3, 4]))
    drop = u - intro - outro - build - brk
    min_drop = 1 if short else 2
    while drop < min_drop and brk > 1:
        brk -= 1
        drop += 1
    while drop < min_drop and build > (0 if short else 1):
        build -= 1
        drop += 1
    while drop < min_drop and intro > 1:
        intro -= 1
        drop += 1
    while drop < min_drop and outro > 1:
        outro -= 1
        drop += 1
    drop = max(drop, min_drop)
    parts: list[tuple[str, int]] = [("intro", intro)]
    if build:
        parts.append(("build", build))
    parts.append(("breakdown", brk))
    if not short and drop >= 10:
        d1 = int(rng.integers(4, drop - 5))
        b2 = int(rng.choice([1, 2]))
        parts += [("drop", d1), ("breakdown", b2), ("drop", drop - d1 - b2)]
    else:
        parts.append(("drop", drop))
    parts.append(("outro", outro))
    out, bar = [], 0
    for name, units in parts:
        out.append(Section(name, bar, units * 8))
        bar += units * 8
    return out


def plan_mix(seed: int, short: bool = False) -> MixPlan:
    """Decide styles, tempi, keys, lengths, blends and placement of every track of one mix."""
    rng = np.random.default_rng([seed, 0x5EED])
    n = int(rng.choice([4, 5, 6, 7, 8]) if short else rng.choice([3, 4, 4, 5, 5, 6, 6, 7, 8]))
    styles, bpm0s, bpm1s, bm = _choose_sequence(rng, n)
    durations = rng.uniform(45, 110, n) if short else rng.uniform(120, 360, n)
    if durations.sum() > MAX_MIX_SEC * 0.9:
        durations *= MAX_MIX_SEC * 0.9 / durations.sum()
    bar_sec = [s.meter * 60.0 / ((b0 + b1) / 2) for s, b0, b1 in zip(styles, bpm0s, bpm1s, strict=True)]
    end_bar_sec = [s.meter * 60.0 / b1 for s, b1 in zip(styles, bpm1s, strict=True)]

    transitions: list[Transition] = []
    for i in range(n - 1):
        # Beat-matched blends may be long (DJs ride two records for 32-64 bars); clashing tempi are kept short.
        if bm[i]:
            options = [8, 8, 16] if short else [8, 16, 16, 32, 32, 48, 64]
            kinds, kp = ["linear", "equal_power", "bass_swap", "filter_out"], [0.2, 0.3, 0.3, 0.2]
        else:
            options = [8] if short else [8, 16]
            kinds, kp = ["linear", "equal_power", "bass_swap", "filter_out"], [0.25, 0.35, 0.1, 0.3]
        limit = (0.35 if short else 0.5) * min(durations[i], durations[i + 1])
        fitting = [b for b in options if b * end_bar_sec[i] <= limit] or [8]
        bars = int(rng.choice(fitting))
        transitions.append(Transition(str(rng.choice(kinds, p=kp)), bm[i], bars, sweep=str(rng.choice(["hp", "lp"]))))

    tracks: list[TrackPlan] = []
    for i, style in enumerate(styles):
        in_bars = 0
        if i > 0:
            t = transitions[i - 1]
            in_bars = t.bars if t.beatmatched else math.ceil(t.bars * end_bar_sec[i - 1] / bar_sec[i])
        out_bars = transitions[i].bars if i < n - 1 else 0
        core = 16 if short else 32
        need = math.ceil((in_bars + out_bars + core) / 8) * 8
        n_bars = max(need, round(durations[i] / bar_sec[i] / 8) * 8, 24 if short else 48)
        sections = _sections(rng, n_bars, in_bars, out_bars, short)
        n_bars = sections[-1].bar1
        mode = str(rng.choice(["major", "minor"], p=[0.4, 0.6]))
        ramp = (0, 0)
        if style.ramp:
            intro_end = sections[0].bar1
            outro_start = sections[-1].bar0
            r0, r1 = max(intro_end, in_bars), min(outro_start, n_bars - out_bars)
            if r1 <= r0:  # never happens with the sizes above, but the ramp must stay inside the steady part
                r0, r1 = in_bars, n_bars - out_bars
            ramp = (r0 * style.meter, r1 * style.meter)
        grid = _make_grid(bpm0s[i], bpm1s[i], style.meter, n_bars, ramp)
        tracks.append(
            TrackPlan(
                index=i,
                style=style,
                bpm0=bpm0s[i],
                bpm1=bpm1s[i],
                key_pc=int(rng.integers(12)),
                mode=mode,
                n_bars=n_bars,
                sections=sections,
                vocals=bool(rng.random() < style.vocal_p),
                gain_db=float(rng.uniform(-4.0, 2.0)),
                seed=int(rng.integers(2**31)),
                grid=grid,
            )
        )

    tracks[0].offset = round(rng.uniform(0.2, 1.0) * SR)
    total = place(tracks, transitions)
    split = "tune" if seed % 2 == 0 else "test"
    mix_id = f"synth{'-short' if short else ''}-{seed:05d}"
    return MixPlan(mix_id, seed, split, tracks, transitions, total)


def place(tracks: list[TrackPlan], transitions: list[Transition]) -> int:
    """Place every track after the first (whose `offset` is set) and time the transitions; the mix's samples.

    The incoming track's first downbeat starts where the blend starts, i.e. `bars` bars before the outgoing
    track's last bar ends. When tempi are equal this lands on an outgoing downbeat: beat-matched.
    """
    for i, t in enumerate(transitions):
        out, inc = tracks[i], tracks[i + 1]
        inc.offset = out.offset + round(out.grid.bar_time(out.n_bars - t.bars) * SR)
        out.n_render = round(out.grid.end * SR)  # the outgoing track is cut at the end of its last bar
        t.start = inc.offset / SR  # both ends on exact samples, so truth and audio agree to the sample
        t.end = (out.offset + out.n_render) / SR
        if t.beatmatched:
            t.swap = inc.offset / SR + inc.grid.bar_time(t.bars // 2)
        else:
            t.swap = 0.5 * (t.start + t.end)
    last = tracks[-1]
    last.n_render = round((last.grid.end + TAIL_SEC) * SR)
    return last.offset + last.n_render
