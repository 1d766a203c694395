"""The music the "same track" embedding learns from and is tested on: Debian packages of free game music and
songs, fetched once into the bench cache (`bench.corpus.debian`), each licence confirmed in the package's
``debian/copyright`` against a regular expression before any file is used, and split into train and test by
package, so no piece, remaster or artist is on both sides.

The test split holds the game corpus's test packages (Colobot, ASC: electronic), the recorded corpus's test
songs (Sectoid, rock) and two more electronic soundtracks (FreedroidRPG, Red Eclipse); everything else trains.
Planet Blupi's music is left out: its composer also wrote Colobot's (test). Nexuiz, Singularity and UFO:AI
music are reserved for an independent evaluation and refused here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from bench.corpus import debian

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = REPO_ROOT / ".corpus-cache"
RESERVED = ("nexuiz-music", "singularity-music", "ufoai-music")
AUDIO_SUFFIXES = (".ogg", ".opus", ".mp3", ".flac", ".wav")
MIN_TRACK_SEC = 50.0  # shorter files are jingles and stingers, not tracks
FRETSONFIRE_STEMS = ("song.ogg", "guitar.ogg", "rhythm.ogg", "drums.ogg")  # summed into one song


@dataclass(frozen=True)
class Package:
    """A music package we may use: where its music lies, its split, and what its debian/copyright must say."""

    name: str
    music_dir: str  # inside the package; searched recursively
    split: str  # "train" or "test"
    licence: str
    licence_marker: str  # a regex that must match debian/copyright, so a relicensed package is noticed
    exclude: str = ""  # a regex on file names left out (other versions of a piece)
    stems: bool = False  # Frets on Fire folders: one song per folder, its stems summed


PACKAGES: tuple[Package, ...] = (
    # test: electronic first (the game corpus's test packages and two more soundtracks), then rock songs
    Package(
        "colobot-common-sounds",
        "usr/share/games/colobot/music",
        "test",
        "GPL-3+",
        r"Files: \*\s+Copyright: [^\n]*Daniel Roux, EPSITEC SA & TerranovaTeam\s+License: GPL-3\+",
    ),
    Package(
        "asc-music",
        "usr/share/games/asc/music",
        "test",
        "GPL-2+",
        r"Files: \*\s+Copyright: 2002 Michael Kievernagel\s+License: GPL-2\+",
    ),
    Package(
        "freedroidrpg-data",
        "usr/share/freedroidrpg/data/sound/music",
        "test",
        "GPL-2+",
        r"Files: \*\s+Copyright: 1994, 2002-2004 Johannes Prix[\s\S]*?License: GPL-2\+",
    ),
    Package(
        "redeclipse-data",
        "usr/share/games/redeclipse/data/sounds/music",
        "test",
        "CC-BY-SA-3.0",
        r"Files: data/sounds/music/track_\*\.ogg\s+Copyright: Derek \"JoJo\" Stegall\s+License: CC-BY-SA-3\.0",
    ),
    Package(
        "fretsonfire-songs-sectoid",
        "usr/share/games/fretsonfire/data/songs/sectoid",
        "test",
        "Expat (MIT)",
        r"Carlos\s+Viola Iborra[\s\S]*Permission is hereby granted, free of charge",
        stems=True,
    ),
    # train
    Package(
        "warzone2100-music",
        "usr/share/games/warzone2100/music",
        "train",
        "GPL-2+ (Legacy and Aftermath albums also CC-BY-SA-3.0 or later, per their license.txt)",
        r"Files: \*\s+Copyright: 1999-2004, Eidos Interactive\s+2005-2013, Warzone 2100 Project\s+License: GPL-2\+",
        exclude=r"_enhanced\.",
    ),
    Package(
        "wesnoth-1.16-music",
        "usr/share/games/wesnoth/1.16/data/core/music",
        "train",
        "GPL-2+",
        r"License:\s+Copyright \(C\) 2003 - 2007 by David White[\s\S]*?GNU General Public License version 2\s+"
        r"or at your option any later version",
    ),
    Package(
        "supertux-data",
        "usr/share/games/supertux2/music",
        "train",
        "GPL-2+",
        r"Files: data/music/\*\s+Copyright: Marek Moeckel <wansti@gmx\.de>\s+License: GPL-2\+",
    ),
    Package(
        "widelands-data",
        "usr/share/games/widelands/data/music",
        "train",
        "GPL-2+ (ingame_24-26: CC-BY-SA-3.0)",
        r"Files: \*\s+Copyright: 2002-2019 by the Widelands Development Team\s+License: GPL-2\+[\s\S]*?"
        r"Files: data/music/ingame_24\.ogg data/music/ingame_25\.ogg data/music/ingame_26\.ogg\s+"
        r"Copyright: Stuart Marshall\s+License: CC-BY-SA-3\.0",
    ),
    Package(
        "hedgewars-data",
        "usr/share/games/hedgewars/Data/Music",
        "train",
        "GPL-2",
        r"Files: \*\s+Copyright:\s+2004-2018 Andrey Korotaev[\s\S]*?2004-2015 Hedgewars Project\s+License: GPL-2",
    ),
    Package(
        "supertuxkart-data",
        "usr/share/games/supertuxkart/data/music",
        "train",
        "CC-BY-SA-3.0 / CC-BY-SA-4.0 / GPL (per file, debian/copyright)",
        r"Files: data/music/bay\.ogg\s+Copyright: 0zone0ne\s+License: CC-BY-SA-3\.0",
        exclude=r"_(fast|f)\.ogg$",
    ),
    Package(
        "flare-game",
        "usr/share/games/flare/mods/fantasycore/music",
        "train",
        "CC-BY-SA-3.0+",
        r"Files: \*\s+Copyright: 2012-2021 Clint Bellanger and others\s+License: CC-BY-SA-3\.0\+",
    ),
    Package(
        "pushover-data",
        "usr/share/pushover/themes",
        "train",
        "GPL-3+",
        r"Files: \*[\s\S]*?Roberto Lorenz \(Music[\s\S]*?License: GPL-3\+",
    ),
    Package(
        "hyperrogue-music",
        "usr/share/hyperrogue/music",
        "train",
        "CC-BY-SA-3.0 (the music files)",
        r"Files: music/hr3-caves\.ogg[\s\S]*?License: CC-BY-SA-3\.0",
    ),
    Package(
        "extremetuxracer-data",
        "usr/share/games/etr/music",
        "train",
        "GPL-2+",
        r"Files: \*\s+Copyright: 1999-2001, Jasmin F\. Patry \(Tuxracer\)[\s\S]*?License: GPL-2\+",
    ),
    Package(
        "fretsonfire-songs-muldjord",
        "usr/share/games/fretsonfire/data/songs/muldjord",
        "train",
        "CC-BY-SA-3.0",
        r"El Senator[\s\S]*Creative Commons\s+Attribution ShareAlike licence 3\.0",
        stems=True,
    ),
)
assert not {p.name for p in PACKAGES} & set(RESERVED), "a reserved package is among the sources"


@dataclass(frozen=True)
class Track:
    """One piece: its files (several stems summed, or one file), package, split and licence."""

    key: str  # "<package>/<path inside the music folder, without suffix>"
    files: tuple[Path, ...]
    package: str
    split: str
    licence: str
    seconds: float


def fetch(cache: Path = DEFAULT_CACHE, packages: tuple[Package, ...] = PACKAGES) -> dict[str, tuple[Path, str]]:
    """Download and unpack each package once into ``cache``; {package: (unpacked root, version)}. A reserved
    package is refused before anything is fetched."""
    for pkg in packages:
        if pkg.name in RESERVED:
            raise RuntimeError(f"{pkg.name} is reserved for independent evaluation")
    return debian.fetch(cache, [p.name for p in packages], "music")


def _seconds(path: Path) -> float:
    try:
        return float(sf.info(str(path)).duration)
    except (RuntimeError, sf.LibsndfileError):
        return 0.0


def tracks(fetched: dict[str, tuple[Path, str]], packages: tuple[Package, ...] = PACKAGES) -> list[Track]:
    """Every track of at least MIN_TRACK_SEC in the packages, licences checked, sorted by key."""
    out: list[Track] = []
    for pkg in packages:
        root, _version = fetched[pkg.name]
        licence = debian.check_licence(root, pkg.name, pkg.licence, pkg.licence_marker)
        base = root / pkg.music_dir
        if pkg.stems:
            groups = [
                tuple(folder / s for s in FRETSONFIRE_STEMS if (folder / s).exists())
                for folder in sorted(p for p in base.iterdir() if p.is_dir())
            ]
            groups = [g for g in groups if g]
        else:
            groups = [
                (p,)
                for p in sorted(base.rglob("*"))
                if p.suffix.lower() in AUDIO_SUFFIXES and not (pkg.exclude and re.search(pkg.exclude, p.name))
            ]
        for files in groups:
            seconds = _seconds(files[0])
            if seconds < MIN_TRACK_SEC:
                continue
            rel = files[0].parent if pkg.stems else files[0].with_suffix("")
            out.append(Track(f"{pkg.name}/{rel.relative_to(base)}", files, pkg.name, pkg.split, licence, seconds))
    return sorted(out, key=lambda t: t.key)


def licences(packages: tuple[Package, ...] = PACKAGES) -> str:
    """A table of the packages, their splits and licences (for docs/same-track.md and the training log)."""
    return "\n".join(f"{p.split:5s} {p.name:28s} {p.licence}" for p in packages)
