"""Numerical differentiation: the reference that backpropagation is checked against."""

from __future__ import annotations

import numpy as np

from .defaults import GRADCHECK_STEP


def numerical_partials(f, x, indices, h=GRADCHECK_STEP):
    """Centered differences (f(x+h) - f(x-h)) / 2h at the given flat indices of x.

    x is perturbed in place one coordinate at a time and each coordinate is
    restored to its exact original value afterwards.
    """
    flat = x.reshape(-1)  # a view: x must be contiguous
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_partials: x must be a contiguous array")
    out = np.empty(len(indices), dtype=np.float64)
    for k, i in enumerate(indices):
        old = flat[i].copy()
        flat[i] = old + h
        f_plus = f(x)
        flat[i] = old - h
        f_minus = f(x)
        flat[i] = old
        out[k] = (f_plus - f_minus) / (2 * h)
    return out


def numerical_gradient(f, x, h=GRADCHECK_STEP):
    """Gradient of scalar f at x by centered differences; same shape as x."""
    grad = numerical_partials(f, x, range(x.size), h)
    return grad.reshape(x.shape).astype(x.dtype, copy=False)
