"""Fully connected networks as a chain of layers: Affine → act → … → Affine → SoftmaxWithLoss.

``MultiLayerNet`` serves any number of hidden layers with ReLU or Sigmoid;
``TwoLayerNet`` is its one-hidden-layer case with the lesson's signature.
Parameters live in ``params`` under W1, b1 … Wn, bn; the Affine layers hold
references to those same arrays, so updating ``params[k]`` in place updates the net.
All parameters are views into one flat array (``flat_params``) and all gradients into
another (``flat_grads``), so an optimizer can update the whole net in a few calls.
"""
from __future__ import annotations

import numpy as np

from .gradient import numerical_gradient
from .layers import Affine, Relu, Sigmoid, SoftmaxWithLoss

ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid}


def param_shapes(sizes):
    """{"W1": (sizes[0], sizes[1]), "b1": (sizes[1],), …}: the parameters of layer sizes."""
    shapes = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        shapes[f"W{i}"], shapes[f"b{i}"] = (fan_in, fan_out), (fan_out,)
    return shapes


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
    """Affine/activation stack ending in SoftmaxWithLoss.

    sizes: input_size, *hidden_sizes, output_size. weight_decay adds
    ½·λ·ΣW² to the loss (and λ·W to each weight gradient).
    """

    def __init__(self, input_size, hidden_sizes, output_size, activation="relu",
                 weight_init_std=0.01, weight_decay=0.0, dtype=np.float64, rng=None):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}")
        rng = np.random.default_rng(rng)
        self.sizes = [int(input_size), *map(int, hidden_sizes), int(output_size)]
        self.activation = activation
        self.weight_decay = float(weight_decay)
        self.dtype = np.dtype(dtype)
        shapes = param_shapes(self.sizes)
        total = sum(int(np.prod(s)) for s in shapes.values())
        self.flat_params = np.zeros(total, dtype=self.dtype)
        self.flat_grads = np.zeros(total, dtype=self.dtype)
        self.params, self.grads, start = {}, {}, 0
        for key, shape in shapes.items():
            stop = start + int(np.prod(shape))
            self.params[key] = self.flat_params[start:stop].reshape(shape)
            self.grads[key] = self.flat_grads[start:stop].reshape(shape)
            start = stop
        for i in range(1, self.depth + 1):
            W = self.params[f"W{i}"]
            W[...] = init_std(weight_init_std, W.shape[0], activation) * rng.standard_normal(W.shape)
        self._build()

    def _build(self):
        self.layers = []
        for i in range(1, self.depth + 1):
            self.layers.append(Affine(self.params[f"W{i}"], self.params[f"b{i}"],
                                      self.grads[f"W{i}"], self.grads[f"b{i}"]))
            if i < self.depth:
                self.layers.append(ACTIVATIONS[self.activation]())
        self.last_layer = SoftmaxWithLoss()

    @property
    def depth(self):
        """Number of Affine layers."""
        return len(self.sizes) - 1

    @property
    def affine_layers(self):
        return self.layers[::2]

    def set_params(self, params):
        """Copy arrays into ``params`` in place (shapes must match)."""
        for key, value in params.items():
            if self.params[key].shape != np.shape(value):
                raise ValueError(f"{key}: expected shape {self.params[key].shape}, got {np.shape(value)}")
            self.params[key][...] = value

    def predict(self, x):
        """Scores (N, C) for inputs (N, D) or (N, 1, 28, 28)."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        """Mean cross-entropy of the batch plus the weight-decay penalty (the objective);
        the cross-entropy alone is kept in ``cross_entropy``."""
        self.cross_entropy = self.last_layer.forward(self.predict(x), t)
        return self.cross_entropy + self.penalty()

    def penalty(self):
        """The weight-decay term ½·λ·ΣW² over every weight matrix (0.0 without decay)."""
        if not self.weight_decay:
            return 0.0
        return 0.5 * self.weight_decay * sum(
            float(np.sum(self.params[f"W{i}"] ** 2)) for i in range(1, self.depth + 1))

    def accuracy(self, x, t):
        """Fraction of rows whose arg-max score is the label (indices or one-hot)."""
        y = np.argmax(self.predict(x), axis=1)
        if np.ndim(t) != 1:
            t = np.argmax(t, axis=1)
        return float(np.mean(y == t))

    def numerical_gradient(self, x, t):
        """Centered-difference gradient of ``loss(x, t)`` for every parameter."""
        f = lambda _: self.loss(x, t)  # noqa: E731
        return {key: numerical_gradient(f, p) for key, p in self.params.items()}

    def gradient(self, x, t):
        """Backpropagated gradient of ``loss(x, t)``: dict with the keys of ``params``."""
        self.loss(x, t)
        return self.backward()

    def backward(self):
        """Gradients of the last computed loss, as ``grads`` (views into ``flat_grads``,
        overwritten by the next call; dx of the first layer is never needed)."""
        dout = self.last_layer.backward(1.0)
        for layer in reversed(self.layers[1:]):
            dout = layer.backward(dout)
        self.layers[0].backward(dout, need_dx=False)
        if self.weight_decay:
            for layer in self.affine_layers:
                layer.dW += self.weight_decay * layer.W
        return self.grads


class TwoLayerNet(MultiLayerNet):
    """Affine → ReLU → Affine → SoftmaxWithLoss, the lesson's network."""

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01, **kwargs):
        super().__init__(input_size, [hidden_size], output_size,
                         weight_init_std=weight_init_std, **kwargs)
