"""CUE sheets both ways (`offbeat.cue_sheet`): what is read from one, what is refused and why, what is written."""

from __future__ import annotations

import numpy as np
import pytest

from offbeat import cue_sheet
from offbeat.errors import ErrorCode

FRAME = 1 / cue_sheet.FRAMES_PER_SECOND

SHEET = """\ufeffREM GENRE "Deep House"
REM DATE 2025
CATALOG 0000000000000
PERFORMER "DJ Offbeat"
TITLE "Live at the Basement"
FILE "basement set.mp3" MP3
  TRACK 01 AUDIO
    TITLE "Opener"
    PERFORMER "Artist A"
    SONGWRITER "Someone"
    INDEX 01 00:00:00
  TRACK 02 AUDIO
    TITLE "Say "Hi""
    FLAGS DCP
    ISRC USRC17607839
    PREGAP 00:02:00
    INDEX 00 04:58:00
    INDEX 01 05:01:37
\ttrack\t03 audio
    index 01 72:00:74
"""


def test_a_sheet_gives_titles_performers_and_starts() -> None:
    sheet = cue_sheet.parse(SHEET)
    assert (sheet.title, sheet.performer, sheet.file) == ("Live at the Basement", "DJ Offbeat", "basement set.mp3")
    assert [(t.number, t.title, t.performer) for t in sheet.tracks] == [
        (1, "Opener", "Artist A"),
        (2, 'Say "Hi"', None),
        (3, None, None),
    ]
    # INDEX 01 is where a track starts (INDEX 00, the pre-gap, is not); 75 frames a second; minutes past 59.
    assert [t.start_sec for t in sheet.tracks] == pytest.approx([0.0, 301 + 37 / 75, 72 * 60 + 74 / 75])
    assert sheet.cues() == [("Opener", 0.0), ('Say "Hi"', sheet.tracks[1].start_sec), ("Track 3", 4320 + 74 / 75)]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "no TRACK"),
        ('REM only a comment\nFILE "a.wav" WAVE\n', "no TRACK"),
        ("TRACK 01 AUDIO\n  INDEX 01 00:00:75\n", "frames go up to 74"),
        ("TRACK 01 AUDIO\n  INDEX 01 00:60:00\n", "seconds go up to 59"),
        ("TRACK 01 AUDIO\n  TITLE A\nTRACK 02 AUDIO\n  INDEX 01 01:00:00\n", "TRACK 01 has no INDEX 01"),
        ("TRACK 01 AUDIO\n  INDEX 01 00:00:00\nTRACK 02 AUDIO\n  INDEX 00 00:10:00\n", "TRACK 02 has no INDEX 01"),
        ("TRACK 01 AUDIO\n  INDEX 01 02:00:00\nTRACK 02 AUDIO\n  INDEX 01 01:59:74\n", "times go backwards"),
        ("TRACK 01 AUDIO\n  INDEX 01 02:00:00\nTRACK 02 AUDIO\n  INDEX 01 02:00:00\n", "not after TRACK 01"),
        ("TRACK 01 AUDIO\n  INDEX 01 00:00:00\n  INDEX 01 00:01:00\n", "second INDEX 01"),
        ("INDEX 01 00:00:00\nTRACK 01 AUDIO\n", "INDEX before any TRACK"),
        ("TRACK 01 AUDIO\n  INDEX 01 1:00\n", "not a time mm:ss:ff"),
        ("TRACK 01 AUDIO\n  INDEX 01 aa:bb:cc\n", "not a time mm:ss:ff"),
        ("TRACK 01 AUDIO\n  INDEX 01\n", "INDEX needs a number and a time"),
        ("TRACK AUDIO\n  INDEX 01 00:00:00\n", "TRACK needs a number"),
        ("TRACK 01\n  INDEX 01 00:00:00\n", "TRACK needs a type"),
        ("TRACK 02 AUDIO\n  INDEX 01 00:00:00\nTRACK 01 AUDIO\n  INDEX 01 01:00:00\n", "numbers go up"),
        ('TRACK 01 AUDIO\n  TITLE "Unclosed\n  INDEX 01 00:00:00\n', "quote is not closed"),
        ('FILE "a.wav" WAVE\nTRACK 01 AUDIO\n  INDEX 01 00:00:00\nFILE "b.wav" WAVE\n', "a second FILE"),
    ],
)
def test_malformed_sheets_are_invalid_jobs_saying_why(text: str, fragment: str) -> None:
    with pytest.raises(cue_sheet.CueSheetError) as caught:
        cue_sheet.parse(text)
    assert caught.value.code is ErrorCode.INVALID_JOB and caught.value.stage == "intake"
    assert fragment in caught.value.message
    assert caught.value.message.startswith("cue sheet")


def test_the_faulty_line_is_named() -> None:
    with pytest.raises(cue_sheet.CueSheetError) as caught:
        cue_sheet.parse(SHEET.replace("05:01:37", "05:01:80"))
    assert "line 18 (INDEX 01 05:01:80): frames go up to 74 (75 a second), not 80" in caught.value.message


def test_more_tracks_than_cues_allowed_are_refused() -> None:
    text = "".join(f"TRACK {n:02d} AUDIO\n  INDEX 01 {n:02d}:00:00\n" for n in range(1, 6))
    assert len(cue_sheet.parse(text, max_tracks=5).tracks) == 5
    with pytest.raises(cue_sheet.CueSheetError, match="at most 4"):
        cue_sheet.parse(text, max_tracks=4)


def test_a_track_starting_past_the_end_of_the_audio_is_refused() -> None:
    sheet = cue_sheet.parse(SHEET)
    sheet.check_within(4320.99 + FRAME)
    with pytest.raises(cue_sheet.CueSheetError) as caught:
        sheet.check_within(4320.5)
    assert caught.value.code is ErrorCode.INVALID_JOB
    assert "TRACK 03 starts at 72:00:74, at or past the end of the audio (72:00:38" in caught.value.message


def test_a_written_sheet_reads_back_to_the_same_starts_within_a_frame() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        starts = np.cumsum(rng.uniform(FRAME * 2, 600, size=int(rng.integers(1, 40)))) + rng.uniform(0, 5)
        tracks = [(None if i % 3 else f"Song {i}", float(t)) for i, t in enumerate(starts)]
        written = cue_sheet.render(cue_sheet.sheet_for(tracks, "set.flac"))
        read = cue_sheet.parse(written)
        assert np.abs(np.array([t.start_sec for t in read.tracks]) - starts).max() <= FRAME / 2 + 1e-9
        assert [t.cue_title for t in read.tracks] == [title or f"Track {i + 1}" for i, (title, _) in enumerate(tracks)]


def test_a_written_sheet_names_the_file_and_carries_the_hints_performers() -> None:
    hints = cue_sheet.parse(SHEET)
    # The result's tracks: the cues' titles in order, starts moved to boundaries, the last cue dropped.
    tracks = [("Opener", 0.52), ('Say "Hi"', 299.0)]
    text = cue_sheet.render(cue_sheet.sheet_for(tracks, "basement set.mp3", hints))
    assert text == (
        'PERFORMER "DJ Offbeat"\n'
        'TITLE "Live at the Basement"\n'
        'FILE "basement set.mp3" MP3\n'
        "  TRACK 01 AUDIO\n"
        '    TITLE "Opener"\n'
        '    PERFORMER "Artist A"\n'
        "    INDEX 01 00:00:39\n"
        "  TRACK 02 AUDIO\n"
        "    TITLE \"Say 'Hi'\"\n"
        "    INDEX 01 04:59:00\n"
    )
    plain = cue_sheet.render(cue_sheet.sheet_for([(None, 2.0), ("A\nB", 61.5)], "mix.wav"))
    assert plain.splitlines()[:2] == ['TITLE "mix"', 'FILE "mix.wav" WAVE']
    assert '    TITLE "Track 1"' in plain and '    TITLE "A B"' in plain and "PERFORMER" not in plain


def test_sheet_files_in_utf8_or_latin1_are_read() -> None:
    assert cue_sheet.decode('\ufeffTITLE "Café"'.encode()) == 'TITLE "Café"'
    assert cue_sheet.decode('TITLE "Café"'.encode("latin-1")) == 'TITLE "Café"'


def test_sheets_in_the_encodings_people_have() -> None:
    """A Windows-1252 sheet ("..." is byte 0x85, which Latin-1 makes U+0085, a line break to `splitlines`), a
    UTF-16 one as Exact Audio Copy writes it (either byte order, with its mark), and titles holding characters
    `splitlines` breaks on: lines end only at CR and LF."""
    sheet = 'FILE "mix.wav" WAVE\r\n  TRACK 01 AUDIO\r\n    TITLE "Intro\u2026 Caf\u00e9"\r\n    INDEX 01 00:00:00\r\n'
    for data in (sheet.encode("cp1252"), sheet.encode("utf-16"), b"\xfe\xff" + sheet.encode("utf-16-be")):
        (track,) = cue_sheet.parse(cue_sheet.decode(data)).tracks
        assert track.title == "Intro\u2026 Caf\u00e9"
    assert cue_sheet.decode(b"TITLE \x81\x8d") == "TITLE \x81\x8d"  # bytes cp1252 leaves undefined: Latin-1
    odd = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
    text = f'FILE "mix.wav" WAVE\n  TRACK 01 AUDIO\n    TITLE "a{odd}b"\r    INDEX 01 00:00:00\n  TRACK 02 AUDIO\n'
    first, second = cue_sheet.parse(text + "    INDEX 01 01:00:00\n").tracks
    assert first.title == f"a{odd}b" and second.start_sec == 60.0


def test_a_title_ending_in_a_backslash_is_written_so_that_its_quote_closes() -> None:
    """Readers that take a backslash as an escape (libcue) would read `"AC\\"` as an unclosed quote."""
    written = cue_sheet.render(cue_sheet.sheet_for([("AC\\DC \\", 0.0)], "mix.wav"))
    assert '    TITLE "AC/DC /"\n' in written and "\\" not in written
    assert cue_sheet.parse(written).tracks[0].title == "AC/DC /"


def test_a_last_track_a_few_milliseconds_long_is_warned_about() -> None:
    from offbeat.dsp.track_list import dropped_cues

    cues = [("A", 0.0), ("B", 150.0), ("C", 299.995)]
    (said,) = dropped_cues(cues, np.array([]), 0.0, 300.0, 2.0)
    assert said.startswith("the last track ('C', cued at 299.995 s) is 5 ms long")
    assert dropped_cues(cues[:2], np.array([]), 0.0, 300.0, 2.0) == []
