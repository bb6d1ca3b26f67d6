"""The book's ``common.util``: chapter 6's helpers and chapter 7's im2col.

``im2col``, ``col2im`` and ``conv_output_size`` are ``bpnet.nn.conv``'s: the book's row layout
and results, in the input's dtype (the book's are always float64); ``conv_output_size`` gives
the whole number of positions (the book's returns a float, 24.0 for 24).
"""

import numpy as np

from bpnet.nn.conv import col2im, conv_output_size, im2col  # noqa: F401


def smooth_curve(x):
    """x smoothed by an 11-point Kaiser window (β = 2) with mirrored ends; same length as x."""
    w = np.kaiser(11, 2)
    padded = np.r_[x[10:0:-1], x, x[-1:-11:-1]]
    return np.convolve(w / w.sum(), padded, mode="valid")[5:-5]


def shuffle_dataset(x, t):
    """(x, t) in one random order of their rows (NumPy's global generator)."""
    order = np.random.permutation(len(x))
    return x[order], t[order]
