"""Tracks to take away (`offbeat split`, a job's `split` field): each track of a result as its own tagged file, cut
where the result says, beside a CUE sheet and a playlist; written only inside the export roots."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from offbeat import cue_sheet
from offbeat.errors import AnalysisError
from offbeat.settings import Settings
from offbeat.split import cuts, read_vorbis_comments, source_of, split

from .audio_files import write_samples
from .fleet import OFFBEAT

RATE = 44100
TONES = (220.0, 440.0, 880.0)  # one per track, 4 s each


def tone_mix(path: Path) -> Path:
    t = np.arange(int(4 * RATE)) / RATE
    mono = np.concatenate([0.5 * np.sin(2 * np.pi * f * t) for f in TONES])
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_samples(path, np.stack([mono, mono], axis=1).astype(np.float32), RATE, "PCM_16")


def result(name: str) -> dict[str, Any]:
    """A completed result of the tone mix as the engine writes one (only what splitting reads)."""
    sheet = cue_sheet.render(
        cue_sheet.CueSheet(
            (
                cue_sheet.SheetTrack(1, 0.0, "Intro", "DJ One"),
                cue_sheet.SheetTrack(2, 4.0, 'Second <script>alert("x")</script>', None),
                cue_sheet.SheetTrack(3, 8.0, "Third/Part: One", "DJ Three"),
            ),
            "Friday Set",
            None,
            name,
        )
    )

    def track(i: int, title: str, bpm: float, camelot: str, **extra: Any) -> dict[str, Any]:
        key = {"musical": "A Minor", "camelot": camelot, "confidence": 0.7}
        analysis = {"duration_sec": 4.0, "stable_bpm": bpm, "key": key}
        return {
            "track_id": i,
            "title": title,
            "start_time_sec": 4.0 * i,
            "end_time_sec": 4.0 * (i + 1),
            **extra,
            "analysis": analysis,
        }

    tracks = [
        track(0, "Intro", 124.0, "8A"),
        track(1, 'Second <script>alert("x")</script>', 125.5, "9A", transition_in=[3.0, 5.0]),
        track(
            2,
            "Third/Part: One",
            126.0,
            "10A",
            transition_in=[7.5, 8.5],
            identified={"title": "Real Name", "artist": "Real Artist"},
        ),
    ]
    return {
        "job_id": 4,
        "status": "completed",
        "results": {
            "global": {"duration_sec": 12.0, "stems": {"vocals": "sets/mix.stems/vocals.wav"}},
            "tracks": tracks,
            "cue_sheet": sheet,
        },
        "engine": {"analysis_id": "0123456789abcdef"},
    }


def dominant(path: Path) -> tuple[float, float]:
    """(seconds, strongest frequency) of an audio file."""
    data, rate = sf.read(str(path))
    spectrum = np.abs(np.fft.rfft(data[:, 0]))
    return len(data) / rate, float(np.fft.rfftfreq(len(data), 1 / rate)[int(np.argmax(spectrum))])


def test_split_writes_tagged_tracks_a_cue_sheet_and_a_playlist(settings: Settings) -> None:
    mix = tone_mix(settings.shared_mount_path / "sets" / "mix.wav")
    document = result("mix.wav")
    assert source_of(document, settings.shared_mount_path) == mix

    listed = split(mix, document, settings)

    folder = mix.parent / "mix.tracks"
    assert listed["folder"] == "sets/mix.tracks" and listed["format"] == "flac"
    names = ["01 - Intro.flac", "02 - Second  script alert( x ) script.flac", "03 - Real Name.flac"]
    names[1] = sorted(p.name for p in folder.glob("02 - *"))[0]
    assert listed["tracks"] == [f"sets/mix.tracks/{n}" for n in names]
    assert "/" not in names[1][:-5] and "<" not in names[1] and '"' not in names[1]
    for name, tone in zip(names, TONES, strict=True):
        seconds, peak = dominant(folder / name)
        assert seconds == pytest.approx(4.0, abs=1e-3) and peak == pytest.approx(tone, abs=1.0)
    tags = [read_vorbis_comments(folder / name) for name in names]
    assert [t["TRACKNUMBER"] for t in tags] == ["1", "2", "3"]
    assert [t["TITLE"] for t in tags] == ["Intro", 'Second <script>alert("x")</script>', "Real Name"]
    assert [t.get("ARTIST") for t in tags] == ["DJ One", None, "Real Artist"]  # identification before cue hints
    assert [t["BPM"] for t in tags] == ["124", "125.5", "126"] and tags[2]["INITIALKEY"] == "10A A Minor"
    assert {t["ALBUM"] for t in tags} == {"Friday Set"}
    assert sf.info(str(folder / names[0])).format == "FLAC"  # the rewritten metadata keeps a valid stream

    sheet = cue_sheet.parse((folder / "mix.cue").read_text())
    assert sheet.file == "../mix.wav" and [t.start_sec for t in sheet.tracks] == [0.0, 4.0, 8.0]
    assert sheet.tracks[0].performer == "DJ One" and sheet.title == "Friday Set"
    playlist = (folder / "mix.m3u8").read_text().splitlines()
    assert playlist[0] == "#EXTM3U" and playlist[2::2] == names
    assert playlist[5] == "#EXTINF:4,Real Artist - Real Name"
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_cuts_at_the_middle_of_the_transitions() -> None:
    found = cuts(result("mix.wav"), at="middle")
    assert [(c.start_sec, c.end_sec) for c in found] == [(0.0, 4.0), (4.0, 8.0), (8.0, 12.0)]
    shifted = result("mix.wav")
    shifted["results"]["tracks"][1]["transition_in"] = [2.0, 5.0]
    found = cuts(shifted, at="middle")
    assert [(c.start_sec, c.end_sec) for c in found] == [(0.0, 3.5), (3.5, 8.0), (8.0, 12.0)]
    assert [(c.start_sec, c.end_sec) for c in cuts(shifted)] == [(0.0, 4.0), (4.0, 8.0), (8.0, 12.0)]


def test_other_formats_and_a_wrong_file(settings: Settings, tmp_path: Path) -> None:
    mix = tone_mix(settings.shared_mount_path / "mix.wav")
    listed = split(mix, result("mix.wav"), settings, fmt="ogg")
    first = settings.shared_mount_path / listed["tracks"][0]
    info = sf.SoundFile(str(first))
    assert info.format == "OGG" and info.title == "Intro" and "BPM 124" in info.comment
    assert dominant(first)[1] == pytest.approx(220.0, abs=2.0)

    short = write_samples(settings.shared_mount_path / "short.wav", np.zeros((RATE, 2), np.float32), RATE)
    with pytest.raises(AnalysisError, match="past the end of the audio"):
        split(short, result("short.wav"), settings)


def test_a_planted_link_is_refused(settings: Settings, tmp_path: Path) -> None:
    mix = tone_mix(settings.shared_mount_path / "mix.wav")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (settings.shared_mount_path / "mix.tracks").symlink_to(outside)
    with pytest.raises(AnalysisError) as caught:
        split(mix, result("mix.wav"), settings)
    assert caught.value.code == "invalid_path" and not list(outside.iterdir())


def test_the_command(settings: Settings, tmp_path: Path) -> None:
    mix = tone_mix(settings.shared_mount_path / "sets" / "mix.wav")
    saved = tmp_path / "result.json"
    saved.write_text(json.dumps(result("mix.wav")))
    done = subprocess.run(
        [OFFBEAT, "split", str(saved), "--format", "wav", "--at", "middle"],
        env=os.environ,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert listed["format"] == "wav" and len(listed["tracks"]) == 3
    assert (mix.parent / "mix.tracks" / "03 - Real Name.wav").exists()
    failed = subprocess.run([OFFBEAT, "split", str(tmp_path / "none.json")], capture_output=True, text=True)
    assert failed.returncode == 1 and "error:" in failed.stderr


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_a_job_asks_for_its_tracks(settings: Settings) -> None:
    from flows.analyze import analyze_mix

    from .audio_files import write_wav

    write_wav(settings.shared_mount_path / "sets" / "set.wav", seconds=6.0)
    job = {
        "job_id": 5,
        "relative_path": "sets/set.wav",
        "split": "flac",
        "cue_tracks": [{"title": "Opener", "start_time_sec": 0}],
    }
    document = analyze_mix(job=job, return_state=True).result(raise_on_failure=False)
    assert document["status"] == "completed", document
    listed = document["results"]["split"]
    tracks = document["results"]["tracks"]
    assert listed["folder"] == "sets/set.tracks" and len(listed["tracks"]) == len(tracks) >= 1
    first = settings.shared_mount_path / listed["tracks"][0]
    assert read_vorbis_comments(first)["TITLE"] == tracks[0]["title"] == "Opener"
    assert sf.info(str(first)).duration == pytest.approx(
        tracks[0]["end_time_sec"] - tracks[0]["start_time_sec"], abs=0.01
    )
    for name in ("cue_sheet", "playlist"):
        assert (settings.shared_mount_path / listed[name]).is_file()
