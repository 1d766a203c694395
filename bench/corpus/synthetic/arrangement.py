"""One track's bus and arrangement: the chord progression, which layer groups play in which bars (following
intro / build / breakdown / drop / outro conventions), filter sweeps, fills, risers and crashes, and the note
render cache the layers share."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from bench.corpus.synthetic.dsp import SR, Array
from bench.corpus.synthetic.instruments import Kit
from bench.corpus.synthetic.patterns import MINIMAL_PROGRESSIONS, PROGRESSIONS, chord_notes, midi_hz, place_note
from bench.corpus.synthetic.plan import TrackPlan


class Bus:
    """Stereo track bus plus a mono reverb send; layers are mono and panned in (keeps memory at ~3 buffers)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.lr = np.zeros((n, 2), np.float32)
        self.send = np.zeros(n, np.float32)

    def add(self, mono: Array, gain: float, pan: float = 0.0, send: float = 0.0, haas_ms: float = 0.0) -> None:
        a = (pan + 1.0) * math.pi / 4
        gl, gr = math.cos(a) * math.sqrt(2) * gain, math.sin(a) * math.sqrt(2) * gain
        self.lr[:, 0] += gl * mono
        d = int(haas_ms * SR / 1000)
        if d > 0:
            self.lr[d:, 1] += gr * mono[:-d]
        else:
            self.lr[:, 1] += gr * mono
        if send:
            self.send += (send * gain) * mono


class TrackLayers:
    """A track's state while it renders: its plan, random stream, grid, bus, kit, harmony and layer masks.

    The layer mixins (drums, tonal) and the renderer build on it; the random stream is drawn from in one fixed
    order (harmony, arrangement, then each layer in `TrackRenderer.render`), so a seed always gives one mix.
    """

    kick_pattern: str  # the drum pattern of the kick (set by the drums, followed by an 808 bass)

    def __init__(self, plan: TrackPlan, n: int) -> None:
        self.p = plan
        self.s = plan.style
        self.rng = np.random.default_rng([plan.seed, 11])
        self.g = plan.grid
        self.m = plan.style.meter
        self.n = n
        self.bus = Bus(n)
        # Producers tune the kick's tail to the key (tonic or fifth): a tonal kick in another key would be a
        # loud, wrong pitch class that no real record has.
        kick_midi = min(place_note(plan.key_pc, 28), place_note((plan.key_pc + 7) % 12, 28))
        self.kit = Kit(self.rng, plan.style.tight_kick, float(midi_hz(kick_midi)))
        self.scratch = np.zeros(n, np.float32)
        self.kick_samples: list[int] = []
        self.vocal_spans: list[tuple[float, float]] = []
        self._cache: dict[tuple, Array] = {}
        self._cache_bytes = 0
        self.swing = float(self.rng.uniform(*self.s.swing))
        self.n_bars_audible = min(plan.n_bars, int(np.searchsorted(self.g.beats, n / SR) // self.m) + 1)
        self._harmony()
        self._arrange()

    # ---- helpers
    def voice(self, key: tuple, make: Callable[[], Array]) -> Array:
        """Notes repeat (same pitch and length) bar after bar: render each distinct one once and reuse it."""
        x = self._cache.get(key)
        if x is None:
            x = make().astype(np.float32)
            if self._cache_bytes < 96 << 20:
                self._cache[key] = x
                self._cache_bytes += x.nbytes
        return x

    def layer(self) -> Array:
        self.scratch.fill(0.0)
        return self.scratch

    def sample(self, pos: float | Array) -> Array:
        return np.round(self.g.time(pos) * SR).astype(np.int64)

    # ---- harmony and arrangement
    def _harmony(self) -> None:
        r, p = self.rng, self.p
        minimal = r.random() < self.s.minimal_p
        progs = (MINIMAL_PROGRESSIONS if minimal else PROGRESSIONS)[p.mode]
        tokens = str(r.choice(progs)).split()
        seventh = r.random() < self.s.sevenths_p
        bpc = int(r.choice(self.s.bars_per_chord))
        chords = [chord_notes(p.mode, tok, seventh) for tok in tokens]
        self.chord_of_bar = [chords[(b // bpc) % len(chords)] for b in range(p.n_bars)]
        self.chord_change = [
            b == 0 or self.chord_of_bar[b] != self.chord_of_bar[b - 1] or b % (bpc * len(chords)) == 0
            for b in range(p.n_bars)
        ]

    def _arrange(self) -> None:
        """Per-bar on/off masks of each layer group, following intro/build/breakdown/drop/outro conventions."""
        r, s, nb = self.rng, self.s, self.p.n_bars
        M: dict[str, Array] = {
            k: np.zeros(nb, bool)
            for k in ("kick", "backbeat", "tops", "perc", "bass", "pad", "chords", "arp", "lead", "vocal")
        }
        self.sweeps: dict[str, list[tuple[int, int, float, float, str]]] = {
            k: [] for k in ("chords", "pad", "arp", "lead")
        }
        self.fills: dict[int, tuple[str, float]] = {}
        self.risers: list[tuple[int, int]] = []
        self.crashes: list[int] = []
        has_arp = r.random() < s.arp_p
        has_lead = r.random() < s.lead_p
        self.chord_kind = str(r.choice(s.chords))
        drums = ("kick", "backbeat", "tops", "perc")
        for k, sec in enumerate(self.p.sections):
            a, b, L = sec.bar0, sec.bar1, sec.n_bars
            if sec.name == "intro":
                d0 = a + 8 if (L >= 16 and r.random() < s.song_intro_p) else a
                if d0 > a:  # a song-like intro: chords first, drums come in after 8 bars
                    M["chords"][a:d0] = True
                    M["pad"][a:d0] = r.random() < 0.5
                M["kick"][d0:b] = True
                M["tops"][(d0 + 8 if L - (d0 - a) >= 16 and r.random() < 0.5 else d0) : b] = True
                M["backbeat"][(d0 + 8 if L - (d0 - a) >= 16 else d0) : b] = True
                M["perc"][a + L // 2 : b] = True
                if L >= 16 and r.random() < 0.3:
                    M["bass"][b - 8 : b] = True
                if d0 == a and L >= 16 and r.random() < 0.3:
                    M["chords"][b - 8 : b] = True
                    self.sweeps["chords"].append((b - 8, b, 250.0, 12000.0, "lp"))
            elif sec.name == "build":
                for d in drums:
                    M[d][a:b] = True
                M["bass"][a:b] = True
                M["chords"][a:b] = True
                self.sweeps["chords"].append((a, b, 300.0, 14000.0, "lp"))
                if has_arp:
                    M["arp"][a + L // 2 : b] = True
                    self.sweeps["arp"].append((a + L // 2, b, 400.0, 14000.0, "lp"))
                M["pad"][a:b] = r.random() < 0.3
                self.risers.append((max(a, b - int(r.choice([4, 8]))), b))
                self.fills[b - 1] = (str(r.choice(["snare_roll", "kick_drop", "tom_run"])), float(self.m - 2))
                self.crashes.append(a)
            elif sec.name == "breakdown":
                M["pad"][a:b] = True
                self.sweeps["pad"].append((a, a + max(4, L // 2), 300.0, 16000.0, "lp"))
                if has_arp and r.random() < 0.5:
                    M["arp"][a:b] = True
                if has_lead and r.random() < 0.4:
                    M["lead"][a + L // 2 : b] = True
                if r.random() < 0.3:
                    M["chords"][a:b] = True
                if self.p.vocals and r.random() < 0.85:
                    M["vocal"][a:b] = True
                self.risers.append((max(a, b - int(r.choice([4, 8]))), b))
                if k > 0 and M["kick"][a - 1]:
                    self.fills[a - 1] = (str(r.choice(["snare_roll", "open_hat", "tom_run"])), float(self.m - 1))
            elif sec.name == "drop":
                for d in drums:
                    M[d][a:b] = True
                M["bass"][a:b] = True
                M["chords"][a:b] = r.random() < 0.85 or not (has_arp or has_lead)
                M["pad"][a:b] = r.random() < 0.3
                if has_arp:
                    M["arp"][a:b] = True
                if has_lead:
                    first_on = r.random() < 0.5
                    for blk in range(a, b, 8):
                        M["lead"][blk : min(b, blk + 8)] = ((blk - a) // 8 % 2 == 0) == first_on
                if self.p.vocals:
                    first_on = r.random() < 0.6
                    for blk in range(a, b, 8):
                        M["vocal"][blk : min(b, blk + 8)] = ((blk - a) // 8 % 2 == 0) == first_on
                self.crashes.append(a)
                for blk in range(a + 16, b, 16):
                    if r.random() < 0.35:
                        self.fills[blk - 1] = (str(r.choice(["snare_roll", "open_hat", "tom_run"])), float(self.m - 1))
            elif sec.name == "outro":
                M["kick"][a:b] = True
                M["tops"][a:b] = True
                M["backbeat"][a : (b - 8 if L >= 16 else b)] = True
                M["perc"][a : a + max(8, L // 2)] = True
                M["bass"][a : a + max(8, L // 2)] = r.random() < 0.8
                if r.random() < 0.5:
                    M["chords"][a : a + 8] = True
                    self.sweeps["chords"].append((a, a + 8, 14000.0, 300.0, "lp"))
        if s.breaks:
            M["break"] = M["kick"] | M["backbeat"]
        self.masks = M
