"""Confinement of job paths: opened once beneath the mount, never by name again, never through a link out.

Real files, folders, symlinks and FIFOs in a temporary mount."""

import os
from pathlib import Path

import pytest

from offbeat.contract import Job
from offbeat.errors import AnalysisError, ErrorCode
from offbeat.paths import Source, atomic_file, export_dir, open_job_source, relative_to_mount


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    root = tmp_path / "mount"
    (root / "mixes").mkdir(parents=True)
    (root / "mixes" / "set.wav").write_bytes(b"inside")
    (tmp_path / "secret.wav").write_bytes(b"secret")
    os.symlink(tmp_path / "secret.wav", root / "mixes" / "escape.wav")
    os.symlink(root / "mixes" / "set.wav", root / "mixes" / "inside.wav")
    os.symlink("../mixes/set.wav", root / "mixes" / "relative.wav")
    os.symlink(tmp_path, root / "out")  # a folder link leading out
    os.symlink("loop-b", root / "loop-a")
    os.symlink("loop-a", root / "loop-b")
    os.mkfifo(root / "mixes" / "pipe.wav")
    return root


def content(source: Source) -> bytes:
    try:
        return source.path.read_bytes()
    finally:
        source.close()


def test_paths_inside_the_mount_open(mount: Path) -> None:
    for name in ("mixes/set.wav", "mixes/inside.wav", "mixes/relative.wav", "./mixes/../mixes/set.wav"):
        assert content(open_job_source(Job(job_id=1, relative_path=name), mount)) == b"inside", name
    legacy = Job(job_id=1, file_path=str(mount / "mixes" / "set.wav"))
    assert content(open_job_source(legacy, mount)) == b"inside"
    assert relative_to_mount(mount / "mixes" / "set.wav", mount) == "mixes/set.wav"
    assert relative_to_mount(mount.parent / "secret.wav", mount) is None


@pytest.mark.parametrize(
    ("job", "code"),
    [
        ({"relative_path": "../secret.wav"}, ErrorCode.INVALID_PATH),
        ({"relative_path": "mixes/../../secret.wav"}, ErrorCode.INVALID_PATH),
        ({"relative_path": "/etc/passwd"}, ErrorCode.INVALID_PATH),
        ({"relative_path": "mixes/escape.wav"}, ErrorCode.INVALID_PATH),
        ({"relative_path": "out/secret.wav"}, ErrorCode.INVALID_PATH),
        ({"file_path": "/etc/passwd"}, ErrorCode.INVALID_PATH),
        ({"file_path": "relative/set.wav"}, ErrorCode.INVALID_PATH),
        ({"relative_path": "loop-a"}, ErrorCode.INVALID_PATH),  # a symlink loop
        ({"relative_path": "x" * 300 + ".wav"}, ErrorCode.INVALID_PATH),  # ENAMETOOLONG
        ({"relative_path": "mixes/\ud800.wav"}, ErrorCode.INVALID_PATH),  # a lone surrogate from JSON
        ({"relative_path": "a/" * 600 + "x.wav"}, ErrorCode.INVALID_PATH),  # over OFFBEAT_MAX_PATH_CHARS
        ({"relative_path": "mixes"}, ErrorCode.INVALID_PATH),  # a directory
        ({"relative_path": "mixes/pipe.wav"}, ErrorCode.INVALID_PATH),  # a FIFO: refused, not waited on
        ({"relative_path": "mixes/set.wav/x"}, ErrorCode.INVALID_PATH),
        ({"relative_path": "mixes/missing.wav"}, ErrorCode.FILE_NOT_FOUND),
        ({"relative_path": ""}, ErrorCode.INVALID_PATH),
    ],
)
def test_bad_paths_are_classified_not_internal(mount: Path, job: dict[str, str], code: ErrorCode) -> None:
    with pytest.raises(AnalysisError) as caught:
        open_job_source(Job(job_id=1, **job), mount)
    assert caught.value.code is code and not caught.value.retryable
    assert len(caught.value.message) < 400


def test_a_file_swapped_for_a_link_after_the_open_is_not_followed(mount: Path, tmp_path: Path) -> None:
    """The race of issue 14: check, then swap the name for a symlink out, then use. The opened file is what
    every reader gets; the name is never looked up again."""
    source = open_job_source(Job(job_id=1, relative_path="mixes/set.wav"), mount)
    swapped = mount / "mixes" / "swap.tmp"
    os.symlink(tmp_path / "secret.wav", swapped)
    os.replace(swapped, mount / "mixes" / "set.wav")  # the name now leads out of the mount
    assert content(source) == b"inside"
    with pytest.raises(AnalysisError) as caught:  # and opening it anew is refused
        open_job_source(Job(job_id=2, relative_path="mixes/set.wav"), mount)
    assert caught.value.code is ErrorCode.INVALID_PATH


def test_export_folders_never_follow_a_link(mount: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "anywhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, mount / "mixes" / "set.stems")  # planted beside the job's file
    with pytest.raises(AnalysisError) as caught:
        export_dir(mount / "mixes" / "set.stems", (mount,))
    assert caught.value.code is ErrorCode.INVALID_PATH
    fd = export_dir(mount / "mixes" / "other.stems", (mount,))
    try:
        os.symlink(elsewhere / "vocals.wav", mount / "mixes" / "other.stems" / "vocals.wav")  # a planted file link
        with atomic_file(fd, "vocals.wav") as tmp:
            Path(tmp).write_bytes(b"stem")
    finally:
        os.close(fd)
    written = mount / "mixes" / "other.stems" / "vocals.wav"
    assert not written.is_symlink() and written.read_bytes() == b"stem"
    assert list(elsewhere.iterdir()) == []


def test_export_stems_refuses_a_planted_stems_link(mount: Path, tmp_path: Path, settings: object) -> None:
    """Issue 14, case 1, through the real sink function: `set.stems -> /anywhere` beside the job's file."""
    import numpy as np

    from offbeat.pipeline.stages.export_stems import export_stems
    from offbeat.settings import get_settings
    from offbeat.storage import ArtifactStore

    config = get_settings().model_copy(update={"shared_mount_path": mount})
    store = ArtifactStore(tmp_path / "store", tmp_path / "store" / "index")
    with store.write("k" * 32, "separate") as out:
        for stem in ("vocals", "accompaniment"):
            out.create_array(stem, shape=(0, 2), dtype="float32", chunks=(4410, 2), audio=True).append(
                np.zeros((8820, 2), np.float32), axis=0
            )
        out.attrs.update(sample_rate=44100, stems=["vocals", "accompaniment"])
    entry = store.get("k" * 32)
    assert entry is not None
    elsewhere = tmp_path / "anywhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, mount / "mixes" / "set.stems")
    with pytest.raises(AnalysisError) as caught:
        export_stems(store, entry, mount / "mixes" / "set.stems", config)
    assert caught.value.code is ErrorCode.INVALID_PATH and list(elsewhere.iterdir()) == []
    files, _ = export_stems(store, entry, mount.resolve() / "mixes" / "new.stems", config)
    assert sorted(p.name for p in (mount / "mixes" / "new.stems").iterdir()) == ["accompaniment.wav", "vocals.wav"]
    assert files["vocals"] == mount.resolve() / "mixes" / "new.stems" / "vocals.wav"


def test_a_full_exports_folder_says_so(tmp_path: Path, settings: object) -> None:
    """A real full device: the local exports folder is a 64 kB tmpfs (mounting needs root; skipped elsewhere).
    Stems that do not fit fail retryable, saying "no space left on device" and where, not libsndfile's "System
    error."; nothing partial is left there."""
    import subprocess

    import numpy as np

    from offbeat.pipeline.stages.export_stems import export_stems
    from offbeat.settings import get_settings
    from offbeat.storage import ArtifactStore

    exports = tmp_path / "exports"
    exports.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(exports)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"a tmpfs cannot be mounted here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        config = get_settings().model_copy(update={"local_exports_path": exports})
        store = ArtifactStore(tmp_path / "store", tmp_path / "store" / "index")
        with store.write("f" * 32, "separate") as out:
            for stem in ("vocals", "accompaniment"):
                out.create_array(stem, shape=(0, 2), dtype="float32", chunks=(4410, 2), audio=True).append(
                    np.full((44100, 2), 0.25, np.float32), axis=0
                )
            out.attrs.update(sample_rate=44100, stems=["vocals", "accompaniment"])
        entry = store.get("f" * 32)
        assert entry is not None
        with pytest.raises(AnalysisError) as caught:
            export_stems(store, entry, exports / "set.stems", config)
        assert caught.value.code is ErrorCode.INTERNAL and caught.value.retryable
        assert caught.value.message.startswith(f"no space left on device: the stems could not be written to {exports}")
        assert list((exports / "set.stems").iterdir()) == []
    finally:
        subprocess.run(["umount", str(exports)], check=True)
