"""Tracks to take away: one audio file per track of a completed result, tagged, beside a CUE sheet and an M3U
playlist (`offbeat split`, or a job's `split` field).

Each track is cut at its boundaries (`at="boundary"`: the result's start and end) or at the middle of the
transition windows (`at="middle"`: half of each blend on either side). The mix is decoded once, in blocks, at
its own sample rate, and every file is written atomically into a folder made like the stems' one
(`<dir>/<name>.tracks/` beside a source inside the shared mount, else under the local exports folder), which is
opened without following links.

Tags: track number, title and artist (a library identification first, else the cue hint's title and the hints
sheet's PERFORMER), the mix as album, BPM and key. FLAC files carry them as Vorbis comments of our own writing
(TRACKNUMBER, TITLE, ARTIST, ALBUM, BPM, INITIALKEY: libsndfile writes no BPM or key); the other formats carry
what libsndfile writes (title, artist, album, track number) with BPM and key in the comment.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Literal

import numpy as np
import soundfile as sf

from offbeat import cue_sheet as sheets
from offbeat.errors import AnalysisError, ErrorCode
from offbeat.media import decode
from offbeat.paths import atomic_file, atomic_text, export_dir, export_sibling, reported_path
from offbeat.settings import Settings

SplitFormat = Literal["flac", "wav", "ogg", "mp3"]
CutAt = Literal["boundary", "middle"]
# (libsndfile format, subtype) per file format
FORMATS: dict[str, tuple[str, str]] = {
    "flac": ("FLAC", "PCM_16"),
    "wav": ("WAV", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}
NAME_CHARS = 80  # of a title in a file name
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
VORBIS_COMMENT = 4  # FLAC metadata block types
PADDING = 1


@dataclass(frozen=True)
class Cut:
    """One track as a file: its number, where it is cut (seconds of the mix) and its tags."""

    number: int
    start_sec: float
    end_sec: float
    title: str
    artist: str | None
    bpm: float | None
    key: str | None  # Camelot, then the musical name: "8A A Minor"

    def file_name(self, extension: str) -> str:
        """`NN - Title.ext`, the title stripped of what no file system or playlist takes."""
        title = _UNSAFE.sub(" ", self.title).strip(" .") or f"Track {self.number}"
        return f"{self.number:02d} - {title[:NAME_CHARS].strip()}.{extension}"

    def tags(self, album: str | None) -> dict[str, str]:
        found = {"TRACKNUMBER": str(self.number), "TITLE": self.title, "ARTIST": self.artist, "ALBUM": album}
        found["BPM"] = None if self.bpm is None else f"{self.bpm:g}"
        found["INITIALKEY"] = self.key
        return {name: value for name, value in found.items() if value}


def cuts(document: dict[str, Any], at: CutAt = "boundary") -> list[Cut]:
    """Where each track of a completed result is cut, and what it is called."""
    if document.get("status") != "completed":
        raise ValueError("only a completed result has tracks to split")
    results = document["results"]
    tracks = results["tracks"]
    hinted = sheets.parse(results["cue_sheet"]).tracks if results.get("cue_sheet") else ()
    performers = {track.number: track.performer for track in hinted}
    starts = []
    for track in tracks:
        window = track.get("transition_in")
        middle = window is not None and at == "middle" and len(window) == 2
        starts.append((window[0] + window[1]) / 2 if middle else track["start_time_sec"])
    out = []
    for i, track in enumerate(tracks):
        end = starts[i + 1] if i + 1 < len(tracks) else track["end_time_sec"]
        identified = track.get("identified") or {}
        analysis = track.get("analysis") or {}
        key = analysis.get("key") or {}
        title = identified.get("title") or track.get("title") or f"Track {i + 1}"
        artist = identified.get("artist") or performers.get(i + 1)
        camelot = " ".join(part for part in (key.get("camelot"), key.get("musical")) if part) or None
        out.append(Cut(i + 1, starts[i], max(starts[i], end), title, artist, analysis.get("stable_bpm"), camelot))
    return out


def source_of(document: dict[str, Any], mount: Path) -> Path | None:
    """The mix a result describes, where the result tells it: beside its stems folder inside the mount, named by
    its CUE sheet's FILE line; None otherwise (the caller names it)."""
    results = document.get("results") or {}
    stems = (results.get("global") or {}).get("stems") or {}
    text = results.get("cue_sheet")
    if not stems or not text:
        return None
    stem = PurePosixPath(next(iter(stems.values())))
    name = sheets.parse(text).file
    if stem.is_absolute() or not name:
        return None
    return mount / stem.parent.parent / name


def vorbis_comment(tags: dict[str, str]) -> bytes:
    """A FLAC VORBIS_COMMENT block's body: vendor string, then `NAME=value` entries (UTF-8, little-endian lengths)."""
    vendor = b"offbeat"
    entries = [f"{name}={value}".encode() for name, value in tags.items()]
    body = struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(entries))
    return body + b"".join(struct.pack("<I", len(entry)) + entry for entry in entries)


def _flac_blocks(stream: BinaryIO) -> list[tuple[int, bytes]]:
    """The metadata blocks (type, body) at the start of a FLAC stream, leaving it at the first audio frame."""
    if stream.read(4) != b"fLaC":
        raise ValueError("not a FLAC stream")
    blocks, last = [], False
    while not last:
        header = stream.read(4)
        last, kind, size = bool(header[0] & 0x80), header[0] & 0x7F, int.from_bytes(header[1:4], "big")
        blocks.append((kind, stream.read(size)))
    return blocks


def read_vorbis_comments(path: Path) -> dict[str, str]:
    """The Vorbis comments of a FLAC file (names upper-cased)."""
    with path.open("rb") as fh:
        for kind, body in _flac_blocks(fh):
            if kind == VORBIS_COMMENT:
                at = 4 + struct.unpack_from("<I", body)[0]
                count, at = struct.unpack_from("<I", body, at)[0], at + 4
                found = {}
                for _ in range(count):
                    size = struct.unpack_from("<I", body, at)[0]
                    name, _, value = body[at + 4 : at + 4 + size].decode().partition("=")
                    found[name.upper()] = value
                    at += 4 + size
                return found
    return {}


def _tagged_flac(encoded: BinaryIO, out: BinaryIO, tags: dict[str, str]) -> None:
    """Copy a FLAC stream with its Vorbis comments (and padding) replaced by `tags`."""
    encoded.seek(0)
    kept = [(kind, body) for kind, body in _flac_blocks(encoded) if kind not in (VORBIS_COMMENT, PADDING)]
    kept.append((VORBIS_COMMENT, vorbis_comment(tags)))
    out.write(b"fLaC")
    for i, (kind, body) in enumerate(kept):
        out.write(bytes([kind | (0x80 if i == len(kept) - 1 else 0)]) + len(body).to_bytes(3, "big") + body)
    while chunk := encoded.read(1 << 20):
        out.write(chunk)


class _TrackWriter:
    """One track's file being written: audio into a temporary file, put in place (tagged) by `close`."""

    def __init__(self, cut: Cut, fmt: str, rate: int, album: str | None) -> None:
        self.cut, self.fmt, self.album = cut, fmt, album
        self.encoded = tempfile.TemporaryFile()  # noqa: SIM115 (closed by `close`, or by `split` on failure)
        kind, subtype = FORMATS[fmt]
        self.sound = sf.SoundFile(self.encoded, "w", samplerate=rate, channels=2, format=kind, subtype=subtype)
        if fmt != "flac":  # FLAC gets a Vorbis comment block of ours instead
            tags = cut.tags(album)
            for name, field in (("TITLE", "title"), ("ARTIST", "artist"), ("ALBUM", "album")):
                if name in tags:
                    setattr(self.sound, field, tags[name])
            self.sound.tracknumber = str(cut.number)
            self.sound.comment = "; ".join(
                f"{label} {tags[n]}" for n, label in (("BPM", "BPM"), ("INITIALKEY", "key")) if n in tags
            )

    def write(self, block: np.ndarray) -> None:
        self.sound.write(np.clip(block, -1.0, 1.0))

    def close(self, folder_fd: int, name: str) -> None:
        self.sound.close()
        with atomic_file(folder_fd, name) as path, open(path, "wb") as out:
            if self.fmt == "flac":
                _tagged_flac(self.encoded, out, self.cut.tags(self.album))
            else:
                self.encoded.seek(0)
                while chunk := self.encoded.read(1 << 20):
                    out.write(chunk)
        self.encoded.close()


def split(
    source: Path,
    document: dict[str, Any],
    settings: Settings,
    fmt: SplitFormat = "flac",
    at: CutAt = "boundary",
) -> dict[str, Any]:
    """Write the tracks of `document` (a completed result of `source`) as files; returns what the result lists
    under `results.split`: the folder, each track's file, the CUE sheet and the playlist, as results report paths
    (relative to the shared mount inside it)."""
    mount = settings.shared_mount_path
    planned = cuts(document, at)
    folder = export_sibling(source, document["engine"]["analysis_id"], mount, settings.local_exports_path, ".tracks")
    hints = sheets.parse(document["results"]["cue_sheet"]) if document["results"].get("cue_sheet") else None
    album = hints.title if hints is not None else None
    folder_fd = export_dir(folder, (mount, settings.local_exports_path))
    try:
        names = _write_tracks(source, planned, folder_fd, settings, fmt, album)
        mix = os.path.relpath(source.resolve(), folder)  # FILE, as seen from the sheet's folder
        sheet = sheets.render(sheets.sheet_for([(c.title, c.start_sec) for c in planned], mix, hints))
        base = folder.name.removesuffix(".tracks")
        atomic_text(folder_fd, f"{base}.cue", sheet)
        lines = ["#EXTM3U"]
        for cut, name in zip(planned, names, strict=True):
            artist = f"{cut.artist} - " if cut.artist else ""
            lines += [f"#EXTINF:{round(cut.end_sec - cut.start_sec)},{artist}{cut.title}", name]
        atomic_text(folder_fd, f"{base}.m3u8", "\n".join(lines) + "\n")
    finally:
        os.close(folder_fd)
    return {
        "format": fmt,
        "cut_at": at,
        "folder": reported_path(folder, mount),
        "tracks": [reported_path(folder / name, mount) for name in names],
        "cue_sheet": reported_path(folder / f"{base}.cue", mount),
        "playlist": reported_path(folder / f"{base}.m3u8", mount),
    }


def _write_tracks(
    source: Path, planned: list[Cut], folder_fd: int, settings: Settings, fmt: str, album: str | None
) -> list[str]:
    """Decode the mix once and hand each block's frames to the track they belong to; returns the file names."""
    info = decode.probe(source, settings.ffmpeg_path)
    rate = info.sample_rate
    bounds = [(round(c.start_sec * rate), round(c.end_sec * rate)) for c in planned]
    names = [cut.file_name(fmt) for cut in planned]
    names = [n if names.count(n) == 1 else f"{n[: -len(fmt) - 1]} ({i + 1}).{fmt}" for i, n in enumerate(names)]
    writers: dict[int, _TrackWriter] = {}
    position = 0
    blocks = decode.decode_blocks(
        source, info, sample_rate=rate, analysis_rate=8000, block_sec=10.0, ffmpeg=settings.ffmpeg_path
    )
    try:
        for stereo, _ in blocks:
            end = position + len(stereo)
            for i, (first, last) in enumerate(bounds):
                lo, hi = max(first, position), min(last, end)
                if lo < hi:
                    if i not in writers:
                        writers[i] = _TrackWriter(planned[i], fmt, rate, album)
                    writers[i].write(stereo[lo - position : hi - position])
            position = end
            for i in [i for i in writers if bounds[i][1] <= position]:
                writers.pop(i).close(folder_fd, names[i])
        for i in sorted(writers):
            writers.pop(i).close(folder_fd, names[i])
    finally:
        for writer in writers.values():
            writer.sound.close()
            writer.encoded.close()
    missing = [names[i] for i, (first, last) in enumerate(bounds) if first >= position or first >= last]
    if missing:
        message = f"tracks past the end of the audio (is it the result of another file?): {', '.join(missing)}"
        raise AnalysisError(ErrorCode.INVALID_JOB, message, stage="split")
    return names
