"""Convolution and max pooling as layers of the graph (the book's chapter 7), over im2col.

``im2col`` lays every (C, FH, FW) patch of a batch of images out as one row, so a convolution is
one matrix product with the filters; ``col2im`` adds such rows back into images (the gradient of
``im2col``). Both work on a strided view of the padded batch, with no Python loop over the batch or
the output positions: ``im2col`` is one copy of that view, ``col2im`` one add per filter offset
(FH·FW of them).

Shapes, the book's: x (N, C, H, W); filters W (FN, C, FH, FW), b (FN,); output (N, FN, OH, OW)
with OH = (H + 2·pad − FH) // stride + 1, likewise OW.

Inside the layers the maps are laid out channel first, (C, N, H, W) in memory, and handed on as
(N, C, H, W) views of it, so no layer transposes its output: ``Convolution`` lays the patches
out as columns, (FH, FW, C) rows by (n, oy, ox) columns (each row one strided copy of the padded
maps, a run of OW values at a time) under a row of ones, and one product [W b]·col gives the
output in that layout, bias included. A batch is cut into BLOCKS fixed blocks of images, shared
by the threads of ``bpnet.nn.threads.use``, each block's patches made a few images at a time
(small enough to stay in cache, and made again in backward rather than kept): the blocks depend
only on the shapes, and the blocks' dW are summed in their order, so the bits are the same on 1
thread or 4.
"""

from __future__ import annotations

import numpy as np

from . import threads

BLOCKS = threads.BLOCKS  # a large batch is cut into this many blocks of images
# A convolution with fewer multiply-adds than this runs as one block (a handoff costs ~20 us).
MIN_BLOCKED = 4_000_000
# Patches are copied and multiplied a few images at a time, at most this many floats (512 KB
# in float32: they stay in a core's cache), and copied again in backward rather than kept.
SUB_BLOCK = 131_072


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


def _bounds(n, work):
    """The fixed blocks [lo, hi) of a batch of n images: BLOCKS of them when ``work`` (the
    layer's multiply-adds) is at least MIN_BLOCKED, else one. Shapes alone decide."""
    if work < MIN_BLOCKED or n < BLOCKS:
        return [0, n]
    return [n * i // BLOCKS for i in range(BLOCKS + 1)]


def _each(bounds, fn):
    """``fn(i, lo, hi)`` for every block i, shared by the threads of ``threads.use``."""
    index = {lo: i for i, lo in enumerate(bounds[:-1])}

    def block(lo, hi):
        fn(index[lo], lo, hi)

    if len(bounds) > 2 and threads.current() > 1:
        threads._share(bounds, block)
    else:
        for lo, hi in zip(bounds, bounds[1:]):
            block(lo, hi)


def _channel_first(x):
    """x (N, C, H, W) as a C-contiguous (C, N, H, W) array: a view when x is already laid out
    channel first (as this module's layers hand on their outputs), else a copy."""
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3))


def _patches(xp, filter_h, filter_w, stride, out_h, out_w, out):
    """The patches of the padded maps xp (C, n, H', W') as the columns of ``out`` (FH·FW·C,
    n·OH·OW), rows (fy, fx, c): FH·FW strided copies, each a run of OW values at a time."""
    c, n = xp.shape[:2]
    view = out.reshape(filter_h, filter_w, c, n, out_h, out_w)
    for y in range(filter_h):
        for x in range(filter_w):
            view[y, x] = xp[:, :, y : y + stride * out_h : stride, x : x + stride * out_w : stride]
    return out


def _channel_bounds(c, size):
    """Fixed blocks of channels for elementwise work on ``size`` values: BLOCKS of them when
    ``size`` is at least ``threads.MIN_ELEMENTWISE``, else one."""
    if size < threads.MIN_ELEMENTWISE or c < BLOCKS:
        return [0, c]
    return [c * i // BLOCKS for i in range(BLOCKS + 1)]


class _Buffers:
    """Arrays kept between calls, one per (name, block), remade when the shape or dtype
    changes: a fresh large array costs its page faults on every use."""

    def __init__(self):
        self.arrays = {}

    def get(self, key, shape, dtype, zeros=False):
        a = self.arrays.get(key)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = self.arrays[key] = (np.zeros if zeros else np.empty)(shape, dtype)
        return a


class Convolution:
    """y = x ∗ W + b, a batch of images through FN filters.

    W: (FN, C, FH, FW); b: (FN,); x: (N, C, H, W); y: (N, FN, OH, OW) (a view of a (FN, N, OH,
    OW) array). forward keeps the zero-bordered x (channel first), whose patches backward makes
    again for dW and db; backward gives dx (None with ``need_dx=False``: a first layer's), and
    fills dW and db. With stride 1 and FN <= 2·C, dx is the convolution of the zero-bordered
    dout with the flipped filters (one copy of patches and one product); otherwise each filter
    offset's share of Wᵀ·dout is added back into dx.
    """

    def __init__(self, W, b, stride=1, pad=0, dW=None, db=None):
        self.W, self.b, self.stride, self.pad = W, b, stride, pad
        self.dW, self.db = dW, db  # gradient buffers, filled in place (made on first use)
        self.x_shape = self._xp = None  # input shape; the (zero-bordered) input, channel first
        self._bounds = None  # the blocks of images of the last forward
        self._buf = _Buffers()

    def _geometry(self, x_shape):
        fn, c, fh, fw = self.W.shape
        out_h = conv_output_size(x_shape[2], fh, self.stride, self.pad)
        out_w = conv_output_size(x_shape[3], fw, self.stride, self.pad)
        if out_h < 1 or out_w < 1:
            raise ValueError(
                f"a {fh}x{fw} filter does not fit {x_shape[2]}x{x_shape[3]} maps "
                f"with pad {self.pad}"
            )
        return fn, c, fh, fw, out_h, out_w

    def forward(self, x, train_flg=True):
        fn, c, fh, fw, out_h, out_w = self._geometry(x.shape)
        n, h, w = x.shape[0], x.shape[2], x.shape[3]
        pad, k, p = self.pad, c * fh * fw, out_h * out_w
        self.x_shape = x.shape
        if pad:  # the zero-bordered maps, in a buffer whose border stays zero
            shape = (c, n, h + 2 * pad, w + 2 * pad)
            xp = self._buf.get("padded", shape, x.dtype, zeros=True)
            xp[:, :, pad : pad + h, pad : pad + w] = x.transpose(1, 0, 2, 3)
        else:
            xp = _channel_first(x)
        w_mat = np.empty((fn, k + 1), dtype=x.dtype)  # the filters, then the bias
        w_mat[:, :k].reshape(fn, fh, fw, c)[...] = self.W.transpose(0, 2, 3, 1)
        w_mat[:, k] = self.b
        bounds = _bounds(n, n * p * k * fn)
        out = np.empty((fn, n * p), dtype=x.dtype)

        def block(i, lo, hi):
            for a, b, col in self._columns(i, lo, hi, xp):
                np.matmul(w_mat, col, out=out[:, a * p : b * p])

        _each(bounds, block)
        self._xp, self._bounds = xp, bounds
        return out.reshape(fn, n, out_h, out_w).transpose(1, 0, 2, 3)

    def backward(self, dout, need_dx=True):
        fn, c, fh, fw, out_h, out_w = self._geometry(self.x_shape)
        n, h, w = self.x_shape[0], self.x_shape[2], self.x_shape[3]
        p = out_h * out_w
        d = _channel_first(dout).reshape(fn, n * p)
        bounds = self._bounds
        if self.dW is None:
            self.dW, self.db = np.empty_like(self.W), np.empty_like(self.b)
        dws = [None] * (len(bounds) - 1)
        dx = np.empty((c, n * h * w), dtype=d.dtype) if need_dx else None
        tconv = self.stride == 1 and self.pad < min(fh, fw) and fn <= 2 * c
        spread = self._transposed_conv if tconv else None
        spread = spread or self._add_back

        def block(i, lo, hi):
            for a, b, col in self._columns(i, lo, hi, self._xp):  # the patches again
                part = d[:, a * p : b * p]
                dw = np.matmul(part, col.T)  # (FN, K + 1): dW, then db
                if a == lo:
                    dws[i] = dw
                else:
                    dws[i] += dw
                if dx is not None:
                    spread(i, a, b, part, dx[:, a * h * w : b * h * w])

        _each(bounds, block)
        dw = dws[0]
        for more in dws[1:]:  # in block order: the same bits always
            dw += more
        self.dW[...] = dw[:, :-1].reshape(fn, fh, fw, c).transpose(0, 3, 1, 2)
        self.db[...] = dw[:, -1]
        if dx is None:
            return None
        return dx.reshape(c, n, h, w).transpose(1, 0, 2, 3)

    def _columns(self, i, lo, hi, xp):
        """(a, b, col) for each few images [a, b) of block i: col (K + 1, (b − a)·OH·OW) their
        patches and a row of ones (the product adds the bias, and gives db in backward), in a
        buffer of block i small enough to stay in cache."""
        fn, c, fh, fw, out_h, out_w = self._geometry(self.x_shape)
        k, p = c * fh * fw, out_h * out_w
        step = max(1, min(hi - lo, SUB_BLOCK // ((k + 1) * p)))
        buf = self._buf.get(("col", i), (k + 1, step * p), xp.dtype)
        buf[k] = 1
        for a in range(lo, hi, step):
            b = min(a + step, hi)
            col = buf[:, : (b - a) * p]
            _patches(xp[:, a:b], fh, fw, self.stride, out_h, out_w, col[:k])
            yield a, b, col

    def _transposed_conv(self, i, lo, hi, d, dx):
        """dx (C, n·H·W) of images [lo, hi) for stride 1: the patches of dout (FN, n·OH·OW),
        bordered with FH − 1 − pad zeros (likewise across), times the flipped filters."""
        fn, c, fh, fw = self.W.shape
        h, w = self.x_shape[2:]
        out_h, out_w = h + 2 * self.pad - fh + 1, w + 2 * self.pad - fw + 1
        qh, qw = fh - 1 - self.pad, fw - 1 - self.pad
        shape = (fn, hi - lo, out_h + 2 * qh, out_w + 2 * qw)
        dp = self._buf.get(("dpad", i, hi - lo), shape, d.dtype, zeros=True)
        dp[:, :, qh : qh + out_h, qw : qw + out_w] = d.reshape(fn, hi - lo, out_h, out_w)
        flipped = self.W[:, :, ::-1, ::-1].transpose(1, 2, 3, 0).reshape(c, -1)
        flipped = flipped.astype(d.dtype, copy=False)
        col = self._buf.get(("dcol", i, hi - lo), (fh * fw * fn, (hi - lo) * h * w), d.dtype)
        _patches(dp, fh, fw, 1, h, w, col)
        np.matmul(flipped, col, out=dx)

    def _add_back(self, i, lo, hi, d, dx):
        """dx (C, n·H·W) of images [lo, hi): W·dout gives each patch's gradient, added back
        into the (zero-bordered) maps one filter offset at a time."""
        fn, c, fh, fw = self.W.shape
        h, w = self.x_shape[2:]
        s, pad = self.stride, self.pad
        out_h = conv_output_size(h, fh, s, pad)
        out_w = conv_output_size(w, fw, s, pad)
        w_mat = self.W.transpose(0, 2, 3, 1).reshape(fn, -1).astype(d.dtype, copy=False)
        dcol = (w_mat.T @ d).reshape(fh, fw, c, hi - lo, out_h, out_w)
        img = np.zeros((c, hi - lo, h + 2 * pad + s - 1, w + 2 * pad + s - 1), dtype=d.dtype)
        for y in range(fh):
            for x in range(fw):
                img[:, :, y : y + s * out_h : s, x : x + s * out_w : s] += dcol[y, x]
        dx.reshape(c, hi - lo, h, w)[...] = img[:, :, pad : pad + h, pad : pad + w]


class Pooling:
    """Max pooling: each output is the largest input of its pool_h × pool_w window.

    x: (N, C, H, W); y: (N, C, OH, OW). backward routes each gradient to one input of its
    window, the first largest one (row by row) in a tie. Windows that do not overlap (stride
    = pool_h = pool_w, no pad: the book's 2×2 pools) take the maximum of pool_h·pool_w strided
    views, and backward finds the largest input again from x and y; other pools go through
    im2col.
    """

    def __init__(self, pool_h, pool_w, stride=2, pad=0):
        self.pool_h, self.pool_w, self.stride, self.pad = pool_h, pool_w, stride, pad
        self.x_shape = self.arg_max = None
        self.x = self.out = self.runs = None  # input, output, running maxima (tiled windows)

    def _tiled(self):
        return self.pad == 0 and self.stride == self.pool_h == self.pool_w

    def _views(self, xc, out_h, out_w):
        """The pool_h·pool_w strided views (C, N, OH, OW) of xc, one per window offset."""
        s = self.stride
        return [
            xc[:, :, y : y + s * out_h : s, z : z + s * out_w : s]
            for y in range(self.pool_h)
            for z in range(self.pool_w)
        ]

    def forward(self, x, train_flg=True):
        n, c, h, w = x.shape
        out_h = conv_output_size(h, self.pool_h, self.stride, self.pad)
        out_w = conv_output_size(w, self.pool_w, self.stride, self.pad)
        self.x_shape = x.shape
        if not self._tiled():
            return self._forward_col(x, out_h, out_w)
        if out_h < 1 or out_w < 1:
            raise ValueError(f"a {self.pool_h}x{self.pool_w} pool does not fit {h}x{w} maps")
        xc = x.transpose(1, 0, 2, 3)
        k = self.pool_h * self.pool_w
        # the running maxima over the first j + 1 offsets, j < k - 1 (the first is a view of x)
        runs = [np.empty((c, n, out_h, out_w), dtype=x.dtype) for _ in range(k - 1)]
        out = runs[-1] if runs else np.empty((c, n, out_h, out_w), dtype=x.dtype)

        def block(i, lo, hi):
            views = self._views(xc[lo:hi], out_h, out_w)
            if not runs:
                np.copyto(out[lo:hi], views[0])
            for j, v in enumerate(views[1:]):
                np.maximum(views[0] if j == 0 else runs[j - 1][lo:hi], v, out=runs[j][lo:hi])

        _each(_channel_bounds(c, x.size), block)
        self.x, self.out = x, out
        self.runs = runs
        return out.transpose(1, 0, 2, 3)

    def backward(self, dout):
        if not self._tiled():
            return self._backward_col(dout)
        n, c, h, w = self.x_shape
        out_h, out_w = self.out.shape[2:]
        d = dout.transpose(1, 0, 2, 3)
        dx = np.empty((c, n, h, w), dtype=dout.dtype)
        if out_h * self.stride < h or out_w * self.stride < w:  # rows or columns no pool reads
            dx.fill(0)
        xc = self.x.transpose(1, 0, 2, 3)

        def block(i, lo, hi):
            # The running maximum reaches the window's maximum first at the offset that takes
            # the gradient: ``reached`` (running maximum over the offsets so far == maximum)
            # turns true there and stays true.
            out, g = self.out[lo:hi], d[lo:hi]
            views = self._views(xc[lo:hi], out_h, out_w)
            dviews = self._views(dx[lo:hi], out_h, out_w)
            before = None
            for j, dv in enumerate(dviews):
                if j == len(dviews) - 1:
                    if j:
                        np.multiply(g, ~before, out=dv)
                    else:
                        np.copyto(dv, g)
                    break
                reached = np.equal(views[0] if j == 0 else self.runs[j - 1][lo:hi], out)
                np.multiply(g, reached if before is None else reached ^ before, out=dv)
                before = reached

        _each(_channel_bounds(c, dx.size), block)
        return dx.transpose(1, 0, 2, 3)

    def _forward_col(self, x, out_h, out_w):
        n, c = x.shape[:2]
        col = im2col(x, self.pool_h, self.pool_w, self.stride, self.pad)
        col = col.reshape(-1, self.pool_h * self.pool_w)  # rows (n, oy, ox, c)
        self.arg_max = col.argmax(axis=1)
        out = col[np.arange(len(col)), self.arg_max]
        return out.reshape(n, out_h, out_w, c).transpose(0, 3, 1, 2)

    def _backward_col(self, dout):
        size = self.pool_h * self.pool_w
        dout = dout.transpose(0, 2, 3, 1).reshape(-1)
        dmax = np.zeros((dout.size, size), dtype=dout.dtype)
        dmax[np.arange(dout.size), self.arg_max] = dout
        dcol = dmax.reshape(-1, self.x_shape[1] * size)
        return col2im(dcol, self.x_shape, self.pool_h, self.pool_w, self.stride, self.pad)
