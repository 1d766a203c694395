"""CUE sheets both ways: a sheet read as cue hints (each track's INDEX 01 and TITLE), and the tracks of a result
written as a sheet that players, taggers and mix sites read. Pure text in and out; no file is opened here.

A parser of our own rather than a package: of those on PyPI, `cuetools` (MIT) accepts only `FILE ... WAVE` for
.flac/.ape/.wav (a DJ mix is mostly `FILE "set.mp3" MP3`) and raises on REM comments it does not know, where the
format says unknown commands are ignored; `pylibcue` binds libcue under GPL-2.0-only, a C extension whose licence
would bind this project; the rest split CD images or are a few months old. What a mix needs is small: titles,
performers and INDEX times, checked strictly (frames 0-74 at 75 a second, seconds 0-59, times that never go
back, INDEX 01 in every track), each fault told by its line number in words a person acts on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

from offbeat.errors import AnalysisError, ErrorCode, bounded

FRAMES_PER_SECOND = 75  # CD frames: INDEX times are mm:ss:ff
QUOTED_LINE_CHARS = 80  # of a faulty line, quoted in the error
_TIME = re.compile(r"([0-9]{1,6}):([0-9]{1,2}):([0-9]{1,2})")
_NUMBER = re.compile(r"[0-9]{1,4}")
_WORD = re.compile(r"\s+")  # between a command and its arguments
# The FILE line's type word, by the audio file's suffix (WAVE is what players expect for the lossless rest).
FILE_TYPES = {".mp3": "MP3", ".aif": "AIFF", ".aiff": "AIFF"}


class CueSheetError(AnalysisError):
    """A malformed sheet: `invalid_job`, with the line it was found on."""

    def __init__(self, message: str, line: int | None = None, text: str = "") -> None:
        where = f" line {line} ({bounded(text.strip(), QUOTED_LINE_CHARS)})" if line is not None else ""
        super().__init__(ErrorCode.INVALID_JOB, f"cue sheet{where}: {message}", stage="intake")


@dataclass(frozen=True)
class SheetTrack:
    """One TRACK: its number, where it starts (INDEX 01, seconds of the audio file), its TITLE and PERFORMER."""

    number: int
    start_sec: float
    title: str | None = None
    performer: str | None = None

    @property
    def cue_title(self) -> str:
        """The title as a cue hint: a track the sheet leaves untitled is "Track N", as this module writes it."""
        return self.title or f"Track {self.number}"


@dataclass(frozen=True)
class CueSheet:
    """A sheet for one audio file: the tracks in time order, the sheet's own TITLE, PERFORMER and FILE name."""

    tracks: tuple[SheetTrack, ...]
    title: str | None = None
    performer: str | None = None
    file: str | None = None

    def cues(self) -> list[tuple[str, float]]:
        """The (title, start) pairs the pipeline takes as cue hints, exactly as a job's `cue_tracks` become."""
        return [(track.cue_title, track.start_sec) for track in self.tracks]

    def check_within(self, duration_sec: float) -> None:
        """Refuse a sheet whose last track starts at or after the end of the audio (`duration_sec`): it names
        another file, or a longer edit of this one, and its other times are as doubtful."""
        last = self.tracks[-1]
        if last.start_sec >= duration_sec:
            raise CueSheetError(
                f"TRACK {last.number:02d} starts at {timestamp(last.start_sec)}, at or past the end of the audio "
                f"({timestamp(duration_sec)}, {duration_sec:.1f} s): is it the sheet of another file?"
            )


def timestamp(seconds: float) -> str:
    """`mm:ss:ff` to the nearest frame (minutes go past 99 in long mixes, as players accept)."""
    frames = max(0, round(seconds * FRAMES_PER_SECOND))
    minutes, rest = divmod(frames, 60 * FRAMES_PER_SECOND)
    return f"{minutes:02d}:{rest // FRAMES_PER_SECOND:02d}:{rest % FRAMES_PER_SECOND:02d}"


def decode(data: bytes) -> str:
    """A sheet file's text: UTF-16 when it starts with its byte-order mark (Exact Audio Copy writes such sheets),
    else UTF-8 (with or without a byte-order mark), else Windows-1252, which old Windows rippers wrote ("..." as
    byte 0x85), else Latin-1 for the five bytes Windows-1252 leaves undefined, which every byte string is (so
    reading never fails; the grammar then judges)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the only line breaks of a sheet: `splitlines` also breaks on U+0085, ...


# -- reading -----------------------------------------------------------------------------------------------------


def _value(rest: str, number: int, line: str) -> str:
    """A TITLE/PERFORMER argument: a quoted string (everything between the first and the last quote, so a title
    holding quotes survives) or the bare rest of the line."""
    rest = rest.strip()
    if rest.startswith('"'):
        if len(rest) < 2 or not rest.endswith('"'):
            raise CueSheetError("a quote is not closed", number, line)
        return rest[1:-1]
    return rest


def _seconds(text: str, number: int, line: str) -> float:
    match = _TIME.fullmatch(text)
    if match is None:
        raise CueSheetError(f"{text!r} is not a time mm:ss:ff", number, line)
    minutes, seconds, frames = (int(part) for part in match.groups())
    if seconds > 59:
        raise CueSheetError(f"seconds go up to 59, not {seconds}", number, line)
    if frames >= FRAMES_PER_SECOND:
        raise CueSheetError(
            f"frames go up to {FRAMES_PER_SECOND - 1} ({FRAMES_PER_SECOND} a second), not {frames}", number, line
        )
    return minutes * 60 + seconds + frames / FRAMES_PER_SECOND


@dataclass
class _Open:
    """The TRACK being read: its number, line, and what its lines said so far."""

    number: int
    line: int
    text: str
    start: float | None = None
    title: str | None = None
    performer: str | None = None


class _Reader:
    """The parse state: the sheet's own fields, the tracks closed so far, the one open, the last INDEX time."""

    def __init__(self, max_tracks: int | None) -> None:
        self.max_tracks = max_tracks
        self.fields: dict[str, str | None] = {"title": None, "performer": None, "file": None}
        self.tracks: list[SheetTrack] = []
        self.open: _Open | None = None
        self.last_index: tuple[float, str] | None = None  # time, as written

    def close(self) -> None:
        track = self.open
        if track is None:
            return
        if track.start is None:
            raise CueSheetError(f"TRACK {track.number:02d} has no INDEX 01 (where it starts)", track.line, track.text)
        self.tracks.append(SheetTrack(track.number, track.start, track.title or None, track.performer or None))
        self.open = None

    def track(self, args: list[str], number: int, line: str) -> None:
        if not args or not _NUMBER.fullmatch(args[0]):
            raise CueSheetError("TRACK needs a number (TRACK 01 AUDIO)", number, line)
        if len(args) < 2:
            raise CueSheetError("TRACK needs a type after its number (TRACK 01 AUDIO)", number, line)
        track_number = int(args[0])
        before = self.open.number if self.open is not None else (self.tracks[-1].number if self.tracks else 0)
        if track_number <= before:
            raise CueSheetError(f"TRACK {track_number:02d} comes after TRACK {before:02d}: numbers go up", number, line)
        self.close()
        if self.max_tracks is not None and len(self.tracks) >= self.max_tracks:
            raise CueSheetError(f"more than {self.max_tracks} tracks; at most {self.max_tracks} are accepted")
        self.open = _Open(track_number, number, line)

    def index(self, args: list[str], number: int, line: str) -> None:
        if self.open is None:
            raise CueSheetError("INDEX before any TRACK", number, line)
        if len(args) != 2 or not _NUMBER.fullmatch(args[0]):
            raise CueSheetError("INDEX needs a number and a time (INDEX 01 mm:ss:ff)", number, line)
        at = _seconds(args[1], number, line)
        if self.last_index is not None and at < self.last_index[0]:
            raise CueSheetError(f"times go backwards: {args[1]} after {self.last_index[1]}", number, line)
        if int(args[0]) == 1:
            if self.open.start is not None:
                raise CueSheetError(f"TRACK {self.open.number:02d} has a second INDEX 01", number, line)
            if self.tracks and at <= self.tracks[-1].start_sec:
                previous = self.tracks[-1]
                raise CueSheetError(
                    f"TRACK {self.open.number:02d} starts at {args[1]}, not after TRACK {previous.number:02d} "
                    f"({timestamp(previous.start_sec)})",
                    number,
                    line,
                )
            self.open.start = at
        self.last_index = (at, args[1])

    def text(self, command: str, rest: str, number: int, line: str) -> None:
        value = _value(rest, number, line)
        if self.open is not None:
            setattr(self.open, command.lower(), value)
        else:
            self.fields[command.lower()] = value or None

    def file(self, rest: str, number: int, line: str) -> None:
        if self.fields["file"] is not None:
            raise CueSheetError("a second FILE: a mix's sheet names one audio file, the mix", number, line)
        name = rest.strip()
        if name.startswith('"'):
            end = name.rfind('"')
            if end == 0:
                raise CueSheetError("a quote is not closed", number, line)
            name = name[1:end]
        else:
            name = name.split()[0] if name.split() else ""
        if not name:
            raise CueSheetError("FILE needs the audio file's name", number, line)
        self.fields["file"] = name


def parse(text: str, max_tracks: int | None = None) -> CueSheet:
    """The sheet in `text`; CueSheetError (`invalid_job`) names the first fault and its line.

    Commands are matched without regard to case; those a mix does not need (REM, CATALOG, FLAGS, ISRC,
    SONGWRITER, PREGAP, POSTGAP, CDTEXTFILE, and any other) are ignored, as the format says. INDEX 00 (pre-gap)
    and INDEX 02-99 must keep time order but start nothing. `max_tracks`: OFFBEAT_MAX_CUES, as for `cue_tracks`.
    """
    reader = _Reader(max_tracks)
    for number, line in enumerate(_LINE_BREAK.split(text.removeprefix("\ufeff")), start=1):
        command, rest = [*_WORD.split(line.strip(), maxsplit=1), ""][:2]
        command = command.upper()
        if command == "TRACK":
            reader.track(rest.split(), number, line)
        elif command == "INDEX":
            reader.index(rest.split(), number, line)
        elif command in ("TITLE", "PERFORMER"):
            reader.text(command, rest, number, line)
        elif command == "FILE":
            reader.file(rest, number, line)
    reader.close()
    if not reader.tracks:
        raise CueSheetError("no TRACK: a sheet lists at least one (TRACK 01 AUDIO, then INDEX 01 mm:ss:ff)")
    return CueSheet(tuple(reader.tracks), **reader.fields)


# -- writing -----------------------------------------------------------------------------------------------------


def sheet_for(tracks: Sequence[tuple[str | None, float]], file_name: str, hints: CueSheet | None = None) -> CueSheet:
    """The sheet of a result's tracks ((title, start) in time order) for the audio file `file_name`.

    What the hints' sheet said and the result cannot hold comes back from it: its TITLE and PERFORMER, and each
    track's PERFORMER, found by the track's title in order (the result keeps the cues' titles and order, though
    cues outside the music start no track). Without a sheet's TITLE, the file's stem names the mix."""
    hinted = list(hints.tracks) if hints is not None else []
    out, at = [], 0
    for number, (title, start) in enumerate(tracks, start=1):
        performer = None
        for i in range(at, len(hinted)):
            if hinted[i].cue_title == title:
                performer, at = hinted[i].performer, i + 1
                break
        out.append(SheetTrack(number, start, title, performer))
    title = hints.title if hints is not None and hints.title else PurePath(file_name).stem
    return CueSheet(tuple(out), title, hints.performer if hints is not None else None, file_name)


def _quoted(value: str) -> str:
    """A value as a quoted CUE argument: no reader knows an escaped quote or a line break inside one, so double
    quotes become single ones and control characters spaces; readers that take a backslash as an escape (libcue)
    would read a title ending in one as an unclosed quote, so backslashes become slashes."""
    clean = "".join(" " if not char.isprintable() else char for char in value)
    return '"' + clean.replace('"', "'").replace("\\", "/") + '"'


def render(sheet: CueSheet) -> str:
    """The sheet as text: PERFORMER and TITLE of the mix, FILE, then per track TITLE ("Track N" where there is
    none), PERFORMER where known and INDEX 01 to the nearest frame. Lines end in a newline."""
    file = sheet.file or "mix"
    lines = [f"PERFORMER {_quoted(sheet.performer)}"] if sheet.performer else []
    if sheet.title:
        lines.append(f"TITLE {_quoted(sheet.title)}")
    lines.append(f"FILE {_quoted(file)} {FILE_TYPES.get(PurePath(file).suffix.lower(), 'WAVE')}")
    for track in sheet.tracks:
        lines += [f"  TRACK {track.number:02d} AUDIO", f"    TITLE {_quoted(track.cue_title)}"]
        if track.performer:
            lines.append(f"    PERFORMER {_quoted(track.performer)}")
        lines.append(f"    INDEX 01 {timestamp(track.start_sec)}")
    return "\n".join(lines) + "\n"
