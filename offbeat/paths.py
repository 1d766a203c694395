"""Confinement of job paths to the shared mount: nothing a job names may reach outside it.

Checking a path and then opening it by name can be raced: swap the file for a symlink between the two and the
open follows it out. So a job's file is opened once, by a walk from a descriptor of the mount that opens each
component relative to the one before with `O_NOFOLLOW`; a symlink met on the way is read (`readlinkat`) and its
target walked the same way, from the mount again when absolute, and refused when it leads out. The open file is
then handed on (`Source.path`, a `/proc/<pid>/fd/<n>` path that reopens exactly that file for libsndfile, ffmpeg
and the digest); nothing opens the job's path by name again. Export folders are made and opened the same way,
so a planted `set.stems -> /anywhere` link is refused instead of followed.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from offbeat.contract import Job
from offbeat.errors import AnalysisError, ErrorCode, bounded

MAX_LINKS = 40  # symlinks followed in one walk, as the kernel allows (more: a loop)
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _refuse(code: ErrorCode, message: str) -> AnalysisError:
    return AnalysisError(code, message, stage="intake")


@dataclass(frozen=True)
class Source:
    """A mix opened once: readers reopen `path` (this very file, whatever its name points at by now)."""

    fd: int
    name: str  # the path as given, bounded, for messages

    @property
    def path(self) -> Path:
        return Path(f"/proc/{os.getpid()}/fd/{self.fd}")

    def close(self) -> None:
        os.close(self.fd)


def _os_error(exc: OSError, name: str) -> AnalysisError:
    """The error code of a failed open: the producer's mistake, never a retryable internal fault."""
    shown = bounded(name)
    if exc.errno == errno.ENOENT:
        return _refuse(ErrorCode.FILE_NOT_FOUND, f"file not found: {shown}")
    if exc.errno == errno.ENAMETOOLONG:
        return _refuse(ErrorCode.INVALID_PATH, f"a component of the path is too long: {shown}")
    if exc.errno == errno.ELOOP:
        return _refuse(ErrorCode.INVALID_PATH, f"too many symbolic links (a loop?) in {shown}")
    if exc.errno == errno.ENOTDIR:
        return _refuse(ErrorCode.INVALID_PATH, f"a component of the path is not a folder: {shown}")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return _refuse(ErrorCode.INVALID_PATH, f"permission denied: {shown}")
    return AnalysisError(ErrorCode.INTERNAL, f"cannot open {shown}: {exc.strerror}", stage="intake", retryable=True)


def _checked_name(name: str, max_chars: int) -> None:
    if len(name) > max_chars:
        raise _refuse(ErrorCode.INVALID_PATH, f"path is {len(name)} characters long; at most {max_chars} are accepted")
    if "\x00" in name:
        raise _refuse(ErrorCode.INVALID_PATH, "path contains a NUL byte")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _refuse(ErrorCode.INVALID_PATH, f"path is not valid text (a lone surrogate): {bounded(name)}") from exc


def walk(root: Path, parts: list[str], *, last: str = "file", create: bool = False, follow: bool = True) -> int:
    """Open `parts` beneath the folder `root` without ever leaving it; returns the descriptor.

    `last`: "file" opens the final component as a regular file (non-blocking, so a FIFO cannot hang the open),
    "dir" as a folder (created on the way when `create`). Symlinks inside `root` are followed by hand (none at all
    unless `follow`: OSError ELOOP); one that leads out of it, and `..` above it, raise `invalid_path`."""
    real_root = os.path.realpath(root)
    stack = [os.open(real_root, _DIR)]
    pending, links = list(parts), 0
    try:
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if len(stack) == 1:
                    raise _refuse(ErrorCode.INVALID_PATH, "path leads outside the shared mount")
                os.close(stack.pop())
                continue
            final = not pending
            if create and not (final and last == "file"):
                with suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=stack[-1])
            info = os.stat(part, dir_fd=stack[-1], follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                links += 1
                if links > MAX_LINKS or not follow:
                    raise OSError(errno.ELOOP, "too many symbolic links")
                target = os.readlink(part, dir_fd=stack[-1])
                if target.startswith("/"):
                    if not _inside(Path(os.path.normpath(target)), Path(real_root)):
                        raise _refuse(ErrorCode.INVALID_PATH, "a symbolic link on the path leads outside")
                    target = os.path.relpath(os.path.normpath(target), real_root)
                    for fd in stack[1:]:
                        os.close(fd)
                    del stack[1:]
                pending = target.split("/") + pending
                continue
            if final and last == "file":
                if stat.S_ISDIR(info.st_mode):
                    raise _refuse(ErrorCode.INVALID_PATH, f"{bounded(part)} is a directory, not an audio file")
                fd = os.open(part, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=stack[-1])
                opened = os.fstat(fd)
                if not stat.S_ISREG(opened.st_mode):
                    os.close(fd)
                    raise _refuse(ErrorCode.INVALID_PATH, f"{bounded(part)} is not a regular file")
                os.set_blocking(fd, True)
                stack.append(fd)
                continue
            stack.append(os.open(part, _DIR, dir_fd=stack[-1]))  # ELOOP if swapped for a link meanwhile
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)


def open_job_source(job: Job, mount: Path, max_chars: int = 1024) -> Source:
    """Open the job's mix beneath `mount` (see the module's docstring), refused when it leads out of it."""
    name = job.relative_path if job.relative_path is not None else (job.file_path or "")
    _checked_name(name, max_chars)
    if job.relative_path is not None:
        if name.startswith("/"):
            raise _refuse(
                ErrorCode.INVALID_PATH, f"relative_path must be relative to the shared mount: {bounded(name)}"
            )
        parts = name.split("/")
    else:
        if not name.startswith("/"):
            raise _refuse(ErrorCode.INVALID_PATH, f"file_path must be absolute: {bounded(name)}")
        given = Path(os.path.normpath(name))
        root = next((r for r in (Path(os.path.realpath(mount)), mount.absolute()) if _inside(given, r)), None)
        if root is None:
            raise _refuse(ErrorCode.INVALID_PATH, f"path leads outside the shared mount: {bounded(name)}")
        parts = list(given.relative_to(root).parts)
    if not [p for p in parts if p not in ("", ".")]:
        raise _refuse(ErrorCode.INVALID_PATH, "the path names the shared mount itself, not a file")
    try:
        return Source(walk(mount, parts), bounded(name))
    except AnalysisError as exc:
        if exc.code is ErrorCode.INVALID_PATH and "outside" in exc.message:
            raise _refuse(ErrorCode.INVALID_PATH, f"path leads outside the shared mount: {bounded(name)}") from exc
        raise
    except OSError as exc:
        raise _os_error(exc, name) from exc


def open_local_source(path: Path, mount: Path) -> Source:
    """Open a file an operator named (`offbeat analyze`): inside the mount by the same walk, elsewhere as given."""
    resolved = path.expanduser().absolute()
    inside = relative_to_mount(resolved, mount)
    try:
        if inside is not None:
            return Source(walk(mount, inside.split("/")), str(path))
        fd = os.open(resolved, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            kind = "a directory, not an audio file" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise _refuse(ErrorCode.INVALID_PATH, f"{bounded(path.name)} is {kind}")
        os.set_blocking(fd, True)
        return Source(fd, str(path))
    except OSError as exc:
        raise _os_error(exc, str(path)) from exc


def relative_to_mount(path: Path, mount: Path) -> str | None:
    """`path` relative to the mount for results, or None when it lies elsewhere."""
    root, resolved = mount.resolve(), path.resolve()
    return resolved.relative_to(root).as_posix() if _inside(resolved, root) else None


def export_folder(source: Path, digest: str, mount: Path, local_exports: Path) -> Path:
    """Where a source's exports go: `<dir>/<name>.stems/` beside a source inside the mount; under the
    local exports folder (named with the content digest, so equal names do not collide) otherwise.
    `source` may be an opened `Source.path`: where that file is now is what counts."""
    real = source.resolve()
    if relative_to_mount(real, mount) is not None:
        return real.parent / f"{real.stem}.stems"
    return local_exports.resolve() / f"{real.stem}-{digest[:8]}.stems"


def export_sibling(source: Path, digest: str, mount: Path, local_exports: Path, suffix: str) -> Path:
    """A name beside the source's stems folder (`export_folder`), ending in `suffix` instead of `.stems`: the
    tracks' folder (`.tracks`), the report page (`.report.html`)."""
    folder = export_folder(source, digest, mount, local_exports)
    return folder.with_name(folder.name.removesuffix(".stems") + suffix)


def export_dir(folder: Path, roots: tuple[Path, ...]) -> int:
    """A descriptor of the export folder `folder`, made and opened beneath whichever of `roots` holds it without
    following a link anywhere on the way (a planted `set.stems -> /anywhere` is refused, `invalid_path`)."""
    for root in roots:
        real_root = Path(os.path.realpath(root))
        if _inside(folder, real_root):
            real_root.mkdir(parents=True, exist_ok=True)  # the local exports folder, on first use
            try:
                parts = list(folder.relative_to(real_root).parts)
                return walk(real_root, parts, last="dir", create=True, follow=False)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise AnalysisError(
                        ErrorCode.INVALID_PATH, f"export folder {folder.name} is a symbolic link", stage="export_stems"
                    ) from exc
                raise
    raise AnalysisError(ErrorCode.INVALID_PATH, f"export folder {folder} is outside the export roots")


@contextmanager
def atomic_file(dir_fd: int, name: str) -> Iterator[str]:
    """A path to write `name` in the folder `dir_fd` through, put in place atomically (rename replaces a link
    planted under that name, never writes through it) when the block ends; removed when it raises."""
    tmp = f".{name}.{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    try:
        yield f"/proc/self/fd/{fd}"
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        os.unlink(tmp, dir_fd=dir_fd)
        raise
    finally:
        os.close(fd)


def atomic_text(dir_fd: int, name: str, text: str) -> None:
    """Write `text` (UTF-8) as `name` in the folder `dir_fd`, put in place atomically (`atomic_file`)."""
    with atomic_file(dir_fd, name) as path, open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def reported_path(path: Path, mount: Path) -> str:
    """A path as results report it: relative to the mount when inside it, absolute otherwise."""
    return relative_to_mount(path, mount) or str(path.resolve())
