"""The song packages and their licences: fetching, licence checks, the songs they hold, attribution."""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from bench.corpus import debian
from bench.corpus.recorded.tempo import TempoMap, beat_grid, read_tempo_map, ticks_to_seconds

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_CACHE = REPO_ROOT / ".corpus-cache"


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


def fetch_packages(cache: Path) -> dict[str, tuple[Path, str]]:
    """Download and unpack each package once into ``cache`` (`bench.corpus.debian`); return {package: (unpacked
    root, version)}."""
    return debian.fetch(cache, [pkg.name for pkg in PACKAGES], "song")


def check_licence(root: Path, pkg: PackageInfo) -> str:
    """Return the licence after confirming it in debian/copyright; a mismatch stops the build (never guess)."""
    return debian.check_licence(root, pkg.name, pkg.licence, pkg.licence_marker)


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
        text = debian.copyright_text(root, pkg.name)
        lines += ["", "=" * 78, f"{pkg.name}: debian/copyright", "=" * 78, text]
    (out / "recorded-ATTRIBUTION.txt").write_text("\n".join(lines) + "\n")
