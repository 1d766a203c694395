"""The analysis flow through a real Prefect API: results, caching, refresh, bad input."""

import typing
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from offbeat.pipeline import registry as stages
from offbeat.settings import Settings

from .audio_files import write_samples, write_wav

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]
ALL_STAGES = set(stages.STAGES) | {"export_stems"}


def run(**params):
    from flows.analyze import analyze_mix

    state = analyze_mix(return_state=True, **params)
    return state, state.result(raise_on_failure=False)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".mp3"])
def test_completed_result_then_cache_hit(settings: Settings, tmp_path: Path, suffix: str) -> None:
    path = write_wav(tmp_path / f"mix{suffix}", seconds=8.0, lead=1.25, tail=0.5)
    state, doc = run(source=str(path))
    assert state.is_completed() and doc["status"] == "completed"
    glob = doc["results"]["global"]
    lossy = suffix in (".ogg", ".mp3")  # codec padding and pre-echo blur the edges by a few ms
    assert glob["duration_sec"] == pytest.approx(9.75, abs=0.1 if lossy else 0.01)
    assert glob["trimmed_start_sec"] == pytest.approx(1.25, abs=0.06 if lossy else 0.03)
    assert glob["trimmed_end_sec"] == pytest.approx(0.5, abs=0.1 if lossy else 0.03)
    assert doc["engine"]["cached_stages"] == []
    assert set(doc["engine"]["timings_sec"]) == ALL_STAGES | {"total"}

    _, again = run(source=str(path))
    assert set(again["engine"]["cached_stages"]) == ALL_STAGES
    assert again["results"] == doc["results"]
    assert again["engine"]["analysis_id"] == doc["engine"]["analysis_id"]
    assert again["engine"]["timings_sec"]["decode"] < doc["engine"]["timings_sec"]["decode"]


def test_refresh_recomputes_the_stage_and_its_dependents(settings: Settings, tmp_path: Path) -> None:
    path = write_wav(tmp_path / "mix.wav", seconds=4.0)
    run(source=str(path))
    _, trim_only = run(source=str(path), refresh=["trim"])
    cached = {"decode", "activations", "separate", "envelopes", "export_stems"}
    assert set(trim_only["engine"]["cached_stages"]) == cached
    _, everything = run(source=str(path), refresh=["decode"])
    assert everything["engine"]["cached_stages"] == []
    # The parameter is typed with the stage names (the UI offers them as choices): others are refused.
    state, _ = run(source=str(path), refresh=["nonsense"])
    assert state.is_failed() and "refresh" in state.message and "track_features" in state.message


def test_stage_names_of_the_flow_parameter_are_the_stages() -> None:
    assert set(typing.get_args(stages.StageName)) == set(stages.STAGES)


def test_parameter_change_recomputes(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from offbeat.settings import get_settings

    path = write_wav(tmp_path / "mix.wav", seconds=4.0)
    _, before = run(source=str(path))
    monkeypatch.setenv("OFFBEAT_SILENCE_THRESHOLD_DB", "-50")
    get_settings.cache_clear()
    _, doc = run(source=str(path))
    # The threshold shapes trim and the beat stages; decode, activations, separation and envelopes are read back,
    # and so is `identify`, which reads only the track list, where no track moved.
    spans = [[(t["start_time_sec"], t["end_time_sec"]) for t in d["results"]["tracks"]] for d in (before, doc)]
    assert spans[0] == spans[1]
    assert set(doc["engine"]["cached_stages"]) == {
        "decode",
        "activations",
        "separate",
        "envelopes",
        "export_stems",
        "identify",
    }


def _silence(p: Path) -> Path:
    return write_samples(p, np.zeros((44100 * 3, 2), np.float32), 44100)


def _short(p: Path) -> Path:
    return write_samples(p, 0.3 * np.ones((22050, 2), np.float32), 44100)


def _truncated(p: Path) -> Path:
    full = write_wav(p.with_name("full.wav"), seconds=4.0)
    p.write_bytes(full.read_bytes()[:50000])
    return p


@pytest.mark.parametrize(
    ("make", "code", "stage"),
    [
        (lambda p: p, "file_not_found", "intake"),  # the file is opened once, before the stages (issue 14)
        (lambda p: (p.mkdir(), p)[1], "invalid_path", "intake"),
        (lambda p: (p.write_bytes(b""), p)[1], "unsupported_audio", "decode"),
        (lambda p: (p.write_bytes(bytes(range(256)) * 64), p)[1], "unsupported_audio", "decode"),
        (_truncated, "corrupt_audio", "decode"),
        (_silence, "silent_audio", "trim"),
        (_short, "audio_too_short", "decode"),
    ],
)
def test_bad_input_gives_a_failed_result(settings: Settings, tmp_path: Path, make, code: str, stage: str) -> None:
    path = make(tmp_path / "input.wav")
    state, doc = run(source=str(path), job_id=9)
    assert state.is_failed()
    assert doc["status"] == "failed" and doc["job_id"] == 9
    assert doc["error_code"] == code and doc["stage"] == stage
    assert "Traceback" not in doc["error"] and doc["error"]


def test_jobs_are_confined_to_the_shared_mount(settings: Settings, tmp_path: Path) -> None:
    inside = write_wav(settings.shared_mount_path / "mixes" / "a.wav", seconds=3.0)
    _, doc = run(job={"job_id": 5, "relative_path": "mixes/a.wav"})
    assert doc["status"] == "completed" and doc["job_id"] == 5
    assert sf.info(str(inside)).duration == pytest.approx(4.5)
    write_wav(tmp_path / "outside.wav", seconds=3.0)
    _, refused = run(job={"job_id": 6, "relative_path": "../outside.wav"})
    assert refused["error_code"] == "invalid_path" and refused["job_id"] == 6
    _, invalid = run(job={"job_id": "6", "relative_path": "mixes/a.wav"})
    assert invalid["error_code"] == "invalid_job"


def test_an_internal_fault_is_a_retryable_failed_result(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from offbeat.settings import get_settings

    path = write_wav(tmp_path / "mix.wav", seconds=3.0)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the artifact store should be")
    monkeypatch.setenv("OFFBEAT_ARTIFACT_STORE", str(blocker))
    get_settings.cache_clear()
    state, doc = run(source=str(path), job_id=3)
    assert state.is_failed()
    assert doc["error_code"] == "internal" and doc["retryable"] is True and doc["stage"] == "decode"
