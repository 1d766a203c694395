"""The library's search index in segments (`offbeat.library`): adds write small segments, segments merge
log-structured, removed tracks are tombstones until a merge drops them, and whatever the segments, the index a
search gets is the one a single build over every member gives; two processes adding at once leave every track
searchable."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from offbeat.dsp import fingerprint as fp
from offbeat.dsp import matching
from offbeat.dsp.index_merge import merge_indexes
from offbeat.library import Library, merge_plan, read_quads
from offbeat.library import segments as module
from offbeat.settings import Settings, get_settings
from offbeat.storage import open_store

from .test_fingerprint import SR, track
from .test_library import tagged


def same_index(a: fp.Index, b: fp.Index) -> bool:
    """Row for row the same index (keys, track ids, every quad field)."""
    return (
        np.array_equal(a.keys, b.keys)
        and np.array_equal(a.track, b.track)
        and a.track.dtype == b.track.dtype
        and all(np.array_equal(getattr(a.quads, f.name), getattr(b.quads, f.name)) for f in fields(fp.Quads))
    )


def one_build(library: Library) -> fp.Index:
    """The index one build over every member's fingerprint gives (track ids in digest order)."""
    members = library.tracks()
    return fp.build_index({n: read_quads(library.store.get(t.fingerprint)) for n, t in enumerate(members)})


def test_merged_parts_are_the_index_one_build_gives() -> None:
    """Parts holding tracks in any grouping, ids mapped anyhow and some tracks dropped: merged, the index
    `build_index` makes of the tracks kept under their new ids."""
    quads = {n: fp.reference_fingerprint(track(400 + n, 8.0), SR) for n in range(6)}
    groups = [[4, 0], [2], [5, 1, 3]]  # in no order
    parts = [(fp.build_index({k: quads[t] for k, t in enumerate(g)}), np.array(g)) for g in groups]
    assert same_index(merge_indexes(parts), fp.build_index(quads))
    dropped = [(index, np.where(ids == 1, -1, ids - (ids > 1))) for index, ids in parts]  # track 1 left out
    kept = {n - (n > 1): q for n, q in quads.items() if n != 1}
    assert same_index(merge_indexes(dropped), fp.build_index(kept))
    ordered = [[0, 1, 2, 4], [5], [3]]  # the largest part holds most rows, its ids in order: the rest slot in
    parts = [(fp.build_index({k: quads[t] for k, t in enumerate(g)}), np.array(g)) for g in ordered]
    assert same_index(merge_indexes(parts), fp.build_index(quads))
    dropped = [(index, np.where(ids == 2, -1, ids - (ids > 2))) for index, ids in parts]  # one of the largest's
    assert same_index(merge_indexes(dropped), fp.build_index({n - (n > 2): q for n, q in quads.items() if n != 2}))
    (whole,) = [(fp.build_index(quads), np.arange(6))]
    assert same_index(merge_indexes([whole]), fp.build_index(quads))  # one part in order: no sort needed
    assert len(merge_indexes([(whole[0], np.full(6, -1))]).keys) == 0


def test_merge_plan_is_log_structured() -> None:
    assert merge_plan([(1, 1)] * 9, 10) == []  # nine small segments wait for a tenth
    assert merge_plan([(1, 1)] * 10, 10) == [list(range(10))]
    # ten small ones make one of tier 1, which fills tier 1 with the nine there: all merge into one
    assert merge_plan([(10, 10)] * 9 + [(1, 1)] * 10, 10) == [list(range(19))]
    assert merge_plan([(100, 100), (1, 1), (1, 1), (1, 1)], 3) == [[1, 2, 3]]
    assert merge_plan([(100, 300), (1, 1)], 3) == [[0]]  # two thirds tombstones: rewritten alone
    sizes = []  # a library growing one track an add: few segments, and few rewrites of each track
    for _ in range(500):
        sizes.append(1)
        for group in merge_plan([(s, s) for s in sizes], 4):
            sizes = [s for n, s in enumerate(sizes) if n not in group] + [sum(sizes[n] for n in group)]
    assert sum(sizes) == 500 and len(sizes) <= 3 * 5


def test_adds_write_segments_that_search_as_one_index(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One track an add: each add indexes its own track into a segment (no rebuild), segments merge three of a
    tier at a time; the search's index is exactly one build over every member, before and after merges, with a
    removed track left out (a tombstone) until a merge rewrites its segment."""
    monkeypatch.setenv("OFFBEAT_LIBRARY_MERGE_FACTOR", "3")
    get_settings.cache_clear()
    store = open_store(settings)
    library = Library(store, "crate", settings=get_settings())
    paths = [tagged(tmp_path / f"{n}.flac", track(410 + n, 8.0), f"T{n}") for n in range(5)]
    updates = []
    for path in paths:
        library.add(path)
        updates.append(library.update_index())
    assert [u.indexed for u in updates] == [1] * 5
    assert [u.segments for u in updates] == [1, 2, 1, 2, 3]  # the third add merged three one-track segments
    assert sorted(len(s.tracks) for s in library.segments()) == [1, 1, 3]
    module._LOADED.clear()
    searched = library.search_index()
    assert searched is not None and searched[1] == library.tracks()
    assert same_index(searched[0], one_build(library))
    assert library.update_index().indexed == 0  # nothing new

    gone = next(t for t in library.tracks() if t.title == "T1")  # in the three-track segment
    library.remove([gone])
    module._LOADED.clear()
    searched = library.search_index()
    assert searched is not None and gone not in searched[1] and same_index(searched[0], one_build(library))
    assert sorted(len(s.tracks) for s in library.segments()) == [1, 1, 3]  # a tombstone, not yet dropped
    library.remove(library.find("T0"))  # one track searched in it now: in tier 0 with the two others
    update = library.update_index()
    assert update.merged == 3 and [len(s.tracks) for s in library.segments()] == [3]  # tombstones dropped
    assert all(set(s.tracks) <= {t.digest for t in library.tracks()} for s in library.segments())
    module._LOADED.clear()
    searched = library.search_index()
    assert searched is not None and same_index(searched[0], one_build(library))
    assert [t.title for t in searched[1]] == [t.title for t in library.tracks()]


ADDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from offbeat.library import Library
    from offbeat.settings import get_settings
    from offbeat.storage import open_store

    me, other, *paths = sys.argv[1:]
    Path(me).touch()
    while not Path(other).exists():  # both start adding together
        time.sleep(0.01)
    library = Library(open_store(), "shared", settings=get_settings())
    for path in paths:  # one add a track, as `offbeat library add` run once per file
        library.add(Path(path))
        library.update_index()
    """
)


@pytest.mark.slow  # two processes of their own
@pytest.mark.parametrize("index", ["disk", pytest.param("redis", marks=pytest.mark.redis)])
def test_two_processes_adding_at_once_leave_every_track_searchable(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, index: str
) -> None:
    """Two processes add tracks to one library at once, each indexing and merging as it goes (merge factor 2: a
    merge after nearly every add), sharing the store's local index or, as hosts do, a Redis one: afterwards every
    member is in a recorded segment (nothing is left for the search to index), and a search finds each track from
    an excerpt."""
    if index == "redis":
        monkeypatch.setenv("OFFBEAT_INDEX_URL", request.getfixturevalue("redis_url"))
        get_settings.cache_clear()
        settings = get_settings()
    audio = {n: track(420 + n, 10.0) for n in range(8)}
    paths = {n: tagged(tmp_path / f"{n}.flac", y, f"T{n}") for n, y in audio.items()}
    env = {**os.environ, "OFFBEAT_LIBRARY_MERGE_FACTOR": "2"}
    ready = [tmp_path / "ready-a", tmp_path / "ready-b"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ADDER, str(ready[k]), str(ready[1 - k]), *(str(paths[n]) for n in range(k, 8, 2))],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in (0, 1)
    ]
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    store = open_store(settings)
    library = Library(store, "shared", settings=get_settings())
    members = library.tracks()
    assert sorted(t.title for t in members) == [f"T{n}" for n in range(8)]
    _, uncovered = library._cover(members, library.segments())
    assert uncovered == []  # the adds indexed every track themselves
    module._LOADED.clear()
    searched = library.search_index()
    assert searched is not None and same_index(searched[0], one_build(library))
    index, found = searched
    for n, y in audio.items():
        match = matching.identify(index, fp.fingerprint(y[2 * SR : 8 * SR], SR))
        assert match is not None and found[match.track].title == f"T{n}"
