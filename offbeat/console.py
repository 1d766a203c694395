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
