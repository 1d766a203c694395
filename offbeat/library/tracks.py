"""A track library's members: what one reference track is (`LibraryTrack`), where its fingerprint lives in the
store (`fingerprint_key`) and how its quads are written and read; and the query side's fingerprints of a mix's
spans (`window_quads`). See `offbeat.library` for where everything lives and why."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from offbeat.dsp import fingerprint as fp
from offbeat.pipeline.stage import path_constants
from offbeat.settings import LIBRARY_NAME
from offbeat.storage import Entry, EntryWriter, entry_key

NAME = re.compile(LIBRARY_NAME)
KEPT_STAGES = ("fingerprint",)  # never collected by `offbeat cache gc`: the file may be gone (see `Library.remove`)
DECODE_BLOCK_SEC = 30.0  # decoding a reference track streams blocks of this length


def check_name(name: str) -> str:
    """A library name, or ValueError: letters, digits, `_`, `.` and `-`, up to 64 characters (it is part of
    index record names and of cache keys)."""
    if not NAME.fullmatch(name):  # `$` alone also matches before a final newline
        raise ValueError(
            f"library name {name[:80]!r} is not allowed: use letters, digits, '_', '.' and '-' (at most 64), "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class LibraryTrack:
    """One reference track of a library."""

    digest: str  # content digest of the file: the track's id
    title: str
    artist: str
    path: str  # where it was read from when added, resolved (to fingerprint it again after a code change)
    duration_sec: float
    fingerprint: str  # key of its fingerprint entry in the store
    quads: int  # reference quads in it
    added: float  # time added (seconds since the epoch)


def fingerprint_key(digest: str, sample_rate: int) -> str:
    """The store key of the fingerprint of the file with content `digest`, decoded at `sample_rate`: what shapes
    it besides the audio is the fingerprint code's version and constants."""
    return fingerprint_keys(sample_rate)(digest)


def fingerprint_keys(sample_rate: int) -> Callable[[str], str]:
    """`fingerprint_key` at `sample_rate` for many digests (every member, at each search and add): the code's
    constants read once, not once a member (a tenth of a millisecond each)."""
    params = {"sample_rate": sample_rate, "dsp": path_constants(fp.__name__)}
    return lambda digest: entry_key(digest, "fingerprint", fp.VERSION, params, {})


def reference_quads(audio: np.ndarray, sr: int) -> fp.Quads:
    """The quads a library keeps of a track: the fingerprint module's reference extraction when it has one
    (references may be sparser than queries), else its only one."""
    extract = getattr(fp, "reference_fingerprint", fp.fingerprint)
    return extract(audio, sr)


def write_quads(out: EntryWriter, quads: fp.Quads, prefix: str = "", chunk_len: int | None = None) -> None:
    """Every field of `quads` as an array of the entry (named `prefix + field`; `chunk_len` rows a chunk, default
    all)."""
    for field in fields(fp.Quads):
        out.put_array(prefix + field.name, np.ascontiguousarray(getattr(quads, field.name)), chunk_len)


def read_quads(entry: Entry, prefix: str = "") -> fp.Quads:
    """The quads `write_quads` stored."""
    return fp.Quads(*(entry[prefix + field.name][...] for field in fields(fp.Quads)))


def window_quads(audio: np.ndarray, sr: int, spans: list[tuple[float, float]]) -> fp.Quads:
    """The query quads of the spans (seconds of `audio`) of one track, with times on `audio`'s clock; spans
    shorter than a second give none."""
    parts = []
    for start, end in spans:
        a, b = int(start * sr), int(end * sr)
        if b - a < sr:
            continue
        quads = fp.fingerprint(audio[a:b], sr)
        parts.append(replace(quads, root_sec=quads.root_sec + np.float32(a / sr)))
    return fp.concat(parts)


def iter_paths(paths: list[Path], suffixes: tuple[str, ...]) -> Iterator[Path]:
    """The files named, and those under the folders named whose suffix is one of `suffixes`, sorted."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        else:
            yield path
