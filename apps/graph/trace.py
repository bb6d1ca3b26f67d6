"""One image through a network and back, as numbers: what every node of the graph computed
going forward and the gradient that reached it going back (``network_trace``).

The pass is one real forward and backward pass through the network's own layers (``net.layers``
then a Softmax-with-Loss against the target class), in inference mode (dropout scales by
1 − ratio, batch normalization uses its running statistics) and in float64 whatever the
network's dtype: the layers are copied once with their parameters cast (:class:`Tracer`), so the
network, its gradient buffers and its training are left as they are. Two layers get their
inference-mode derivative here instead of their own ``backward``, which is the training one:
batch normalization with running statistics is an affine map, dx = dout·gamma/√(var + eps), and
dropout a scaling, dx = dout·(1 − ratio). The first layer's dx (the gradient on the input) is
computed, which training never needs.

The dict (JSON-able: lists, floats, ints; floats to 6 significant digits, a non-finite one as
None)::

    {"predicted": int, "target": int, "loss": float, "probabilities": [C floats],
     "input": {"shape": [the input's shape], "image": H×W, "grad": H×W, "grad_norm": float},
     "nodes": [{"name": "Affine1", "kind": "affine", "in_shape": [...], "out_shape": [...],
                "forward": {"values": [...], "size": D} or {"maps": K×H×W, "channels": C},
                "backward": {"norm": float, "values" or "maps": as forward},
                "params": [{"name": "W", "key": "W1", "shape": [...], "grad_norm": float,
                            "grad_max_abs": float}]}, ...]}

``kind`` is affine, conv, pool, relu, sigmoid, batchnorm, dropout or softmax-loss (another layer
class: its name in lower case). ``forward`` is the node's output for the image, ``backward`` the
gradient of the loss with respect to that output (dL/d output; ``norm`` its L2 norm over all of
it); a node whose output is a stack of maps (N, C, H, W) gives ``maps``, any other ``values``
(flattened). The last node is the loss: ``forward`` holds the loss, ``backward`` dL/dL = 1.
``loss`` is the cross-entropy of the image against ``target`` (no weight-decay penalty: that is
a term of the training objective, not of the image). Parameter gradients are those of this loss
for this one image; ``grad_norm`` and ``grad_max_abs`` are over the whole array. ``input.image``
and ``input.grad`` are the input as the network takes it (scaled as for training) and dL/d input,
as an image: the first channel of a (C, H, W) input, a flat input of a square size as a square.

Bounded: at most MAX_NUMBERS (100,000) numbers in the arrays of a trace, whatever the network,
plus a handful per node (shapes, norms): the input's image and gradient take at most
2·MAX_SIDE² of them (a larger image is subsampled by a whole step), and the rest is shared
evenly between the forward and backward arrays of the nodes, each also kept to MAX_CHANNELS maps
(the first ones) and MAX_VALUES values (the first ones); ``channels`` and ``size`` say how many
there were in all, ``step`` (when present) that maps were subsampled by that step.
"""

from __future__ import annotations

import copy
import math
import threading

import numpy as np

from bpnet.errors import InputError
from bpnet.nn.conv import Convolution, Pooling, _Buffers
from bpnet.nn.convnet import image_values
from bpnet.nn.layers import (
    Affine,
    BatchNormalization,
    Dropout,
    Relu,
    Sigmoid,
    SoftmaxWithLoss,
)

MAX_NUMBERS = 100_000  # numbers in the arrays of one trace, at most
MAX_CHANNELS = 16  # maps shown of a node's output (the first ones)
MAX_VALUES = 4096  # values shown of a node's flat output (the first ones)
MAX_SIDE = 64  # an input image wider or taller is subsampled to at most this
DIGITS = 6  # significant digits of every float
KINDS = {
    Affine: "affine",
    Convolution: "conv",
    Pooling: "pool",
    Relu: "relu",
    Sigmoid: "sigmoid",
    BatchNormalization: "batchnorm",
    Dropout: "dropout",
}
PARAM_NAMES = ("W", "b", "gamma", "beta")  # a layer's trained arrays, as the layers name them


def trace_memory(net):
    """Bytes one trace of ``net`` may take at its peak beyond the network (an estimate with a
    margin): each layer's output, input gradient and cache in float64 for one image, the
    im2col columns of its convolutions and pools, and the trace's MAX_NUMBERS numbers as Python
    objects and as JSON text (about 100 bytes each). The float64 copy of the weights that a
    :class:`Tracer` keeps is not in it: that is made once."""
    specs = getattr(net, "layer_specs", None)
    if specs is not None:
        values, cols = image_values(net.input_shape, specs)
    else:  # a fully connected chain: no layer is wider than the widest Affine
        values, cols = len(net.layers) * max(net.sizes), 0
    return 8 * (4 * values + 2 * cols) + 100 * MAX_NUMBERS


def network_trace(net, x, target=None):
    """The trace (see the module) of one image ``x`` (as the network takes it: any shape of
    ``net.input_size`` values, e.g. (784,), (1, 784) or (1, 28, 28)) through ``net`` (a
    MultiLayerNet or ConvNet), the loss taken against class ``target`` (None: the predicted
    class). A server tracing many images keeps one :class:`Tracer` instead."""
    return Tracer(net).trace(x, target)


class Tracer:
    """The layers of ``net`` copied once in float64 (parameters and running statistics cast,
    caches and gradient buffers of their own), to trace one image at a time (a lock makes
    concurrent calls take turns)."""

    def __init__(self, net):
        self.input_shape = tuple(getattr(net, "input_shape", (net.input_size,)))
        self.classes = int(net.output_size)
        keys = {id(a): k for k, a in {**net.params, **net.buffers}.items()}
        self.layers, self.keys = [], []
        for name, layer in net.layers.items():
            mine, names = copy.copy(layer), {}
            for attr, value in vars(layer).items():
                if isinstance(value, np.ndarray):
                    if id(value) in keys:  # a parameter or running statistic, cast
                        if attr in PARAM_NAMES:
                            names[attr] = keys[id(value)]
                        value = value.astype(np.float64)
                    else:  # a cache of the last pass or a gradient buffer: the copy's own
                        value = None
                elif isinstance(value, _Buffers):
                    value = _Buffers()
                setattr(mine, attr, value)
            self.layers.append((name, mine))
            self.keys.append(names)
        self._lock = threading.Lock()

    def trace(self, x, target=None):
        x = np.asarray(x, dtype=np.float64)
        size = math.prod(self.input_shape)
        if x.size != size:
            raise InputError(
                f"image of {x.size} values ({'x'.join(map(str, x.shape))}): the network takes "
                f"{size} ({'x'.join(map(str, self.input_shape))})"
            )
        if target is not None:
            if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
                raise InputError(f"target {target!r}: expected a class 0..{self.classes - 1}")
            if not 0 <= target < self.classes:
                raise InputError(f"target {target}: expected a class 0..{self.classes - 1}")
        with self._lock:
            return self._trace(x.reshape(1, *self.input_shape), target)

    def _trace(self, x, target):
        inputs, out = [], x
        for _, layer in self.layers:
            inputs.append(out)
            out = layer.forward(out, False)
        scores = out.reshape(1, -1)
        predicted = int(np.argmax(scores[0]))
        target = predicted if target is None else int(target)
        loss_layer = SoftmaxWithLoss()
        loss = loss_layer.forward(scores, np.array([target]))
        probabilities = loss_layer.y[0]  # the softmax the loss and its backward use
        outputs = [*inputs[1:], out]
        dout, arriving, params = loss_layer.backward(1.0).reshape(out.shape), [], []
        for (_, layer), x_in, keys in zip(
            reversed(self.layers), reversed(inputs), reversed(self.keys)
        ):
            arriving.append(dout)
            dout, grads = _backward(layer, x_in, dout)
            params.append(
                [
                    {
                        "name": attr,
                        "key": keys[attr],
                        "shape": list(g.shape),
                        "grad_norm": _round(np.linalg.norm(g)),
                        "grad_max_abs": _round(np.max(np.abs(g)) if g.size else 0.0),
                    }
                    for attr, g in grads.items()
                    if attr in keys
                ]
            )
        arriving.reverse(), params.reverse()
        image, grad = _as_image(x[0]), _as_image(dout[0])
        share = (MAX_NUMBERS - image.size - grad.size) // (2 * (len(self.layers) + 1))
        nodes = []
        for (name, layer), x_in, y, d, p in zip(self.layers, inputs, outputs, arriving, params):
            nodes.append(
                {
                    "name": name,
                    "kind": KINDS.get(type(layer), type(layer).__name__.lower()),
                    "in_shape": list(x_in.shape[1:]),
                    "out_shape": list(y.shape[1:]),
                    "forward": _shown(y[0], share),
                    "backward": {"norm": _round(np.linalg.norm(d)), **_shown(d[0], share)},
                    "params": p,
                }
            )
        nodes.append(
            {
                "name": "SoftmaxWithLoss",
                "kind": "softmax-loss",
                "in_shape": list(scores.shape[1:]),
                "out_shape": [],
                "forward": {"values": [_round(loss)], "size": 1},
                "backward": {"norm": 1.0, "values": [1.0], "size": 1},
                "params": [],
            }
        )
        return {
            "predicted": predicted,
            "target": target,
            "loss": _round(loss),
            "probabilities": _rounded(probabilities),
            "input": {
                "shape": list(self.input_shape),
                "image": _rounded(image),
                "grad": _rounded(grad),
                "grad_norm": _round(np.linalg.norm(dout)),
            },
            "nodes": nodes,
        }


def _backward(layer, x, dout):
    """(dL/d the layer's input, {name: parameter gradient}) for a layer that ran forward on
    ``x`` in inference mode."""
    if isinstance(layer, BatchNormalization):  # y = gamma·(x − mean)/std + beta, fixed statistics
        flat, d = x.reshape(len(x), -1), dout.reshape(len(dout), -1)
        std = np.sqrt(layer.running_var + layer.eps)
        xn = (flat - layer.running_mean) / std
        dx = (d * (layer.gamma / std)).reshape(x.shape)
        return dx, {"gamma": np.sum(xn * d, axis=0), "beta": d.sum(axis=0)}
    if isinstance(layer, Dropout):  # y = x·(1 − ratio)
        return dout * (1.0 - layer.ratio), {}
    dx = layer.backward(dout)
    grads = {}
    for attr in PARAM_NAMES:
        g = getattr(layer, "d" + attr, None)
        if isinstance(g, np.ndarray):
            grads[attr] = g
    return dx, grads


def _as_image(a):
    """A 2-D picture of one input: a (C, H, W) input's first channel, a flat input of square
    size as a square (else one row); subsampled to at most MAX_SIDE on each side."""
    if a.ndim == 3:
        a = a[0]
    elif a.ndim != 2:
        side = math.isqrt(a.size)
        a = a.reshape(side, side) if side * side == a.size else a.reshape(1, -1)
    step = max(1, -(-max(a.shape) // MAX_SIDE))
    return a[::step, ::step]


def _shown(a, share):
    """{"maps": …, "channels": C} of an output of maps (C, H, W), else {"values": …, "size":
    D}: at most ``share`` numbers, MAX_CHANNELS maps and MAX_VALUES values."""
    share = max(share, 0)
    if a.ndim == 3:
        c, h, w = a.shape
        k, step = min(c, MAX_CHANNELS, share // (h * w)), 1
        if k == 0 and share:  # not even one whole map fits: one map, subsampled
            k, step = 1, 2
            while -(-h // step) * -(-w // step) > share:
                step += 1
        shown = {"maps": _rounded(a[:k, ::step, ::step]), "channels": c}
        return {**shown, "step": step} if step > 1 else shown
    flat = a.reshape(-1)
    return {"values": _rounded(flat[: min(flat.size, MAX_VALUES, share)]), "size": flat.size}


def _round(v):
    """A float to DIGITS significant digits (None if it is not finite)."""
    v = float(v)
    return float(f"{v:.{DIGITS}g}") if math.isfinite(v) else None


def _rounded(a):
    """Nested lists of ``a``'s values, each rounded as ``_round``."""
    a = np.asarray(a, dtype=np.float64)
    flat = [_round(v) for v in a.reshape(-1).tolist()]
    if a.ndim <= 1:
        return flat
    out = np.empty(a.size, dtype=object)
    out[:] = flat
    return out.reshape(a.shape).tolist()
