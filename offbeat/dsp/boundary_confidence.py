"""How sure each track boundary the partition found is (`offbeat.dsp.track_boundaries`): the evidence at one cut,
read from the stretches next to it, and the logistic over it whose weights are `Config.confidence_weights`.
Numpy in, numpy out.

The partition finds where the audio turns from like one part to like the next; whether that turn is a new track
or a song's own new section is told by what lies right at it. Two tracks sound unlike each other to the learned
same-track embedding (`offbeat.dsp.same_track`), a song's sections do not; and a DJ's blend turns one track into
the next over many bars, while a song's new section begins at once (`abruptness`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from offbeat.dsp.track_boundaries import Config


def embedding_distance(embedding: np.ndarray, a: tuple[int, int], b: tuple[int, int], span: int) -> float:
    """1 - cosine of two neighbouring parts' mean same-track embeddings (`offbeat.dsp.same_track`), each read over
    at most `span` stretches next to the cut between them (the end of `a`, the start of `b`): near 0 for one
    track, towards 1 (up to 2) for two."""
    x = embedding[max(a[0], a[1] - span) : a[1]].mean(axis=0)
    y = embedding[b[0] : min(b[1], b[0] + span)].mean(axis=0)
    return float(1 - x @ y / max(float(np.linalg.norm(x) * np.linalg.norm(y)), 1e-12))


def confidence(
    x: np.ndarray, cuts: np.ndarray, frame_sec: float, config: Config, embedding: np.ndarray | None = None
) -> np.ndarray:
    """How likely each cut is a true track change, 0-1: a logistic (`confidence_weights`, fitted on the cuts found
    on the tune corpora, a cut being true when a track changes within 10 s of it; figures in docs/accuracy.md)
    over the embedding's distance across the cut (`embedding_distance` over `confidence_span_sec` each side, rows
    of `embedding` being stretches) and the cut's `abruptness`. Without an embedding (its cue weighed 0, as in
    sweeps) the distance term is left out."""
    intercept, per_distance, per_abruptness = config.confidence_weights
    span = max(1, round(config.confidence_span_sec / frame_sec))
    edges = [0, *(int(c) for c in cuts), len(x)]
    logit = np.full(len(cuts), intercept)
    for k, cut in enumerate(edges[1:-1]):
        logit[k] += per_abruptness * abruptness(x, cut, frame_sec, config)
        if embedding is not None:
            before, after = (edges[k], cut), (cut, edges[k + 2])
            logit[k] += per_distance * embedding_distance(embedding, before, after, span)
    return 1.0 / (1.0 + np.exp(-logit))


def abruptness(x: np.ndarray, cut: int, frame_sec: float, config: Config) -> float:
    """How much of the change across `cut` happens at once: the distance between the mean descriptions (rows of
    `x`) of the `abrupt_sec` before and after it, over the distance between the stretches `gradual_sec` before and
    after it. Near 0 for a slow blend, 1 or more for a change at a bar line."""
    near = max(1, round(config.abrupt_sec / frame_sec))
    lo, hi = (max(1, round(sec / frame_sec)) for sec in config.gradual_sec)
    before, after = x[max(0, cut - near) : cut].mean(axis=0), x[cut : cut + near].mean(axis=0)
    far_before = x[max(0, cut - hi) : max(1, cut - lo)].mean(axis=0)
    far_after = x[min(len(x) - 1, cut + lo) : cut + hi].mean(axis=0)
    return float(np.linalg.norm(after - before) / max(float(np.linalg.norm(far_after - far_before)), 1e-9))
