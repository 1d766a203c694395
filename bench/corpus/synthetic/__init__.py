"""Synthetic DJ-mix corpus with exact ground truth, written independently of the engine's own test synth.

Why another generator: detectors that were tuned on one synthesizer learn its quirks. This package shares no code,
sounds or conventions with ``offbeat/``; it builds every instrument from scratch (pitch-swept kicks, noise snares
and claps, metallic hats, toms, congas, 808s with glide, detuned-saw pads, plucks, arps, e-pianos, organs, a
formant "singer", risers, convolution reverb), arranges them per style into tracks with intro / build /
breakdown / drop / outro in 8-bar phrases, and mixes 3-8 tracks the way a DJ would: beat-matched blends of
8-64 bars with equal-power, linear, EQ bass-swap or filter-sweep crossfades, plus deliberate clashes of
unrelated tempos. All truth (beats, downbeats, tempo, key, meter, vocals, loudness, boundaries) is computed from
the generator's own event times and signals, never estimated.

Every mix is a pure function of its seed; even seeds are the ``tune`` split and odd seeds ``test``, so an
evaluation can report on mixes no one tuned on. A boundary is the midpoint of its crossfade window (see
``bench/corpus/truth.py`` for the shared format). Beat-matched blends place the incoming track's first downbeat on an
outgoing downbeat at the same tempo (no time-stretching: the incoming track is generated at the mix tempo);
the other transitions join tracks whose tempi differ by at least 8 %.

Usage (from the repository root)::

    .venv/bin/python -m bench.corpus.synthetic --out /tmp/synth --mixes 4 --seed 0 [--short]

``--short`` makes 45-110 s tracks (quick-mix style) instead of 2-6 min ones.

Modules, from the bottom up: ``dsp`` (filters, buffers, limiter), ``instruments`` (oscillators, envelopes, drum
sounds and kit), ``voices`` (basses, chords, leads, the singer), ``patterns`` (music theory, rhythm tables),
``styles`` (the style table), ``plan`` (the mix plan), ``arrangement`` (a track's harmony and layer masks),
``render_drums`` / ``render_tonal`` / ``render`` (a track's audio), ``mixing`` (crossfades, the mix and its
truth), ``cli`` (the command line).
"""

from bench.corpus.synthetic.cli import generate, main
from bench.corpus.synthetic.dsp import SR
from bench.corpus.synthetic.mixing import CORPUS, render_mix
from bench.corpus.synthetic.plan import Grid, MixPlan, Section, TrackPlan, Transition, plan_mix
from bench.corpus.synthetic.styles import STYLES, Style

__all__ = [
    "CORPUS",
    "SR",
    "STYLES",
    "Grid",
    "MixPlan",
    "Section",
    "Style",
    "TrackPlan",
    "Transition",
    "generate",
    "main",
    "plan_mix",
    "render_mix",
]
