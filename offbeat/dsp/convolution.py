"""madmom's convolutional layers as one matrix product per layer. Numpy in, numpy out.

madmom convolves every (input channel, feature map) pair on its own, one `scipy.ndimage.convolve` call each: its
key network makes about 78,000 such calls for 30 s of audio (a 192 x 192 layer alone is 36,864), so 4 s of a
track's 5 s of features went to Python's per-call overhead, not to arithmetic. (madmom takes OpenCV's filter2D
instead where OpenCV is installed; that is still one call per pair.) Here each layer is one product of the
input's patches with all its kernels. The results equal madmom's to float32 rounding (a test compares them); the
weights and the rest of the network stay madmom's. No maintained library runs madmom's models (madmom has had no
release since 2018), so these few lines are written here.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def activate(layer: Any, data: np.ndarray, **_: Any) -> np.ndarray:
    """What madmom's `ConvolutionalLayer.activate` returns for `data` (frames, bins[, channels]), for its 'valid'
    padding: a true convolution (the kernel flipped), plus the bias, through the activation, then the stride."""
    if data.ndim == 2:
        data = data[:, :, None]
    channels, _, size_time, size_freq = layer.weights.shape
    if data.shape[2] != channels:
        raise ValueError(f"{data.shape[2]} input channels for a layer of {channels}")
    patches = sliding_window_view(data, (size_time, size_freq), axis=(0, 1))  # (frames', bins', channels, t, f)
    kernels = layer.weights[:, :, ::-1, ::-1]  # convolution, not correlation
    out = np.tensordot(patches, kernels, axes=([2, 3, 4], [0, 2, 3])).astype(data.dtype, copy=False)
    out += layer.bias
    if layer.activation_fn is not None:
        layer.activation_fn(out, out=out)
    if layer.stride not in (None, 1, (1, 1)):
        out = out[:: layer.stride[0], :: layer.stride[1]]
    return out


def batched(network: Any) -> Any:
    """`network` (a madmom NeuralNetwork) with each of its 'valid' convolutional layers computed by `activate`."""
    from madmom.ml.nn.layers import ConvolutionalLayer

    for layer in network.layers:
        if isinstance(layer, ConvolutionalLayer) and layer.pad == "valid":
            layer.activate = partial(activate, layer)
    return network
