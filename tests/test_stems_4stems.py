"""The 4stems path proven without its published weights: a checkpoint of Spleeter's real 4stems architecture
with random weights, packed as a release archive and installed the way a user installs real ones (`offbeat models
install 4stems.tar.gz`), run through the whole flow. `offbeat models pull 4stems` downloads from a loopback HTTP
server standing in for the release (`OFFBEAT_MODEL_RELEASE_URL`): an archive other than the published one is
refused, and the download path installs an archive whose digest it was given. Installing the published weights
themselves needs the published file, which this network cannot reach."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from offbeat import synth
from offbeat.media import onnx_export, separation, weights
from offbeat.settings import Settings

from .conftest import REPO
from .processes import free_port
from .spleeter_checkpoints import random_checkpoint
from .test_separation import band_energy, db

STEMS4 = {"vocals", "drums", "bass", "other"}
MIX = synth.MixSpec(
    (synth.Section(20, 124.0, 110.0, True), synth.Section(20, 140.0, 146.83, False)),
    lead_silence_sec=1.5,
    tail_silence_sec=0.5,
    crossfades=(6,),
)


def _offbeat(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "offbeat"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=onnx_export.EXPORT_TIMEOUT_SEC + 600,  # an install exports to ONNX: minutes on loaded cores
    )


@pytest.fixture(scope="session")
def four_stems_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight 4stems checkpoint laid out as the release archive is: `model.*` and `checkpoint` at its root."""
    brought = random_checkpoint("4stems", tmp_path_factory.mktemp("brought") / "4stems")
    archive = tmp_path_factory.mktemp("archive") / "4stems.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for name in (*weights.CHECKPOINT_FILES, "checkpoint"):
            tar.add(brought / name, arcname=name)
    return archive


@pytest.fixture(scope="session")
def four_stems_models(four_stems_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder with the random-weight 4stems checkpoint, installed from its archive by `offbeat models
    install`."""
    models = tmp_path_factory.mktemp("models")
    done = _offbeat("models", "install", str(four_stems_archive), env={"OFFBEAT_MODEL_DIR": str(models)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert weights.is_installed("4stems", models) and weights.verify("4stems", models)
    checked = _offbeat("models", "check", "4stems", env={"OFFBEAT_MODEL_DIR": str(models)})
    assert checked.returncode == 0, checked.stderr[-2000:]
    return models


@pytest.mark.slow
def test_install_refuses_a_checkpoint_of_another_architecture(tmp_path: Path) -> None:
    with pytest.raises(weights.ModelError, match=r"not a 4stems checkpoint: .* variables missing"):
        weights.install(REPO / "models" / "2stems", tmp_path / "models", "4stems")
    assert not weights.is_installed("4stems", tmp_path / "models")


@pytest.mark.slow
def test_install_from_a_release_archive(tmp_path: Path) -> None:
    """The release archives hold the checkpoint files at their root, with a `checkpoint` index."""
    archive = tmp_path / "2stems.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for name in (*weights.CHECKPOINT_FILES, "checkpoint"):
            tar.add(REPO / "models" / "2stems" / name, arcname=name)
    weights.install(archive, tmp_path / "models", log=lambda _: None)
    assert weights.verify("2stems", tmp_path / "models")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """A local HTTP server over `tmp_path/www` (a real download, without the internet)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


def _fake_release_archive(path: Path) -> Path:
    """A well-formed release archive (the checkpoint's file names at its root) holding other bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name in (*weights.CHECKPOINT_FILES, "checkpoint"):
            info = tarfile.TarInfo(name)
            info.size = 64
            tar.addfile(info, io.BytesIO(bytes(64)))
    return path


@pytest.mark.slow  # `offbeat` in a process of its own
def test_models_pull_4stems_refuses_an_archive_that_is_not_the_published_one(tmp_path: Path, served: str) -> None:
    """The command a user runs, downloading from a mirror of the release: the archive it serves is not the
    published one, so the pull fails saying so and installs nothing."""
    archive = _fake_release_archive(tmp_path / "www" / "v1.4.0" / "4stems.tar.gz")
    models = tmp_path / "models"
    env = {"OFFBEAT_MODEL_DIR": str(models), "OFFBEAT_MODEL_RELEASE_URL": f"{served}/v1.4.0/"}
    done = _offbeat("models", "pull", "4stems", env=env)
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"fetching {served}/v1.4.0/4stems.tar.gz" in done.stderr
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (
        f"error: {served}/v1.4.0/4stems.tar.gz is not the published 4stems archive (archive sha256 mismatch: "
        f"expected {weights.RELEASE_SHA256['4stems']}, got {digest}); nothing was installed"
    ) in done.stderr
    assert "Traceback" not in done.stderr
    assert not weights.is_installed("4stems", models) and list(models.iterdir()) == []


def test_pull_fails_clearly_where_the_release_cannot_be_reached(tmp_path: Path, served: str) -> None:
    """A mirror without the archive (HTTP 404) and a release host that does not answer (a closed port)."""
    models = tmp_path / "models"
    with pytest.raises(weights.ModelError, match=r"could not download 4stems .*HTTPStatusError.*404") as error:
        weights.pull("4stems", models, release_url=f"{served}/gone", log=lambda _: None)
    assert "offbeat models install FILE" in str(error.value) and "OFFBEAT_MODEL_RELEASE_URL" in str(error.value)
    with pytest.raises(weights.ModelError, match=r"could not download 4stems .*ConnectError"):
        weights.pull("4stems", models, release_url=f"http://127.0.0.1:{free_port()}", log=lambda _: None)
    assert list(models.iterdir()) == []


@pytest.mark.slow
def test_pull_downloads_checks_and_installs_an_archive_of_the_expected_digest(
    tmp_path: Path, served: str, four_stems_archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The download path up to the install, where the served archive is the expected one: here a random-weight
    archive whose digest stands in for the published one (the published file cannot be fetched here)."""
    shutil.copyfile(four_stems_archive, tmp_path / "www" / "4stems.tar.gz")
    digest = hashlib.sha256(four_stems_archive.read_bytes()).hexdigest()
    monkeypatch.setitem(weights.RELEASE_SHA256, "4stems", digest)
    messages: list[str] = []
    target = weights.pull("4stems", tmp_path / "models", release_url=served, log=messages.append)
    assert target == tmp_path / "models" / "4stems" and weights.is_installed("4stems", tmp_path / "models")
    assert messages[0] == f"fetching {served}/4stems.tar.gz ..."
    with tarfile.open(four_stems_archive) as tar:
        packed = tar.extractfile(weights.DATA_FILE)
        assert packed is not None and (target / weights.DATA_FILE).read_bytes() == packed.read()


@pytest.mark.slow
def test_4stems_chunked_separation_equals_one_whole_call_and_sums_to_the_mix(four_stems_models: Path) -> None:
    mix = synth.render(MIX, 0, 30.0)
    whole = separation.separate(mix, "4stems", four_stems_models)
    assert set(whole) == STEMS4
    blocks = list(
        separation.separate_chunked(
            lambda a, b: mix[a:b], len(mix), "4stems", four_stems_models, chunk_segments=1, crossfade=44100
        )
    )
    for name, reference in whole.items():
        chunked = np.concatenate([block[name] for block in blocks])
        assert chunked.shape == mix.shape and np.isfinite(chunked).all()
        assert db(np.sum(reference**2), np.sum((chunked - reference) ** 2)) > 20, name
    residual = mix - sum(whole.values())
    assert db(band_energy(residual, 11500), band_energy(mix, 11500)) < -30


@pytest.mark.slow
def test_4stems_is_exported_to_onnx_at_install_and_equals_tensorflow(four_stems_models: Path) -> None:
    """`offbeat models install` wrote the 4stems ONNX export; its four stems are TensorFlow's within 60 dB."""
    assert onnx_export.onnx_file("4stems", four_stems_models, 1024).exists()
    assert separation.get_onnx_separator("4stems", str(four_stems_models)) is not None
    mix = synth.render(MIX, 0, 8.0)
    onnx = separation.separate(mix, "4stems", four_stems_models, backend="onnx")
    reference = separation.separate(mix, "4stems", four_stems_models, backend="tensorflow")
    for name, stem in reference.items():
        assert onnx[name].shape == stem.shape == mix.shape
        assert db(np.sum(stem.astype(np.float64) ** 2), np.sum((stem - onnx[name]).astype(np.float64) ** 2)) > 60, name


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_the_whole_flow_with_4stems(
    settings: Settings, four_stems_models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """model=4stems end to end: stems of the mix's length joined over several chunks, FLAC exports that sum
    back to the mix, the drum grid from the drums stem and bass loudness from the bass stem."""
    from flows.analyze import analyze_mix
    from offbeat.pipeline.runner import current_keys
    from offbeat.settings import get_settings
    from offbeat.storage import open_store

    for name, value in {
        "OFFBEAT_MODEL_DIR": str(four_stems_models),
        "OFFBEAT_SEPARATION_CHUNK_SEC": "12",  # one model segment per chunk: a 42 s mix crosses three joins
        "OFFBEAT_STEM_FORMAT": "flac",
        "OFFBEAT_MIN_TRACK_SEC": "15",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    path = synth.write_mix(MIX, tmp_path / "mix.wav", subtype="FLOAT")
    doc = analyze_mix(source=str(path), model="4stems")
    assert doc["status"] == "completed", doc

    mix, rate = sf.read(str(path), dtype="float32", always_2d=True)
    files = doc["results"]["global"]["stems"]
    assert set(files) == STEMS4
    total = np.zeros_like(mix)
    for name, file in files.items():
        assert file.endswith(f"{name}.flac")
        info = sf.info(file)
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_24", rate, 2)
        audio, _ = sf.read(file, dtype="float32", always_2d=True)
        assert audio.shape == mix.shape
        total += audio
    assert db(band_energy(mix - total, 11500), band_energy(mix, 11500)) < -30
    assert db(band_energy(mix - total, 0), band_energy(mix, 0)) < -30

    store = open_store(get_settings())
    four = get_settings().model_copy(update={"spleeter_model": "4stems"})
    keys = current_keys(store, store.source_digest(path), four)
    stems = store.get(keys["separate"])
    assert stems is not None and stems.attrs["stems"] == ["vocals", "drums", "bass", "other"]
    for name in STEMS4:  # the arrays drum_beats and track_features read
        assert stems[name].shape == mix.shape and stems[f"{name}_mono"].shape[0] > 0
    drums = store.get(keys["drum_beats"])
    assert drums is not None and drums.attrs["source"] == "drums stem"
    tracks = [store.get(key) for name, key in keys.items() if name.startswith("track_features:")]
    assert len(tracks) == len(doc["results"]["tracks"]) >= 1
    for track in tracks:
        assert track is not None and "loudness_lufs_bass" not in track.attrs["unmeasured"]
        assert track.attrs["analysis"]["loudness_lufs_bass"] is not None
