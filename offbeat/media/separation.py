"""Stem separation with Spleeter: one model per process, reused across chunks and jobs.

Two backends compute the same stems. `onnx` (the default): the U-Nets exported to ONNX beside the checkpoint
(`onnx_export`), run by onnxruntime with the STFT in numpy (`onnx_runtime`); 1.75x faster on CPU and a third
less memory. `tensorflow`: Spleeter's own graph (`SpleeterModel`: STFT, U-Net per instrument, ratio masks,
inverse STFT), built from Spleeter's configuration with the band chosen here, so the released checkpoints
load unchanged; it is the reference the ONNX path is tested against, and the fallback where a model has no
export. Either model is built once per (model, band) and kept; `separate` is numpy in, numpy out.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from offbeat.errors import AnalysisError, ErrorCode
from offbeat.media import weights

STEMS = {"2stems": ("vocals", "accompaniment"), "4stems": ("vocals", "drums", "bass", "other")}

# How far up the spectrum the stems reach, as (Spleeter configuration suffix, mask_extension). The networks
# were trained on the 1024 lowest STFT bins (up to 11 kHz); above their band Spleeter either zeroes the masks
# (`zeros`: both stems lose everything above, so they no longer sum to the mix) or extends each frame's mean
# mask upwards (`average`: the high band is shared out in the proportion the stems hold below it, and the
# stems sum back to the mix). The `-16kHz` configurations run the same weights over 1536 bins (16.5 kHz).
# Measured in bench/accuracy/stems_band.py (see README, "Stems").
BANDS: dict[str, tuple[str, str]] = {
    "11khz": ("", "zeros"),
    "full": ("", "average"),
    "16khz": ("-16kHz", "zeros"),
    "16khz-full": ("-16kHz", "average"),
}
DEFAULT_BAND = "full"
Backend = Literal["onnx", "tensorflow"]
DEFAULT_BACKEND: Backend = "onnx"
log = logging.getLogger(__name__)
_lock = threading.RLock()  # a TensorFlow session of Spleeter's is not safe to call from several threads at once


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


def model_params(model: str, band: str) -> dict[str, Any]:
    """Spleeter's own configuration of `model` (its instruments, U-Net, STFT) with the frequency band of `band`."""
    from spleeter.utils.configuration import load_configuration

    if band not in BANDS:
        raise ValueError(f"unknown stem band {band!r}; known: {', '.join(BANDS)}")
    suffix, extension = BANDS[band]
    params = load_configuration(f"spleeter:{model}{suffix}")
    params.update(mask_extension=extension, MWF=False)
    return params


def _require_installed(model: str, folder: Path) -> None:
    if not weights.is_installed(model, folder):
        raise AnalysisError(
            ErrorCode.INTERNAL,
            f"Spleeter model {model} is not installed in {folder}; run `offbeat models pull {model}` "
            f"or `offbeat models install PATH`",
            stage="separate",
        )


@lru_cache(maxsize=4)
def get_separator(model: str, model_dir: str, threads: int = 0, band: str = DEFAULT_BAND) -> Any:
    """The process-wide TensorFlow Spleeter model for `model` over `band`, its weights from `model_dir`/`model`."""
    folder = Path(model_dir).resolve()
    _require_installed(model, folder)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    configure_tensorflow(threads)
    from spleeter.model import SpleeterModel

    params = model_params(model, band)
    params["model_dir"] = str(folder / model)
    spleeter_model = SpleeterModel(params)
    spleeter_model.load(params["model_dir"])
    return spleeter_model


@lru_cache(maxsize=4)
def get_onnx_separator(model: str, model_dir: str, threads: int = 0, band: str = DEFAULT_BAND) -> Any:
    """The process-wide onnxruntime separator for `model` over `band`, or None where there is no ONNX export.

    An install made before exports existed gets its file here, once, in a child process; where the export
    fails (the reason is logged) the caller uses TensorFlow, which gives the same stems, only slower.
    """
    from offbeat.media import onnx_export
    from offbeat.media.onnx_runtime import OnnxSeparator

    folder = Path(model_dir).resolve()
    _require_installed(model, folder)
    path = onnx_export.onnx_file(model, folder, onnx_export.bins_of(model, band))
    if not path.exists() and not onnx_export.export_in_subprocess(model, folder, [band], log=log.warning):
        log.warning("%s: no ONNX export for band %s in %s; separating with TensorFlow", model, band, folder)
        return None
    return OnnxSeparator(path, model_params(model, band), threads)


def separate(
    waveform: np.ndarray,
    model: str,
    model_dir: Path,
    threads: int = 0,
    *,
    band: str = DEFAULT_BAND,
    backend: Backend = DEFAULT_BACKEND,
) -> dict[str, np.ndarray]:
    """Stems of a (frames, 2) float32 44.1 kHz waveform, each the same shape as the input."""
    if backend not in ("onnx", "tensorflow"):
        raise ValueError(f"unknown separation backend {backend!r}; known: onnx, tensorflow")
    samples = np.ascontiguousarray(waveform, dtype=np.float32)
    with _lock:  # also keeps two threads from loading the model twice
        onnx = get_onnx_separator(model, str(model_dir), threads, band) if backend == "onnx" else None
        if onnx is not None:
            stems = onnx.separate(samples)
        else:
            stems = get_separator(model, str(model_dir), threads, band).predict(samples, "")
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
    band: str = DEFAULT_BAND,
    backend: Backend = DEFAULT_BACKEND,
    progress: Callable[[float], None] | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Separate a long (frames, 2) signal chunk by chunk; yields consecutive stem blocks covering it.

    `read(start, stop)` returns the signal's samples in that range. On onnxruntime, each chunk runs the U-Net
    on its own segments only and the inverse STFTs of neighbours are added where their frames overlap, which is
    exactly the whole-signal call (`_onnx_chunks`). On TensorFlow, whose graph cuts segments from the start of
    whatever it is given, each chunk reads one segment of context before its region; neighbours are cross-faded
    over `crossfade` samples that both computed exactly, ending EDGE samples before the earlier chunk's end.
    Memory is bounded by the chunk size, whatever the length of the signal.
    """
    if not 0 <= crossfade <= max_crossfade():
        raise ValueError(f"crossfade must be between 0 and {max_crossfade()} samples")
    plan = chunk_plan(frames, chunk_segments)
    if backend == "onnx":
        with _lock:
            onnx = get_onnx_separator(model, str(model_dir), threads, band)
        if onnx is not None and onnx.segment * onnx.hop == SEGMENT:  # chunks start on the model's segment grid
            yield from _onnx_chunks(onnx, read, frames, plan, STEMS[model], progress)
            return
    tail: dict[str, np.ndarray] | None = None  # previous chunk's output over the cross-fade
    for index, (start, stop) in enumerate(plan):
        lo = max(0, start - SEGMENT)
        stems = separate(read(lo, stop), model, model_dir, threads, band=band, backend=backend)
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


def _onnx_chunks(
    onnx: Any,
    read: Callable[[int, int], np.ndarray],
    frames: int,
    plan: list[tuple[int, int]],
    names: tuple[str, ...],
    progress: Callable[[float], None] | None,
) -> Iterator[dict[str, np.ndarray]]:
    """Stem blocks of the chunks in `plan`, each computing only the STFT frames of its own segments (no context
    segment to recompute): where two chunks meet, the last frames of one and the first of the next overlap by
    a window less a hop, and their sum there is what one whole-signal call gives."""
    hop, total = onnx.hop, onnx.frames(frames)

    from offbeat.media.onnx_runtime import zero_padded

    padded = zero_padded(read, frames, onnx.channels)
    carry: dict[str, np.ndarray] | None = None  # the previous chunk's unfinished tail, from sample `carried`
    carried = 0
    for index, (start, stop) in enumerate(plan):
        last = index == len(plan) - 1
        with _lock:  # one separation at a time in a process, as `separate` runs them
            first, out = onnx.span(padded, start // hop, total if last else stop // hop)
        if carry is not None:
            for name in names:
                out[name][:, : carry[name].shape[1]] += carry[name]
        # Samples before the next chunk's first frame are final; the rest waits for the next chunk's frames.
        done = frames if last else stop - onnx.length
        yield {name: onnx.finish(out[name][:, carried - first : done - first]) for name in names}
        carry = {name: out[name][:, done - first :] for name in names}
        carried = done
        if progress is not None:
            progress(stop / frames)


def segments_per_chunk(chunk_sec: float, sample_rate: int) -> int:
    """Spleeter segments per separation chunk of about `chunk_sec` (chunks are cut on Spleeter's own segment grid)."""
    return max(1, round(chunk_sec * sample_rate / SEGMENT))
