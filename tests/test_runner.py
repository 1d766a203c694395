"""The stage runner without Prefect or TensorFlow: entries computed once, read back, refreshed, refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from offbeat import synth
from offbeat.errors import AnalysisError, ErrorCode
from offbeat.pipeline import registry
from offbeat.pipeline.runner import Run, StageRef, current_keys
from offbeat.settings import Settings
from offbeat.storage import ArtifactStore

from .audio_files import write_samples

MIX = synth.MixSpec(
    (synth.Section(50, 124.0, 110.0, True), synth.Section(50, 140.0, 146.83, False)),
    lead_silence_sec=1.5,
    tail_silence_sec=0.5,
    crossfades=(6,),
)
WITHOUT_STEMS = registry.needed_by("segment")  # no stems: separation never runs


def _run(tmp_path: Path, path: Path, **kwargs: object) -> Run:
    store = ArtifactStore(tmp_path / "artifacts", tmp_path / "index")
    return Run(store, Settings(min_track_sec=15), path, **kwargs)  # type: ignore[arg-type]


def _stages(run: Run) -> dict[str, StageRef]:
    refs: dict[str, StageRef] = {}
    for name in WITHOUT_STEMS:
        refs[name] = run.stage(name, refs)
    return refs


@pytest.fixture(scope="module")
def computed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, StageRef]]:
    """(store folder, mix, its stages as first computed): the mix's stages computed once for the module's tests
    (each run over it later finds them in the store)."""
    folder = tmp_path_factory.mktemp("runner")
    path = synth.write_mix(MIX, folder / "mix.wav")
    return folder, path, _stages(_run(folder, path))


@pytest.mark.slow  # madmom's networks over 100 s of audio
def test_stages_compute_once_then_read_back_and_refresh(computed: tuple[Path, Path, dict[str, StageRef]]) -> None:
    tmp_path, path, first = computed
    assert not any(ref.cached for ref in first.values())
    again = _stages(_run(tmp_path, path))
    assert all(ref.cached for ref in again.values())
    assert {n: r.key for n, r in again.items()} == {n: r.key for n, r in first.items()}
    keys = current_keys(_run(tmp_path, path).store, first["decode"].source, Settings(min_track_sec=15))
    assert {n: keys[n] for n in WITHOUT_STEMS} == {n: r.key for n, r in first.items()}

    refreshed = _stages(_run(tmp_path, path, refresh=frozenset({"beats", "segment"})))
    cached = ["decode", "trim", "activations", "envelopes", "description", "library_plays", "partition"]  # read back
    assert [n for n, r in refreshed.items() if r.cached] == cached
    assert refreshed["segment"].key == first["segment"].key  # same inputs and code: the same entry again

    segment = _run(tmp_path, path).store.get(first["segment"].key)
    assert segment is not None and len(segment.attrs["starts"]) == 2
    assert abs(segment.attrs["starts"][1] - MIX.boundaries()[0]) < 10


@pytest.mark.slow  # madmom's networks over 100 s of audio (computed once, with the test above)
def test_cue_hints_are_part_of_the_segment_key(computed: tuple[Path, Path, dict[str, StageRef]]) -> None:
    tmp_path, path, _ = computed
    plain = _stages(_run(tmp_path, path))
    hinted = _stages(_run(tmp_path, path, cues=[("A", 0.0), ("B", 21.0)]))
    assert hinted["beats"].key == plain["beats"].key and hinted["beats"].cached
    assert hinted["segment"].key != plain["segment"].key and not hinted["segment"].cached
    # Cue hints change the track list alone: the description and the partition found in it are read back.
    assert all(hinted[n].key == plain[n].key and hinted[n].cached for n in ("description", "partition"))
    segment = _run(tmp_path, path).store.get(hinted["segment"].key)
    assert segment is not None and segment.attrs["titles"] == ["A", "B"]
    _the_picture_shows_the_evidence_the_cut_was_found_in(_run(tmp_path, path), plain)


def _the_picture_shows_the_evidence_the_cut_was_found_in(run: Run, refs: dict[str, StageRef]) -> None:
    """The partition keeps its self-similarity for the picture: within each track alike, across the cut not; the
    picture draws it with the cut and its confidence."""
    from flows import report

    entries = {name: run.store.get(ref.key) for name, ref in refs.items()}
    partition = entries["partition"]
    assert partition is not None
    (cut,) = partition["times"][...]
    similarity = partition["similarity"][...].astype(float)
    at = round((cut - partition.attrs["similarity_start_sec"]) / partition.attrs["similarity_step_sec"])
    within = min(similarity[:at, :at].mean(), similarity[at:, at:].mean())
    assert similarity[:at, at:].mean() < 0.5 * within
    tracks = [
        {"start_time_sec": a, "end_time_sec": b, "analysis": {}}
        for a, b in zip(entries["segment"].attrs["starts"], entries["segment"].attrs["ends"], strict=True)
    ]
    document = {"results": {"tracks": tracks, "global": {"duration_sec": entries["decode"].attrs["duration_sec"]}}}
    png = report.mix_picture(entries, document)
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_refusals_name_their_stage(tmp_path: Path) -> None:
    silent = write_samples(tmp_path / "silent.wav", np.zeros((44100 * 3, 2), np.float32), 44100)
    with pytest.raises(AnalysisError) as refused:
        _stages(_run(tmp_path, silent))
    assert refused.value.code == ErrorCode.SILENT_AUDIO and refused.value.stage == "trim"
    with pytest.raises(AnalysisError) as missing:
        _stages(_run(tmp_path, tmp_path / "nothing.wav"))
    assert missing.value.code == ErrorCode.FILE_NOT_FOUND and missing.value.stage == "decode"
    short = write_samples(tmp_path / "short.wav", 0.3 * np.ones((22050, 2), np.float32), 44100)
    run = _run(tmp_path, short)
    with pytest.raises(AnalysisError) as too_short:
        run.stage("decode", {})
    assert too_short.value.code == ErrorCode.AUDIO_TOO_SHORT and too_short.value.stage == "decode"
