"""Hostile jobs through a real `offbeat listen` (issue 14, cases 4, 5, 7, 8): each is classified (never
`internal`/retryable), answered in a bounded document, and silent audio is never separated."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from .audio_files import write_samples, write_wav
from .fleet import Fleet

pytestmark = pytest.mark.slow


def test_hostile_jobs_are_classified_and_bounded(fleet: Fleet) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    mount = fleet.mount
    write_wav(mount / "good.wav", seconds=3.0)
    os.symlink("loop-b", mount / "loop-a")
    os.symlink("loop-a", mount / "loop-b")
    sr = 44100
    write_samples(mount / "silence.wav", np.zeros((60 * sr, 2), np.float32), sr)
    noisy = (0.1 * np.random.default_rng(0).standard_normal((3 * sr, 2))).astype(np.float32)
    noisy[sr : sr + 5] = np.nan
    write_samples(mount / "nan.wav", noisy, sr, subtype="FLOAT")
    write_samples(mount / "offset.wav", np.full((10 * sr, 2), 0.25, np.float32), sr)  # DC offset: no sound
    t = np.arange(3 * sr) / sr
    sine = np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1).astype(np.float32)
    write_samples(mount / "loud.wav", 100 * sine, sr, subtype="FLOAT")  # +40 dBFS: measured, with a warning
    write_samples(mount / "huge.wav", 1000 * sine, sr, subtype="FLOAT")  # +60 dBFS: more than the store holds
    base = 7_000_000 + os.getpid() % 1000 * 100  # unique run names in the shared Prefect API
    cues = [{"title": f"cue {n}", "start_time_sec": 3600 + n} for n in range(3000)]  # after the end: one track
    cases: list[tuple[dict[str, object] | str, str]] = [
        ({"job_id": base + 1, "relative_path": "x" * 300 + ".wav"}, "invalid_path"),  # ENAMETOOLONG
        ('{"job_id": ' + str(base + 2) + ', "relative_path": "a\\ud800.wav"}', "invalid_path"),  # lone surrogate
        ({"job_id": base + 3, "relative_path": "loop-a"}, "invalid_path"),  # symlink loop
        ({"job_id": base + 4, "relative_path": "good.wav", "cue_tracks": cues}, ""),  # by reference, not a parameter
        ({"job_id": base + 5, "relative_path": "p/" * 250_000 + "x.wav"}, "invalid_path"),  # 500 kB path
        ({"job_id": base + 6, "relative_path": "p/" * 2_500_000}, "invalid_job"),  # 5 MB message
        ({"job_id": base + 7, "relative_path": "silence.wav"}, "silent_audio"),
        ({"job_id": base + 8, "relative_path": "nan.wav"}, "corrupt_audio"),
        ({"job_id": base + 9, "relative_path": "offset.wav"}, "silent_audio"),
        ({"job_id": base + 10, "relative_path": "loud.wav"}, ""),
        ({"job_id": base + 11, "relative_path": "huge.wav"}, "corrupt_audio"),
    ]
    worker = fleet.start("worker", OFFBEAT_MAX_CUES="5000")
    for message, _ in cases:
        fleet.push(message)
    results = fleet.results(len(cases), timeout=900, quiet=1.0)
    assert fleet.stop(worker) == 0
    assert [r["job_id"] for r in results] == [base + n for n in range(1, len(cases) + 1)]
    for result, (message, code) in zip(results, cases, strict=True):
        assert len(json.dumps(result)) < (200_000 if not code else 3000), str(message)[:100]
        if not code:
            assert result["status"] == "completed", result
            continue
        assert result["error_code"] == code and result["retryable"] is False, (str(message)[:100], result)
    assert results[6]["stage"] == results[8]["stage"] == "trim"
    (dropped,) = results[3]["engine"]["warnings"]  # the 3000 cues past the end of a 4.5 s file
    assert dropped.startswith("2999 cues ('cue 1' at 3601.0 s") and "past the end of the music" in dropped
    (loud,) = results[9]["engine"]["warnings"]
    assert "far over full scale" in loud and "+40.0 dBFS" in loud
    assert len(fleet.log("worker")) < 2_000_000  # 5.5 MB of hostile paths did not reach the log

    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"job-{base + 7}"])))
        tasks = {t.name.rsplit("-", 1)[0] for t in client.read_task_runs() if t.flow_run_id == run.id}
        (big,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"job-{base + 4}"])))
    assert "trim" in tasks and "separate" not in tasks  # silent audio is never separated
    given = {name for name, value in big.parameters.items() if value is not None}
    assert given == {"job_ref", "job_id"}  # the 3000 cues did not travel as a parameter
