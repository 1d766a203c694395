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

from __future__ import annotations

import argparse
import configparser
import hashlib
import itertools
import json
import math
import re
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from bench.corpus.truth import MixTruth, TrackTruth, write_mix

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = REPO_ROOT / ".corpus-cache"
CORPUS = "recorded"
SAMPLE_RATE = 44100
VERIFY_VERSION = 5  # bump when the verification changes, so cached figures are recomputed

# Analysis parameters of the verification (22.05 kHz mono; 2.9 ms hop for millisecond offsets).
_AN_SR = 22050
_AN_HOP = 64
_SEARCH_MS = (-60.0, 100.0)  # plausible chart latency; an optimum on the edge means the map does not fit
_LOCAL_WIN_SEC = 20.0
_LOCAL_SEARCH_MS = 40.0

# Mix parameters (the brief: parts of 60-240 s, fades of 8-20 s, 3-8 songs).
PART_SEC = (60.0, 240.0)
FADE_SEC = (8.0, 20.0)
SONGS_PER_MIX = (3, 8)
MIN_STEADY_SEC = 20.0
FADE_KINDS = (("equal_power", 0.6), ("linear", 0.2), ("bass_swap", 0.2))
TARGET_LUFS = (-16.0, -11.0)
PEAK_CEILING = 0.98


@dataclass(frozen=True)
class PackageInfo:
    """A song package we are allowed to use, and what we checked about its licence."""

    name: str
    songs_dir: str  # inside the package
    split: str
    style: str
    licence: str
    licence_marker: str  # a regex that must match debian/copyright, so a relicensed package is noticed


PACKAGES: tuple[PackageInfo, ...] = (
    PackageInfo(
        "fretsonfire-songs-muldjord",
        "usr/share/games/fretsonfire/data/songs/muldjord",
        "tune",
        "metal",
        "CC-BY-SA-3.0",
        r"Attribution[- ]ShareAlike\s+3\.0",
    ),
    PackageInfo(
        "fretsonfire-songs-sectoid",
        "usr/share/games/fretsonfire/data/songs/sectoid",
        "test",
        "rock",
        "Expat (MIT)",
        r"Permission is hereby granted, free of charge",
    ),
)
STEM_NAMES = ("song.ogg", "guitar.ogg", "rhythm.ogg", "drums.ogg")


# --------------------------------------------------------------------------------------------------------------
# Fetching


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc.stdout


def fetch_packages(cache: Path) -> dict[str, tuple[Path, str]]:
    """Download and unpack each package once into ``cache``; return {package: (unpacked root, version)}.

    ``apt-get download`` needs no root and installs nothing; the cache holds a ``.gitignore`` of ``*`` so that
    the repository never picks the audio up, whatever its own ignore rules say.
    """
    cache.mkdir(parents=True, exist_ok=True)
    ignore = cache / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    debs = cache / "debs"
    debs.mkdir(exist_ok=True)
    out: dict[str, tuple[Path, str]] = {}
    for pkg in PACKAGES:
        root = cache / "extract" / pkg.name
        stamp = root / ".complete"
        if not stamp.exists():
            found = sorted(debs.glob(f"{pkg.name}_*.deb"))
            if not found:
                if shutil.which("apt-get") is None:
                    raise RuntimeError("apt-get is needed to fetch the song packages (Debian/Ubuntu)")
                print(f"downloading {pkg.name} ...", file=sys.stderr)
                _run(["apt-get", "download", pkg.name], cwd=debs)
                found = sorted(debs.glob(f"{pkg.name}_*.deb"))
                if not found:
                    raise RuntimeError(f"apt-get download {pkg.name} produced no .deb")
            if root.exists():
                shutil.rmtree(root)
            root.mkdir(parents=True)
            _run(["dpkg-deb", "-x", str(found[-1]), str(root)])
            version = _run(["dpkg-deb", "-f", str(found[-1]), "Version"]).strip()
            stamp.write_text(version + "\n")
        out[pkg.name] = (root, stamp.read_text().strip())
    return out


def check_licence(root: Path, pkg: PackageInfo) -> str:
    """Return the licence after confirming it in debian/copyright; a mismatch stops the build (never guess)."""
    path = root / "usr/share/doc" / pkg.name / "copyright"
    text = path.read_text(errors="replace") if path.exists() else ""
    if not re.search(pkg.licence_marker, text):
        raise RuntimeError(f"{pkg.name}: {path} no longer states {pkg.licence}; check the licence before use")
    return pkg.licence


# --------------------------------------------------------------------------------------------------------------
# MIDI tempo maps


@dataclass
class TempoMap:
    """What a chart says about time: tempo changes, time signatures, and the ticks of the charted notes."""

    ticks_per_beat: int
    tempos: list[tuple[int, int]]  # (tick, microseconds per quarter note)
    time_sigs: list[tuple[int, int, int]]  # (tick, numerator, denominator)
    note_ticks: np.ndarray


def _vlq(data: bytes, i: int) -> tuple[int, int]:
    value = 0
    while True:
        b = data[i]
        i += 1
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            return value, i


def _parse_smf(data: bytes) -> TempoMap:
    """Minimal standard MIDI file reader (formats 0/1): the meta events and note-ons we need, nothing else.

    Used when ``mido`` is not installed, so the corpus does not depend on an optional package.
    """
    if data[:4] != b"MThd":
        raise ValueError("not a standard MIDI file")
    header_len = struct.unpack(">I", data[4:8])[0]
    _fmt, n_tracks, division = struct.unpack(">HHH", data[8:14])
    if division & 0x8000:
        raise ValueError("SMPTE time division is not supported")
    tempos: list[tuple[int, int]] = []
    sigs: list[tuple[int, int, int]] = []
    notes: list[int] = []
    i = 8 + header_len
    for _ in range(n_tracks):
        if data[i : i + 4] != b"MTrk":
            raise ValueError("bad track chunk")
        end = i + 8 + struct.unpack(">I", data[i + 4 : i + 8])[0]
        j, tick, status = i + 8, 0, 0
        while j < end:
            delta, j = _vlq(data, j)
            tick += delta
            b = data[j]
            if b == 0xFF:
                kind = data[j + 1]
                length, k = _vlq(data, j + 2)
                payload = data[k : k + length]
                if kind == 0x51 and length == 3:
                    tempos.append((tick, int.from_bytes(payload, "big")))
                elif kind == 0x58 and length >= 2:
                    sigs.append((tick, payload[0], 2 ** payload[1]))
                j = k + length
            elif b in (0xF0, 0xF7):
                length, k = _vlq(data, j + 1)
                j = k + length
            else:
                if b & 0x80:
                    status = b
                    j += 1
                n = 1 if status & 0xF0 in (0xC0, 0xD0) else 2
                if status & 0xF0 == 0x90 and data[j + 1] > 0:
                    notes.append(tick)
                j += n
        i = end
    return TempoMap(division, tempos, sigs, np.unique(np.array(notes, dtype=np.int64)))


def _read_with_mido(path: Path) -> TempoMap:
    import mido  # optional; the fallback parser gives the same events

    mid = mido.MidiFile(str(path))
    tempos: list[tuple[int, int]] = []
    sigs: list[tuple[int, int, int]] = []
    notes: list[int] = []
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                tempos.append((tick, int(msg.tempo)))
            elif msg.type == "time_signature":
                sigs.append((tick, int(msg.numerator), int(msg.denominator)))
            elif msg.type == "note_on" and msg.velocity > 0:
                notes.append(tick)
    return TempoMap(int(mid.ticks_per_beat), tempos, sigs, np.unique(np.array(notes, dtype=np.int64)))


def read_tempo_map(path: Path) -> TempoMap:
    """Read a chart's tempo map (``mido`` when installed, else the built-in parser); sorted, MIDI defaults filled."""
    try:
        tmap = _read_with_mido(path)
    except ImportError:
        tmap = _parse_smf(path.read_bytes())
    # Several tempo events on one tick (Metal madness has three): the last one is the one in force.
    tempos = dict(sorted(tmap.tempos, key=lambda e: e[0]))
    if 0 not in tempos:
        tempos[0] = 500_000  # MIDI default: 120 BPM until the first tempo event
    sigs = {t: (n, d) for t, n, d in sorted(tmap.time_sigs, key=lambda e: e[0])}
    if 0 not in sigs:
        sigs[0] = (4, 4)  # MIDI default meter
    tmap.tempos = sorted(tempos.items())
    tmap.time_sigs = sorted((t, n, d) for t, (n, d) in sigs.items())
    return tmap


def ticks_to_seconds(tmap: TempoMap, ticks: np.ndarray) -> np.ndarray:
    """Map ticks to seconds through the piecewise-constant tempo."""
    ticks = np.asarray(ticks, dtype=np.float64)
    starts = np.array([t for t, _ in tmap.tempos], dtype=np.float64)
    spt = np.array([us / 1e6 / tmap.ticks_per_beat for _, us in tmap.tempos])  # seconds per tick
    seg_sec = np.concatenate([[0.0], np.cumsum(np.diff(starts) * spt[:-1])])
    k = np.clip(np.searchsorted(starts, ticks, side="right") - 1, 0, len(starts) - 1)
    return seg_sec[k] + (ticks - starts[k]) * spt[k]


def beat_grid(tmap: TempoMap, end_sec: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Beats (one per 4/denominator whole notes) and bar starts up to ``end_sec``, plus the dominant meter.

    Bars restart at every time-signature event, as in a sequencer.
    """
    beats: list[float] = []
    down: list[float] = []
    meters: dict[int, float] = {}
    for n, (tick0, num, den) in enumerate(tmap.time_sigs):
        tick_end = tmap.time_sigs[n + 1][0] if n + 1 < len(tmap.time_sigs) else math.inf
        step = tmap.ticks_per_beat * 4 / den
        k = 0
        while True:
            tick = tick0 + k * step
            if tick >= tick_end:
                break
            sec = float(ticks_to_seconds(tmap, np.array([tick]))[0])
            if sec > end_sec:
                break
            beats.append(sec)
            if k % num == 0:
                down.append(sec)
            meters[num] = meters.get(num, 0.0) + 1
            k += 1
        if not beats or beats[-1] > end_sec:
            break
    meter = max(meters, key=lambda m: meters[m]) if meters else 4
    return np.array(beats), np.array(down), meter


# --------------------------------------------------------------------------------------------------------------
# Songs


@dataclass
class Song:
    """One song folder with its metadata, map and (after verification) its corrected truth."""

    key: str
    title: str
    artist: str
    package: str
    package_version: str
    licence: str
    split: str
    style: str
    folder: Path
    stems: list[Path]
    delay_sec: float
    tmap: TempoMap
    duration: float
    verify: dict[str, Any] = field(default_factory=dict)

    @property
    def offset_sec(self) -> float:
        """Total shift of the map: song.ini delay plus the measured residual (0 until verified)."""
        return self.delay_sec + float(self.verify.get("offset_ms", 0.0)) / 1000.0

    def grid(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Beats and downbeats in song seconds after the offset, inside the audio."""
        beats, down, meter = beat_grid(self.tmap, self.duration)
        beats, down = beats + self.offset_sec, down + self.offset_sec
        keep_b = (beats >= 0) & (beats < self.duration)
        keep_d = (down >= 0) & (down < self.duration)
        return beats[keep_b], down[keep_d], meter

    def charted_span(self) -> tuple[float, float]:
        """Seconds from the first to the last charted note: where the song surely plays (not intro noise/tails)."""
        t = ticks_to_seconds(self.tmap, self.tmap.note_ticks) + self.offset_sec
        return float(max(t[0], 0.0)), float(min(t[-1], self.duration))


def _clean_artist(text: str) -> str:
    """ "Muldjord - www.muldjord.com" / "Composed and performed by Sectoid" -> the name, for readable titles."""
    text = re.sub(r"^\s*composed and performed by\s+", "", text, flags=re.IGNORECASE)
    return re.sub(r"\s+-\s+www\.\S+\s*$", "", text).strip()


def discover_songs(fetched: dict[str, tuple[Path, str]]) -> list[Song]:
    """Every song folder (notes.mid + audio) of the fetched packages, sorted by key for determinism."""
    songs: list[Song] = []
    for pkg in PACKAGES:
        root, version = fetched[pkg.name]
        licence = check_licence(root, pkg)
        for folder in sorted(p for p in (root / pkg.songs_dir).iterdir() if (p / "notes.mid").exists()):
            stems = [folder / s for s in STEM_NAMES if (folder / s).exists()]
            if not stems:
                continue
            ini = configparser.ConfigParser(interpolation=None, strict=False)
            ini.read(folder / "song.ini", encoding="utf-8")
            sec = ini["song"] if ini.has_section("song") else {}
            delay_ms = float(sec.get("delay", "0") or 0)
            duration = min(sf.info(str(s)).duration for s in stems)
            songs.append(
                Song(
                    key=f"{pkg.name.rsplit('-', 1)[-1]}/{folder.name}",
                    title=str(sec.get("name", folder.name)).strip(),
                    artist=_clean_artist(str(sec.get("artist", ""))),
                    package=pkg.name,
                    package_version=version,
                    licence=licence,
                    split=pkg.split,
                    style=pkg.style,
                    folder=folder,
                    stems=stems,
                    delay_sec=delay_ms / 1000.0,
                    tmap=read_tempo_map(folder / "notes.mid"),
                    duration=duration,
                )
            )
    return songs


def load_audio(song: Song) -> np.ndarray:
    """The full song as (n, 2) float32 at 44.1 kHz: all stems summed (they are separate parts of one mixdown)."""
    total: np.ndarray | None = None
    for path in song.stems:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
        if x.shape[1] == 1:
            x = np.repeat(x, 2, axis=1)
        x = x[:, :2]
        if sr != SAMPLE_RATE:
            import soxr

            x = soxr.resample(x, sr, SAMPLE_RATE).astype(np.float32)
        if total is None:
            total = x
        else:
            n = min(len(total), len(x))
            total = total[:n] + x[:n]
    assert total is not None
    return total


# --------------------------------------------------------------------------------------------------------------
# Verification of the beat truth against the audio


def _flux(mono: np.ndarray, n_fft: int = 256, band: tuple[float, float] = (0.0, 1e9)) -> np.ndarray:
    """Log-magnitude spectral flux, z-scored. A 256-point window (11.6 ms) keeps the timing error to a few ms."""
    import librosa

    spec = np.abs(librosa.stft(mono, n_fft=n_fft, hop_length=_AN_HOP))
    freqs = librosa.fft_frequencies(sr=_AN_SR, n_fft=n_fft)
    logs = np.log1p(100.0 * spec[(freqs >= band[0]) & (freqs < band[1])])
    flux = np.maximum(0.0, np.diff(logs, axis=1, prepend=logs[:, :1])).sum(axis=0)
    return (flux - flux.mean()) / (flux.std() + 1e-12)


def _mel_onsets(mono: np.ndarray) -> np.ndarray:
    """librosa's mel onset strength: a second, differently built detector to cross-check the offset."""
    import librosa

    env = librosa.onset.onset_strength(y=mono, sr=_AN_SR, hop_length=_AN_HOP, n_fft=1024)
    return (env - env.mean()) / (env.std() + 1e-12)


def _frame_times(n: int) -> np.ndarray:
    return np.arange(n) * _AN_HOP / _AN_SR


def _grid_score(env: np.ndarray, times: np.ndarray) -> float:
    return float(np.interp(times, _frame_times(len(env)), env).mean())


def _best_offset(
    env: np.ndarray, beats: np.ndarray, lo: float, hi: float, step: float = 0.0005
) -> tuple[float, np.ndarray]:
    offs = np.arange(lo, hi + step / 2, step)
    scores = np.array([_grid_score(env, beats + o) for o in offs])
    return float(offs[int(np.argmax(scores))]), scores


def _synthetic_kit(bpm: float, seconds: float = 40.0, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Kick/snare on beats and hi-hats on eighths over sustained chords, at exactly known times."""
    from scipy import signal

    rng = np.random.default_rng(seed)
    period = 60.0 / bpm
    beats = np.arange(1.0, seconds - 1.0, period)
    t = np.arange(int(seconds * _AN_SR)) / _AN_SR
    x = np.zeros_like(t)
    for i, bar in enumerate(np.arange(0.0, seconds, 4 * period)):
        seg = (t >= bar) & (t < bar + 4 * period)
        f0 = 110.0 * 2 ** (((i * 5) % 12) / 12)
        x[seg] += 0.05 * sum(signal.sawtooth(2 * np.pi * f0 * r * t[seg]) for r in (1.0, 1.26, 1.5))
    n = int(0.25 * _AN_SR)
    tt = np.arange(n) / _AN_SR
    kick = np.sin(2 * np.pi * (50 * tt + 1.8 * (1 - np.exp(-tt / 0.03)))) * np.exp(-tt / 0.12)
    hp = signal.butter(2, 5000 / (_AN_SR / 2), "high")
    for k, b in enumerate(beats):
        snare = rng.standard_normal(n) * 0.7 * np.exp(-tt / 0.06) + np.sin(2 * np.pi * 190 * tt) * np.exp(-tt / 0.05)
        hit = kick if k % 2 == 0 else snare
        i = round(b * _AN_SR)
        x[i : i + n] += 0.5 * hit[: len(x) - i]
        for h in (b, b + period / 2):
            j = round(h * _AN_SR)
            hat = signal.lfilter(*hp, rng.standard_normal(n)) * np.exp(-tt / 0.02) * 0.2
            x[j : j + n] += hat[: len(x) - j]
    return x.astype(np.float32), beats


def detector_latency() -> dict[str, float]:
    """Where each onset detector puts a known hit, in seconds (negative: early): measured, not assumed."""
    out: dict[str, list[float]] = {"flux": [], "mel": []}
    for bpm in (100.0, 140.0, 180.0):
        x, beats = _synthetic_kit(bpm)
        out["flux"].append(_best_offset(_flux(x), beats, -0.05, 0.05)[0])
        out["mel"].append(_best_offset(_mel_onsets(x), beats, -0.05, 0.05)[0])
    return {k: float(np.median(v)) for k, v in out.items()}


def _chroma_change(mono: np.ndarray, times: np.ndarray, half: float) -> float:
    """Mean distance between the chroma of the beat after and the beat before each time: harmony moves on bars."""
    import librosa

    hop = 512
    # tuning fixed at A440, as the engine's chroma has it: librosa's tuning estimate (piptrack's numba localmax)
    # crashed the process with a segmentation fault on this environment.
    chroma = librosa.feature.chroma_stft(y=mono, sr=_AN_SR, n_fft=4096, hop_length=hop, tuning=0.0)
    w = max(1, int(half * _AN_SR / hop))
    vals = []
    for t in times:
        i = round(t * _AN_SR / hop)
        if i - w >= 0 and i + w <= chroma.shape[1]:
            vals.append(float(np.linalg.norm(chroma[:, i : i + w].mean(1) - chroma[:, i - w : i].mean(1))))
    return float(np.mean(vals)) if vals else 0.0


def verify_song(song: Song, audio: np.ndarray, latency: dict[str, float]) -> dict[str, Any]:
    """Measure how the chart's beat grid sits on the audio; decide whether the map is trusted.

    Figures (all on the charted span): ``offset_ms`` (calibrated best constant shift of the grid), the same from
    a second detector (``offset_mel_ms``), ``local_*`` (best shift in 20 s windows: spread and drift show a
    wrong tempo), ``contrast`` (onset strength on the grid minus its mean over all phases, in std units),
    ``hit25`` (share of beats with one of the two strongest onsets per beat within 25 ms) against
    ``hit25_shifted`` (the same grid moved by a sixteenth note), ``offbeat_*`` (is the half-beat phase stronger,
    i.e. could the grid sit on the off-beats), and the bar-phase evidence for the downbeats.
    """
    import soxr
    from scipy import signal

    mono = soxr.resample(audio.mean(axis=1), SAMPLE_RATE, _AN_SR).astype(np.float32)
    flux = _flux(mono)
    low = _flux(mono, 1024, (0.0, 200.0))  # kick band: longer window for frequency resolution
    mel = _mel_onsets(mono)
    beats0, down0, meter = beat_grid(song.tmap, song.duration)
    beats0, down0 = beats0 + song.delay_sec, down0 + song.delay_sec
    lo_t, hi_t = song.charted_span()
    sel = (beats0 >= lo_t) & (beats0 <= hi_t - 0.1)
    beats = beats0[sel]
    period = float(np.median(np.diff(beats)))
    lo, hi = _SEARCH_MS[0] / 1000, _SEARCH_MS[1] / 1000
    raw, _ = _best_offset(flux, beats, lo, hi)
    raw_mel, _ = _best_offset(mel, beats, lo, hi)
    offset = raw - latency["flux"]
    offset_mel = raw_mel - latency["mel"]
    on_edge = min(raw - lo, hi - raw) < 0.002
    phases = np.arange(0.0, period, 0.002)
    all_phase = np.array([_grid_score(flux, beats + raw + p) for p in phases])
    peak = _grid_score(flux, beats + raw)
    contrast = peak - float(all_phase.mean())

    local_off, local_t = [], []
    for w0 in np.arange(lo_t, hi_t - _LOCAL_WIN_SEC / 2, _LOCAL_WIN_SEC):
        bb = beats[(beats >= w0) & (beats < w0 + _LOCAL_WIN_SEC)]
        if len(bb) < 8:
            continue
        o, sc = _best_offset(flux, bb, raw - _LOCAL_SEARCH_MS / 1000, raw + _LOCAL_SEARCH_MS / 1000, 0.001)
        if sc.max() - np.median(sc) < 0.3:  # no clear pulse in this window (break, fade): no evidence either way
            continue
        local_off.append((o - raw) * 1000)
        local_t.append(w0 + _LOCAL_WIN_SEC / 2)
    dev = np.abs(np.array(local_off)) if local_off else np.array([np.inf])
    drift = float(np.polyfit(local_t, local_off, 1)[0] * (hi_t - lo_t)) if len(local_off) >= 3 else math.inf

    # The strongest flux peaks, at most two per beat (scipy rather than librosa.onset.onset_detect, whose numba
    # peak picker crashed with SIGSEGV here), moved by the detector latency, are the audible onsets.
    peaks, _ = signal.find_peaks(flux, distance=max(1, round(0.5 * period * _AN_SR / _AN_HOP)))
    onsets = _frame_times(len(flux))[peaks] - latency["flux"]

    def hit(times: np.ndarray, tol: float = 0.025) -> float:
        idx = np.clip(np.searchsorted(onsets, times), 1, len(onsets) - 1)
        d = np.minimum(np.abs(onsets[idx] - times), np.abs(onsets[idx - 1] - times))
        return float((d <= tol).mean())

    truth = beats + offset
    shifted = [
        max(_grid_score(env, beats + raw + period / 2 + d) for d in np.arange(-0.02, 0.0205, 0.001))
        for env in (flux, low)
    ]
    on_beat = [
        _grid_score(flux, beats + raw),
        max(_grid_score(low, beats + raw + d) for d in np.arange(-0.02, 0.0205, 0.001)),
    ]
    offbeat_wins = shifted[0] > on_beat[0] and shifted[1] > on_beat[1]

    downs = down0[(down0 >= lo_t) & (down0 <= hi_t)] + offset
    chroma_by_phase = [_chroma_change(mono, downs + p * period, period) for p in range(meter)]
    low_by_phase = [_grid_score(low, downs + raw - offset + p * period) for p in range(meter)]
    downbeat_ok = int(np.argmax(chroma_by_phase)) == 0 or int(np.argmax(low_by_phase)) == 0

    reasons = []
    if on_edge:
        reasons.append("offset at the edge of the search range")
    if abs(offset - offset_mel) > 0.012:
        reasons.append("detectors disagree on the offset")
    if contrast < 0.3:
        reasons.append("weak pulse on the grid")
    if np.percentile(dev, 90) > 20 or abs(drift) > 20:
        reasons.append("grid drifts against the audio (tempo does not fit)")
    if hit(truth) < 1.5 * hit(truth + period / 4) + 0.05:
        reasons.append("onsets no closer to the grid than to a shifted grid")
    if offbeat_wins:
        reasons.append("off-beats stronger than beats in both full and kick band")
    return {
        "version": VERIFY_VERSION,
        "ok": not reasons,
        "reasons": reasons,
        "offset_ms": round(offset * 1000, 1),
        "offset_mel_ms": round(offset_mel * 1000, 1),
        "contrast": round(contrast, 2),
        "local_windows": len(local_off),
        "local_p90_ms": round(float(np.percentile(dev, 90)), 1),
        "local_drift_ms": round(drift, 1),
        "hit25": round(hit(truth), 3),
        "hit25_shifted": round(hit(truth + period / 4), 3),
        "offbeat_full": [round(on_beat[0], 2), round(shifted[0], 2)],
        "offbeat_kick": [round(on_beat[1], 2), round(shifted[1], 2)],
        "downbeat_ok": bool(downbeat_ok),
        "chroma_by_phase": [round(v, 3) for v in chroma_by_phase],
        "kick_by_phase": [round(v, 2) for v in low_by_phase],
    }


def _song_fingerprint(song: Song) -> str:
    h = hashlib.sha256()
    for path in [song.folder / "notes.mid", song.folder / "song.ini", *song.stems]:
        if path.exists():
            h.update(path.name.encode())
            h.update(str(path.stat().st_size).encode())
    h.update((song.folder / "notes.mid").read_bytes())
    return h.hexdigest()[:16]


def verify_all(songs: list[Song], cache: Path) -> dict[str, float]:
    """Verify every song once (figures cached in the cache dir, keyed by content and version)."""
    path = cache / "verify.json"
    stored: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    latency = stored.get("_latency")
    if not latency or stored.get("_version") != VERIFY_VERSION:
        print("calibrating onset detectors on a synthetic kit ...", file=sys.stderr)
        latency = detector_latency()
        stored = {"_version": VERIFY_VERSION, "_latency": latency}
    for song in songs:
        fp = _song_fingerprint(song)
        entry = stored.get(song.key)
        if not entry or entry.get("fingerprint") != fp or entry.get("version") != VERIFY_VERSION:
            print(f"verifying {song.key} ...", file=sys.stderr)
            entry = verify_song(song, load_audio(song), latency) | {"fingerprint": fp}
            stored[song.key] = entry
            path.write_text(json.dumps(stored, indent=1) + "\n")
        song.verify = entry
    path.write_text(json.dumps(stored, indent=1) + "\n")
    return latency


# --------------------------------------------------------------------------------------------------------------
# Mixing


@dataclass
class Part:
    """A song's used part and where it sits in the mix."""

    song: Song
    start: float  # song seconds, a downbeat
    end: float  # song seconds, a downbeat
    place: float = 0.0  # mix seconds of ``start``
    gain: float = 1.0
    fade_in: tuple[float, str] | None = None  # (seconds, kind)
    fade_out: tuple[float, str] | None = None

    @property
    def length(self) -> float:
        return self.end - self.start


def _downbeats_for_cuts(song: Song) -> np.ndarray:
    _, down, _ = song.grid()
    lo, hi = song.charted_span()
    bar = float(np.median(np.diff(down))) if len(down) > 1 else 2.0
    return down[(down >= lo - bar) & (down <= hi + 0.5)]


def _choose_parts(pool: list[Song], rng: np.random.Generator) -> list[Part]:
    """Pick songs, their parts and phrase-aligned fades; retry a few times if a draw leaves no steady part."""
    n_max = min(SONGS_PER_MIX[1], len(pool))
    n = int(rng.integers(SONGS_PER_MIX[0], n_max + 1))
    order = [pool[i] for i in rng.permutation(len(pool))[:n]]
    parts: list[Part] = []
    for song in order:
        down = _downbeats_for_cuts(song)
        starts = down[down <= down[-1] - PART_SEC[0]]
        if len(starts) == 0:
            raise RuntimeError(f"{song.key}: charted span shorter than {PART_SEC[0]} s")
        start = float(starts[int(rng.integers(len(starts)))])
        want = float(rng.uniform(*PART_SEC))
        ends = down[(down >= start + PART_SEC[0]) & (down <= start + PART_SEC[1])]
        end = float(ends[np.argmin(np.abs(ends - (start + want)))])
        parts.append(Part(song, start, end))
    for a, b in itertools.pairwise(parts):
        kinds, probs = zip(*FADE_KINDS, strict=True)
        kind = str(rng.choice(kinds, p=np.array(probs)))
        down = _downbeats_for_cuts(a.song)
        # The fade starts on a downbeat of the outgoing song, where the incoming part's first downbeat lands.
        cands = down[(down >= a.end - FADE_SEC[1]) & (down <= a.end - FADE_SEC[0]) & (down > a.start)]
        fade = a.end - float(cands[int(rng.integers(len(cands)))]) if len(cands) else float(rng.uniform(*FADE_SEC))
        a.fade_out = (fade, kind)
        b.fade_in = (fade, kind)
    for p in parts:
        fin = p.fade_in[0] if p.fade_in else 0.0
        fout = p.fade_out[0] if p.fade_out else 0.0
        if p.length - fin - fout < MIN_STEADY_SEC:
            raise ValueError("steady part too short")
    t = 0.0
    for p in parts:
        p.place = t - (p.fade_in[0] if p.fade_in else 0.0)
        t = p.place + p.length
    return parts


def _lowpass(x: np.ndarray, cutoff: float = 150.0) -> np.ndarray:
    """Zero-phase low band; the high band is ``x - low``, so the two always add back to the original."""
    from scipy import signal

    sos = signal.butter(4, cutoff, "low", fs=SAMPLE_RATE, output="sos")
    return signal.sosfiltfilt(sos, x, axis=0).astype(np.float32)


def _apply_fade(seg: np.ndarray, fade_sec: float, kind: str, incoming: bool) -> None:
    """Shape the first (incoming) or last (outgoing) ``fade_sec`` of ``seg`` in place."""
    n = round(fade_sec * SAMPLE_RATE)
    n = min(n, len(seg))
    u = (np.arange(n) + 0.5) / n  # 0..1 through the window
    region = seg[:n] if incoming else seg[len(seg) - n :]
    if kind == "linear":
        g = u if incoming else 1.0 - u
        region *= g[:, None].astype(np.float32)
        return
    g = np.sin(0.5 * np.pi * u) if incoming else np.cos(0.5 * np.pi * u)
    if kind == "equal_power":
        region *= g[:, None].astype(np.float32)
        return
    # bass swap: mids/highs cross with equal power; the lows switch at the midpoint over 1/8 s (a DJ's EQ flick)
    pad = min(SAMPLE_RATE, len(seg) - n)
    ctx = seg[: n + pad] if incoming else seg[len(seg) - n - pad :]
    low_all = _lowpass(ctx)
    low = low_all[:n] if incoming else low_all[pad:]
    high = region - low
    ramp = np.clip((u - 0.5) / (0.125 * SAMPLE_RATE / n) + 0.5, 0.0, 1.0)
    ramp = 0.5 - 0.5 * np.cos(np.pi * ramp)
    lg = ramp if incoming else 1.0 - ramp
    region[:] = high * g[:, None].astype(np.float32) + low * lg[:, None].astype(np.float32)


def _loudness(x: np.ndarray) -> float:
    import pyloudnorm

    return float(pyloudnorm.Meter(SAMPLE_RATE).integrated_loudness(x.astype(np.float64)))


def build_mix(
    mix_id: str, split: str, pool: list[Song], rng: np.random.Generator, audio_cache: dict[str, np.ndarray]
) -> tuple[np.ndarray, MixTruth, list[Part]]:
    """Cut, level, crossfade and sum the parts; derive the exact truth from the same numbers."""
    for _attempt in range(20):
        try:
            parts = _choose_parts(pool, rng)
            break
        except ValueError:
            continue
    else:
        raise RuntimeError(f"{mix_id}: could not draw parts with a steady middle")
    total = round((parts[-1].place + parts[-1].length) * SAMPLE_RATE)
    mix = np.zeros((total, 2), dtype=np.float32)
    segs: list[tuple[int, np.ndarray]] = []
    for p in parts:
        if p.song.key not in audio_cache:
            audio_cache[p.song.key] = load_audio(p.song)
        audio = audio_cache[p.song.key]
        a = round(p.start * SAMPLE_RATE)
        n = round(p.length * SAMPLE_RATE)
        seg = audio[a : a + n].copy()
        target = float(rng.uniform(*TARGET_LUFS))
        p.gain = 10 ** ((target - _loudness(seg)) / 20)
        seg *= np.float32(p.gain)
        if p.fade_in:
            _apply_fade(seg, p.fade_in[0], p.fade_in[1], incoming=True)
        if p.fade_out:
            _apply_fade(seg, p.fade_out[0], p.fade_out[1], incoming=False)
        at = round(p.place * SAMPLE_RATE)
        seg = seg[: total - at]
        mix[at : at + len(seg)] += seg
        segs.append((at, seg))
    ramp = int(0.005 * SAMPLE_RATE)  # no click at the very start and end of the file
    mix[:ramp] *= np.linspace(0, 1, ramp, dtype=np.float32)[:, None]
    mix[-ramp:] *= np.linspace(1, 0, ramp, dtype=np.float32)[:, None]
    peak = float(np.max(np.abs(mix)))
    scale = min(1.0, PEAK_CEILING / peak) if peak > 0 else 1.0
    mix *= np.float32(scale)

    duration = total / SAMPLE_RATE
    tracks: list[TrackTruth] = []
    boundaries: list[float] = []
    for i, p in enumerate(parts):
        start_sec = max(p.place, 0.0)
        end_sec = min(p.place + p.length, duration)
        t_in = (p.place, p.place + p.fade_in[0]) if p.fade_in else None
        t_out = (end_sec - p.fade_out[0], end_sec) if p.fade_out else None
        beats_s, down_s, meter = p.song.grid()
        sel = (beats_s >= p.start - 1e-6) & (beats_s <= p.end + 1e-6)
        beats = beats_s[sel] - p.start + p.place
        ib = np.flatnonzero(sel)
        ib = ib[ib + 1 < len(beats_s)]
        local_bpm = 60.0 / np.diff(beats_s)[ib] if len(ib) else np.array([0.0])
        downs = down_s[(down_s >= p.start - 1e-6) & (down_s <= p.end + 1e-6)] - p.start + p.place
        if not p.song.verify.get("downbeat_ok", False):
            downs = np.array([])  # the bar phase of this map is not supported by the audio: unknown, not guessed
        keep = (beats >= start_sec) & (beats <= end_sec)
        keep_d = (downs >= start_sec) & (downs <= end_sec)
        lo, hi = t_in[1] if t_in else start_sec, t_out[0] if t_out else end_sec
        at, seg = segs[i]
        a, b = round(lo * SAMPLE_RATE) - at, round(hi * SAMPLE_RATE) - at
        lufs = _loudness(seg[max(a, 0) : b] * np.float32(scale))
        tracks.append(
            TrackTruth(
                index=i,
                title=f"{p.song.title} - {p.song.artist}" if p.song.artist else p.song.title,
                style=p.song.style,
                start_sec=start_sec,
                end_sec=end_sec,
                transition_in=t_in,
                transition_out=t_out,
                bpm=float(np.median(local_bpm)),
                bpm_range=(float(local_bpm.min()), float(local_bpm.max())),
                meter=meter,
                key=None,
                has_vocals=None,
                lufs=lufs if math.isfinite(lufs) else None,
                beats_sec=[float(x) for x in beats[keep]],
                downbeats_sec=[float(x) for x in downs[keep_d]],
            )
        )
        if t_out:
            boundaries.append(0.5 * (t_out[0] + t_out[1]))
    mix_beats: list[float] = []
    mix_downs: list[float] = []
    for i, tr in enumerate(tracks):
        lo = boundaries[i - 1] if i > 0 else -math.inf
        hi = boundaries[i] if i < len(boundaries) else math.inf
        mix_beats += [b for b in tr.beats_sec if lo <= b < hi]
        mix_downs += [b for b in tr.downbeats_sec if lo <= b < hi]
    truth = MixTruth(
        corpus=CORPUS,
        mix_id=mix_id,
        split=split,
        sample_rate=SAMPLE_RATE,
        duration_sec=duration,
        boundaries_sec=boundaries,
        beats_sec=mix_beats,
        downbeats_sec=mix_downs,
        tracks=tracks,
    )
    return mix, truth, parts


# --------------------------------------------------------------------------------------------------------------
# CLI


def song_table(songs: list[Song]) -> str:
    """One line per song: provenance, licence, what the map says, how it fits the audio, and its split."""
    head = (
        f"{'song':34s} {'package (version)':40s} {'licence':13s} {'dur s':>6s} {'tempo':>13s} {'meter':>5s} "
        f"{'offset ms':>13s} {'p90/drift':>11s} {'contr':>5s} {'hit25 (shift)':>13s} {'bars':>4s} "
        f"{'split':5s} status"
    )
    lines = [head, "-" * len(head)]
    for s in songs:
        v = s.verify
        beats, _, meter = beat_grid(s.tmap, s.duration)
        bpm = 60.0 / np.diff(beats)
        tempo = f"{bpm.min():.1f}" if np.ptp(bpm) < 0.05 else f"{bpm.min():.1f}-{bpm.max():.1f}"
        status = "ok" if v.get("ok") else "DROPPED: " + "; ".join(v.get("reasons", []))
        if v.get("ok") and not v.get("downbeat_ok"):
            status += " (downbeats unknown)"
        lines.append(
            f"{s.key:34s} {s.package + ' (' + s.package_version + ')':40s} {s.licence:13s} {s.duration:6.1f} "
            f"{tempo + ' BPM':>13s} {meter:>5d} "
            f"{v.get('offset_ms', 0):+6.1f}/{v.get('offset_mel_ms', 0):+5.1f} "
            f"{v.get('local_p90_ms', 0):4.1f}/{v.get('local_drift_ms', 0):+5.1f} {v.get('contrast', 0):5.2f} "
            f"{v.get('hit25', 0):5.2f} ({v.get('hit25_shifted', 0):.2f}) {'ok' if v.get('downbeat_ok') else '?':>4s} "
            f"{s.split:5s} {status}"
        )
    return "\n".join(lines)


def write_attribution(out: Path, songs: list[Song], fetched: dict[str, tuple[Path, str]]) -> None:
    """CC BY-SA and Expat both ask for credit and the licence text next to copies and adaptations."""
    lines = [
        "Mixes in this folder (recorded-*) are adaptations (cut, level-adjusted and crossfaded) of these songs:",
        "",
    ]
    lines += [
        f"- {s.title} by {s.artist}, from Debian package {s.package} {s.package_version}: {s.licence}" for s in songs
    ]
    for pkg in PACKAGES:
        root, _ = fetched[pkg.name]
        text = (root / "usr/share/doc" / pkg.name / "copyright").read_text(errors="replace")
        lines += ["", "=" * 78, f"{pkg.name}: debian/copyright", "=" * 78, text]
    (out / "recorded-ATTRIBUTION.txt").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Fetch, verify, print the song table, then write ``--mixes`` mixes alternating tune/test."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for <mix_id>.flac + <mix_id>.json")
    parser.add_argument("--mixes", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="downloaded packages and verification")
    args = parser.parse_args(argv)

    fetched = fetch_packages(args.cache)
    songs = discover_songs(fetched)
    latency = verify_all(songs, args.cache)
    print(
        f"onset detector latency on a synthetic kit: flux {latency['flux'] * 1000:+.1f} ms, "
        f"mel {latency['mel'] * 1000:+.1f} ms (subtracted from the measured offsets)"
    )
    print(song_table(songs))
    usable = [s for s in songs if s.verify.get("ok")]
    pools = {split: [s for s in usable if s.split == split] for split in ("tune", "test")}
    print("songs per split: " + ", ".join(f"{k} {len(v)}" for k, v in pools.items()))
    splits = [sp for sp in ("tune", "test") if len(pools[sp]) >= SONGS_PER_MIX[0]]
    if not splits:
        print("no split has enough verified songs for a mix", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    write_attribution(args.out, songs, fetched)
    audio_cache: dict[str, np.ndarray] = {}
    for i in range(args.mixes):
        split = splits[i % len(splits)]
        rng = np.random.default_rng([args.seed, i])
        mix_id = f"{CORPUS}-s{args.seed}-{i:03d}"
        audio, truth, parts = build_mix(mix_id, split, pools[split], rng, audio_cache)
        write_mix(args.out, mix_id, audio, SAMPLE_RATE, truth)
        desc = " | ".join(
            f"{p.song.key} {p.start:.1f}-{p.end:.1f}s"
            + (f" -[{p.fade_out[1]} {p.fade_out[0]:.1f}s]->" if p.fade_out else "")
            for p in parts
        )
        print(
            f"{mix_id} [{split}] {truth.duration_sec / 60:.1f} min, boundaries "
            f"{[round(b, 1) for b in truth.boundaries_sec]}: {desc}"
        )
        if len(audio_cache) > 4:  # bound memory: songs are reloaded when needed again
            audio_cache.clear()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
