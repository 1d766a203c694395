"""export_stems: each stem as a WAV (or FLAC) file beside the source (inside the shared mount) or under the local
exports folder, written atomically; files that still hold these stems are left alone. A sink: its output is files,
not a store entry, so it is not cached or refreshed, only checked."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from offbeat.errors import AnalysisError, ErrorCode
from offbeat.paths import atomic_file, export_dir, export_folder, reported_path
from offbeat.pipeline.stage import Sink, SinkContext, SinkInput
from offbeat.settings import Settings
from offbeat.storage import ArtifactStore, Entry, ExportRecords


def export_stems(
    store: ArtifactStore, stems: Entry, folder: Path, settings: Settings, *, rewrite: bool = False
) -> tuple[dict[str, Path], bool]:
    """Write each stem as a file in `folder` (WAV or FLAC, `stem_format`), atomically; returns the files and
    whether all were reused.

    Unless `rewrite`, files that already hold this entry's stems (same entry key, size and modification
    time as when written) are left alone. The folder is made and opened without following any link (a
    planted `<name>.stems -> /anywhere` is refused), and files are put in place relative to it."""
    folder_fd = export_dir(folder, (settings.shared_mount_path, settings.local_exports_path))
    try:
        return _write_stems(store, stems, folder, folder_fd, settings, rewrite)
    finally:
        os.close(folder_fd)


def _write_stems(
    store: ArtifactStore, stems: Entry, folder: Path, folder_fd: int, settings: Settings, rewrite: bool
) -> tuple[dict[str, Path], bool]:
    records = ExportRecords(store)
    sr = stems.attrs["sample_rate"]
    written: dict[str, Path] = {}
    reused = True
    fmt = settings.stem_format.upper()
    if not sf.check_format(fmt, settings.stem_subtype):
        raise ValueError(f"stem_subtype {settings.stem_subtype} cannot be written as {fmt}")
    for name in stems.attrs["stems"]:
        path = folder / f"{name}.{settings.stem_format}"
        if not rewrite and records.holds(path, stems.key):
            written[name] = path
            continue
        reused = False
        array = stems[name]
        with atomic_file(folder_fd, path.name) as tmp:
            try:
                with sf.SoundFile(tmp, "w", samplerate=sr, channels=2, subtype=settings.stem_subtype, format=fmt) as fh:
                    step = array.chunks[0]
                    for first in range(0, array.shape[0], step):
                        fh.write(np.clip(array[first : first + step], -1.0, 1.0))
            except (sf.LibsndfileError, RuntimeError, OSError) as exc:  # told before the partial file goes
                full = _full(folder, folder_fd, exc, array.chunks[0] * 2 * 4)
                if full is None:
                    raise
                raise full from exc
        records.written(path, stems.key)
        written[name] = path
    return written, reused


def _full(folder: Path, folder_fd: int, exc: BaseException, block_bytes: int) -> AnalysisError | None:
    """The error to report when writing into the folder failed for want of space: libsndfile says only "System
    error." (its errno is lost), so a write that failed where less than one block's bytes are free is taken for
    a full device; retryable, since space may be freed. None when it was something else."""
    space = os.fstatvfs(folder_fd)
    free = space.f_bavail * space.f_frsize
    enospc = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if not enospc and free >= block_bytes:
        return None
    return AnalysisError(
        ErrorCode.INTERNAL,
        f"no space left on device: the stems could not be written to {folder} ({free / 1e6:.1f} MB free there)",
        stage="export_stems",
        retryable=True,
    )


def run(context: SinkContext, separate: SinkInput) -> tuple[dict[str, str], bool]:
    """Stems computed in this run (new, or refreshed) are written out again; cached ones are checked."""
    settings, mount = context.settings, context.settings.shared_mount_path
    folder = export_folder(context.source_path, separate.source, mount, settings.local_exports_path)
    files, reused = export_stems(context.store, separate.entry, folder, settings, rewrite=separate.fresh)
    return {name: reported_path(path, mount) for name, path in files.items()}, reused


SINK = Sink("export_stems", run)
