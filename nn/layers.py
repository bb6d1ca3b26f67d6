"""Layers of a computational graph: each has ``forward`` and ``backward``.

``forward`` caches exactly what ``backward`` needs, in attributes each layer declares in
``__init__`` (None until the first forward); ``backward(dout)`` returns the gradient with
respect to the layer's inputs and stores parameter gradients as attributes (``dW``, ``db``).
No method writes into an array it was given.

One call for every layer a network chains (Affine, Relu, Sigmoid, Dropout,
BatchNormalization): ``forward(x, train_flg=True)``, the book's keyword; layers that behave
the same in training and inference ignore it. The graph's nodes take their two operands,
``MulLayer``/``AddLayer.forward(x, y)``, and the loss its labels, ``SoftmaxWithLoss.forward(x, t)``.

Shapes: N is the batch size, D the input width, M the output width, C the number
of classes.
"""

from __future__ import annotations

import numpy as np

from .threads import matmul, matmul_into_rows, matmul_rows


class MulLayer:
    """z = x * y.  dz/dx = y, dz/dy = x."""

    def __init__(self):
        self.x = self.y = None

    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, dout):
        return dout * self.y, dout * self.x


class AddLayer:
    """z = x + y.  dz/dx = dz/dy = 1."""

    def forward(self, x, y):
        return x + y

    def backward(self, dout):
        return dout * 1, dout * 1


class Relu:
    """y = max(x, 0), elementwise; any shape. ``positive`` (x > 0) is where y = x and the
    gradient passes (the book's ``mask`` is its complement, the zeroed positions)."""

    def __init__(self):
        self.positive = None

    def forward(self, x, train_flg=True):
        self.positive = x > 0
        return np.maximum(x, 0)

    def backward(self, dout):
        return dout * self.positive


class Sigmoid:
    """y = 1 / (1 + exp(-x)), elementwise; dy/dx = y (1 - y)."""

    def __init__(self):
        self.out = None

    def forward(self, x, train_flg=True):
        self.out = sigmoid(x)
        return self.out

    def backward(self, dout):
        return dout * (1.0 - self.out) * self.out


class Affine:
    """y = x·W + b for a batch.

    x: (N, D) or (N, ...) flattened to (N, D); W: (D, M); b: (M,); y: (N, M).
    backward: dx = dY·Wᵀ in x's original shape, dW = xᵀ·dY, db = Σₙ dY.
    """

    def __init__(self, W, b, dW=None, db=None):
        self.W, self.b = W, b
        self.dW, self.db = dW, db  # gradient buffers, filled in place (made on first use)
        self.x = self.x_shape = self.cols = None  # the (N, D) input, its shape, its columns

    def forward(self, x, train_flg=True, cols=None):
        """y for the batch x (``train_flg`` changes nothing here). ``cols``: when given, ``x``
        (N, len(cols)) holds only these columns of the input, every other column being zero in
        every row: y = x·W[cols] + b, the same y as the full input gives, for the products' cost
        of ``len(cols)`` rows of W instead of D (MNIST batches of 100 have about a third of
        their pixels blank in every image)."""
        self.x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        self.cols = cols
        out = matmul(self.x, self.W) if cols is None else matmul_rows(self.x, self.W, cols)
        out += self.b
        return out

    def backward(self, dout, need_dx=True):
        """Fill dW, db; return dx (None when ``need_dx`` is false: a first layer's). After a
        forward with ``cols``, dW is zero outside those rows and dx covers only those columns."""
        if self.dW is None:
            self.dW, self.db = np.empty_like(self.W), np.empty_like(self.b)
        if self.cols is None:
            matmul(self.x.T, dout, out=self.dW)
        else:
            matmul_into_rows(self.x.T, dout, self.dW, self.cols)
        np.matmul(_ones(len(dout), dout.dtype), dout, out=self.db)  # Σ over the batch, in BLAS
        if not need_dx:
            return None
        W = self.W if self.cols is None else self.W.take(self.cols, axis=0)
        return matmul(dout, W.T).reshape(self.x_shape)


class SoftmaxWithLoss:
    """Softmax followed by mean cross-entropy, fused for stability.

    x: (N, C) scores; t: (N,) class indices or (N, C) one-hot. forward returns the
    mean loss over the batch; backward(dout=1) returns dx = dout · (y - t) / N.
    """

    def __init__(self):
        self.y = self.t = None  # softmax of the scores, labels

    def forward(self, x, t):
        # log y = z - log Σ exp z with z = x - rowmax(x): no overflow, and no log(0).
        z, self.y, sums = _shifted_exp(x)
        self.y /= sums
        self.t = t
        n = x.shape[0]
        picked = (t * z).sum() if t.ndim == x.ndim else z[_rows(n), t].sum()
        return (float(np.log(sums).sum()) - float(picked)) / n

    def backward(self, dout=1.0):
        scale = dout / self.y.shape[0]
        if self.t.ndim == self.y.ndim:  # one-hot (or any probability rows)
            return (self.y - self.t) * scale
        dx = self.y * scale
        dx[_rows(len(dx)), self.t] -= scale
        return dx


class Dropout:
    """Drops units at random while training (the book's convention, no rescaling).

    x: any shape. Training: y = x·mask with mask = (u > ratio), u ~ U[0, 1) drawn per
    element from ``rng`` (a numpy Generator; None: NumPy's global generator, as the book);
    inference: y = x·(1 − ratio). backward: dx = dout·mask. With ``fixed`` set, a
    training forward reuses the last mask instead of drawing a new one (gradient checks).
    """

    def __init__(self, ratio=0.5, rng=None):
        self.ratio, self.rng, self.fixed, self.mask = float(ratio), rng, False, None

    def forward(self, x, train_flg=True):
        if not train_flg:
            return x * np.asarray(1.0 - self.ratio, dtype=x.dtype)
        if not (self.fixed and self.mask is not None and self.mask.shape == x.shape):
            if self.rng is None:
                u = np.random.rand(*x.shape)
            else:  # float32 draws for float32 data: half the cost
                u = self.rng.random(
                    x.shape, dtype=np.float32 if x.dtype == np.float32 else np.float64
                )
            self.mask = u > self.ratio
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


class BatchNormalization:
    """Normalizes each feature over the batch, then scales and shifts it.

    x: (N, D) (or (N, ...) flattened to (N, D)); gamma, beta, running_mean, running_var: (D,).
    Training: xn = (x − μ)/√(σ² + eps) with the batch's mean μ and biased variance σ²,
    y = gamma·xn + beta, and running ← m·running + (1 − m)·batch (updated in place, so a
    network holding these arrays sees them change); inference uses the running statistics.
    backward (training): the full derivative through μ and σ²,
    dx = (dxn − mean(dxn) − xn·mean(dxn·xn)) / √(σ² + eps) with dxn = gamma·dout;
    dgamma = Σₙ xn·dout, dbeta = Σₙ dout. ``MOMENTUM`` and ``EPS`` (the book's values) are
    the defaults of ``momentum`` and ``eps``, and what a network's layers use.
    """

    MOMENTUM, EPS = 0.9, 1e-6

    def __init__(
        self,
        gamma,
        beta,
        momentum=MOMENTUM,
        running_mean=None,
        running_var=None,
        dgamma=None,
        dbeta=None,
        eps=EPS,
    ):
        self.gamma, self.beta, self.momentum, self.eps = gamma, beta, momentum, eps
        self.running_mean, self.running_var = running_mean, running_var
        self.dgamma, self.dbeta = dgamma, dbeta  # gradient buffers, filled in place
        self.x_shape = self.std = self.xn = None  # input shape, √(σ² + eps), normalized input

    def forward(self, x, train_flg=True):
        self.x_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        if self.running_mean is None:
            self.running_mean = np.zeros(x.shape[1], dtype=x.dtype)
            self.running_var = np.zeros(x.shape[1], dtype=x.dtype)
        if train_flg:
            mu = x.mean(axis=0)
            xc = x - mu
            var = np.mean(xc * xc, axis=0)
            self.std = np.sqrt(var + self.eps)
            self.xn = xn = xc / self.std
            m = self.momentum
            self.running_mean *= m
            self.running_mean += (1 - m) * mu
            self.running_var *= m
            self.running_var += (1 - m) * var
        else:
            xn = (x - self.running_mean) / np.sqrt(self.running_var + self.eps)
        return (self.gamma * xn + self.beta).reshape(self.x_shape)

    def backward(self, dout):
        dout = dout.reshape(dout.shape[0], -1)
        if self.dgamma is None:
            self.dgamma, self.dbeta = np.empty_like(self.gamma), np.empty_like(self.beta)
        self.dbeta[...] = dout.sum(axis=0)
        self.dgamma[...] = np.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dx = dxn - dxn.mean(axis=0)
        dx -= self.xn * np.mean(dxn * self.xn, axis=0)
        dx /= self.std
        return dx.reshape(self.x_shape)


_ROWS = np.arange(0)
_ONES = {}


def _ones(shape, dtype):
    """A cached read-only array of ones (a BLAS product with it is a fast sum)."""
    key = (shape, np.dtype(dtype))
    if key not in _ONES:
        _ONES[key] = np.ones(shape, dtype)
        _ONES[key].flags.writeable = False
    return _ONES[key]


def _rows(n):
    """0 … n-1, shared between calls (indexing with a fresh arange costs as much as the rest)."""
    global _ROWS
    if len(_ROWS) < n:
        _ROWS = np.arange(max(n, 2 * len(_ROWS)))
    return _ROWS[:n]


def sigmoid(x):
    """Logistic function without overflow warnings for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(e.dtype, copy=False)


def _shifted_exp(x):
    """(z, exp z, Σ exp z per row) with z = x - rowmax(x), along the last axis.

    For a batch (N, C) the row max is taken over a transposed copy (NumPy reduces a
    short last axis slowly) and the row sums are one BLAS product with ones.
    """
    if x.ndim == 2:
        z = x - np.ascontiguousarray(x.T).max(axis=0)[:, None]
        e = np.exp(z)
        return z, e, e @ _ones((x.shape[1], 1), e.dtype)
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return z, e, e.sum(axis=-1, keepdims=True)


def log_softmax(x):
    """Row-wise log softmax via log-sum-exp with the row max subtracted."""
    z, _, sums = _shifted_exp(x)
    return z - np.log(sums)


def softmax(x):
    """Row-wise softmax, stable for any finite scores."""
    return np.exp(log_softmax(x))


def cross_entropy_error(y, t):
    """Mean cross-entropy of probabilities y (N, C) against indices or one-hot t."""
    if np.ndim(t) == np.ndim(y):  # one-hot rows (or one one-hot row for a single y)
        t = np.argmax(t, axis=-1)
    y = np.atleast_2d(y)
    n = y.shape[0]
    t = np.reshape(t, -1)
    p = y[np.arange(n), t]
    return -float(np.sum(np.log(np.maximum(p, np.finfo(y.dtype).tiny)))) / n
