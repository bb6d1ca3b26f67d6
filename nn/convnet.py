"""Networks described as a sequence of layers (the book's chapters 7 and 8): convolution, max
pooling, affine, ReLU/Sigmoid, batch normalization and dropout, in any order, then an output
Affine to the classes and SoftmaxWithLoss.

A layer is ``(kind, options)``: ``("conv", {"filters": 30, "size": 5, "stride": 1, "pad": 0})``,
``("pool", {"size": 2, "stride": 2, "pad": 0})``, ``("affine", {"units": 100})``, ``("relu",
{})``, ``("sigmoid", {})``, ``("batchnorm", {})``, ``("dropout", {"ratio": 0.5})``. Shapes are
inferred from the input's (C, H, W): :func:`infer_shapes` says which layer does not fit and why
before anything is allocated. Affine flattens what reaches it; batch normalization normalizes
each feature (each channel and position after a convolution, as the book's layer does).

Parameters are named as the book names them: W1, b1, W2, … over the convolutions and affine
layers in order (the output Affine last), gamma1, beta1, … over the batch normalizations; the
layers are ``Conv1``, ``Relu1``, ``Pool1``, ``Affine1``, … in ``layers``. :class:`ConvNet` has
the interface of :class:`~bpnet.nn.network.MultiLayerNet` (one flat array of parameters and one
of gradients, ``inference()``, ``fixed_masks()``, gradients, the weight-decay penalty on every W).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .conv import Convolution, Pooling, conv_output_size
from .defaults import EVAL_MEMORY
from .layers import Affine, BatchNormalization, Dropout, Relu, Sigmoid, SoftmaxWithLoss
from .network import MultiLayerNet, init_std

KINDS = ("conv", "pool", "affine", "relu", "sigmoid", "batchnorm", "dropout")
DEFAULTS = {
    "conv": {"stride": 1, "pad": 0},
    "pool": {"pad": 0},  # stride: the pool's size
    "dropout": {"ratio": 0.5},
}
NAMES = {  # kind -> the book's layer name in ``layers``
    "conv": "Conv",
    "pool": "Pool",
    "affine": "Affine",
    "relu": "Relu",
    "sigmoid": "Sigmoid",
    "batchnorm": "BatchNorm",
    "dropout": "Dropout",
}


class LayerMismatch(ValueError):
    """Layer ``index`` (0-based) cannot take what reaches it."""

    def __init__(self, index, reason):
        super().__init__(f"layers[{index}]: {reason}")
        self.index, self.reason = index, reason


def normalized(layers):
    """``[(kind, options)]`` with every default filled in (a pool's stride is its size)."""
    out = []
    for kind, options in layers:
        opts = {**DEFAULTS.get(kind, {}), **(options or {})}
        if kind == "pool":
            opts.setdefault("stride", opts["size"])
        out.append((kind, opts))
    return out


def _maps(shape):
    return "x".join(map(str, shape[1:])) + " maps" if len(shape) == 3 else f"{shape[0]} features"


def infer_shapes(input_shape, layers):
    """The shape of what leaves each layer, for one example: (C, H, W) while the data are maps,
    (D,) after an Affine. Raises LayerMismatch naming the first layer that does not fit."""
    shape, shapes = tuple(int(s) for s in input_shape), []
    for i, (kind, o) in enumerate(normalized(layers)):
        if kind in ("conv", "pool"):
            if len(shape) != 3:
                raise LayerMismatch(i, f"{kind} over {_maps(shape)}: needs maps (C, H, W)")
            size, stride, pad = o["size"], o["stride"], o["pad"]
            c, h, w = shape
            oh, ow = (conv_output_size(s, size, stride, pad) for s in (h, w))
            if oh < 1 or ow < 1:
                what = "filter" if kind == "conv" else "pool"
                raise LayerMismatch(
                    i, f"{kind} {size}x{size} over {h}x{w} maps (pad {pad}): the {what} is larger"
                )
            shape = (o["filters"] if kind == "conv" else c, oh, ow)
        elif kind == "affine":
            shape = (int(o["units"]),)
        shapes.append(shape)
    return shapes


def param_shapes(input_shape, layers, output_size):
    """{"W1": (FN, C, FH, FW) or (D, M), "b1": …, "gamma1": (D,), …} of the described network
    (the output Affine last)."""
    shapes, w, g = {}, 0, 0
    prev = tuple(input_shape)
    for (kind, o), shape in zip(normalized(layers), infer_shapes(input_shape, layers)):
        if kind == "conv":
            w += 1
            shapes[f"W{w}"] = (o["filters"], prev[0], o["size"], o["size"])
            shapes[f"b{w}"] = (o["filters"],)
        elif kind == "affine":
            w += 1
            shapes[f"W{w}"], shapes[f"b{w}"] = (int(np.prod(prev)), shape[0]), (shape[0],)
        elif kind == "batchnorm":
            g += 1
            shapes[f"gamma{g}"] = shapes[f"beta{g}"] = (int(np.prod(prev)),)
        prev = shape
    w += 1
    shapes[f"W{w}"], shapes[f"b{w}"] = (int(np.prod(prev)), int(output_size)), (int(output_size),)
    return shapes


def buffer_shapes(input_shape, layers):
    """{"running_mean1": (D,), "running_var1": …}: each batch normalization's statistics."""
    shapes, g, prev = {}, 0, tuple(input_shape)
    for (kind, _), shape in zip(normalized(layers), infer_shapes(input_shape, layers)):
        if kind == "batchnorm":
            g += 1
            d = (int(np.prod(prev)),)
            shapes[f"running_mean{g}"] = shapes[f"running_var{g}"] = d
        prev = shape
    return shapes


def image_values(input_shape, layers):
    """(values one image makes through the layers, the im2col values it makes): a convolution
    or pooling lays each window of its input out as a row, OH·OW·C·K² values in all."""
    shapes = infer_shapes(input_shape, layers)
    cols, prev = 0, tuple(input_shape)
    for (kind, o), shape in zip(normalized(layers), shapes):
        if kind in ("conv", "pool"):
            cols += shape[1] * shape[2] * prev[0] * o["size"] ** 2
        prev = shape
    return int(np.prod(input_shape)) + sum(int(np.prod(s)) for s in shapes), cols


def describe_layers(input_shape, layers, output_size):
    """``1x28x28 conv30 5x5 > relu > pool 2x2 > affine100 > relu > affine10``."""
    words = []
    for kind, o in normalized(layers):
        if kind == "conv":
            word = f"conv{o['filters']} {o['size']}x{o['size']}"
            word += f" /{o['stride']}" if o["stride"] != 1 else ""
            word += f" pad{o['pad']}" if o["pad"] else ""
        elif kind == "pool":
            word = f"pool {o['size']}x{o['size']}"
            word += f" /{o['stride']}" if o["stride"] != o["size"] else ""
        elif kind == "affine":
            word = f"affine{o['units']}"
        elif kind == "dropout":
            word = f"dropout {o['ratio']:g}"
        else:
            word = kind
        words.append(word)
    head = "x".join(map(str, input_shape))
    return " > ".join([head, *words, f"affine{output_size}"])


class ConvNet(MultiLayerNet):
    """A network of ``layers`` (see the module) over inputs of ``input_shape`` (C, H, W), ending
    in an Affine to ``output_size`` classes (then, with ``output_dropout``, a Dropout of the
    scores, as the book's DeepConvNet has) and SoftmaxWithLoss. Inputs may come flat (N, C·H·W)
    or as (N, C, H, W). ``weight_init_std``: a number, ``he`` or ``xavier`` (fan-in C·FH·FW for a
    convolution); the other arguments as :class:`MultiLayerNet`'s."""

    def __init__(
        self,
        input_shape,
        layers,
        output_size,
        weight_init_std=0.01,
        weight_decay=0.0,
        dtype=np.float64,
        rng=None,
        dropout_rng=None,
        output_dropout=0.0,
    ):
        for kind, _ in layers:
            if kind not in KINDS:
                raise ValueError(f"layer kind: expected one of {list(KINDS)}, got {kind!r}")
        if not hasattr(rng, "standard_normal"):
            rng = np.random.default_rng(rng)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.layer_specs = normalized(layers)
        self.output_shapes = infer_shapes(self.input_shape, self.layer_specs)
        self.classes = int(output_size)
        self.input_size, self.output_size = int(np.prod(self.input_shape)), self.classes
        self.output_dropout = float(output_dropout)
        self.weight_decay = float(weight_decay)
        self.dtype = np.dtype(dtype)
        self.training = True
        self._allocate(
            param_shapes(self.input_shape, self.layer_specs, self.classes),
            buffer_shapes(self.input_shape, self.layer_specs),
        )
        activation = next((k for k, _ in self.layer_specs if k in ("relu", "sigmoid")), "relu")
        # what MultiLayerNet's users read: the first activation, whether any layer normalizes,
        # the first dropout ratio
        self.activation = activation
        self.batchnorm = any(k == "batchnorm" for k, _ in self.layer_specs)
        ratios = [o["ratio"] for k, o in self.layer_specs if k == "dropout"]
        self.dropout = (ratios or [self.output_dropout])[0]
        for key, W in self.params.items():
            if key.startswith("W"):
                fan_in = int(np.prod(W.shape[1:])) if W.ndim == 4 else W.shape[0]
                W[...] = init_std(weight_init_std, fan_in, activation) * rng.standard_normal(
                    W.shape
                )
            elif key.startswith("gamma"):
                W[...] = 1.0
        self._build(dropout_rng)

    def _build(self, dropout_rng=None):
        p, g, buf = self.params, self.grads, self.buffers
        self.layers, counts, w, bn = OrderedDict(), {}, 0, 0
        for kind, o in self.layer_specs:
            counts[kind] = counts.get(kind, 0) + 1
            name = f"{NAMES[kind]}{counts[kind]}"
            if kind in ("conv", "affine"):
                w += 1
                Wk, bk = f"W{w}", f"b{w}"
                if kind == "conv":
                    layer = Convolution(p[Wk], p[bk], o["stride"], o["pad"], g[Wk], g[bk])
                else:
                    layer = Affine(p[Wk], p[bk], g[Wk], g[bk])
            elif kind == "pool":
                layer = Pooling(o["size"], o["size"], o["stride"], o["pad"])
            elif kind == "batchnorm":
                bn += 1
                layer = BatchNormalization(
                    p[f"gamma{bn}"],
                    p[f"beta{bn}"],
                    running_mean=buf[f"running_mean{bn}"],
                    running_var=buf[f"running_var{bn}"],
                    dgamma=g[f"gamma{bn}"],
                    dbeta=g[f"beta{bn}"],
                )
            elif kind == "dropout":
                layer = Dropout(o["ratio"], dropout_rng)
            else:
                layer = Relu() if kind == "relu" else Sigmoid()
            self.layers[name] = layer
        w += 1
        counts["affine"] = counts.get("affine", 0) + 1
        self.layers[f"Affine{counts['affine']}"] = Affine(
            p[f"W{w}"], p[f"b{w}"], g[f"W{w}"], g[f"b{w}"]
        )
        if self.output_dropout:  # the book's DeepConvNet drops output scores too
            counts["dropout"] = counts.get("dropout", 0) + 1
            self.layers[f"Dropout{counts['dropout']}"] = Dropout(self.output_dropout, dropout_rng)
        self.last_layer = SoftmaxWithLoss()

    @property
    def depth(self):
        """Number of layers with weights (convolutions and affine layers, the output's too)."""
        return sum(1 for k in self.params if k.startswith("W"))

    def eval_batch(self, batch_size):
        """``batch_size`` made small enough that one inference pass holds at most
        ``EVAL_MEMORY`` bytes of layer outputs and im2col rows."""
        values, cols = image_values(self.input_shape, self.layer_specs)
        per_image = (2 * values + cols) * self.dtype.itemsize
        return max(1, min(int(batch_size), EVAL_MEMORY // per_image))

    @property
    def conv_layers(self):
        return self._layers_of(Convolution)

    def describe(self):
        text = describe_layers(self.input_shape, self.layer_specs, self.classes)
        return text + (f" > dropout {self.output_dropout:g}" if self.output_dropout else "")

    def predict(self, x, train_flg=None, cols=None):
        """Scores (N, classes) for inputs (N, C·H·W) or (N, C, H, W); ``cols`` is not taken
        (a convolution reads every pixel)."""
        if cols is not None:
            raise ValueError("a convolutional network reads whole images (cols is not taken)")
        train = self.training if train_flg is None else train_flg
        x = x.reshape(len(x), *self.input_shape)
        for layer in self.layers.values():
            x = layer.forward(x, train)
        return x

    def penalty(self):
        if not self.weight_decay:
            return 0.0
        weights = (w for k, w in self.params.items() if k.startswith("W"))
        return 0.5 * self.weight_decay * sum(float(np.vdot(w, w)) for w in weights)

    def backward(self):
        dout = self.last_layer.backward(1.0)
        first, *rest = self.layers.values()
        for layer in reversed(rest):
            dout = layer.backward(dout)
        if isinstance(first, (Affine, Convolution)):
            first.backward(dout, need_dx=False)
        else:
            first.backward(dout)
        if self.weight_decay:
            for layer in (*self.conv_layers, *self.affine_layers):
                layer.dW += self.weight_decay * layer.W
        return self.grads
