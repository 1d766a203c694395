import os
from pathlib import Path

import pytest

from offbeat.contract import Job
from offbeat.errors import AnalysisError, ErrorCode
from offbeat.paths import relative_to_mount, resolve_job_source


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    root = tmp_path / "mount"
    (root / "mixes").mkdir(parents=True)
    (root / "mixes" / "set.wav").write_bytes(b"x")
    (tmp_path / "secret.wav").write_bytes(b"x")
    os.symlink(tmp_path / "secret.wav", root / "mixes" / "escape.wav")
    os.symlink(root / "mixes" / "set.wav", root / "mixes" / "inside.wav")
    return root


def test_paths_inside_the_mount_resolve(mount: Path) -> None:
    assert resolve_job_source(Job(job_id=1, relative_path="mixes/set.wav"), mount) == mount / "mixes" / "set.wav"
    assert resolve_job_source(Job(job_id=1, relative_path="mixes/inside.wav"), mount).name == "set.wav"
    legacy = Job(job_id=1, file_path=str(mount / "mixes" / "set.wav"))
    assert resolve_job_source(legacy, mount) == mount / "mixes" / "set.wav"
    assert relative_to_mount(mount / "mixes" / "set.wav", mount) == "mixes/set.wav"
    assert relative_to_mount(mount.parent / "secret.wav", mount) is None


@pytest.mark.parametrize(
    "job",
    [
        {"relative_path": "../secret.wav"},
        {"relative_path": "mixes/../../secret.wav"},
        {"relative_path": "/etc/passwd"},
        {"relative_path": "mixes/escape.wav"},
        {"file_path": "/etc/passwd"},
        {"file_path": "relative/set.wav"},
    ],
)
def test_paths_leading_out_are_refused(mount: Path, job: dict[str, str]) -> None:
    with pytest.raises(AnalysisError) as caught:
        resolve_job_source(Job(job_id=1, **job), mount)
    assert caught.value.code is ErrorCode.INVALID_PATH


def test_file_path_through_symlink_out_is_refused(mount: Path) -> None:
    with pytest.raises(AnalysisError) as caught:
        resolve_job_source(Job(job_id=1, file_path=str(mount / "mixes" / "escape.wav")), mount)
    assert caught.value.code is ErrorCode.INVALID_PATH
