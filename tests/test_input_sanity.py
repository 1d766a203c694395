"""Input sanity (issue 14, cases 4 and 7): audio that cannot be real is refused with its own code, a truncated
file is analyzed with a warning, and limits are settings. Real files, decoded by the real decode stage, read
through the opened-file path the flow uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from offbeat.contract import Job
from offbeat.errors import AnalysisError, ErrorCode
from offbeat.paths import open_job_source
from offbeat.pipeline import registry
from offbeat.pipeline.runner import Run
from offbeat.settings import Settings
from offbeat.storage import ArtifactStore

from .audio_files import write_samples


def tone(seconds: float, rate: int = 44100) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * 2, axis=1).astype(np.float32)


def decode(tmp_path: Path, name: str, settings: Settings | None = None) -> dict[str, object]:
    """The decode entry's attributes, the file opened as a job would open it."""
    source = open_job_source(Job(job_id=1, relative_path=name), tmp_path)
    try:
        run = Run(ArtifactStore(tmp_path / "artifacts", tmp_path / "index"), settings or Settings(), source.path)
        ref = run.stage("decode", {})
        return dict(run.store.get(ref.key).attrs)  # type: ignore[union-attr]
    finally:
        source.close()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_samples_that_are_not_numbers_are_corrupt_audio(tmp_path: Path, bad: float) -> None:
    data = tone(3.0)
    data[50_000:50_010] = bad
    write_samples(tmp_path / "nan.wav", data, 44100, subtype="FLOAT")
    with pytest.raises(AnalysisError) as caught:
        decode(tmp_path, "nan.wav")
    assert caught.value.code is ErrorCode.CORRUPT_AUDIO and "not numbers" in caught.value.message


@pytest.mark.parametrize("rate", [1, 100, 1_000_000])
def test_impossible_sample_rates_are_refused(tmp_path: Path, rate: int) -> None:
    write_samples(tmp_path / "odd.wav", tone(1.0, 1000)[:600], rate)  # 600 frames at 1 Hz: a "600 s" mix
    with pytest.raises(AnalysisError) as caught:
        decode(tmp_path, "odd.wav")
    assert caught.value.code is ErrorCode.CORRUPT_AUDIO and f"{rate} Hz" in caught.value.message


def test_audio_over_the_length_limit_is_refused(tmp_path: Path) -> None:
    write_samples(tmp_path / "long.wav", tone(5.0), 44100)
    with pytest.raises(AnalysisError) as caught:
        decode(tmp_path, "long.wav", Settings(max_audio_sec=4.0))
    assert caught.value.code is ErrorCode.AUDIO_TOO_LONG and not caught.value.retryable
    assert decode(tmp_path, "long.wav", Settings(max_audio_sec=6.0))["duration_sec"] == pytest.approx(5.0)


def test_a_truncated_mp3_completes_with_a_warning(tmp_path: Path) -> None:
    sf.write(str(tmp_path / "full.mp3"), tone(20.0), 44100, format="MP3")
    whole = (tmp_path / "full.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(whole[: len(whole) // 5])
    assert decode(tmp_path, "full.mp3")["warnings"] == []
    attrs = decode(tmp_path, "cut.mp3")
    assert attrs["duration_sec"] < 6.0
    (warning,) = attrs["warnings"]  # type: ignore[misc]
    assert "shorter than its header says" in warning and "20.0 s declared" in warning


def test_trim_gates_separation() -> None:
    """Case 8: `separate` waits for `trim` (without reading it, so the stems keep their key), so silent audio
    (refused by trim) is never separated: the flow submits a step only once its inputs and `after` are done."""
    separate = registry.STAGES["separate"]
    assert "trim" in separate.after and "trim" not in separate.inputs
    assert "separate" not in registry.dependents({"trim"})
    with pytest.raises(ValueError, match="waits for"):
        registry.check_graph((registry.STAGES["decode"], separate))
