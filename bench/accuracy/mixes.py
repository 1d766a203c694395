"""The corpora's ground truth as the scorer uses it: every mix of a split, read through `bench.corpus.truth`
(the format's own reader), with its audio and its tracks' times as sorted numpy arrays."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.corpus import truth as corpus_truth

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3")


@dataclass(frozen=True)
class TrueTrack:
    """One track of a mix as the corpus builder knows it (seconds from the start of the mix file)."""

    index: int
    title: str
    style: str
    start: float
    end: float
    transition_in: tuple[float, float] | None
    transition_out: tuple[float, float] | None
    bpm: float | None
    bpm_range: tuple[float, float] | None
    key: str | None
    has_vocals: bool | None
    lufs: float | None
    beats: np.ndarray
    downbeats: np.ndarray

    @property
    def steady(self) -> tuple[float, float]:
        """The part where only this track plays: what features are measured on, and what matching uses."""
        lo = self.transition_in[1] if self.transition_in else self.start
        hi = self.transition_out[0] if self.transition_out else self.end
        return (lo, hi) if hi > lo else (self.start, self.end)


@dataclass(frozen=True)
class TrueMix:
    """A mix's ground truth and where its audio is."""

    corpus: str
    mix_id: str
    split: str
    duration: float
    boundaries: np.ndarray
    beats: np.ndarray
    downbeats: np.ndarray
    tracks: tuple[TrueTrack, ...]
    audio: Path
    truth_path: Path


def _seconds(values: Iterable[Any] | None) -> np.ndarray:
    return np.sort(np.asarray(list(values or []), dtype=float))


def _pair(value: Sequence[float] | None) -> tuple[float, float] | None:
    return (float(value[0]), float(value[1])) if value else None


def truth_from_dict(doc: dict[str, Any], path: Path) -> TrueMix | None:
    """A mix of the corpus schema as the scorer uses it (sorted numpy times); None when no audio is beside it."""
    audio = next((path.with_suffix(s) for s in AUDIO_SUFFIXES if path.with_suffix(s).exists()), None)
    if audio is None:
        print(f"warning: {path} has no audio beside it; skipped", file=sys.stderr)
        return None
    tracks = tuple(
        TrueTrack(
            index=int(t.get("index", i)),
            title=str(t.get("title") or f"track {i}"),
            style=str(t.get("style") or "unknown"),
            start=float(t["start_sec"]),
            end=float(t["end_sec"]),
            transition_in=_pair(t.get("transition_in")),
            transition_out=_pair(t.get("transition_out")),
            bpm=None if t.get("bpm") is None else float(t["bpm"]),
            bpm_range=_pair(t.get("bpm_range")),
            key=t.get("key"),
            has_vocals=t.get("has_vocals"),
            lufs=None if t.get("lufs") is None else float(t["lufs"]),
            beats=_seconds(t.get("beats_sec")),
            downbeats=_seconds(t.get("downbeats_sec")),
        )
        for i, t in enumerate(sorted(doc["tracks"], key=lambda t: float(t["start_sec"])))
    )
    return TrueMix(
        corpus=str(doc.get("corpus") or path.parent.name),
        mix_id=str(doc["mix_id"]),
        split=str(doc.get("split") or "test"),
        duration=float(doc["duration_sec"]),
        boundaries=_seconds(doc.get("boundaries_sec")),
        beats=_seconds(doc.get("beats_sec")),
        downbeats=_seconds(doc.get("downbeats_sec")),
        tracks=tracks,
        audio=audio,
        truth_path=path,
    )


def find_mixes(dirs: Sequence[Path], split: str) -> list[TrueMix]:
    """Every mix in the corpus directories whose split is `split` ('all': every split), read through
    `bench.corpus.truth` (the format's own reader); its `problems()` consistency checks are printed as
    warnings, since a wrong truth would silently cost accuracy."""
    mixes = []
    for directory in dirs:
        if not directory.is_dir():
            raise SystemExit(f"not a directory: {directory}")
        for path in corpus_truth.list_mixes(directory, None if split == "all" else split):
            try:
                truth = corpus_truth.read_mix(path)
            except (OSError, ValueError, KeyError, TypeError) as exc:  # a manifest or a broken file
                print(f"warning: {path} is not a mix truth ({exc!r}); skipped", file=sys.stderr)
                continue
            for problem in truth.problems():
                print(f"warning: {path}: {problem}", file=sys.stderr)
            mix = truth_from_dict(truth.to_dict(), path)
            if mix is not None:
                mixes.append(mix)
    return mixes
