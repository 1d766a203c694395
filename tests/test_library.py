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
from offbeat.settings import Settings
from offbeat.storage import ArtifactStore, open_store

from .test_fingerprint import SR, track

OFFBEAT = str(Path(sys.executable).with_name("offbeat"))
BEFORE = ("decode", "trim", "activations", "envelopes", "beats", "description", "library_plays", "partition", "segment")


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
    assert first["reference_origin_sec"] == pytest.approx(-8.0 / 1.04, abs=0.5)  # before the mix began
    assert 30.0 < first["reference_played_sec"] <= 40.0 + 2.0  # 40 s of A played, some of the blend around it
    assert first["reference_played_share"] == pytest.approx(first["reference_played_sec"] / 50.0, abs=0.01)
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
    from offbeat.library import segments
    from offbeat.storage.redis_index import RedisIndex

    data = tmp_path / "artifacts"
    here = Library(ArtifactStore(data, RedisIndex(redis_url), host="here"), "shared")
    there = Library(ArtifactStore(data, RedisIndex(redis_url), host="there"), "shared")
    assert there.revision() == "" and there.search_index() is None
    _, new = here.add(tagged(tmp_path / "x.flac", track(221, 30.0), "Across"))
    assert new and [t.title for t in there.tracks()] == ["Across"] and there.revision() == here.revision()
    built = here.search_index()
    segments._LOADED.clear()  # as in another process: read back from the store
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
    # the library shapes the track list now: what it found no longer anchors the boundaries; the mix's
    # description, which no library shapes, is read back
    assert "identify" not in empty["engine"]["cached_stages"] and "description" in empty["engine"]["cached_stages"]


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


def test_where_the_reference_starts_in_the_mix_and_how_much_of_it_is_played() -> None:
    """On a play's line (reference time = offset + ratio x mix time): the reference's own start falls where that
    time is 0, and a track plays the reference from its start's reference time to its end's, within its length."""
    from offbeat.pipeline.stages.identify import described

    play = {"track": "t", "title": "T", "artist": "", "confidence": 0.9, "tempo_ratio": 1.04}
    play |= {"pitch_shift_semitones": 0.68, "offset_sec": 8.0 - 1.04 * 100, "duration_sec": 50.0}
    said = described(play, 100.0, 130.0, "crate")  # the mix reaches the reference's 8th second at 100 s
    assert said["reference_start_sec"] == pytest.approx(8.0)
    assert said["reference_origin_sec"] == pytest.approx(100 - 8 / 1.04, abs=0.01)
    assert said["reference_played_sec"] == pytest.approx(30 * 1.04, abs=0.01)
    assert said["reference_played_share"] == pytest.approx(30 * 1.04 / 50, abs=0.001)
    whole = described(play, 80.0, 200.0, "crate")  # from before the reference's start to after its end
    assert whole["reference_played_sec"] == 50.0 and whole["reference_played_share"] == 1.0


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


def test_a_member_whose_fingerprint_is_gone_is_fingerprinted_again_or_left_out(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Fingerprint entries deleted from the store: the member whose file is there is fingerprinted again when the
    search index is built, the other is left out with a warning (no failure of the analysis); adding its file again
    makes it searchable (not "already in the library")."""
    store = open_store(settings)
    library = Library(store, "crate")
    kept, gone = (
        tagged(tmp_path / "kept.flac", track(271, 20.0), "Kept"),
        tagged(tmp_path / "gone.flac", track(272, 20.0), "Gone"),
    )
    members = {path.stem: library.add(path)[0] for path in (kept, gone)}
    for member in members.values():
        store.invalidate(member.fingerprint)
    moved = gone.rename(tmp_path / "elsewhere.flac")
    with caplog.at_level("WARNING", logger="offbeat.library"):
        searched = library.search_index()
    assert searched is not None and [t.title for t in searched[1]] == ["Kept"]
    assert store.get(members["kept"].fingerprint) is not None  # made again from its file
    assert "'Gone' has no fingerprint in the store" in caplog.text
    assert store.get(members["gone"].fingerprint) is None

    again, new = library.add(moved)
    assert not new and store.get(again.fingerprint) is not None and again.title == "Gone"
    searched = library.search_index()
    assert searched is not None and sorted(t.title for t in searched[1]) == ["Gone", "Kept"]


def damage(store: ArtifactStore, key: str) -> None:
    """A byte flipped in the middle of every chunk of the entry `key` (each then fails its checksum)."""
    record = store.index.get(f"entry:{key}")
    chunks = [p for p in (Path(store.root) / record["data"]).rglob("*") if p.is_file() and "c" in p.parts]
    assert chunks
    for chunk in chunks:
        raw = bytearray(chunk.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        chunk.write_bytes(bytes(raw))


def test_damaged_library_entries_heal_within_one_search(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A damaged search index is forgotten and built again; damaged fingerprints under it are forgotten and made
    again from their files (the member whose file is gone is left out): in one call, with the index the same."""
    from offbeat.library import segments as module

    store = open_store(settings)
    library = Library(store, "crate")
    paths = [tagged(tmp_path / f"{n}.flac", track(280 + n, 20.0), f"T{n}") for n in range(3)]
    members = [library.add(path)[0] for path in paths]
    built = library.search_index()
    assert built is not None
    index_key = next(r["key"] for r in store.entries() if r["stage"] == "search_index")

    damage(store, index_key)
    module._LOADED.clear()  # as in another process: read from the store
    with caplog.at_level("WARNING", logger="offbeat.library"):
        healed = library.search_index()
    assert healed is not None and np.array_equal(healed[0].keys, built[0].keys) and healed[1] == built[1]
    assert "the stored search index was damaged" in caplog.text

    damage(store, index_key)
    for member in members:
        damage(store, member.fingerprint)
    paths[2].unlink()
    module._LOADED.clear()
    caplog.clear()
    with caplog.at_level("WARNING", logger="offbeat.library"):
        healed = library.search_index()
    assert healed is not None and [t.title for t in healed[1]] == ["T0", "T1"]
    assert all(store.verify(m.fingerprint) for m in members[:2]) and store.get(members[2].fingerprint) is None
    (said,) = [r.message for r in caplog.records if "fingerprint of" in r.message]  # all three in one pass
    assert all(f"'T{n}'" in said for n in range(3)) and "'T2' has no fingerprint" in caplog.text
    assert store.verify(index_key) is False  # a library of two now: another index
    assert len([r for r in store.entries() if r["stage"] == "search_index"]) == 1


def test_add_refuses_what_the_engine_refuses(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """References pass the intake checks of a job's audio (`offbeat.pipeline.intake`), with the same error codes: each
    refused file is reported and skipped, the exit status is 1, and only the good file is a member."""
    monkeypatch.setenv("OFFBEAT_MAX_AUDIO_SEC", "30")
    good = track(291, 20.0)
    nan = good.copy()
    nan[5000:5010] = np.nan
    files = {
        "nan.wav": (nan, SR, "FLOAT"),
        "silence.wav": (np.zeros(20 * SR, np.float32), SR, "FLOAT"),
        "rate1000.wav": (good[: 20 * 1000], 1000, None),
        "rate20.wav": (good[:1200], 20, None),  # 1200 frames at 20 Hz: "60 s"
        "loud.wav": (good / np.abs(good).max() * 300, SR, "FLOAT"),
        "long.wav": (np.tile(good, 2), SR, None),  # 40 s, over OFFBEAT_MAX_AUDIO_SEC
    }
    for name, (data, rate, subtype) in files.items():
        sf.write(str(tmp_path / name), data, rate, subtype=subtype)
    tagged(tmp_path / "good.flac", good, "Good")

    added = offbeat("library", "add", str(tmp_path))
    assert added.returncode == 1, added.stderr
    said = {
        line.split(": not added ")[0].rsplit("/", 1)[1]: line
        for line in added.stderr.splitlines()
        if "not added" in line
    }
    assert sorted(said) == sorted(files), added.stderr
    expected = {
        "nan.wav": "[corrupt_audio] the audio holds samples that are not numbers",
        "silence.wav": "[silent_audio] the audio is silent",
        "rate1000.wav": "[corrupt_audio] the file claims a sample rate of 1000 Hz",
        "rate20.wav": "[corrupt_audio] the file claims a sample rate of 20 Hz",
        "loud.wav": "[corrupt_audio] the audio's samples reach 300",
        "long.wav": "[audio_too_long] audio is over 40 s long; at most 30 s is analyzed",
    }
    for name, start in expected.items():
        assert f": not added {start}" in said[name], said[name]
    tracks = json.loads(offbeat("library", "ls", "--json").stdout)
    assert [(t["title"], t["quads"] > 100) for t in tracks] == [("Good", True)]


def test_a_path_added_relative_is_kept_absolute(settings: Settings, tmp_path: Path) -> None:
    """`library add refs/x.flac` run in one folder keeps where the file is, not what was typed: the member is
    fingerprinted again (after a code change) from a process in another working directory, and removed by the
    relative path from the folder it was added in."""
    here = tmp_path / "here"
    (here / "refs").mkdir(parents=True)
    tagged(here / "refs" / "x.flac", track(301, 20.0), "X")
    added = subprocess.run(
        [OFFBEAT, "library", "add", "refs/x.flac"], capture_output=True, text=True, env=dict(os.environ), cwd=here
    )
    assert added.returncode == 0, added.stderr
    store = open_store(settings)
    library = Library(store, settings.library)
    (member,) = library.tracks()
    assert member.path == str(here / "refs" / "x.flac")
    record = f"library:{settings.library}:track:{member.digest}"
    store.index.set(record, {**store.index.get(record), "fingerprint": "0" * 32})  # as if made by older code
    assert Path.cwd() != here
    searched = library.search_index()
    assert searched is not None and [t.title for t in searched[1]] == ["X"]  # fingerprinted again, not dropped
    removed = subprocess.run(
        [OFFBEAT, "library", "rm", "refs/x.flac"], capture_output=True, text=True, env=dict(os.environ), cwd=here
    )
    assert removed.returncode == 0, removed.stderr
    assert library.tracks() == []


def test_ls_escapes_tag_text(settings: Settings, tmp_path: Path) -> None:
    """A title holding an escape sequence (one that sets the terminal's title) and a line break (a forged row) is
    printed escaped by `library ls`, as `library add` prints it."""
    evil = "Nice\x1b]0;owned\x07\n4c8273578df3     1.0 s  forged"
    added = offbeat("library", "add", str(tagged(tmp_path / "evil.flac", track(311, 20.0), evil, "A\x1b[31mB")))
    assert added.returncode == 0, added.stderr
    assert "\x1b" not in added.stderr
    listed = offbeat("library", "ls")
    assert listed.returncode == 0, listed.stderr
    (row,) = listed.stdout.splitlines()
    assert "\x1b" not in row and "\x07" not in row
    assert row.endswith("Nice\\x1b]0;owned\\x07\\n4c8273578df3     1.0 s  forged - A\\x1b[31mB")


@pytest.mark.parametrize("name", ["crate\n", "crate\r", "../up", "", "x" * 65])
def test_library_names_are_checked_whole(name: str) -> None:
    """A name ending in a newline passed `re.match` with `$` (which matches before a final newline): created, then
    unreachable by any command."""
    from offbeat.library import check_name

    with pytest.raises(ValueError, match="is not allowed"):
        check_name(name)
    assert check_name("crate-2.b_1") == "crate-2.b_1"


@pytest.mark.parametrize("grace", ["2s", "0", "1m"])
def test_gc_refuses_a_grace_shorter_than_the_use_time_renewal(settings: Settings, tmp_path: Path, grace: str) -> None:
    """Readers renew an entry's use time once a minute: a grace shorter than two renewals removed entries a running
    analysis was reading (a 2 s grace made a job fail). Refused, and nothing is removed."""
    store = open_store(settings)
    from offbeat.library import segments as module

    Library(store, "crate").add(tagged(tmp_path / "x.flac", track(321, 20.0), "X"))
    module._LOADED.clear()  # built into this store, not found in memory from another test's
    Library(store, "crate").search_index()
    done = subprocess.run(
        [OFFBEAT, "cache", "gc", "--max-size", "0", "--grace", grace],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    assert done.returncode == 2 and "is too short" in done.stderr and "at least 120s" in done.stderr
    assert any(r["stage"] == "search_index" for r in store.entries())
    kept = subprocess.run(
        [OFFBEAT, "cache", "gc", "--max-size", "0", "--grace", "2m"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    assert kept.returncode == 0 and kept.stdout.startswith("removed 0 entries"), kept.stderr
