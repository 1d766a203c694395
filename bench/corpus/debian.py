"""Debian packages as corpus sources: downloaded with ``apt-get download`` and unpacked with ``dpkg-deb -x`` into
a cache (nothing is installed, no root is needed), and each licence confirmed in the package's debian/copyright
before its files are used. Shared by the corpora built from Debian's free music packages."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path


def run(cmd: list[str], cwd: Path | None = None) -> str:
    """A command's standard output; a failure raises with the end of its standard error."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc.stdout


def fetch(cache: Path, names: Iterable[str], what: str) -> dict[str, tuple[Path, str]]:
    """Download and unpack each package once into ``cache``; return {package: (unpacked root, version)}.

    The cache holds a ``.gitignore`` of ``*`` so that the repository never picks the audio up, whatever its own
    ignore rules say. `what` names the packages' content in the error where apt-get is missing.
    """
    cache.mkdir(parents=True, exist_ok=True)
    ignore = cache / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    debs = cache / "debs"
    debs.mkdir(exist_ok=True)
    out: dict[str, tuple[Path, str]] = {}
    for name in names:
        root = cache / "extract" / name
        stamp = root / ".complete"
        if not stamp.exists():
            found = sorted(debs.glob(f"{name}_*.deb"))
            if not found:
                if shutil.which("apt-get") is None:
                    raise RuntimeError(f"apt-get is needed to fetch the {what} packages (Debian/Ubuntu)")
                print(f"downloading {name} ...", file=sys.stderr)
                run(["apt-get", "download", name], cwd=debs)
                found = sorted(debs.glob(f"{name}_*.deb"))
                if not found:
                    raise RuntimeError(f"apt-get download {name} produced no .deb")
            if root.exists():
                shutil.rmtree(root)
            root.mkdir(parents=True)
            run(["dpkg-deb", "-x", str(found[-1]), str(root)])
            version = run(["dpkg-deb", "-f", str(found[-1]), "Version"]).strip()
            stamp.write_text(version + "\n")
        out[name] = (root, stamp.read_text().strip())
    return out


def copyright_text(root: Path, name: str) -> str:
    """The package's debian/copyright as unpacked (empty when missing)."""
    path = root / "usr/share/doc" / name / "copyright"
    return path.read_text(errors="replace") if path.exists() else ""


def check_licence(root: Path, name: str, licence: str, marker: str) -> str:
    """`licence`, after confirming it in debian/copyright (`marker`, a regular expression); a mismatch stops the
    build, never a guess."""
    if not re.search(marker, copyright_text(root, name)):
        raise RuntimeError(f"{name}: debian/copyright no longer states {licence}; check the licence before use")
    return licence
