"""Where the music comes from: the Debian packages, fetched and unpacked into the cache, each licence confirmed in
its ``debian/copyright``; the pieces found in them (titles, artists, the works that remasters are versions of); and
the attribution written beside the mixes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf

from bench.corpus import debian
from bench.corpus.game.analysis import file_seconds

RESERVED = ("nexuiz-music", "singularity-music")  # kept for an independent evaluation: never fetched here
MIN_PIECE_SEC = 50.0


@dataclass(frozen=True)
class PackageInfo:
    """A music package we are allowed to use, where its music lies, and what we checked about its licence."""

    name: str
    short: str  # prefix of piece keys and of the style
    music_dir: str  # inside the package; searched recursively
    split: str
    licence: str
    licence_marker: str  # a regex that must match debian/copyright, so a relicensed package is noticed
    artist: str  # when the file's tags name none


PACKAGES: tuple[PackageInfo, ...] = (
    PackageInfo(
        "warzone2100-music",
        "warzone2100",
        "usr/share/games/warzone2100/music",
        "tune",
        "GPL-2+ (Legacy and Aftermath albums also CC-BY-SA-3.0 or later, per their license.txt)",
        r"Files: \*\s+Copyright: 1999-2004, Eidos Interactive\s+2005-2013, Warzone 2100 Project\s+License: GPL-2\+",
        "LupusMechanicus",
    ),
    PackageInfo(
        "pushover-data",
        "pushover",
        "usr/share/pushover/themes",
        "tune",
        "GPL-3+",
        r"Files: \*[\s\S]*?Roberto Lorenz \(Music[\s\S]*?License: GPL-3\+",
        "Roberto Lorenz",
    ),
    PackageInfo(
        "hyperrogue-music",
        "hyperrogue",
        "usr/share/hyperrogue/music",
        "tune",
        "CC-BY-SA-3.0 (the music files; the package's code is GPL-2+)",
        r"Files: music/hr3-caves\.ogg[\s\S]*?License: CC-BY-SA-3\.0[\s\S]*?Files: music/hr-domina-hunting\.ogg"
        r"[\s\S]*?License: CC-BY-SA-3\.0[\s\S]*?Files: music/hr-savino-caribbean\.ogg[\s\S]*?License: CC-BY-SA-3\.0",
        "",
    ),
    PackageInfo(
        "colobot-common-sounds",
        "colobot",
        "usr/share/games/colobot/music",
        "test",
        "GPL-3+",
        r"Files: \*\s+Copyright: [^\n]*Daniel Roux, EPSITEC SA & TerranovaTeam\s+License: GPL-3\+",
        "Daniel Roux",
    ),
    PackageInfo(
        "asc-music",
        "asc",
        "usr/share/games/asc/music",
        "test",
        "GPL-2+",
        r"Files: \*\s+Copyright: 2002 Michael Kievernagel\s+License: GPL-2\+",
        "Michael Kievernagel",
    ),
)
assert not {p.name for p in PACKAGES} & set(RESERVED), "a reserved package is in the corpus"

AUDIO_SUFFIXES = (".ogg", ".opus", ".mp3", ".flac", ".wav")
# HyperRogue's music is credited per file prefix in its debian/copyright.
_HYPERROGUE_ARTISTS = {"hr3-": "Shawn Parrotte", "hr-domina-": "Lincoln Domina", "hr-savino-": "Will Savino"}
# Versions of one work (a remaster or a "v2"): never two of them in one mix, where they would look like a repeat.
_SAME_WORK = {
    "warzone2100/track3_enhanced": "warzone2100/track3",
    "warzone2100/menu_enhanced": "warzone2100/menu",
    "colobot/Hv2": "colobot/Humanitarian",
    "colobot/Infinite": "colobot/music008",  # "Infinite Storm v2" after "Infinite Thunderstorm"
}


def fetch_packages(cache: Path, packages: tuple[PackageInfo, ...] = PACKAGES) -> dict[str, tuple[Path, str]]:
    """Download and unpack each package once into ``cache`` (`bench.corpus.debian`); return {package: (unpacked
    root, version)}. A package reserved for independent evaluation is refused before anything is fetched."""
    for pkg in packages:
        if pkg.name in RESERVED:
            raise RuntimeError(f"{pkg.name} is reserved for independent evaluation")
    return debian.fetch(cache, [pkg.name for pkg in packages], "music")


def copyright_text(root: Path, pkg: PackageInfo) -> str:
    """The package's debian/copyright as unpacked (empty when missing)."""
    return debian.copyright_text(root, pkg.name)


def check_licence(root: Path, pkg: PackageInfo) -> str:
    """Return the licence after confirming it in debian/copyright; a mismatch stops the build (never guess)."""
    return debian.check_licence(root, pkg.name, pkg.licence, pkg.licence_marker)


@dataclass
class Piece:
    """One music file of a package, with what we know and measured about it."""

    key: str  # "<short>/<file stem>"
    title: str
    artist: str
    package: str
    package_version: str
    licence: str
    split: str
    style: str
    path: Path
    relpath: str  # inside the package
    file_sec: float
    analysis: dict[str, Any] = field(default_factory=dict)  # trim, tempo, loudness (see analyze_piece)

    @property
    def work(self) -> str:
        """The work this file is a version of (itself, or the original of a remaster)."""
        return _SAME_WORK.get(self.key, self.key)

    @property
    def duration(self) -> float:
        """Audible seconds after the silence trim (the file length until analyzed)."""
        a = self.analysis
        return float(a["trim_end"] - a["trim_start"]) if a else self.file_sec

    @property
    def bpm(self) -> float | None:
        """Estimated tempo where the pulse is clear, else None."""
        return self.analysis.get("bpm") if self.analysis.get("tempo_known") else None


def _album_titles(root: Path) -> dict[str, tuple[str, str]]:
    """Warzone's album.json files: {file path: (title, author)}."""
    out: dict[str, tuple[str, str]] = {}
    for album in root.rglob("album.json"):
        doc = json.loads(album.read_text())
        for t in doc.get("tracks", []):
            out[str(album.parent / t["filename"])] = (str(t.get("title", "")), str(t.get("author", "")))
    return out


def _tags(path: Path) -> dict[str, str]:
    try:
        with sf.SoundFile(str(path)) as fh:
            return {k: str(v) for k, v in fh.copy_metadata().items()}
    except (RuntimeError, sf.LibsndfileError):
        return {}


def discover_pieces(fetched: dict[str, tuple[Path, str]], packages: tuple[PackageInfo, ...] = PACKAGES) -> list[Piece]:
    """Every music file of at least ``MIN_PIECE_SEC`` in ``packages``, sorted by key for determinism."""
    pieces: list[Piece] = []
    for pkg in packages:
        root, version = fetched[pkg.name]
        licence = check_licence(root, pkg)
        titles = _album_titles(root / pkg.music_dir)
        for path in sorted(p for p in (root / pkg.music_dir).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
            seconds = file_seconds(path)
            if seconds < MIN_PIECE_SEC:
                continue
            tags = _tags(path)
            title, artist = titles.get(str(path), ("", ""))
            title = title or tags.get("title", "") or path.stem.replace("_", " ")
            artist = artist or tags.get("artist", "")
            if not artist and pkg.short == "hyperrogue":
                artist = next((a for p, a in _HYPERROGUE_ARTISTS.items() if path.name.startswith(p)), "")
            pieces.append(
                Piece(
                    key=f"{pkg.short}/{path.stem}",
                    title=title,
                    artist=artist or pkg.artist,
                    package=pkg.name,
                    package_version=version,
                    licence=licence,
                    split=pkg.split,
                    style=f"game-{pkg.short}",
                    path=path,
                    relpath=str(path.relative_to(root)),
                    file_sec=seconds,
                )
            )
    return sorted(pieces, key=lambda p: p.key)


def write_attribution(path: Path, fetched: dict[str, tuple[Path, str]], pieces: list[Piece]) -> None:
    """Credit every piece of the split's packages, with their copyright files: CC BY-SA and the GPL both ask for
    credit and the licence next to copies and adaptations."""
    lines = [
        "Mixes of this split (game-*) are adaptations (trimmed, excerpted, level-adjusted, time-stretched and",
        "crossfaded) of pieces among these:",
        "",
    ]
    lines += [
        f"- {p.title} by {p.artist} ({p.relpath}), Debian package {p.package} {p.package_version}: {p.licence}"
        for p in pieces
    ]
    for pkg in PACKAGES:
        if pkg.name in fetched:
            root, _ = fetched[pkg.name]
            lines += ["", "=" * 78, f"{pkg.name}: debian/copyright", "=" * 78, copyright_text(root, pkg)]
    path.write_text("\n".join(lines) + "\n")
