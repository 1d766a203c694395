"""The global stages through the analysis flow: beat grids, BPM curve, stems, export, cache keys."""

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import mir_eval
import numpy as np
import pytest
import soundfile as sf

from offbeat import synth
from offbeat.pipeline import registry as stages
from offbeat.settings import get_settings

from .conftest import REPO

pytestmark = pytest.mark.slow  # runs flows or loads TensorFlow/Spleeter

MIX = synth.MixSpec(
    (synth.Section(24, 124.0, 110.0, True), synth.Section(24, 140.0, 146.83, False, vocals=True)),
    lead_silence_sec=2.5,
    tail_silence_sec=1.0,
)


@pytest.fixture(scope="module")
def mount(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Iterator[Path]:
    """Module-wide settings: a private store and shared mount, small separation chunks (several joins)."""
    root = tmp_path_factory.mktemp("global")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OFFBEAT_ARTIFACT_STORE", str(root / "artifacts"))
        mp.setenv("OFFBEAT_SHARED_MOUNT_PATH", str(root / "shared"))
        mp.setenv("OFFBEAT_MODEL_DIR", str(REPO / "models"))
        mp.setenv("OFFBEAT_SEPARATION_CHUNK_SEC", "12")  # one Spleeter segment per chunk
        get_settings.cache_clear()
        yield root / "shared"
    get_settings.cache_clear()


def analyze(**params: Any) -> dict[str, Any]:
    from flows.analyze import analyze_mix

    doc = analyze_mix(return_state=True, **params).result(raise_on_failure=False)
    assert doc["status"] == "completed", doc
    return doc


@pytest.fixture(scope="module")
def first_run(mount: Path) -> tuple[Path, dict[str, Any]]:
    path = synth.write_mix(MIX, mount / "sets" / "night.wav", subtype="FLOAT")
    return path, analyze(job={"job_id": 77, "relative_path": "sets/night.wav"})


@pytest.mark.accuracy
def test_beat_grids_match_the_known_beats(first_run: tuple[Path, dict[str, Any]]) -> None:
    result = first_run[1]["results"]["global"]
    reference = np.array(MIX.beats())
    grid = np.array(result["global_beat_grid_timestamps"])
    drums = np.array(result["global_drum_beat_grid_timestamps"])
    assert mir_eval.beat.f_measure(reference, grid, f_measure_threshold=0.07) >= 0.9
    assert mir_eval.beat.f_measure(reference, drums, f_measure_threshold=0.07) >= 0.9
    assert grid.min() >= MIX.lead_silence_sec - 0.05  # absolute times: the leading silence is accounted for


@pytest.mark.accuracy
def test_bpm_curve_follows_each_section(first_run: tuple[Path, dict[str, Any]]) -> None:
    curve = first_run[1]["results"]["global"]["bpm_curve"]
    assert len(curve) == int(np.ceil(MIX.duration_sec))  # one value per second
    assert curve[0] is None and curve[1] is None  # leading silence has no tempo
    for lo, hi, bpm in ((7, 22, 124.0), (32, 46, 140.0)):
        values = np.array(curve[lo:hi], dtype=float)
        assert np.max(np.abs(values / bpm - 1)) < 0.02, (bpm, values)


def test_stems_are_exported_beside_the_source(first_run: tuple[Path, dict[str, Any]], mount: Path) -> None:
    path, doc = first_run
    stems = doc["results"]["global"]["stems"]
    assert stems == {"vocals": "sets/night.stems/vocals.wav", "accompaniment": "sets/night.stems/accompaniment.wav"}
    source = sf.info(str(path))
    for relative in stems.values():
        info = sf.info(str(mount / relative))
        assert info.samplerate == 44100 and info.channels == 2 and info.frames == source.frames
        assert info.subtype == get_settings().stem_subtype
    # Together the stems give back the mix, sample-aligned. (Spleeter's masks sum to one up to 11 kHz; above,
    # its 2stems model extends them with zeros, so the hats' top octave is in neither stem: hence 15 dB.)
    mix, _ = sf.read(str(path), dtype="float32")
    total = sum(sf.read(str(mount / r), dtype="float32")[0] for r in stems.values())
    assert 10 * np.log10(np.sum(mix**2) / np.sum((total - mix) ** 2)) > 15


def test_repeat_run_reads_everything_and_keeps_exports(first_run: tuple[Path, dict[str, Any]], mount: Path) -> None:
    path, doc = first_run
    files = [mount / r for r in doc["results"]["global"]["stems"].values()]
    before = [f.stat().st_mtime_ns for f in files]
    again = analyze(job={"job_id": 77, "relative_path": "sets/night.wav"})
    assert set(again["engine"]["cached_stages"]) == set(stages.STAGES) | {"export_stems"}
    assert again["results"] == doc["results"]
    assert [f.stat().st_mtime_ns for f in files] == before  # not rewritten
    files[0].write_bytes(b"damaged")  # an export that no longer matches is written again
    repaired = analyze(source=str(path))
    assert "export_stems" not in repaired["engine"]["cached_stages"]
    assert sf.info(str(files[0])).frames == sf.info(str(path)).frames


def test_a_stage_version_bump_recomputes_it_and_its_dependents_only(
    first_run: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, doc = first_run
    monkeypatch.setitem(stages.STAGES, "beats", replace(stages.STAGES["beats"], version=99))
    bumped = analyze(source=str(path))
    # what reads the beats recomputes; the library's search reads no beats, and identify reads only the track
    # list, which the bump did not move
    assert set(bumped["engine"]["cached_stages"]) == {
        "decode",
        "trim",
        "activations",
        "separate",
        "envelopes",
        "export_stems",
        "library_plays",
        "identify",
    }
    assert (
        bumped["results"]["global"]["global_beat_grid_timestamps"]
        == doc["results"]["global"]["global_beat_grid_timestamps"]
    )


def test_refresh_of_separation_recomputes_its_dependents(first_run: tuple[Path, dict[str, Any]]) -> None:
    path, _ = first_run
    redone = analyze(source=str(path), refresh=["separate"])
    # Segmentation and identification read no stems; exports are rewritten with the new stems.
    expected = {
        "decode",
        "trim",
        "activations",
        "envelopes",
        "beats",
        "description",
        "library_plays",
        "partition",
        "segment",
        "identify",
    }
    assert set(redone["engine"]["cached_stages"]) == expected
