"""Stem separation with Spleeter: one model per process, reused across chunks and jobs.

TensorFlow takes seconds to start and the graph more to build, so the Separator is created once and
kept; `separate` is numpy in, numpy out.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from offbeat import weights
from offbeat.errors import AnalysisError, ErrorCode

STEMS = {"2stems": ("vocals", "accompaniment"), "4stems": ("vocals", "drums", "bass", "other")}
_lock = threading.Lock()  # a Spleeter Separator is not safe to call from several threads at once


@lru_cache(maxsize=2)
def get_separator(model: str, model_dir: str) -> Any:
    """The process-wide Separator for `model`, loading weights from `model_dir`."""
    folder = Path(model_dir).resolve()
    if not weights.is_installed(model, folder):
        raise AnalysisError(
            ErrorCode.INTERNAL,
            f"Spleeter model {model} is not installed in {folder}; run `offbeat models pull {model}`",
            stage="separate",
        )
    os.environ["MODEL_PATH"] = str(folder)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from spleeter.model.provider import ModelProvider
    from spleeter.separator import Separator

    # spleeter reads MODEL_PATH once at import; set the class default too in case it was imported early.
    ModelProvider.DEFAULT_MODEL_PATH = str(folder)
    return Separator(f"spleeter:{model}", MWF=False, multiprocess=False)


def separate(waveform: np.ndarray, model: str, model_dir: Path) -> dict[str, np.ndarray]:
    """Stems of a (frames, 2) float32 44.1 kHz waveform, each the same shape as the input."""
    separator = get_separator(model, str(model_dir))
    with _lock:
        stems = separator.separate(np.ascontiguousarray(waveform, dtype=np.float32))
    return {name: np.asarray(stems[name][: len(waveform)], dtype=np.float32) for name in STEMS[model]}
