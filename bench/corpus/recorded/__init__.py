"""Real recorded music with beat truth, crossfaded into DJ-style mixes with exact boundaries.

Why this corpus exists: the synthetic corpus proves the detectors on signals we generate ourselves, which is
circular. Here the audio is music that people composed, played and produced (rock/metal songs with real
drums, guitars and mastering), and the beat truth does not come from any beat tracker: it comes from the
songs' rhythm-game charts, whose MIDI tempo map was made in the authors' own sequencer.

Sources (Debian packages with free licences, fetched with ``apt-get download`` and unpacked with
``dpkg-deb -x`` into the cache; nothing is installed and nothing is added to git):

* ``fretsonfire-songs-muldjord``: 4 songs by Muldjord (El Senator), CC BY-SA 3.0.      -> split "tune"
* ``fretsonfire-songs-sectoid``: 4 songs by Sectoid (Carlos Viola Iborra), Expat (MIT). -> split "test"

Each Frets on Fire song folder has ``song.ogg`` (backing) and ``guitar.ogg`` (lead stem; also ``rhythm.ogg``
or ``drums.ogg`` in some packs): they are summed to get the full song. ``notes.mid`` holds the chart; its tempo
events (and time signatures, 4/4 when absent, as in MIDI) give beats and downbeats, with tick 0 at the first
sample of the audio and ``delay`` (ms) of ``song.ini`` added, as the game does.

The tempo map is then checked against the audio (see :func:`verify_song`): a spectral-flux onset envelope with
a short window, calibrated on a synthetic drum kit at known times, must peak on the grid with one constant
offset over the whole song (no drift), clearly above other phases. Every song here had a small constant
offset (+2..+4 ms Muldjord, +25..+41 ms Sectoid, consistent with chart-editor latency or the encoder delay of a
transcode); it is measured to the half millisecond and added to the truth, so the truth is the authors' grid
shifted once. Songs whose map does not fit are dropped. The thresholds keep the truth well inside the
+-70 ms of the beat F-measure: a weak pulse (dense blast-beat metal) is accepted while the grid still wins.
Downbeats are kept only where the bar phase of the map is supported by harmony changes or the kick band.

Mixes: 3..min(8, songs in the split) songs, each cut to a 60-240 s part that starts and ends on a downbeat of
its own map (the audio is the song's own, not time-stretched), joined by phrase-aligned crossfades of 8-20 s:
mostly equal-power, some linear, some bass swaps (lows exchanged at the midpoint). Truth follows
``bench/corpus/truth.py``; key and vocals are unknown for these songs, so they are ``null``. ``lufs`` is the
BS.1770 integrated loudness of the track's own signal over its steady part at its final gain in the mix.

    .venv/bin/python -m bench.corpus.recorded --out bench/out/recorded --mixes 6 --seed 1 [--cache DIR]
"""

from bench.corpus.recorded.audio import SAMPLE_RATE, detector_latency, load_audio
from bench.corpus.recorded.cli import main, song_table
from bench.corpus.recorded.mixing import CORPUS, Part, build_mix
from bench.corpus.recorded.sources import (
    DEFAULT_CACHE,
    PACKAGES,
    PackageInfo,
    Song,
    check_licence,
    discover_songs,
    fetch_packages,
    write_attribution,
)
from bench.corpus.recorded.tempo import TempoMap, beat_grid, read_tempo_map, ticks_to_seconds
from bench.corpus.recorded.verify import VERIFY_VERSION, verify_all, verify_song

__all__ = [
    "CORPUS",
    "DEFAULT_CACHE",
    "PACKAGES",
    "SAMPLE_RATE",
    "VERIFY_VERSION",
    "PackageInfo",
    "Part",
    "Song",
    "TempoMap",
    "beat_grid",
    "build_mix",
    "check_licence",
    "detector_latency",
    "discover_songs",
    "fetch_packages",
    "load_audio",
    "main",
    "read_tempo_map",
    "song_table",
    "ticks_to_seconds",
    "verify_all",
    "verify_song",
    "write_attribution",
]
