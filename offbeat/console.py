"""What a person at a terminal sees: TensorFlow's start-up noise kept off stderr, progress bars on a TTY.

TensorFlow's C++ runtime prints notices while it is imported ("Could not find cuda drivers", the oneDNN notice,
absl's "All log messages before absl::InitializeLog()"), before any log level applies, so no environment
variable hides them all. The first import of `tensorflow` is therefore run with file descriptor 2 sent to a
temporary file, and what it wrote goes back to stderr without the known notices (anything else is kept).
`OFFBEAT_SHOW_LIBRARY_NOISE=1` turns this off.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

NOISE = re.compile(
    r"absl::InitializeLog|oneDNN custom operations|cuda drivers|cudart_stub|cuInit|cpu_feature_guard|"
    r"To enable the following instructions|rebuild TensorFlow with the appropriate compiler flags|"
    r"Unable to register cu(DNN|FFT|BLAS) factory|TF-TRT Warning|computation placer already registered|"
    r"Attempting to register factory for plugin"
)


@contextmanager
def stderr_filtered(noise: re.Pattern[str] = NOISE) -> Iterator[None]:
    """Run the block with fd 2 going through a pipe; a thread passes every line on to the real stderr as it
    comes, except `noise`. Passed on at once, not replayed afterwards: a worker that leaves in the middle
    (`os._exit` on a second SIGTERM) while TensorFlow is being imported must not lose its own log lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not noise.search(line.decode(errors="replace")):
                    os.write(saved, line)

    passer = threading.Thread(target=forward, name="offbeat-stderr-filter", daemon=True)
    passer.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer is gone: the thread reads to the end and stops
        passer.join(timeout=10)
        if not passer.is_alive():  # else a child that inherited the pipe still writes: keep its way out open
            os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # later C++ notices (cuInit) obey it
        with stderr_filtered():
            self._loader.exec_module(module)
            with contextlib.suppress(Exception):  # device discovery prints its own notices (cuInit): now, here
                module.config.list_physical_devices()
        for name in ("absl", "tensorflow"):
            logging.getLogger(name).setLevel(logging.ERROR)


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Wraps the loader of the first `import tensorflow` (see the module's docstring), then steps aside."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow() -> None:
    """Install the hook unless TensorFlow is imported already or the operator asked to see its notices."""
    if os.environ.get("OFFBEAT_SHOW_LIBRARY_NOISE", "").lower() in ("1", "true", "yes"):
        return
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlow())


class ProgressBoard:
    """One status line on a terminal with a bar per long stage running now (`separate` and `beats` run side
    by side); redrawn in place. Not a terminal: nothing is drawn (the log lines say the same in plain text)."""

    WIDTH = 20

    def __init__(self, stream: TextIO | Any = None) -> None:
        self._stream = stream
        self._stages: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def stream(self) -> TextIO | Any:
        return self._stream if self._stream is not None else sys.stderr  # as it is now (redirected, captured)

    @property
    def active(self) -> bool:
        try:
            return bool(self.stream.isatty())
        except (AttributeError, ValueError):
            return False

    def update(self, stage: str, fraction: float) -> None:
        if not self.active:
            return
        with self._lock:
            self._stages[stage] = min(1.0, max(0.0, fraction))
            bars = " ".join(self._bar(name, done) for name, done in self._stages.items())
            self.stream.write(f"\r\x1b[2K{bars}")
            if all(done >= 1.0 for done in self._stages.values()):
                self.stream.write("\n")
                self._stages.clear()
            self.stream.flush()

    def _bar(self, name: str, done: float) -> str:
        filled = int(done * self.WIDTH)
        return f"{name} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {int(done * 100):3d}%"


BOARD = ProgressBoard()


def clock(seconds: float) -> str:
    """`m:ss`, or `h:mm:ss` from an hour on: where a track starts, as a DJ reads it off a player."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def track_table(document: dict[str, Any]) -> str:
    """A completed result's tracks as a short table for a person at a terminal: number, start, end, BPM, key
    (musical and Camelot), LUFS and the title (a library identification as `artist - title`, else the cue's).
    Titles come from producers and files, so they are escaped (`loggable`): no control sequence reaches the
    terminal or starts a row of its own."""
    from offbeat.errors import loggable

    header = ("track", "start", "end", "BPM", "key", "LUFS", "title")
    rows = [header]
    for track in document["results"]["tracks"]:
        features = track.get("analysis") or {}
        bpm, key, lufs = features.get("stable_bpm"), features.get("key"), features.get("loudness_lufs_total")
        known = track.get("identified")
        title = f"{known['artist']} - {known['title']}" if known else track.get("title") or ""
        rows.append(
            (
                str(track["track_id"]),
                clock(track["start_time_sec"]),
                clock(track["end_time_sec"]),
                "-" if bpm is None else f"{bpm:.1f}",
                "-" if key is None else f"{key['musical']} ({key['camelot']})",
                "-" if lufs is None else f"{lufs:.1f}",
                loggable(title, 80),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    right = {0, 1, 2, 3, 5}  # numbers line up on the right
    lines = []
    for row in rows:
        cells = [row[i].rjust(w) if i in right else row[i].ljust(w) for i, w in enumerate(widths)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def truth_line(
    document: dict[str, Any],
    boundaries: Sequence[float],
    sections: Sequence[tuple[float, float, float]],
    *,
    within_sec: float = 10.0,
    within_bpm: float = 0.5,
) -> str:
    """One line comparing a completed result with a mix's known truth: how many true boundaries have a found
    track start within `within_sec` (each found start used once), and how many played sections (`(start, end,
    bpm)`) got the tempo right within `within_bpm` from the found track that overlaps them most."""
    tracks = document["results"]["tracks"]
    found = [t["start_time_sec"] for t in tracks[1:]]
    used: set[int] = set()
    misses: list[float] = []
    for boundary in boundaries:
        near = sorted((abs(start - boundary), i) for i, start in enumerate(found) if i not in used)
        if near and near[0][0] <= within_sec:
            used.add(near[0][1])
            misses.append(near[0][0])
    tempos = 0
    for start, end, bpm in sections:
        overlap = [min(end, t["end_time_sec"]) - max(start, t["start_time_sec"]) for t in tracks]
        if not tracks:
            continue
        measured = (tracks[max(range(len(tracks)), key=overlap.__getitem__)].get("analysis") or {}).get("stable_bpm")
        tempos += measured is not None and abs(measured - bpm) <= within_bpm
    worst = f" (at most {max(misses):.1f} s off)" if misses else ""
    return (
        f"against the truth: {len(misses)} of {len(boundaries)} boundaries within {within_sec:g} s{worst}, "
        f"{tempos} of {len(sections)} tempos within {within_bpm:g} BPM; {len(tracks)} tracks found, "
        f"{len(sections)} played"
    )
