"""The book's ``common.functions``: activation and loss functions on arrays.

softmax, sigmoid and cross_entropy_error are bpnet's (stable: the row max subtracted,
log-sum-exp, no ``+1e-7`` inside the log); ``from bpnet.book.functions import *`` also
brings ``np``, as the book's module does.
"""

import numpy as np

from bpnet.nn.layers import cross_entropy_error, sigmoid, softmax


def identity_function(x):
    return x


def step_function(x):
    """1 where x > 0, else 0 (integers)."""
    return np.array(x > 0, dtype=int)


def sigmoid_grad(x):
    """dσ/dx = σ(x)·(1 − σ(x))."""
    s = sigmoid(x)
    return (1.0 - s) * s


def relu(x):
    return np.maximum(0, x)


def relu_grad(x):
    """1 where x >= 0, else 0, in x's dtype (the book's convention at 0)."""
    x = np.asarray(x)
    return (x >= 0).astype(x.dtype)


def sum_squared_error(y, t):
    """½·Σ (y − t)²."""
    return 0.5 * np.sum((y - t) ** 2)


def softmax_loss(X, t):
    """Mean cross-entropy of softmax(X) against t (indices or one-hot)."""
    return cross_entropy_error(softmax(X), t)
