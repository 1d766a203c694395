"""The drum layers of a track: pattern hits with swing and humanizing, trap hat rolls, fills, crashes and
breakbeats played intact or chopped."""

from __future__ import annotations

import numpy as np
from scipy import signal

from bench.corpus.synthetic.arrangement import TrackLayers
from bench.corpus.synthetic.dsp import SR, Array, add_at, lowpass, peak_normalize, time_axis
from bench.corpus.synthetic.patterns import BREAKS, DRUM_MIX, parse_pattern, swing_positions


class DrumLayers(TrackLayers):
    """Drums, fills, crashes and breaks into the track's bus."""

    def drums(self) -> None:
        s, r, m = self.s, self.rng, self.m
        M = self.masks
        self.kick_pattern = ""
        for inst, variants in s.drums.items():
            group, gain, pan, send = DRUM_MIX[inst]
            mask = M[group]
            if not mask.any():
                continue
            main = str(r.choice(variants))
            alt = str(r.choice(variants))
            if inst == "kick":
                self.kick_pattern = main
            hits_main, len_main = parse_pattern(main, m)
            hits_alt, len_alt = parse_pattern(alt, m)
            swingable = len(main.split("|")[0]) in (4 * m, 2 * m)
            pos: list[float] = []
            vel: list[float] = []
            for bar in range(min(self.p.n_bars, self.n_bars_audible)):
                if not mask[bar]:
                    continue
                use_alt = bar % 4 == 3 and alt != main
                hits, plen = (hits_alt, len_alt) if use_alt else (hits_main, len_main)
                fill = self.fills.get(bar)
                cut = m + 1.0
                if fill and (group in ("backbeat", "perc") or (fill[0] == "kick_drop" and group == "kick")):
                    cut = fill[1]
                base = (bar % plen) * m
                bar_pos = [bar * m + p - base for p, _ in hits if 0 <= p - base < min(m, cut)]
                bar_vel = [v for p, v in hits if 0 <= p - base < min(m, cut)]
                if inst == "hat" and s.hat_rolls:
                    bar_pos, bar_vel = self._hat_roll(bar, bar_pos, bar_vel)
                pos += bar_pos
                vel += bar_vel
            if not pos:
                continue
            p_arr = np.asarray(pos, float)
            if swingable:
                p_arr = swing_positions(p_arr, self.swing, s.swing_unit)
            t = self.g.time(p_arr)
            human = group in ("tops", "perc")
            if human and self.swing > 0.5:
                t = t + r.normal(0, 0.002, len(t))
            v_arr = np.asarray(vel) * (r.uniform(0.88, 1.05, len(vel)) if human else 1.0)
            starts = np.round(t * SR).astype(np.int64)
            if inst == "kick":
                self.kick_samples = [int(x) for x in starts]
            self._hits(self.kit[inst], starts, v_arr, gain, pan, send)
        self._fills()
        self._crashes()
        if s.breaks:
            self._breaks()

    def _hits(self, sound: Array, starts: Array, vels: Array, gain: float, pan: float, send: float) -> None:
        buf = self.layer()
        for st, v in zip(starts, vels, strict=True):
            add_at(buf, int(st), sound, float(v))
        self.bus.add(buf, gain, pan, send)

    def _hat_roll(self, bar: int, pos: list[float], vel: list[float]) -> tuple[list[float], list[float]]:
        """Trap hat rolls: now and then one beat of 8ths becomes 16ths, 32nds or triplets with a velocity ramp."""
        r, m = self.rng, self.m
        for beat in range(m):
            if r.random() < 0.3:
                b0 = bar * m + beat
                keep = [(p, v) for p, v in zip(pos, vel, strict=True) if not (b0 <= p < b0 + 1)]
                step = float(r.choice([0.25, 0.125, 1 / 6, 1 / 3]))
                k = round(1 / step)
                new = [(b0 + j * step, 0.45 + 0.45 * j / k) for j in range(k)]
                merged = sorted(keep + new)
                pos = [p for p, _ in merged]
                vel = [v for _, v in merged]
        return pos, vel

    def _fills(self) -> None:
        m = self.m
        snare_pos, snare_vel, tom_pos, tom_names, oh_pos = [], [], [], [], []
        for bar, (kind, start) in sorted(self.fills.items()):
            if bar >= self.n_bars_audible:
                continue
            b0 = bar * m
            if kind == "snare_roll":
                steps = np.arange(start, m, 0.25)
                snare_pos += list(b0 + steps)
                snare_vel += list(np.linspace(0.35, 1.0, len(steps)))
            elif kind == "tom_run":
                steps = np.arange(start, m, 0.25)
                names = ["tom_hi", "tom_hi", "tom_mid", "tom_mid", "tom_lo", "tom_lo", "tom_lo", "tom_lo"]
                tom_pos += list(b0 + steps)
                tom_names += names[: len(steps)]
            elif kind == "open_hat":
                oh_pos.append(b0 + m - 0.5)
            elif kind == "kick_drop":
                steps = np.arange(m - 1, m, 0.25)
                snare_pos += list(b0 + steps)
                snare_vel += [0.5, 0.65, 0.8, 1.0][: len(steps)]
        if snare_pos:
            self._hits(self.kit["snare"], self.sample(np.asarray(snare_pos)), np.asarray(snare_vel), 0.45, 0.0, 0.2)
        for name in ("tom_hi", "tom_mid", "tom_lo"):
            ps = [p for p, nm in zip(tom_pos, tom_names, strict=True) if nm == name]
            if ps:
                self._hits(self.kit[name], self.sample(np.asarray(ps)), np.full(len(ps), 0.8), 0.4, -0.2, 0.15)
        if oh_pos:
            self._hits(self.kit["ohat"], self.sample(np.asarray(oh_pos)), np.full(len(oh_pos), 0.9), 0.2, -0.15, 0.1)

    def _crashes(self) -> None:
        bars = [b for b in self.crashes if b < self.n_bars_audible]
        if bars:
            self._hits(
                self.kit["crash"],
                self.sample(np.asarray(bars, float) * self.m),
                np.full(len(bars), 1.0),
                0.22,
                0.1,
                0.25,
            )

    def _breaks(self) -> None:
        """Render a 2-bar break loop with its own kit and room, then play it per bar: intact or chopped in 8ths."""
        r, m, g = self.rng, self.m, self.g
        pattern = BREAKS[int(r.integers(len(BREAKS)))]
        beat = 60.0 / self.p.bpm0
        loop_n = round(2 * m * beat * SR)
        loop = np.zeros(loop_n + int(0.5 * SR))
        for inst, pat in pattern.items():
            hits, _ = parse_pattern(pat, m)
            gain = {"brk_kick": 1.0, "brk_snare": 0.7, "ride": 0.25, "hat": 0.3}[inst]
            for p, v in hits:
                add_at(loop, round(p * beat * SR), self.kit[inst], gain * v)
        room = r.standard_normal(int(0.35 * SR)) * np.exp(-time_axis(int(0.35 * SR)) / 0.07)
        loop = loop + 0.25 * signal.fftconvolve(loop, room / np.sqrt(np.sum(room**2)))[: len(loop)]
        loop = peak_normalize(np.tanh(1.5 * lowpass(loop, 9000)))
        slice_n = loop_n // (4 * m)  # 8th-note slices over 2 bars
        slices = [loop[i * slice_n : (i + 1) * slice_n + int(0.004 * SR)].copy() for i in range(4 * m)]
        fade = int(0.004 * SR)
        for sl in slices:
            sl[-fade:] *= np.linspace(1, 0, fade)
        chop_p = 0.35 if self.s.breaks == "jungle" else 0.08
        buf = self.layer()
        for bar in range(min(self.p.n_bars, self.n_bars_audible)):
            if not self.masks["break"][bar]:
                continue
            fill = self.fills.get(bar)
            chopped = r.random() < chop_p * 2
            for j in range(2 * m):
                if fill and j / 2 >= fill[1]:
                    break
                idx = (bar % 2) * 2 * m + j
                if chopped and r.random() < 0.45:
                    idx = int(r.integers(len(slices)))
                sl = slices[idx]
                if chopped and r.random() < 0.15:  # stutter: the first 16th of the slice twice
                    half = len(sl) // 2
                    sl = np.concatenate([sl[:half], sl[:half]])
                add_at(buf, round(g.time(bar * m + j / 2) * SR), sl, 1.0)
        self.kick_samples = [int(x) for x in self.sample(np.flatnonzero(self.masks["break"]).astype(float) * m)]
        self.bus.add(buf, 0.95, 0.0, 0.05)
