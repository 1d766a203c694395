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

from offbeat.errors import AnalysisError, ErrorCode
from offbeat.media import weights

STEMS = {"2stems": ("vocals", "accompaniment"), "4stems": ("vocals", "drums", "bass", "other")}
_lock = threading.RLock()  # a Spleeter Separator is not safe to call from several threads at once


def configure_tensorflow(threads: int) -> None:
    """Set TensorFlow's thread pools before its first session (they are fixed from then on).

    One op at a time (inter-op 1), each spread over `threads` cores (intra-op; 0: all): measured on 2 cores,
    as fast as TensorFlow's default (one pool of each per core) and 200 MB smaller, because the two stems'
    networks no longer hold their activations at once. The rest of the pipeline (the beats stage beside
    separation) takes its share of the cores from the OS scheduler.
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads or os.cpu_count() or 1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialized in this process: keep what it has
        pass


@lru_cache(maxsize=2)
def get_separator(model: str, model_dir: str, threads: int = 0) -> Any:
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
    configure_tensorflow(threads)
    from spleeter.model.provider import ModelProvider
    from spleeter.separator import Separator

    # spleeter reads MODEL_PATH once at import; set the class default too in case it was imported early.
    ModelProvider.DEFAULT_MODEL_PATH = str(folder)
    return Separator(f"spleeter:{model}", MWF=False, multiprocess=False)


def separate(waveform: np.ndarray, model: str, model_dir: Path, threads: int = 0) -> dict[str, np.ndarray]:
    """Stems of a (frames, 2) float32 44.1 kHz waveform, each the same shape as the input."""
    with _lock:  # also keeps two threads from loading the model twice
        separator = get_separator(model, str(model_dir), threads)
        stems = separator.separate(np.ascontiguousarray(waveform, dtype=np.float32))
    return {name: np.asarray(stems[name][: len(waveform)], dtype=np.float32) for name in STEMS[model]}


# Spleeter's pretrained models cut the STFT (hop 1024, after a frame of zeros) into segments of T = 512
# frames and run the U-Net on each segment alone. A chunk that starts one whole segment before the region
# it is responsible for, on the segment grid, therefore computes that region exactly as a whole-signal call
# would, except for the last EDGE samples of the chunk, which need frames of the next segment. Chunks that
# do not line up with the grid differ everywhere.
SEGMENT = 512 * 1024  # samples per Spleeter segment at 44.1 kHz (~11.9 s)
EDGE = 4096  # samples at a chunk's end whose inverse STFT lacks the following frames


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


def max_crossfade() -> int:
    return SEGMENT - 2 * EDGE


def separate_chunked(
    read: Callable[[int, int], np.ndarray],
    frames: int,
    model: str,
    model_dir: Path,
    *,
    chunk_segments: int,
    crossfade: int,
    threads: int = 0,
    progress: Callable[[float], None] | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Separate a long (frames, 2) signal chunk by chunk; yields consecutive stem blocks covering it.

    `read(start, stop)` returns the signal's samples in that range. Each chunk reads one segment of
    context before its region; neighbours are cross-faded over `crossfade` samples that both computed
    exactly, ending EDGE samples before the earlier chunk's end. Memory is bounded by the chunk size,
    whatever the length of the signal.
    """
    if not 0 <= crossfade <= max_crossfade():
        raise ValueError(f"crossfade must be between 0 and {max_crossfade()} samples")
    plan = chunk_plan(frames, chunk_segments)
    tail: dict[str, np.ndarray] | None = None  # previous chunk's output over the cross-fade
    for index, (start, stop) in enumerate(plan):
        lo = max(0, start - SEGMENT)
        stems = separate(read(lo, stop), model, model_dir, threads)
        # This chunk's output from the end of the previous cross-fade's start to the start of its own.
        own_lo = start - EDGE - crossfade if index else 0
        own_hi = stop - EDGE if index < len(plan) - 1 else frames
        own = {name: audio[own_lo - lo : own_hi - lo] for name, audio in stems.items()}
        body_from = 0
        if tail is not None:
            fade = np.linspace(0.0, 1.0, crossfade, endpoint=False, dtype=np.float32)[:, None]
            yield {name: tail[name] * (1 - fade) + own[name][:crossfade] * fade for name in own}
            body_from = crossfade
        body_to = own_hi - own_lo - (crossfade if index < len(plan) - 1 else 0)
        yield {name: audio[body_from:body_to] for name, audio in own.items()}
        tail = {name: audio[body_to:] for name, audio in own.items()}
        if progress is not None:
            progress(stop / frames)
