"""The whole-mix library search as a stage: the plays of library tracks in a mix and the handovers between them,
found before any boundary, read back while the library is unchanged, and nothing searched without a library."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from offbeat.library import Library
from offbeat.pipeline.runner import Run, StageRef
from offbeat.settings import Settings
from offbeat.storage import ArtifactStore, open_store

from .test_anchors import blend
from .test_fingerprint import SR, track
from .test_library import played, tagged


def plays(path: Path, store: ArtifactStore) -> tuple[dict, bool]:
    run = Run(store, Settings(min_track_sec=15), path)
    refs: dict[str, StageRef] = {}
    for name in ("decode", "trim", "library_plays"):
        refs[name] = run.stage(name, refs)
    entry = store.get(refs["library_plays"].key)
    assert entry is not None
    return dict(entry.attrs), refs["library_plays"].cached


def test_plays_of_library_tracks_and_their_handovers(settings: Settings, tmp_path: Path) -> None:
    a, b, c = track(221, 70.0), track(222, 70.0), track(223, 70.0)
    path = tmp_path / "mix.wav"
    audio, middles = blend([played(a[: 66 * SR], 1.04)[: 60 * SR], b[: 60 * SR], c[: 60 * SR]], 10.0)
    sf.write(str(path), audio, SR)
    store = open_store(settings)  # the settings' store: the one the stage's key reads the revision from

    empty, _ = plays(path, store)
    assert empty["plays"] == [] and empty["searched"] is False  # no library: nothing searched

    library = Library(store, settings.library, sample_rate=settings.analysis_sample_rate)
    for name, ref in (("A", a), ("B", b)):
        library.add(tagged(tmp_path / f"{name}.flac", ref, f"Track {name}"))
    found, cached = plays(path, store)
    assert not cached and found["searched"] is True
    assert [p["title"] for p in found["plays"]] == ["Track A", "Track B"]  # C is not in the library
    first, second = found["plays"]
    assert first["tempo_ratio"] == pytest.approx(1.04, abs=0.005)
    assert first["offset_sec"] == pytest.approx(0.0, abs=0.5)  # the reference's time 0 at the mix's start
    assert second["tempo_ratio"] == pytest.approx(1.0, abs=0.005)
    assert len(found["handovers"]) == 1 and abs(found["handovers"][0] - middles[0]) < 3.0, (found, middles)
    assert not any(p["start"] <= (middles[1] + 20) <= p["end"] for p in found["plays"])  # C's middle unclaimed

    assert plays(path, store)[1]  # an unchanged library: read back
    library.add(tagged(tmp_path / "C.flac", c, "Track C"))
    found, cached = plays(path, store)
    assert not cached and [p["title"] for p in found["plays"]] == ["Track A", "Track B", "Track C"]
    assert abs(found["handovers"][1] - middles[1]) < 3.0
    assert np.all(np.diff(found["handovers"]) > 0)


def test_the_boundaries_keep_each_play_whole_and_cut_at_its_handover(settings: Settings, tmp_path: Path) -> None:
    """Three library tracks blended one into the next: the partition cuts at the two handovers, within 3 s of
    the fades' middles, and nowhere inside a play; identify names each track by its play."""
    a, b, c = track(241, 70.0), track(242, 70.0), track(243, 70.0)
    path = tmp_path / "mix.wav"
    audio, middles = blend([played(a[: 66 * SR], 0.96)[: 60 * SR], b[: 60 * SR], c[: 60 * SR]], 10.0)
    sf.write(str(path), audio, SR)
    store = open_store(settings)
    library = Library(store, settings.library, sample_rate=settings.analysis_sample_rate)
    for name, ref in (("A", a), ("B", b), ("C", c)):
        library.add(tagged(tmp_path / f"{name}.flac", ref, f"Track {name}"))
    run = Run(store, Settings(min_track_sec=15), path)
    refs: dict[str, StageRef] = {}
    stages = ("decode", "trim", "activations", "envelopes", "beats", "description", "library_plays", "partition")
    for name in (*stages, "segment", "identify"):
        refs[name] = run.stage(name, refs)
    partition, identify = store.get(refs["partition"].key), store.get(refs["identify"].key)
    assert partition is not None and identify is not None
    cuts = partition["times"][...]
    assert len(cuts) == 2 and np.all(np.abs(cuts - np.array(middles)) < 3.0), (cuts, middles)
    assert np.all(partition["confidence"][...] >= 0.6)  # as sure as the plays handing over
    assert [t["title"] for t in identify.attrs["identified"]] == ["Track A", "Track B", "Track C"]
    assert identify.attrs["identified"][0]["tempo_ratio"] == pytest.approx(0.96, abs=0.005)
