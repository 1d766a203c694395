"""madmom's bidirectional LSTM networks run batched: all networks, both directions and several blocks at once.
Numpy in, numpy out.

madmom steps its recurrent layers one network, one direction and one 10 ms frame at a time, a dozen small numpy
calls per frame, so on a mix nearly all the time goes to Python's per-call overhead (about 1 s per network per
minute of audio), not to arithmetic. Here the same weights run every (network, direction, block) together: each
frame is one batched matrix product and a few element-wise operations over all of them, and the input
projections of a whole layer are one matrix product. The results equal madmom's to float32 rounding (a test
compares them). No maintained library runs madmom's models (madmom itself has had no release since 2018), so
the forward pass is written here; the weights and the feature chain stay madmom's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit

GATES = ("input_gate", "forget_gate", "cell", "output_gate")


@dataclass(frozen=True)
class Layer:
    """One bidirectional LSTM layer of every network: axis 0 the network, axis 1 the direction (forward,
    backward); gate blocks along the last axis in GATES order."""

    weights: np.ndarray  # (networks, 2, inputs, 4 * hidden)
    recurrent: np.ndarray  # (networks, 2, hidden, 4 * hidden)
    bias: np.ndarray  # (networks, 2, 1, 4 * hidden)
    peepholes: np.ndarray  # (networks, 2, 3, 1, hidden): input, forget and output gates look at the cell state
    init: np.ndarray  # (networks, 2, 1, hidden) first output
    cell_init: np.ndarray  # (networks, 2, 1, hidden) first cell state


@dataclass(frozen=True)
class Ensemble:
    layers: tuple[Layer, ...]
    out_weights: np.ndarray  # (networks, 2 * hidden, classes)
    out_bias: np.ndarray  # (networks, 1, classes)


def stack(networks: Sequence[Any]) -> Ensemble:
    """The weights of madmom `NeuralNetwork`s made of BidirectionalLayers of LSTMLayers and a softmax
    FeedForwardLayer (madmom's beat and downbeat BLSTMs), stacked along a new first axis."""

    def per_direction(layer: Any, pick: Any) -> np.ndarray:
        return np.stack([pick(layer.fwd_layer), pick(layer.bwd_layer)])

    layers = []
    for depth in range(len(networks[0].layers) - 1):
        bidir = [net.layers[depth] for net in networks]

        def gathered(pick: Any, bidir: list[Any] = bidir) -> np.ndarray:
            return np.stack([per_direction(b, pick) for b in bidir]).astype(np.float32)

        layers.append(
            Layer(
                weights=gathered(lambda d: np.concatenate([getattr(d, g).weights for g in GATES], axis=1)),
                recurrent=gathered(lambda d: np.concatenate([getattr(d, g).recurrent_weights for g in GATES], 1)),
                bias=gathered(lambda d: np.concatenate([getattr(d, g).bias for g in GATES])[None, :]),
                peepholes=gathered(
                    lambda d: np.stack([getattr(d, g).peephole_weights for g in GATES if g != "cell"])[:, None, :]
                ),
                init=gathered(lambda d: np.asarray(d.init)[None, :]),
                cell_init=gathered(lambda d: np.asarray(d.cell_init)[None, :]),
            )
        )
    out = [net.layers[-1] for net in networks]
    return Ensemble(
        tuple(layers),
        np.stack([o.weights for o in out]).astype(np.float32),
        np.stack([o.bias[None, :] for o in out]).astype(np.float32),
    )


def _layer(layer: Layer, x: np.ndarray) -> np.ndarray:
    """(networks, blocks, frames, 2 * hidden) outputs for inputs x of (networks or 1, blocks, frames, inputs)."""
    n, _, _, hidden4 = layer.weights.shape
    hidden = hidden4 // 4
    _, blocks, frames, _ = x.shape
    # Input projections of every frame at once: (networks, 2, blocks * frames, 4 * hidden).
    flat = x.reshape(x.shape[0], 1, blocks * frames, x.shape[-1])
    projected = np.matmul(flat, layer.weights)
    projected += layer.bias  # in place: a second array of this size is the layer's largest allocation
    projected = projected.reshape(n, 2, blocks, frames, hidden4)
    projected[:, 1] = projected[:, 1, :, ::-1]  # the backward direction reads time reversed
    h = np.broadcast_to(layer.init, (n, 2, blocks, hidden)).copy()
    c = np.broadcast_to(layer.cell_init, (n, 2, blocks, hidden)).copy()
    p_in, p_forget, p_out = layer.peepholes[:, :, 0], layer.peepholes[:, :, 1], layer.peepholes[:, :, 2]
    out = np.empty((n, 2, blocks, frames, hidden), np.float32)
    for t in range(frames):
        g = projected[:, :, :, t] + np.matmul(h, layer.recurrent)
        i = expit(g[..., :hidden] + c * p_in)
        f = expit(g[..., hidden : 2 * hidden] + c * p_forget)
        c = np.tanh(g[..., 2 * hidden : 3 * hidden]) * i + c * f
        h = np.tanh(c) * expit(g[..., 3 * hidden :] + c * p_out)
        out[:, :, :, t] = h
    return np.concatenate([out[:, 0], out[:, 1, :, ::-1]], axis=-1)


def activate(ensemble: Ensemble, features: np.ndarray) -> np.ndarray:
    """(blocks, frames, classes): the networks' softmax outputs averaged, for features of (blocks, frames,
    inputs); every block has the same length, and each is its own sequence (no state passes between them)."""
    x = np.asarray(features, np.float32)[None]
    for layer in ensemble.layers:
        x = _layer(layer, x)
    logits = np.matmul(x, ensemble.out_weights[:, None]) + ensemble.out_bias[:, None]
    logits -= logits.max(axis=-1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=-1, keepdims=True)).mean(axis=0)
