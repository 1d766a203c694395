"""Confinement of job paths to the shared mount: nothing a job names may reach outside it."""

from __future__ import annotations

from pathlib import Path

from offbeat.contract import Job
from offbeat.errors import AnalysisError, ErrorCode


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def resolve_job_source(job: Job, mount: Path) -> Path:
    """The real path of the job's mix, refused when it (or a symlink on the way) leads out of `mount`."""
    root = mount.resolve()
    if job.relative_path is not None:
        name = job.relative_path
        candidate = Path(name)
        if candidate.is_absolute():
            raise AnalysisError(
                ErrorCode.INVALID_PATH,
                f"relative_path must be relative to the shared mount: {name}",
                stage="intake",
            )
        candidate = root / candidate
    else:
        name = job.file_path or ""
        candidate = Path(name)
        if not candidate.is_absolute():
            raise AnalysisError(ErrorCode.INVALID_PATH, f"file_path must be absolute: {name}", stage="intake")
    if "\x00" in name:
        raise AnalysisError(ErrorCode.INVALID_PATH, "path contains a NUL byte", stage="intake")
    # resolve() follows every symlink, so a link inside the mount that points out is caught here too.
    resolved = candidate.resolve()
    if not _inside(resolved, root):
        raise AnalysisError(ErrorCode.INVALID_PATH, f"path leads outside the shared mount: {name}", stage="intake")
    return resolved


def relative_to_mount(path: Path, mount: Path) -> str | None:
    """`path` relative to the mount for results, or None when it lies elsewhere."""
    root, resolved = mount.resolve(), path.resolve()
    return resolved.relative_to(root).as_posix() if _inside(resolved, root) else None


def export_folder(source: Path, digest: str, mount: Path, local_exports: Path) -> Path:
    """Where a source's exports go: `<dir>/<name>.stems/` beside a source inside the mount; under the
    local exports folder (named with the content digest, so equal names do not collide) otherwise."""
    if relative_to_mount(source, mount) is not None:
        return source.parent / f"{source.stem}.stems"
    return local_exports / f"{source.stem}-{digest[:8]}.stems"


def reported_path(path: Path, mount: Path) -> str:
    """A path as results report it: relative to the mount when inside it, absolute otherwise."""
    return relative_to_mount(path, mount) or str(path.resolve())
