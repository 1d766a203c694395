"""The track library: `offbeat library add | ls | rm` as an operator runs them, and a mix's tracks identified
against it by the `identify` stage (one played faster with the pitch following, one not in the library), the
answers keyed by the library's revision."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from offbeat.library import Library
from offbeat.pipeline.runner import Run, StageRef
from offbeat.pipeline.stages.identify import query_spans
from offbeat.settings import Settings
from offbeat.storage import ArtifactStore, open_store

from .test_fingerprint import SR, track

OFFBEAT = str(Path(sys.executable).with_name("offbeat"))
BEFORE = ("decode", "trim", "activations", "envelopes", "beats", "segment")


def offbeat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OFFBEAT, *args], capture_output=True, text=True, env=dict(os.environ), timeout=300)


def tagged(path: Path, audio: np.ndarray, title: str = "", artist: str = "") -> Path:
    """`audio` as a FLAC file with the tags given."""
    with sf.SoundFile(str(path), "w", SR, 1, format="FLAC") as fh:
        if title:
            fh.title = title
        if artist:
            fh.artist = artist
        fh.write(audio)
    return path


@pytest.mark.slow  # `offbeat library` in processes of its own
def test_add_list_and_remove_from_the_command_line(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "refs"
    folder.mkdir()
    tagged(folder / "one.flac", track(201, 30.0), "First Light", "Someone")
    tagged(folder / "two.flac", track(202, 30.0))
    (folder / "notes.txt").write_text("not audio, and not picked up from a folder")
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")

    listed = offbeat("library", "ls")
    assert listed.returncode == 0 and listed.stdout == ""
    assert not (tmp_path / "artifacts").exists()  # a listing does not create the store

    added = offbeat("library", "add", str(folder), str(tmp_path / "broken.wav"))
    assert added.returncode == 1, added.stderr  # one file was refused, the others added
    assert "broken.wav: not added [corrupt_audio]" in added.stderr or "[unsupported_audio]" in added.stderr
    tracks = json.loads(offbeat("library", "ls", "--json").stdout)
    assert sorted((t["title"], t["artist"]) for t in tracks) == [("First Light", "Someone"), ("two", "")]
    assert all(t["quads"] > 100 and abs(t["duration_sec"] - 30.0) < 0.1 for t in tracks)

    again = offbeat("library", "add", str(folder / "one.flac"))
    assert again.returncode == 0 and "already in the library" in again.stderr
    other = offbeat("library", "add", "--library", "vinyl", str(folder / "two.flac"), "--title", "Second")
    assert other.returncode == 0, other.stderr
    assert [t["title"] for t in json.loads(offbeat("library", "ls", "-l", "vinyl", "--json").stdout)] == ["Second"]

    digest = next(t["digest"] for t in tracks if t["title"] == "First Light")
    assert offbeat("library", "rm", digest[:3]).returncode == 1  # too short to be an id, and no title
    removed = offbeat("library", "rm", digest[:8])
    assert removed.returncode == 0, removed.stderr
    assert [t["title"] for t in json.loads(offbeat("library", "ls", "--json").stdout)] == ["two"]
    assert offbeat("library", "ls", "--library", "../up").returncode == 2  # a name that is no name


def test_query_windows_spread_over_the_steady_part() -> None:
    assert query_spans(10.0, 40.0, 3, 20.0) == [(10.0, 40.0)]
    spans = query_spans(0.0, 200.0, 3, 20.0)
    assert spans == [(0.0, 20.0), (90.0, 110.0), (180.0, 200.0)]


def played(audio: np.ndarray, speed: float) -> np.ndarray:
    """`audio` played `speed` times as fast with the pitch following (a turntable)."""
    return soxr.resample(audio, SR * speed, SR).astype(np.float32)


def mix(parts: list[np.ndarray], fade_sec: float = 4.0) -> tuple[np.ndarray, list[float]]:
    """The parts crossfaded linearly, and where each starts."""
    fade = int(fade_sec * SR)
    out, starts = parts[0].copy(), [0.0]
    for part in parts[1:]:
        starts.append((len(out) - fade) / SR)
        ramp = np.linspace(0, 1, fade, dtype=np.float32)
        head = out[-fade:] * (1 - ramp) + part[:fade] * ramp
        out = np.concatenate([out[:-fade], head, part[fade:]])
    return out, starts


def identified(tmp_path: Path, path: Path, cues: list[tuple[str, float]], store: ArtifactStore) -> tuple[list, bool]:
    run = Run(store, Settings(min_track_sec=15), path, cues=cues)
    refs: dict[str, StageRef] = {}
    for name in (*BEFORE, "identify"):
        refs[name] = run.stage(name, refs)
    entry = store.get(refs["identify"].key)
    assert entry is not None
    return entry.attrs["identified"], refs["identify"].cached


@pytest.mark.slow  # madmom's networks over minutes of audio
def test_tracks_of_a_mix_are_identified_through_a_speed_change(settings: Settings, tmp_path: Path) -> None:
    a, b, c = track(211, 50.0), track(212, 50.0), track(213, 50.0)
    store = open_store(settings)  # the settings' store: the one the stage's key reads the revision from
    library = Library(store, settings.library, sample_rate=settings.analysis_sample_rate)
    for name, audio in (("A", a), ("B", b)):
        library.add(tagged(tmp_path / f"{name}.flac", audio, f"Track {name}"))
    excerpt = a[int(8 * SR) : int(48 * SR)]
    audio, starts = mix([played(excerpt, 1.04), b[: int(40 * SR)], c[: int(40 * SR)]])
    path = tmp_path / "mix.wav"
    sf.write(str(path), audio, SR)
    cues = [(f"cue {i}", s) for i, s in enumerate(starts)]

    found, cached = identified(tmp_path, path, cues, store)
    assert not cached
    first, second, third = found
    assert first is not None and first["title"] == "Track A", found
    assert first["tempo_ratio"] == pytest.approx(1.04, abs=0.005)
    assert first["pitch_shift_semitones"] == pytest.approx(12 * np.log2(1.04), abs=0.1)
    assert first["reference_start_sec"] == pytest.approx(8.0, abs=0.5)
    assert second is not None and second["title"] == "Track B" and second["tempo_ratio"] == pytest.approx(1, abs=0.005)
    assert third is None, json.dumps(found)  # not in the library

    assert identified(tmp_path, path, cues, store)[1]  # an unchanged library: read back
    library.add(tagged(tmp_path / "C.flac", c, "Track C"))
    found, cached = identified(tmp_path, path, cues, store)
    assert not cached and found[2] is not None and found[2]["title"] == "Track C"
    library.remove(library.find("Track A"))
    found, _ = identified(tmp_path, path, cues, store)
    assert found[0] is None and found[1]["title"] == "Track B"


@pytest.mark.redis
def test_hosts_sharing_a_redis_index_see_one_library(tmp_path: Path, redis_url: str) -> None:
    """A track added on one host is searched from another's handle on the same data and Redis index; the search
    index is built once and read back by the other."""
    from offbeat import library
    from offbeat.storage.redis_index import RedisIndex

    data = tmp_path / "artifacts"
    here = Library(ArtifactStore(data, RedisIndex(redis_url), host="here"), "shared")
    there = Library(ArtifactStore(data, RedisIndex(redis_url), host="there"), "shared")
    assert there.revision() == "" and there.search_index() is None
    _, new = here.add(tagged(tmp_path / "x.flac", track(221, 30.0), "Across"))
    assert new and [t.title for t in there.tracks()] == ["Across"] and there.revision() == here.revision()
    built = here.search_index()
    library._LOADED.clear()  # as in another process: read back from the store
    found = there.search_index()
    assert built is not None and found is not None
    assert np.array_equal(found[0].keys, built[0].keys) and found[1] == built[1]
    builds = [r for r in here.store.entries() if r["stage"] == "search_index"]
    assert len(builds) == 1 and builds[0]["host"] == "here"


@pytest.mark.slow
def test_analyze_reports_the_identified_tracks(settings: Settings, tmp_path: Path, prefect_api: str) -> None:
    """The whole analysis from the command line: each track's `identified` in the result document, against the
    library the command names; a library that holds nothing is a warning, not a failure."""
    a, b = track(231, 50.0), track(232, 50.0)
    for name, audio in (("A", a), ("B", b)):
        added = offbeat("library", "add", "-l", "crate", str(tagged(tmp_path / f"{name}.flac", audio, f"Track {name}")))
        assert added.returncode == 0, added.stderr
    audio, starts = mix([played(a[: int(45 * SR)], 0.95), b[: int(45 * SR)]])
    path = tmp_path / "set.wav"
    sf.write(str(path), audio, SR)
    cues = tmp_path / "cues.json"
    cues.write_text(json.dumps([{"title": f"cue {i}", "start_time_sec": s} for i, s in enumerate(starts)]))
    env = {**os.environ, "PREFECT_API_URL": prefect_api}

    def analyze(*args: str) -> dict:
        done = subprocess.run(
            [OFFBEAT, "analyze", str(path), "--cue-file", str(cues), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)

    doc = analyze("--library", "crate")
    first, second = (t["identified"] for t in doc["results"]["tracks"])
    assert first["title"] == "Track A" and first["library"] == "crate"
    assert first["tempo_ratio"] == pytest.approx(0.95, abs=0.005)
    assert second["title"] == "Track B" and second["tempo_ratio"] == pytest.approx(1.0, abs=0.005)
    assert doc["engine"]["warnings"] == []

    empty = analyze("--library", "nothing-here")
    assert [t["identified"] for t in empty["results"]["tracks"]] == [None, None]
    assert empty["engine"]["warnings"] == ["library nothing-here holds no tracks: no track was identified"]
    assert "identify" not in empty["engine"]["cached_stages"] and "segment" in empty["engine"]["cached_stages"]


def test_a_boundary_inside_one_library_track_is_warned_about() -> None:
    from offbeat.pipeline.stages.identify import split_tracks

    def of(track: str, ref_start: float, ratio: float = 1.04) -> dict:
        return {"track": track, "title": track.upper(), "reference_start_sec": ref_start, "tempo_ratio": ratio}

    starts = [0.0, 100.0, 200.0, 300.0]
    # b plays on from 100 s (104 s into it at 1.04); c starts over (a repeat, not a split); none at the end
    found = [of("b", 0.0), of("b", 104.5), of("b", 0.0), None]
    (said,) = split_tracks(found, starts)
    assert said.startswith("tracks 0 and 1 are one library track ('B')") and "100.0 s" in said
    assert split_tracks([of("a", 0.0), of("b", 104.0)], starts[:2]) == []


def test_fingerprints_outlive_gc_and_go_with_the_last_library(settings: Settings, tmp_path: Path) -> None:
    store = open_store(settings)
    crate, vinyl = Library(store, "crate"), Library(store, "vinyl")
    path = tagged(tmp_path / "x.flac", track(241, 20.0), "X")
    added, _ = crate.add(path)
    vinyl.add(path)
    assert crate.search_index() is not None
    removed = store.collect_garbage(max_bytes=0, grace_sec=0, keep_stages=("fingerprint",))
    assert {r["stage"] for r in removed} == {"search_index"}  # rebuilt when needed; the fingerprint stays
    assert store.get(added.fingerprint) is not None
    crate.remove(crate.find("X"))
    assert store.get(added.fingerprint) is not None  # vinyl still holds it
    vinyl.remove(vinyl.find("X"))
    assert store.get(added.fingerprint) is None


def test_members_fingerprinted_by_older_code_are_fingerprinted_again(settings: Settings, tmp_path: Path) -> None:
    store = open_store(settings)
    library = Library(store, "crate")
    kept, gone = (
        tagged(tmp_path / "kept.flac", track(251, 20.0), "Kept"),
        tagged(tmp_path / "gone.flac", track(252, 20.0), "Gone"),
    )
    for path in (kept, gone):
        member, _ = library.add(path)
        record = f"library:crate:track:{member.digest}"
        store.index.set(record, {**store.index.get(record), "fingerprint": "0" * 32})  # as if made by other code
    gone.unlink()
    searched = library.search_index()
    assert searched is not None and [t.title for t in searched[1]] == ["Kept"]
    assert [t.fingerprint == "0" * 32 for t in sorted(library.tracks(), key=lambda t: t.title)] == [True, False]


def test_a_steady_part_shorter_than_a_second_gives_no_quads() -> None:
    from offbeat.library import window_quads

    audio = track(261, 10.0)
    assert len(window_quads(audio, SR, [(2.0, 2.5)]).root_sec) == 0
    assert len(window_quads(audio, SR, [(2.0, 2.5), (3.0, 9.0)]).root_sec) > 0
