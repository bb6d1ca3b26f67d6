"""Fully connected networks as a chain of layers:
Affine → [BatchNormalization] → act → [Dropout] → … → Affine → SoftmaxWithLoss.

``MultiLayerNet`` serves any number of hidden layers with ReLU or Sigmoid, optionally
with batch normalization and dropout in every hidden layer; ``TwoLayerNet`` is its
one-hidden-layer case with the lesson's signature. Parameters live in ``params`` under
W1, b1 … Wn, bn (and gamma1, beta1 … for batch norm); the layers hold references to those
same arrays, so updating ``params[k]`` in place updates the net. All parameters are views
into one flat array (``flat_params``) and all gradients into another (``flat_grads``), so an
optimizer can update the whole net in a few calls. Batch norm's running statistics are
``buffers`` (running_mean1, running_var1 …): saved with the weights, never optimized.

``layers`` is the chain as the book keeps it, an OrderedDict named by kind and number:
Affine1, [BatchNorm1], Relu1 (or Sigmoid1), [Dropout1], Affine2, …; every layer in it is
called ``forward(x, train_flg)``. ``last_layer`` (also ``lastLayer``) is the SoftmaxWithLoss.

``training`` selects the mode of every forward pass: True (the default of a new net) uses
batch statistics and draws dropout masks, False uses running statistics and scales by
1 − dropout. Evaluation switches it off (``inference``).
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager

import numpy as np

from .defaults import GRADCHECK_STEP
from .gradient import numerical_gradient
from .layers import Affine, BatchNormalization, Dropout, Relu, Sigmoid, SoftmaxWithLoss

ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid}


def param_shapes(sizes, batchnorm=False):
    """{"W1": (sizes[0], sizes[1]), "b1": (sizes[1],), …, "gamma1": (sizes[1],), …}:
    the trained parameters of layer sizes (gamma/beta of every hidden layer with batch norm)."""
    shapes = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        shapes[f"W{i}"], shapes[f"b{i}"] = (fan_in, fan_out), (fan_out,)
    if batchnorm:
        for i, width in enumerate(sizes[1:-1], start=1):
            shapes[f"gamma{i}"], shapes[f"beta{i}"] = (width,), (width,)
    return shapes


def buffer_shapes(sizes, batchnorm=False):
    """{"running_mean1": (sizes[1],), "running_var1": …}: batch norm's inference statistics."""
    if not batchnorm:
        return {}
    return {
        f"{name}{i}": (width,)
        for i, width in enumerate(sizes[1:-1], start=1)
        for name in ("running_mean", "running_var")
    }


def init_std(weight_init, fan_in, activation):
    """Standard deviation for a layer's weights: a number, ``he`` or ``xavier``."""
    if isinstance(weight_init, str):
        name = weight_init.lower()
        if name == "he":
            return np.sqrt(2.0 / fan_in)
        if name == "xavier":
            return np.sqrt(1.0 / fan_in)
        raise ValueError(f"weight_init: expected a number, 'he' or 'xavier', got {weight_init!r}")
    return float(weight_init)


class MultiLayerNet:
    """Affine/[BatchNormalization]/activation/[Dropout] stack ending in SoftmaxWithLoss.

    sizes: input_size, *hidden_sizes, output_size. weight_decay adds ½·λ·ΣW² to the loss
    (and λ·W to each weight gradient). batchnorm: gamma (ones) and beta (zeros) per hidden
    layer; dropout: the ratio of hidden units dropped while training (0: no Dropout layers).
    ``rng`` (a seed, a Generator, or anything with ``standard_normal``) draws the weights;
    ``dropout_rng`` (a Generator, settable later as ``net.dropout_rng``) draws the masks
    (None: NumPy's global generator).
    """

    activations = ACTIVATIONS  # activation name -> layer class
    activation_key = None  # what names the activation layers in ``layers`` (None: their class)

    def __init__(
        self,
        input_size,
        hidden_sizes,
        output_size,
        activation="relu",
        weight_init_std=0.01,
        weight_decay=0.0,
        dtype=np.float64,
        rng=None,
        batchnorm=False,
        dropout=0.0,
        dropout_rng=None,
    ):
        if activation not in self.activations:
            raise ValueError(
                f"activation: expected one of {sorted(self.activations)}, got {activation!r}"
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout: expected a ratio in [0, 1), got {dropout!r}")
        if not hasattr(rng, "standard_normal"):  # a seed or None (a Generator or RandomState,
            rng = np.random.default_rng(rng)  # or the np.random module itself, is used as is)
        self.sizes = [int(input_size), *map(int, hidden_sizes), int(output_size)]
        self.input_size, self.output_size = self.sizes[0], self.sizes[-1]  # inputs, classes
        self.activation = activation
        self.weight_decay = float(weight_decay)
        self.batchnorm, self.dropout = bool(batchnorm), float(dropout)
        self.dtype = np.dtype(dtype)
        self.training = True
        self._allocate(
            param_shapes(self.sizes, self.batchnorm), buffer_shapes(self.sizes, self.batchnorm)
        )
        for i in range(1, self.depth + 1):
            W = self.params[f"W{i}"]
            W[...] = init_std(weight_init_std, W.shape[0], activation) * rng.standard_normal(
                W.shape
            )
        for key in self.params:
            if key.startswith("gamma"):
                self.params[key][...] = 1.0
        self._build(dropout_rng)

    def _allocate(self, shapes, buffer_shapes):
        """``params`` and ``grads`` of ``shapes`` ({key: shape}) as views into one flat array
        each (zeros, in ``dtype``), and zeroed ``buffers`` of ``buffer_shapes``."""
        total = sum(int(np.prod(s)) for s in shapes.values())
        self.flat_params = np.zeros(total, dtype=self.dtype)
        self.flat_grads = np.zeros(total, dtype=self.dtype)
        self.params, self.grads, start = {}, {}, 0
        for key, shape in shapes.items():
            stop = start + int(np.prod(shape))
            self.params[key] = self.flat_params[start:stop].reshape(shape)
            self.grads[key] = self.flat_grads[start:stop].reshape(shape)
            start = stop
        self.buffers = {k: np.zeros(s, dtype=self.dtype) for k, s in buffer_shapes.items()}

    def _build(self, dropout_rng=None):
        p, g, buf = self.params, self.grads, self.buffers
        activation = self.activations[self.activation]
        act_key = self.activation_key or activation.__name__
        self.layers = OrderedDict()
        for i in range(1, self.depth + 1):
            self.layers[f"Affine{i}"] = Affine(p[f"W{i}"], p[f"b{i}"], g[f"W{i}"], g[f"b{i}"])
            if i == self.depth:
                break
            if self.batchnorm:  # the layer's own momentum and eps
                self.layers[f"BatchNorm{i}"] = BatchNormalization(
                    p[f"gamma{i}"],
                    p[f"beta{i}"],
                    running_mean=buf[f"running_mean{i}"],
                    running_var=buf[f"running_var{i}"],
                    dgamma=g[f"gamma{i}"],
                    dbeta=g[f"beta{i}"],
                )
            self.layers[f"{act_key}{i}"] = activation()
            if self.dropout > 0:
                self.layers[f"Dropout{i}"] = Dropout(self.dropout, dropout_rng)
        self.last_layer = SoftmaxWithLoss()

    @property
    def lastLayer(self):  # noqa: N802  (the name chapter 5's TwoLayerNet gives it)
        return self.last_layer

    @lastLayer.setter
    def lastLayer(self, layer):  # noqa: N802
        self.last_layer = layer

    def describe(self):
        """``784-100-10 relu, batchnorm, dropout 0.2``: the architecture in one phrase."""
        text = "-".join(map(str, self.sizes)) + f" {self.activation}"
        text += ", batchnorm" if self.batchnorm else ""
        return text + (f", dropout {self.dropout:g}" if self.dropout else "")

    @property
    def depth(self):
        """Number of Affine layers."""
        return len(self.sizes) - 1

    def _layers_of(self, kind):
        return [layer for layer in self.layers.values() if isinstance(layer, kind)]

    @property
    def affine_layers(self):
        return self._layers_of(Affine)

    @property
    def batchnorm_layers(self):
        return self._layers_of(BatchNormalization)

    @property
    def dropout_layers(self):
        return self._layers_of(Dropout)

    @property
    def dropout_rng(self):
        layers = self.dropout_layers
        return layers[0].rng if layers else None

    @dropout_rng.setter
    def dropout_rng(self, rng):
        for layer in self.dropout_layers:
            layer.rng = rng

    @contextmanager
    def inference(self):
        """``with net.inference():`` forward passes use running statistics and no dropout."""
        was, self.training = self.training, False
        try:
            yield self
        finally:
            self.training = was

    @contextmanager
    def fixed_masks(self):
        """``with net.fixed_masks():`` training passes reuse each Dropout layer's last mask
        (drawing one only if it has none): the loss becomes one function of the parameters."""
        layers = self.dropout_layers
        was = [layer.fixed for layer in layers]
        for layer in layers:
            layer.fixed = True
        try:
            yield self
        finally:
            for layer, fixed in zip(layers, was):
                layer.fixed = fixed

    def set_params(self, params):
        """Copy arrays into ``params`` (or ``buffers``) in place (shapes must match)."""
        for key, value in params.items():
            target = self.params[key] if key in self.params else self.buffers[key]
            if target.shape != np.shape(value):
                raise ValueError(f"{key}: expected shape {target.shape}, got {np.shape(value)}")
            target[...] = value

    def state_arrays(self):
        """Parameters and buffers: everything a weights file holds (views, not copies)."""
        return {**self.params, **self.buffers}

    def predict(self, x, train_flg=None, cols=None):
        """Scores (N, C) for inputs (N, D) or (N, 1, 28, 28); ``train_flg`` None: ``training``.
        ``cols``: x holds only these columns of the input, the others being zero (``Affine``)."""
        train = self.training if train_flg is None else train_flg
        first, *rest = self.layers.values()
        x = first.forward(x, train, cols=cols)  # the first Affine reads cols
        for layer in rest:
            x = layer.forward(x, train)
        return x

    def loss(self, x, t, train_flg=None, cols=None):
        """Mean cross-entropy of the batch plus the weight-decay penalty (the objective);
        the cross-entropy alone is kept in ``cross_entropy``. ``cols``: as for ``predict``."""
        scores = self.predict(x, train_flg, cols=cols)
        self.cross_entropy = self.last_layer.forward(scores, t)
        return self.cross_entropy + self.penalty()

    def penalty(self):
        """The weight-decay term ½·λ·ΣW² over every weight matrix (0.0 without decay)."""
        if not self.weight_decay:
            return 0.0
        return (
            0.5
            * self.weight_decay
            * sum(
                float(np.vdot(w, w))
                for w in (self.params[f"W{i}"] for i in range(1, self.depth + 1))
            )
        )

    def accuracy(self, x, t):
        """Fraction of rows whose arg-max score is the label (indices or one-hot), in inference
        mode."""
        y = np.argmax(self.predict(x, train_flg=False), axis=1)
        if np.ndim(t) != 1:
            t = np.argmax(t, axis=1)
        return float(np.mean(y == t))

    def numerical_gradient(self, x, t, h=GRADCHECK_STEP):
        """Centered-difference gradient of the training loss for every parameter (dropout
        masks held fixed at those of the first evaluation)."""
        with self.fixed_masks():
            self.loss(x, t, train_flg=True)
            f = lambda _: self.loss(x, t, train_flg=True)  # noqa: E731
            return {key: numerical_gradient(f, p, h) for key, p in self.params.items()}

    def gradient(self, x, t):
        """Backpropagated gradient of the training loss ``loss(x, t, train_flg=True)``: dict
        with the keys of ``params``."""
        self.loss(x, t, train_flg=True)
        return self.backward()

    def backward(self):
        """Gradients of the last computed loss, as ``grads`` (views into ``flat_grads``,
        overwritten by the next call; dx of the first layer is never needed)."""
        dout = self.last_layer.backward(1.0)
        first, *rest = self.layers.values()
        for layer in reversed(rest):
            dout = layer.backward(dout)
        first.backward(dout, need_dx=False)
        if self.weight_decay:
            for layer in self.affine_layers:
                layer.dW += self.weight_decay * layer.W
        return self.grads


class TwoLayerNet(MultiLayerNet):
    """Affine → ReLU → Affine → SoftmaxWithLoss, the lesson's network."""

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01, **kwargs):
        super().__init__(
            input_size, [hidden_size], output_size, weight_init_std=weight_init_std, **kwargs
        )
