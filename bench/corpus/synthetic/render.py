"""A track's audio: every layer in a fixed order, effects, reverb and mastering."""

from __future__ import annotations

import math

import numpy as np

from bench.corpus.synthetic.dsp import (
    SR,
    Array,
    convolve_into,
    highpass,
    limit_peaks,
    lowpass,
    mean_square,
    sweep_filter,
    time_axis,
)
from bench.corpus.synthetic.render_drums import DrumLayers
from bench.corpus.synthetic.render_tonal import TonalLayers


class TrackRenderer(DrumLayers, TonalLayers):
    """Turns a TrackPlan into audio; also reports when the singer is singing (truth for has_vocals)."""

    def fx(self) -> None:
        """Noise risers into section changes and a downlifter after crashes."""
        r = self.rng
        buf = self.layer()
        for b0, b1 in self.risers:
            s0, s1 = int(self.g.bar_time(b0) * SR), min(self.n, int(self.g.bar_time(b1) * SR))
            if s1 - s0 < SR // 4:
                continue
            x = r.standard_normal(s1 - s0).astype(np.float32)
            ramp = np.linspace(0, 1, s1 - s0, dtype=np.float32) ** 2
            buf[s0:s1] += sweep_filter(x, 300.0, float(r.uniform(6000, 12000)), "bp", q=1.5) * ramp * 0.6
        for b in self.crashes:
            if b == 0 or r.random() < 0.5:
                continue
            s0 = int(self.g.bar_time(b) * SR)
            s1 = min(self.n, int(self.g.bar_time(min(b + 2, self.p.n_bars)) * SR))
            if s1 - s0 < SR // 4:
                continue
            x = r.standard_normal(s1 - s0).astype(np.float32)
            env = np.linspace(1, 0, s1 - s0, dtype=np.float32) ** 2
            buf[s0:s1] += sweep_filter(x, 8000.0, 300.0, "lp") * env * 0.4
        self.bus.add(buf, 0.25, 0.0, 0.4, haas_ms=12.0)

    def reverb(self) -> None:
        r = self.rng
        rt60 = float(r.uniform(1.2, 2.8))
        n_ir = int(rt60 * SR)
        t = time_axis(n_ir)
        pre = int(r.uniform(0.008, 0.03) * SR)
        send = self.bus.send
        for c in range(2):
            ir = r.standard_normal(n_ir) * np.exp(-6.91 * t / rt60)
            ir = highpass(lowpass(ir, r.uniform(4000, 8000)), 250)
            ir[:pre] = 0
            ir /= np.sqrt(np.sum(ir**2))
            convolve_into(self.bus.lr[:, c], send, ir.astype(np.float32), 0.6)
        self.bus.send = np.zeros(0, np.float32)  # free it: the rest of the pipeline only needs the stereo bus

    def master(self) -> None:
        """Loudness-normalize and peak-limit like a mastered release, so tracks sit at realistic levels."""
        lr = self.bus.lr
        rms_db = 10 * math.log10(mean_square(lr) + 1e-20)
        target = float(self.rng.uniform(-15.0, -11.0))
        lr *= np.float32(10 ** ((target - rms_db) / 20))
        limit_peaks(lr, 0.93)

    def render(self) -> Array:
        self.drums()
        self.bass()
        self.pads()
        self.chords()
        self.arp()
        self.lead()
        self.vocals()
        self.fx()
        self.reverb()
        del self.scratch
        self.master()
        return self.bus.lr
