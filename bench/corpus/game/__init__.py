"""Real electronic game music crossfaded into DJ-style mixes with exact track boundaries.

Why this corpus exists: the track-boundary detector was tuned on synthetic tracks (which we wrote ourselves) and
on a handful of rock songs. Here the tracks are produced electronic music (ambient/industrial techno, electro,
synth pop) that people composed for free games, mixed the way a DJ plays whole tracks: long beat-matched blends,
EQ bass swaps, similar sounds on both sides of a boundary. The boundaries are exact because we do the mixing; the
music itself carries no beat truth, so tempo, beats, key and vocals are unknown (see "Truth" below).

Sources (Debian packages with free licences, fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x``
into the cache; nothing is installed and nothing is added to git). Each licence is confirmed in the package's
``debian/copyright`` before use (a regex per package must match, so a relicensed package stops the build):

* ``hyperrogue-music`` (64 MB): 17 pieces of 1-2 min by Shawn Parrotte (NeonCorridor), Lincoln Domina and
  Will Savino. The music files are CC-BY-SA-3.0 (the package's code and sounds are GPL-2+ / CC-BY-SA-4.0).
  -> split "tune" (quick mixes)
* ``warzone2100-music`` (86 MB): the Warzone 2100 soundtracks, 3-14 min, by LupusMechanicus (Legacy and Aftermath
  albums) and Martin Severn (original soundtrack). GPL-2+ (debian/copyright, ``Files: *``); the two
  LupusMechanicus albums' ``license.txt`` also offer CC-BY-SA-3.0 or later.                       -> split "tune"
* ``pushover-data`` (32 MB): the Pushover theme music, 1.5-5 min, by Roberto Lorenz. GPL-3+.       -> split "tune"
* ``colobot-common-sounds`` (61 MB): the Colobot soundtrack, 1.5-6 min, by Daniel Roux (original) and Emxx52
  (Gold Edition). GPL-3+.                                                                            -> split "test"
* ``asc-music`` (10 MB): three 5-7 min pieces for Advanced Strategic Command by Michael Kievernagel. GPL-2+.
  -> split "test"

Looked at and not used: ``supertuxkart-data`` (628 MB), ``redeclipse-data`` (862 MB), ``0ad-data`` (1.4 GB) and
``freedroidrpg-data`` (228 MB) are too large for a few minutes of music each; ``boswars-data`` ships no music;
``chromium-bsu-data`` has two loops of 4-7 s; ``wesnoth-music`` is orchestral. ``nexuiz-music`` and
``singularity-music`` are never used here: they are kept for an independent evaluation (:data:`RESERVED`).

Splits are by package, so a piece (and its remaster: Warzone's ``track3_enhanced`` is a reworking of Martin
Severn's ``track3``, Colobot's "Humanitarian v2" of "Humanitarian") and an artist are never on both sides; no
artist appears in two packages. Tune: Warzone 2100, Pushover, HyperRogue. Test: Colobot, ASC.

Mixes (all from one split's pieces; a piece plays at most once per mix, and versions of one work never meet in a
mix):

* ``whole``: 15-25 min of whole tracks of 3-8 min (leading and trailing silence trimmed), the way a DJ plays a
  set: blends of 16, 32 or 64 bars (at most 30 % of either track and 100 s) where both tempi are known, else
  time-based blends of 16-40 s.
* ``quick``: about 10 min of 1-2 min excerpts (whole HyperRogue pieces, or a beat-aligned excerpt of a longer
  track), blends of 8 or 16 bars (8-20 s when a tempo is unknown), at most 25 % of either excerpt: a 60 s excerpt
  cannot give half of itself to a 32-bar blend.
* ``single``: one whole track of 3-8 min per file: the check that a single song is reported as one track.

Tempo is estimated with librosa's beat tracker (onset envelope at 22.05 kHz). It counts as known only where the
pulse is clear: at least 85 % of the beat intervals within 5 % of their median, onsets on the beats at least
1.4 times as strong as between them, and 70-180 BPM. Where both sides are known and within 6 %, the incoming
track is beat-matched by varispeed (resampled with soxr, so its pitch moves with its tempo, as on a turntable or
a CDJ without key lock) to the outgoing track's playing tempo, and placed so that one of its beats lands on one of
the outgoing track's beats (the outgoing track is cut, inside its fade, by less than one beat for that). Fades
are equal-power (sin/cos) over the blend, half of them with an EQ bass swap: the lows (below 150 Hz) of the
outgoing track stay full and the incoming track's stay out until the blend's midpoint, then swap within 1/8 s.
Each track is levelled to -14..-10 LUFS; the mix is scaled down when its peak would pass 0.98.

Truth (``bench/corpus/truth.py``): a boundary is the middle of its blend window; ``transition_in`` /
``transition_out`` are the blend windows; ``lufs`` is BS.1770 loudness of the track's own signal over its steady
part at its final gain. What is not known is left out the way the format and ``bench/accuracy/`` skip it:
``key`` and ``has_vocals`` are ``null``; beats and downbeats are empty lists (estimated beats would score the
engine against another beat tracker); ``bpm`` is 0.0 with ``bpm_range`` [0, 0] (the format needs a number and the
scorer skips a zero tempo); ``meter`` is a nominal 4 (not scored). The estimated tempi, stretch ratios, source
files, excerpts, gains and blends of each mix are in ``game-manifest.json`` beside the mixes, with each package's
version and licence; ``game-<split>-ATTRIBUTION.txt`` credits the authors and carries each package's copyright
file.

Usage (from the repository root)::

    .venv/bin/python -m bench.corpus.game --out corpora/game --split tune --mixes 4 --quick 2 \\
        --singles 6 --seed 1 [--cache DIR] [--list]

Modules, from the bottom up: ``analysis`` (decoding, the audible span, the tempo estimate, loudness, the cache of
each piece's figures), ``sources`` (packages, fetching, licence checks, pieces, attribution), ``blending`` (parts,
varispeed, beat matching, the aligned cut, fades, the assembled mix and its peak scaling), ``plan`` (blend
choice, joining, the piece queue, excerpts, one mix built, its truth), ``cli`` (the command line).
"""

from bench.corpus.game.analysis import SAMPLE_RATE
from bench.corpus.game.blending import Blend, Part, align_cut, apply_fade, assemble, beat_match, finish, varispeed
from bench.corpus.game.cli import main
from bench.corpus.game.plan import CORPUS, build, join, mix_truth, plan_blend
from bench.corpus.game.sources import PACKAGES, PackageInfo, Piece

__all__ = [
    "CORPUS",
    "PACKAGES",
    "SAMPLE_RATE",
    "Blend",
    "PackageInfo",
    "Part",
    "Piece",
    "align_cut",
    "apply_fade",
    "assemble",
    "beat_match",
    "build",
    "finish",
    "join",
    "main",
    "mix_truth",
    "plan_blend",
    "varispeed",
]
