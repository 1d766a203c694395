"""The tonal layers of a track: bass, pads, rhythmic chords, arps, lead and sung phrases, with sidechain ducking,
filter sweeps and echoes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.corpus.synthetic.arrangement import TrackLayers
from bench.corpus.synthetic.dsp import SR, Array, add_at, filter_inplace, sweep_filter
from bench.corpus.synthetic.patterns import BASS_RHYTHMS, CHORD_RHYTHMS, SCALES, midi_hz, parse_pattern, place_note
from bench.corpus.synthetic.voices import Singer, quantize_gate, syllable, voice_bass, voice_chord, voice_lead


class TonalLayers(TrackLayers):
    """Bass, pads, chords, arp, lead and vocals into the track's bus; vocals also record their spans."""

    def _sidechain(self, buf: Array, depth: float) -> None:
        if not self.s.sidechain or not self.kick_samples:
            return
        L = int(0.5 * self.g.beat_len(0) * SR)
        shape = (1.0 - depth * np.exp(-np.arange(L) / (0.3 * L))).astype(np.float32)
        env = np.ones(self.n, np.float32)
        for st in self.kick_samples:
            if st < self.n:
                e = min(self.n, st + L)
                np.minimum(env[st:e], shape[: e - st], out=env[st:e])
        buf *= env

    def _apply_sweeps(self, buf: Array, name: str) -> None:
        for b0, b1, f0, f1, kind in self.sweeps.get(name, []):
            s0, s1 = int(self.g.bar_time(b0) * SR), min(self.n, int(self.g.bar_time(b1) * SR))
            if s1 > s0:
                buf[s0:s1] = sweep_filter(buf[s0:s1], f0, f1, kind)

    def bass(self) -> None:
        r, m, p = self.rng, self.m, self.p
        mask = self.masks["bass"]
        if not mask.any():
            return
        voice = str(r.choice(self.s.bass_voices))
        lo = 28
        notes: list[tuple[float, float, int, float | None]] = []
        if self.s.bass == "808":
            hits, _ = parse_pattern(self.kick_pattern or "X.........X.....", m)
            rhythm = []
            starts = [hp for hp, _ in hits if hp < m]
            for i, st in enumerate(starts):
                nxt = starts[i + 1] if i + 1 < len(starts) else m
                rhythm.append((st, min(nxt - st, 2.0), 0))
        else:
            rhythm = list(BASS_RHYTHMS[self.s.bass][int(r.integers(len(BASS_RHYTHMS[self.s.bass])))])
        prev_midi: int | None = None
        for bar in range(min(p.n_bars, self.n_bars_audible)):
            if not mask[bar]:
                prev_midi = None
                continue
            chord = self.chord_of_bar[bar]
            root = place_note((p.key_pc + chord[0]) % 12, lo)
            for pos, dur, iv in rhythm:
                if pos >= m:
                    continue
                step = chord[2] - chord[0] if iv == 7 else iv
                midi = root + step
                glide = None
                if voice == "808" and prev_midi is not None and prev_midi != midi and r.random() < 0.35:
                    glide = float(midi_hz(prev_midi))
                if voice == "808" and r.random() < 0.12:
                    midi = root + 12
                notes.append((bar * m + pos, dur, midi, glide))
                prev_midi = midi
        buf = self.layer()
        beat_sec = self.g.beat_len(0)
        for pos, dur, midi, glide in notes:
            s0 = round(self.g.time(pos) * SR)
            gate = max(64, round(self.g.time(pos + dur) * SR) - s0)
            lfo = float(r.choice([1, 2, 3, 4])) / beat_sec if voice == "wobble" else 0.0
            f = float(midi_hz(midi))
            gate = quantize_gate(gate)
            key = ("bass", voice, f, gate, glide, lfo)
            add_at(buf, s0, self.voice(key, lambda f=f, g=gate, gl=glide, lf=lfo: voice_bass(voice, f, g, r, gl, lf)))
        filter_inplace(buf, "highpass", 28)
        self._sidechain(buf, float(r.uniform(0.3, 0.6)))
        self.bus.add(buf, 0.38 if voice != "808" else 0.5, 0.0, 0.02)

    def _chord_events(self, mask: Array, rhythm: list[tuple[float, float]] | None) -> list[tuple[float, float, int]]:
        """(position, length in beats, bar) of chord hits; rhythm None means one sustained chord per chord span."""
        m, out = self.m, []
        nb = min(self.p.n_bars, self.n_bars_audible)
        if rhythm is None:
            bar = 0
            while bar < nb:
                if not mask[bar]:
                    bar += 1
                    continue
                end = bar + 1
                while end < nb and mask[end] and not self.chord_change[end]:
                    end += 1
                out.append((float(bar * m), float((end - bar) * m), bar))
                bar = end
            return out
        for bar in range(nb):
            if mask[bar]:
                out += [(bar * m + p, d, bar) for p, d in rhythm if p < m]
        return out

    def _voicing(self, bar: int, lo: int, root_below: bool) -> list[float]:
        chord = self.chord_of_bar[bar]
        midis = sorted(place_note((self.p.key_pc + c) % 12, lo) for c in chord)
        if root_below:
            midis.insert(0, place_note((self.p.key_pc + chord[0]) % 12, lo - 12))
        return [float(midi_hz(x)) for x in midis]

    def pads(self) -> None:
        r = self.rng
        mask = self.masks["pad"]
        if not mask.any():
            return
        buf = self.layer()
        lo = int(r.integers(53, 60))
        for pos, dur, bar in self._chord_events(mask, None):
            s0 = round(self.g.time(pos) * SR)
            gate = quantize_gate(round(self.g.time(pos + dur) * SR) - s0)
            fr = self._voicing(bar, lo, True)
            add_at(buf, s0, self.voice(("pad", *fr, gate), lambda fr=fr, g=gate: voice_chord("pad", fr, g, r)))
        filter_inplace(buf, "lowpass", r.uniform(1500, 3500))
        self._apply_sweeps(buf, "pad")
        self._sidechain(buf, 0.3)
        self.bus.add(buf, 0.2, 0.0, 0.35, haas_ms=float(r.uniform(8, 18)))

    def chords(self) -> None:
        r, m = self.rng, self.m
        mask = self.masks["chords"]
        if not mask.any():
            return
        kind = self.chord_kind
        table = CHORD_RHYTHMS[m][kind]
        rhythm = list(table[int(r.integers(len(table)))])
        buf = self.layer()
        lo = int(r.integers(55, 62))
        for pos, dur, bar in self._chord_events(mask, rhythm):
            s0 = round(self.g.time(pos) * SR)
            gate = quantize_gate(round(self.g.time(pos + dur) * SR) - s0)
            fr = self._voicing(bar, lo, False)
            add_at(buf, s0, self.voice((kind, *fr, gate), lambda fr=fr, g=gate: voice_chord(kind, fr, g, r)))
        self._apply_sweeps(buf, "chords")
        self._sidechain(buf, 0.35)
        gain = {"stab": 0.3, "organ": 0.22, "keys": 0.3, "pluck": 0.25}[kind]
        send = 0.35 if kind == "stab" else 0.2
        self.bus.add(buf, gain, float(r.uniform(-0.2, 0.2)), send)

    def arp(self) -> None:
        r, m = self.rng, self.m
        mask = self.masks["arp"]
        if not mask.any():
            return
        step = 0.25 if self.p.bpm0 >= 100 else 0.5
        if self.s.name in ("afro house",):
            step = 1 / 3
        order = str(r.choice(["up", "down", "updown", "random"]))
        lo = int(r.integers(62, 70))
        seq_rand = r.integers(0, 6, 16)
        decay = float(r.uniform(0.06, 0.15))
        buf = self.layer()
        nb = min(self.p.n_bars, self.n_bars_audible)
        for bar in range(nb):
            if not mask[bar]:
                continue
            chord = self.chord_of_bar[bar]
            tones = sorted(place_note((self.p.key_pc + c) % 12, lo) for c in chord[:3])
            tones = tones + [x + 12 for x in tones]
            k = round(m / step)
            for j in range(k):
                if order == "up":
                    idx = j % len(tones)
                elif order == "down":
                    idx = len(tones) - 1 - j % len(tones)
                elif order == "updown":
                    cyc = 2 * len(tones) - 2
                    q = j % cyc
                    idx = q if q < len(tones) else cyc - q
                else:
                    idx = int(seq_rand[j % 16]) % len(tones)
                pos = bar * m + j * step
                s0 = round(self.g.time(pos) * SR)
                gate = quantize_gate(round(self.g.time(pos + step * 0.8) * SR) - s0)
                f = float(midi_hz(tones[idx]))
                x = self.voice(("arp", f, gate), lambda f=f, g=gate: voice_lead(f, g, r, "arp", decay))
                add_at(buf, s0, x, 0.8)
        self._apply_sweeps(buf, "arp")
        echo = self._delay(buf, 0.75 if step == 0.25 else 1.5, 0.35)
        self.bus.add(echo, 0.16, float(r.uniform(-0.4, 0.4)), 0.25, haas_ms=6.0)

    def _delay(self, buf: Array, beats: float, fb: float, taps: int = 3) -> Array:
        d = round(beats * self.g.beat_len(0) * SR)
        out = buf.copy()
        for k in range(1, taps + 1):
            if k * d < len(buf):
                out[k * d :] += (fb**k) * buf[: len(buf) - k * d]
        return out

    def _melody(
        self, lo: int, hi: int, phrase_beats: float, rhythms: Sequence[Sequence[tuple[float, float]]], start_bar: int
    ) -> list[tuple[float, float, int]]:
        """A phrase over chord tones (strong beats) and scale steps (weak beats), ending on a chord tone."""
        r, p, m = self.rng, self.p, self.m
        scale = SCALES[p.mode]
        pool = [x for x in range(lo, hi + 1) if (x - p.key_pc) % 12 in scale]
        rhythm = rhythms[int(r.integers(len(rhythms)))]
        cur = int(r.integers(len(pool) // 3, 2 * len(pool) // 3 + 1))
        out = []
        for i, (pos, dur) in enumerate(rhythm):
            if pos >= phrase_beats:
                break
            bar = min(p.n_bars - 1, start_bar + int(pos // m))
            chord_pcs = {(p.key_pc + c) % 12 for c in self.chord_of_bar[bar]}
            strong = abs(pos - round(pos)) < 1e-9 or i == len(rhythm) - 1
            if strong:
                cands = [j for j in range(len(pool)) if pool[j] % 12 in chord_pcs]
                cands.sort(key=lambda j: abs(j - cur))
                cur = cands[int(r.integers(min(2, len(cands))))]
            else:
                cur = int(np.clip(cur + int(r.choice([-2, -1, -1, 1, 1, 2])), 0, len(pool) - 1))
            out.append((pos, min(dur, phrase_beats - pos), pool[cur]))
        return out

    def _phrase_rhythms(self) -> tuple[float, list[list[tuple[float, float]]]]:
        m = self.m
        if m == 3:
            base = [
                [(0, 1), (1, 1), (2, 1), (3, 2)],
                [(0, 1.5), (1.5, 0.5), (2, 1), (3, 1), (4, 1.5)],
                [(1, 0.5), (1.5, 0.5), (2, 1), (3, 2.5)],
            ]
            beats = 6.0
        else:
            base = [
                [(0, 1), (1, 0.5), (1.5, 0.5), (2, 1.5), (4, 0.5), (4.5, 0.5), (5, 1), (6, 1.5)],
                [(0.5, 0.5), (1, 0.5), (1.5, 1), (2.5, 0.5), (3, 1), (4.5, 0.5), (5, 0.5), (5.5, 0.5), (6, 1.75)],
                [(0, 0.75), (0.75, 0.75), (1.5, 1), (3, 0.5), (3.5, 0.5), (4, 1), (5, 1), (6, 1.5)],
                [(1, 0.5), (1.5, 0.5), (2, 0.5), (2.5, 1.5), (5, 0.5), (5.5, 0.5), (6, 0.5), (6.5, 1.25)],
            ]
            beats = 8.0
        if self.p.bpm0 > 150:  # fast tempi: sing in half time so syllables keep a human length
            base = [[(2 * a, 2 * b) for a, b in rh] for rh in base]
            beats *= 2
        return beats, [[(float(a), float(b)) for a, b in rh] for rh in base]

    def lead(self) -> None:
        r, m = self.rng, self.m
        mask = self.masks["lead"]
        if not mask.any():
            return
        beats, rhythms = self._phrase_rhythms()
        bars_per = int(beats // m)
        lo = int(r.integers(64, 71))
        motif = self._melody(lo, lo + 14, beats, rhythms, 0)
        buf = self.layer()
        nb = min(self.p.n_bars, self.n_bars_audible)
        for bar in range(0, nb, bars_per):
            if not mask[bar]:
                continue
            for pos, dur, midi in motif:
                b = bar + int(pos // m)
                if b >= nb or not mask[b]:
                    continue
                chord_pcs = {(self.p.key_pc + c) % 12 for c in self.chord_of_bar[b]}
                if midi % 12 not in chord_pcs and abs(pos - round(pos)) < 1e-9:
                    midi = min(
                        (x for x in range(midi - 3, midi + 4) if x % 12 in chord_pcs), key=lambda x: abs(x - midi)
                    )
                s0 = round(self.g.time(bar * m + pos) * SR)
                gate = quantize_gate(round(self.g.time(bar * m + pos + dur * 0.9) * SR) - s0)
                f = float(midi_hz(midi))
                add_at(buf, s0, self.voice(("lead", f, gate), lambda f=f, g=gate: voice_lead(f, g, r, "lead")))
        self._apply_sweeps(buf, "lead")
        self.bus.add(self._delay(buf, 0.75, 0.3, 2), 0.17, float(r.uniform(-0.2, 0.2)), 0.3)

    def vocals(self) -> None:
        """Sung phrases (A A' B A' per 8 bars) in the vocal bars; records each phrase's span as vocal truth."""
        r, m, p = self.rng, self.m, self.p
        mask = self.masks["vocal"]
        if not p.vocals or not mask.any():
            return
        register = str(r.choice(["high", "low"]))
        lo = int(r.integers(60, 65)) if register == "high" else int(r.integers(50, 55))
        singer = Singer(
            register, lo, lo + 14, float(r.uniform(4.8, 6.2)), float(r.uniform(0.2, 0.5)), float(r.uniform(0.0, 0.06))
        )
        beats, rhythms = self._phrase_rhythms()
        bars_per = int(beats // m)
        motifs = [self._melody(singer.lo, singer.hi, beats, rhythms, 0) for _ in range(2)]
        vowels = list("aaeeioou")
        buf = self.layer()
        nb = min(p.n_bars, self.n_bars_audible)
        slot = 0
        for bar in range(0, nb, bars_per):
            if not mask[bar : bar + bars_per].all():
                continue
            which = (0, 0, 1, 0)[slot % 4]
            slot += 1
            if r.random() < 0.15:
                continue  # a breath: vocals come and go
            motif = motifs[which]
            prev: int | None = None
            span0 = span1 = None
            for pos, dur, midi in motif:
                b = min(p.n_bars - 1, bar + int(pos // m))
                chord_pcs = {(p.key_pc + c) % 12 for c in self.chord_of_bar[b]}
                if midi % 12 not in chord_pcs and abs(pos - round(pos)) < 1e-9:
                    midi = min(
                        (x for x in range(midi - 3, midi + 4) if x % 12 in chord_pcs), key=lambda x: abs(x - midi)
                    )
                t0 = float(self.g.time(bar * m + pos))
                t1 = float(self.g.time(bar * m + pos + dur * 0.92))
                s0 = round(t0 * SR)
                gate = max(256, round(t1 * SR) - s0)
                syl = syllable(singer, midi, prev, gate, str(r.choice(vowels)), bool(r.random() < 0.5), r)
                add_at(buf, s0, syl.astype(np.float32))
                prev = midi
                span0 = t0 if span0 is None else span0
                span1 = t1
            if span0 is not None and span1 is not None and span0 < self.n / SR:
                self.vocal_spans.append((span0, min(span1, self.n / SR)))
        filter_inplace(buf, "highpass", 120)
        self.bus.add(self._delay(buf, 1.5, 0.25, 2), 0.42, 0.0, 0.3)
