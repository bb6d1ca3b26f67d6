"""Convolution and max pooling as layers of the graph (the book's chapter 7), over im2col.

``im2col`` lays every (C, FH, FW) patch of a batch of images out as one row, so a convolution is
one matrix product with the filters; ``col2im`` adds such rows back into images (the gradient of
``im2col``). Both work on a strided view of the padded batch, with no Python loop over the batch or
the output positions: ``im2col`` is one copy of that view, ``col2im`` one add per filter offset
(FH·FW of them).

Shapes, the book's: x (N, C, H, W); filters W (FN, C, FH, FW), b (FN,); output (N, FN, OH, OW)
with OH = (H + 2·pad − FH) // stride + 1, likewise OW.
"""

from __future__ import annotations

import numpy as np


def conv_output_size(input_size, filter_size, stride=1, pad=0):
    """The output side of a convolution or pooling: (input + 2·pad − filter) // stride + 1."""
    return (input_size + 2 * pad - filter_size) // stride + 1


def _windows(x, filter_h, filter_w, stride, pad):
    """A read-only strided view (N, C, FH, FW, OH, OW) of every window of the padded batch."""
    n, c, h, w = x.shape
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out_h = conv_output_size(h, filter_h, stride, pad)
    out_w = conv_output_size(w, filter_w, stride, pad)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"a {filter_h}x{filter_w} filter does not fit {h}x{w} maps with pad {pad}")
    sn, sc, sh, sw = x.strides
    shape = (n, c, filter_h, filter_w, out_h, out_w)
    strides = (sn, sc, sh, sw, sh * stride, sw * stride)
    return np.lib.stride_tricks.as_strided(x, shape, strides, writeable=False)


def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    """(N·OH·OW, C·FH·FW): row (n, oy, ox) holds the patch of image n under output (oy, ox),
    in the order (c, fy, fx), the book's layout."""
    n = input_data.shape[0]
    win = _windows(input_data, filter_h, filter_w, stride, pad)
    out_h, out_w = win.shape[4:]
    # (N, OH, OW, C, FH, FW): one copy of the view, rows by output position
    return np.ascontiguousarray(win.transpose(0, 4, 5, 1, 2, 3)).reshape(n * out_h * out_w, -1)


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """The images (N, C, H, W) whose im2col rows are ``col``, each pixel the sum of every row
    entry that read it: the gradient of ``im2col`` (what backward needs)."""
    n, c, h, w = input_shape
    out_h = conv_output_size(h, filter_h, stride, pad)
    out_w = conv_output_size(w, filter_w, stride, pad)
    col = col.reshape(n, out_h, out_w, c, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((n, c, h + 2 * pad + stride - 1, w + 2 * pad + stride - 1), dtype=col.dtype)
    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            img[:, :, y:y_max:stride, x:x_max:stride] += col[:, :, y, x]
    return img[:, :, pad : h + pad, pad : w + pad]


class Convolution:
    """y = x ∗ W + b, a batch of images through FN filters.

    W: (FN, C, FH, FW); b: (FN,); x: (N, C, H, W); y: (N, FN, OH, OW). forward keeps the im2col
    rows of x (what dW needs); backward gives dx (None with ``need_dx=False``: a first layer's),
    and fills dW and db.
    """

    def __init__(self, W, b, stride=1, pad=0, dW=None, db=None):
        self.W, self.b, self.stride, self.pad = W, b, stride, pad
        self.dW, self.db = dW, db  # gradient buffers, filled in place (made on first use)
        self.x_shape = self.col = None

    def forward(self, x, train_flg=True):
        fn, _, fh, fw = self.W.shape
        n = x.shape[0]
        self.x_shape = x.shape
        self.col = im2col(x, fh, fw, self.stride, self.pad)
        out = self.col @ self.W.reshape(fn, -1).T  # (N·OH·OW, FN)
        out += self.b
        out_h = conv_output_size(x.shape[2], fh, self.stride, self.pad)
        out_w = conv_output_size(x.shape[3], fw, self.stride, self.pad)
        return out.reshape(n, out_h, out_w, fn).transpose(0, 3, 1, 2)

    def backward(self, dout, need_dx=True):
        fn, c, fh, fw = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, fn)  # (N·OH·OW, FN)
        if self.dW is None:
            self.dW, self.db = np.empty_like(self.W), np.empty_like(self.b)
        self.db[...] = dout.sum(axis=0)
        np.matmul(dout.T, self.col, out=self.dW.reshape(fn, -1))
        if not need_dx:
            return None
        dcol = dout @ self.W.reshape(fn, -1)
        return col2im(dcol, self.x_shape, fh, fw, self.stride, self.pad)


class Pooling:
    """Max pooling: each output is the largest input of its pool_h × pool_w window.

    x: (N, C, H, W); y: (N, C, OH, OW). forward keeps where each maximum was (the first one in a
    tie); backward routes each gradient to that input alone.
    """

    def __init__(self, pool_h, pool_w, stride=2, pad=0):
        self.pool_h, self.pool_w, self.stride, self.pad = pool_h, pool_w, stride, pad
        self.x_shape = self.arg_max = None

    def forward(self, x, train_flg=True):
        n, c, h, w = x.shape
        out_h = conv_output_size(h, self.pool_h, self.stride, self.pad)
        out_w = conv_output_size(w, self.pool_w, self.stride, self.pad)
        col = im2col(x, self.pool_h, self.pool_w, self.stride, self.pad)
        col = col.reshape(-1, self.pool_h * self.pool_w)  # rows (n, oy, ox, c)
        self.x_shape = x.shape
        self.arg_max = col.argmax(axis=1)
        out = col[np.arange(len(col)), self.arg_max]
        return out.reshape(n, out_h, out_w, c).transpose(0, 3, 1, 2)

    def backward(self, dout):
        size = self.pool_h * self.pool_w
        dout = dout.transpose(0, 2, 3, 1).reshape(-1)
        dmax = np.zeros((dout.size, size), dtype=dout.dtype)
        dmax[np.arange(dout.size), self.arg_max] = dout
        dcol = dmax.reshape(-1, self.x_shape[1] * size)
        return col2im(dcol, self.x_shape, self.pool_h, self.pool_w, self.stride, self.pad)
