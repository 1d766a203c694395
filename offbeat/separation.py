"""Stem separation with Spleeter: one model per process, reused across chunks and jobs.

TensorFlow takes seconds to start and the graph more to build, so the Separator is created once and
kept; `separate` is numpy in, numpy out.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
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


# Spleeter's pretrained models cut the STFT (hop 1024) into segments of T = 512 frames and run the U-Net
# on each segment alone. A chunk that starts on a segment boundary, with one whole segment of context on
# each side, therefore reproduces a whole-signal call exactly; chunks that do not line up differ everywhere.
SEGMENT = 512 * 1024  # samples per Spleeter segment at 44.1 kHz (~11.9 s)


def chunk_plan(frames: int, chunk_segments: int) -> list[tuple[int, int]]:
    """(start, stop) of the regions each chunk is responsible for, on segment boundaries.

    A last piece shorter than one segment joins the chunk before it, so every join has a full
    segment of real signal on both sides to cross-fade over.
    """
    step = chunk_segments * SEGMENT
    plan = [(start, min(frames, start + step)) for start in range(0, frames, step)]
    if len(plan) > 1 and plan[-1][1] - plan[-1][0] < SEGMENT:
        plan[-2:] = [(plan[-2][0], frames)]
    return plan


def separate_chunked(
    read: Callable[[int, int], np.ndarray],
    frames: int,
    model: str,
    model_dir: Path,
    *,
    chunk_segments: int,
    crossfade: int,
    progress: Callable[[float], None] | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Separate a long (frames, 2) signal chunk by chunk; yields consecutive stem blocks covering it.

    `read(start, stop)` returns the signal's samples in that range. Neighbouring chunks overlap by a
    segment of context; their outputs are cross-faded over `crossfade` samples centred on each join.
    Memory is bounded by the chunk size, whatever the length of the signal.
    """
    half = crossfade // 2
    if not 0 <= half < SEGMENT - 4096:
        raise ValueError("crossfade must be shorter than two Spleeter segments")
    plan = chunk_plan(frames, chunk_segments)
    tail: dict[str, np.ndarray] | None = None  # previous chunk's output over [join - half, join + half)
    for index, (start, stop) in enumerate(plan):
        lo, hi = max(0, start - SEGMENT), min(frames, stop + SEGMENT)
        stems = separate(read(lo, hi), model, model_dir)
        # This chunk's own output from (start - half) to (stop + half), clipped to the signal.
        own_lo, own_hi = max(0, start - half), min(frames, stop + half)
        own = {name: audio[own_lo - lo : own_hi - lo] for name, audio in stems.items()}
        head_len = start - own_lo
        if tail is not None and head_len:
            fade = np.linspace(0.0, 1.0, 2 * head_len, endpoint=False, dtype=np.float32)[:, None]
            yield {name: tail[name] * (1 - fade) + own[name][: 2 * head_len] * fade for name in own}
            body_from = 2 * head_len
        else:
            body_from = 0
        last = index == len(plan) - 1
        body_to = len(next(iter(own.values()))) - (0 if last else 2 * (own_hi - stop))
        yield {name: audio[body_from:body_to] for name, audio in own.items()}
        tail = None if last else {name: audio[body_to:] for name, audio in own.items()}
        if progress is not None:
            progress(stop / frames)
