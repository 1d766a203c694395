"""Ground-truth format shared by every evaluation corpus of DJ mixes (synthetic and real music).

One mix is two files side by side: ``<mix_id>.flac`` (24-bit stereo FLAC, 44.1 kHz for the generated corpora)
and ``<mix_id>.json`` (the truth below). The JSON names are a contract between the corpus writers and the
evaluator, so they are spelled out once here and nowhere else::

    {"corpus": str, "mix_id": str, "split": "tune"|"test", "sample_rate": int, "duration_sec": float,
     "boundaries_sec": [float...], "beats_sec": [...], "downbeats_sec": [...],
     "tracks": [{"index": int, "title": str, "style": str, "start_sec": float, "end_sec": float,
                 "transition_in": [s, e] or null, "transition_out": [s, e] or null,
                 "bpm": float, "bpm_range": [lo, hi], "meter": int, "key": "A minor" or null,
                 "has_vocals": bool or null, "lufs": float or null,
                 "beats_sec": [...], "downbeats_sec": [...],
                 "blend_in": "cut"|"blend"|"bass_swap"|"filter" or null, "beatmatched_in": bool or null}]}

Conventions (why they are what they are):

* Times are seconds from the first sample of the mix file, so truth and audio cannot drift apart.
* A track's ``start_sec``/``end_sec`` is its audible extent in the mix; ``transition_in``/``transition_out`` are
  the crossfade windows shared with the previous/next track (``null`` for the first/last track).
* A boundary is the midpoint of a crossfade window: the one instant that is equally fair to "the new track
  starts when it is first heard" and "the old track ends when it is last heard".
* Mix-level beats are the outgoing track's beats before the boundary and the incoming track's from it on.
* The "steady part" of a track is the span between its two transitions (see :meth:`TrackTruth.steady_window`);
  ``lufs`` (BS.1770 integrated, at the track's mix gain) and ``has_vocals`` describe that part, because inside a
  crossfade a track's own loudness and vocals cannot be separated from its neighbour's.
* ``blend_in`` / ``beatmatched_in`` describe the transition into the track (``null`` for the first track, and
  where the corpus does not know): how it was mixed (a cut, a blend of the whole signal whatever the fade
  curve, an EQ bass swap, a filter sweep) and whether both tracks' beat grids ran at one tempo through it. They
  are optional in the JSON, so older truth files still read.
* ``null`` means "unknown or ambiguous": an evaluator skips the field instead of scoring a guess.
* ``split`` keeps the mixes that detectors were tuned on apart from the ones they are judged on.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

SPLITS = ("tune", "test")
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MODES = ("major", "minor")
BLENDS = ("cut", "blend", "bass_swap", "filter")  # how a transition was mixed, whatever the fade curve
_FLATS = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#", "Cb": "B", "Fb": "E", "E#": "F", "B#": "C"}
_DECIMALS = 6  # microseconds: far below one sample, keeps the JSON compact


def format_key(tonic_pc: int, mode: str) -> str:
    """Spell a key the one way the format allows ("C# minor"), so string comparison of keys is meaningful."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return f"{NOTE_NAMES[int(tonic_pc) % 12]} {mode}"


def parse_key(key: str) -> tuple[int, str]:
    """Return (tonic pitch class 0-11, mode) of a key string; flats are accepted so real annotations can be read."""
    parts = key.strip().split()
    if len(parts) != 2 or parts[1].lower() not in MODES:
        raise ValueError(f"key must look like 'A minor' or 'C# major', got {key!r}")
    tonic = parts[0][0].upper() + parts[0][1:]
    tonic = _FLATS.get(tonic, tonic)
    if tonic not in NOTE_NAMES:
        raise ValueError(f"unknown tonic in key {key!r}")
    return NOTE_NAMES.index(tonic), parts[1].lower()


def _r(x: float) -> float:
    return round(float(x), _DECIMALS)


def _rs(xs: Any) -> list[float]:
    return [round(float(x), _DECIMALS) for x in xs]


def _pair(x: Any) -> tuple[float, float] | None:
    if x is None:
        return None
    a, b = x
    return float(a), float(b)


@dataclass
class TrackTruth:
    """Truth for one track as it sounds inside the mix (all times in mix seconds)."""

    index: int
    title: str
    style: str
    start_sec: float
    end_sec: float
    transition_in: tuple[float, float] | None
    transition_out: tuple[float, float] | None
    bpm: float
    bpm_range: tuple[float, float]
    meter: int
    key: str | None
    has_vocals: bool | None
    lufs: float | None
    beats_sec: list[float] = field(default_factory=list)
    downbeats_sec: list[float] = field(default_factory=list)
    blend_in: str | None = None
    beatmatched_in: bool | None = None

    def steady_window(self) -> tuple[float, float]:
        """The solo part between the transitions: where the track's own features are defined."""
        lo = self.transition_in[1] if self.transition_in else self.start_sec
        hi = self.transition_out[0] if self.transition_out else self.end_sec
        return lo, hi

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": int(self.index),
            "title": self.title,
            "style": self.style,
            "start_sec": _r(self.start_sec),
            "end_sec": _r(self.end_sec),
            "transition_in": _rs(self.transition_in) if self.transition_in else None,
            "transition_out": _rs(self.transition_out) if self.transition_out else None,
            "bpm": _r(self.bpm),
            "bpm_range": _rs(self.bpm_range),
            "meter": int(self.meter),
            "key": self.key,
            "has_vocals": None if self.has_vocals is None else bool(self.has_vocals),
            "lufs": None if self.lufs is None else round(float(self.lufs), 3),
            "beats_sec": _rs(self.beats_sec),
            "downbeats_sec": _rs(self.downbeats_sec),
            "blend_in": self.blend_in,
            "beatmatched_in": None if self.beatmatched_in is None else bool(self.beatmatched_in),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrackTruth:
        lo, hi = d["bpm_range"]
        return cls(
            index=int(d["index"]),
            title=str(d["title"]),
            style=str(d["style"]),
            start_sec=float(d["start_sec"]),
            end_sec=float(d["end_sec"]),
            transition_in=_pair(d.get("transition_in")),
            transition_out=_pair(d.get("transition_out")),
            bpm=float(d["bpm"]),
            bpm_range=(float(lo), float(hi)),
            meter=int(d["meter"]),
            key=d.get("key"),
            has_vocals=d.get("has_vocals"),
            lufs=None if d.get("lufs") is None else float(d["lufs"]),
            beats_sec=[float(x) for x in d.get("beats_sec", [])],
            downbeats_sec=[float(x) for x in d.get("downbeats_sec", [])],
            blend_in=d.get("blend_in"),
            beatmatched_in=d.get("beatmatched_in"),
        )


@dataclass
class MixTruth:
    """Truth for one mix file; ``source`` (not serialized) is the JSON path it was read from, if any."""

    corpus: str
    mix_id: str
    split: str
    sample_rate: int
    duration_sec: float
    boundaries_sec: list[float]
    beats_sec: list[float]
    downbeats_sec: list[float]
    tracks: list[TrackTruth]
    source: Path | None = field(default=None, compare=False, repr=False)

    @property
    def audio_path(self) -> Path | None:
        """The FLAC next to the JSON this truth was read from."""
        return None if self.source is None else self.source.with_suffix(".flac")

    def to_dict(self) -> dict[str, Any]:
        return {
            "corpus": self.corpus,
            "mix_id": self.mix_id,
            "split": self.split,
            "sample_rate": int(self.sample_rate),
            "duration_sec": _r(self.duration_sec),
            "boundaries_sec": _rs(self.boundaries_sec),
            "beats_sec": _rs(self.beats_sec),
            "downbeats_sec": _rs(self.downbeats_sec),
            "tracks": [t.to_dict() for t in self.tracks],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: Path | None = None) -> MixTruth:
        return cls(
            corpus=str(d["corpus"]),
            mix_id=str(d["mix_id"]),
            split=str(d["split"]),
            sample_rate=int(d["sample_rate"]),
            duration_sec=float(d["duration_sec"]),
            boundaries_sec=[float(x) for x in d.get("boundaries_sec", [])],
            beats_sec=[float(x) for x in d.get("beats_sec", [])],
            downbeats_sec=[float(x) for x in d.get("downbeats_sec", [])],
            tracks=[TrackTruth.from_dict(t) for t in d["tracks"]],
            source=source,
        )

    def problems(self) -> list[str]:
        """Consistency checks a corpus writer should pass before publishing; empty when all is well."""
        out: list[str] = []
        eps = 1e-6
        if self.split not in SPLITS:
            out.append(f"split {self.split!r} not in {SPLITS}")
        if self.sample_rate <= 0 or not math.isfinite(self.duration_sec) or self.duration_sec <= 0:
            out.append("bad sample_rate or duration_sec")
        if len(self.boundaries_sec) != max(len(self.tracks) - 1, 0):
            out.append(f"{len(self.boundaries_sec)} boundaries for {len(self.tracks)} tracks")
        for name, xs in (
            ("boundaries_sec", self.boundaries_sec),
            ("beats_sec", self.beats_sec),
            ("downbeats_sec", self.downbeats_sec),
        ):
            if any(b <= a for a, b in itertools.pairwise(xs)):
                out.append(f"{name} not strictly increasing")
            if xs and (xs[0] < -eps or xs[-1] > self.duration_sec + eps):
                out.append(f"{name} outside the mix")
        for i, t in enumerate(self.tracks):
            tag = f"track {i}"
            if t.index != i:
                out.append(f"{tag}: index {t.index}")
            if not (-eps <= t.start_sec < t.end_sec <= self.duration_sec + eps):
                out.append(f"{tag}: extent {t.start_sec}..{t.end_sec}")
            if (t.transition_in is None) != (i == 0) or (t.transition_out is None) != (i == len(self.tracks) - 1):
                out.append(f"{tag}: transitions do not match its position")
            lo, hi = t.steady_window()
            if hi <= lo:
                out.append(f"{tag}: empty steady part")
            if t.blend_in is not None and t.blend_in not in BLENDS:
                out.append(f"{tag}: blend_in {t.blend_in!r} not in {BLENDS}")
            if i == 0 and (t.blend_in is not None or t.beatmatched_in is not None):
                out.append(f"{tag}: the first track has no transition into it")
            if not (t.bpm_range[0] - eps <= t.bpm <= t.bpm_range[1] + eps) or t.meter < 1:
                out.append(f"{tag}: bpm {t.bpm} outside {t.bpm_range} or meter {t.meter}")
            if t.key is not None:
                try:
                    if format_key(*parse_key(t.key)) != t.key:
                        out.append(f"{tag}: key {t.key!r} not in canonical spelling")
                except ValueError as exc:
                    out.append(f"{tag}: {exc}")
            for name, xs in (("beats_sec", t.beats_sec), ("downbeats_sec", t.downbeats_sec)):
                if any(b <= a for a, b in itertools.pairwise(xs)):
                    out.append(f"{tag}: {name} not strictly increasing")
                if xs and (xs[0] < t.start_sec - eps or xs[-1] > t.end_sec + eps):
                    out.append(f"{tag}: {name} outside the track")
        for i, b in enumerate(self.boundaries_sec):
            if i + 1 < len(self.tracks):
                win = self.tracks[i].transition_out
                if win is None or not (win[0] - eps <= b <= win[1] + eps):
                    out.append(f"boundary {i} outside its transition window")
        return out


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_mix(out_dir: str | Path, mix_id: str, stereo: np.ndarray, sample_rate: int, truth: MixTruth) -> Path:
    """Write ``<out_dir>/<mix_id>.flac`` (24-bit) and ``<out_dir>/<mix_id>.json``; return the JSON path.

    Refuses audio that would clip (|x| > 1) or truth that fails :meth:`MixTruth.problems`, because a corpus with
    silently wrong truth is worse than none. Files are written under a temporary name and renamed, so an
    interrupted run never leaves a FLAC without its JSON (the JSON is renamed last).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x = np.asarray(stereo)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"audio must be (n, 2) stereo, got shape {x.shape}")
    if x.dtype != np.float32:
        x = x.astype(np.float32)
    peak = 0.0
    for i in range(0, len(x), 1 << 20):  # chunked: np.abs of a long mix would double its memory
        peak = max(peak, float(np.max(np.abs(x[i : i + (1 << 20)]))))
    if not math.isfinite(peak) or peak > 1.0:
        raise ValueError(f"audio peak {peak} would clip; normalize or limit before writing")
    if truth.mix_id != mix_id or truth.sample_rate != sample_rate:
        raise ValueError("truth.mix_id/sample_rate disagree with the arguments")
    if abs(truth.duration_sec - x.shape[0] / sample_rate) > 1e-3:
        raise ValueError(f"truth.duration_sec {truth.duration_sec} != audio length {x.shape[0] / sample_rate}")
    issues = MixTruth.from_dict(truth.to_dict()).problems()  # check what the JSON will say, after rounding
    if issues:
        raise ValueError(f"inconsistent truth for {mix_id}: " + "; ".join(issues[:8]))
    flac = out / f"{mix_id}.flac"
    tmp = out / f"{mix_id}.part.flac"
    sf.write(str(tmp), x, sample_rate, subtype="PCM_24", format="FLAC")
    os.replace(tmp, flac)
    path = out / f"{mix_id}.json"
    _atomic_write_text(path, json.dumps(truth.to_dict(), separators=(",", ":")) + "\n")
    return path


def read_mix(json_path: str | Path) -> MixTruth:
    """Read one mix's truth; ``.audio_path`` of the result points at its FLAC."""
    path = Path(json_path)
    with path.open() as fh:
        return MixTruth.from_dict(json.load(fh), source=path)


def list_mixes(directory: str | Path, split: str | None = None) -> list[Path]:
    """JSON truth files in ``directory`` (sorted by name), optionally only those of one split."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None")
    paths = sorted(p for p in Path(directory).glob("*.json") if p.with_suffix(".flac").exists())
    if split is None:
        return paths
    keep = []
    for p in paths:
        with p.open() as fh:
            if json.load(fh).get("split") == split:
                keep.append(p)
    return keep
