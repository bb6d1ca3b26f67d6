"""The book's ``common.layers``: bpnet's layers under the book's names and arguments.

``from bpnet.book.layers import *`` gives the layers, the functions of
``bpnet.book.functions`` and ``np``, as the book's module does. bpnet's layers never write
into their inputs (the book's Relu.backward writes into dout) and SoftmaxWithLoss is fused
and stable. Chapter 7's Convolution and Pooling are ``bpnet.nn.conv``'s, with the book's
signatures and the state the book's keep (``x``, ``col``, ``col_W``, ``arg_max``).
"""

import numpy as np

from bpnet.book.functions import *  # noqa: F401,F403  (the book's module re-exports them)
from bpnet.book.util import col2im, im2col  # noqa: F401  (the book's module imports them)
from bpnet.nn import conv as _conv
from bpnet.nn import layers as _layers
from bpnet.nn.layers import Affine, BatchNormalization, Sigmoid  # noqa: F401


class Relu(_layers.Relu):
    """The book's ``Relu``: ``mask`` is ``x <= 0``, the positions forward zeroed (None
    before the first forward), the complement of bpnet's ``positive``."""

    @property
    def mask(self):
        return None if self.positive is None else ~self.positive


class Dropout(_layers.Dropout):
    """The book's ``Dropout(dropout_ratio=0.5)``; masks from NumPy's global generator."""

    def __init__(self, dropout_ratio=0.5):
        super().__init__(dropout_ratio)


class SoftmaxWithLoss(_layers.SoftmaxWithLoss):
    """bpnet's fused softmax and cross-entropy; labels also as the book accepts them: a column
    of indices (N, 1), as chapter 7's gradient check passes, is read as indices (the book tells
    one-hot rows from indices by their size, bpnet by their number of axes)."""

    def forward(self, x, t):
        if np.ndim(t) == np.ndim(x) and np.size(t) != np.size(x):
            t = np.reshape(t, -1)
        return super().forward(x, t)


class Convolution(_conv.Convolution):
    """The book's ``Convolution(W, b, stride=1, pad=0)`` on bpnet's; keeps the last input
    ``x`` (a reference) and its im2col rows ``col``; ``col_W`` is W as (C·FH·FW, FN).
    ``dW``/``db`` are filled in place at each backward (the book's makes new arrays)."""

    def __init__(self, W, b, stride=1, pad=0):
        super().__init__(W, b, stride, pad)
        self.x = None

    @property
    def col_W(self):
        return self.W.reshape(len(self.W), -1).T

    @property
    def col(self):
        """The book's im2col rows of the last input, made when asked for (bpnet's layer makes
        its patches a block at a time and keeps none)."""
        if self.x is None:
            return None
        _, _, fh, fw = self.W.shape
        return _conv.im2col(self.x, fh, fw, self.stride, self.pad)

    def forward(self, x, train_flg=True):
        self.x = x
        return super().forward(x, train_flg)


class Pooling(_conv.Pooling):
    """The book's ``Pooling(pool_h, pool_w, stride=2, pad=0)`` (max pooling) on bpnet's;
    keeps the last input ``x`` (a reference) and ``arg_max``, the book's."""

    def __init__(self, pool_h, pool_w, stride=2, pad=0):
        super().__init__(pool_h, pool_w, stride, pad)
        self.x = None

    @property
    def arg_max(self):
        """The book's: for each window (rows n, oy, ox, c), which of its inputs is the largest
        (made when asked for after a pool of windows that do not overlap, which bpnet's layer
        takes without im2col)."""
        if self.x is None or not self._tiled():
            return self._arg_max
        col = _conv.im2col(self.x, self.pool_h, self.pool_w, self.stride, self.pad)
        return col.reshape(-1, self.pool_h * self.pool_w).argmax(axis=1)

    @arg_max.setter
    def arg_max(self, value):
        self._arg_max = value

    def forward(self, x, train_flg=True):
        self.x = x
        return super().forward(x, train_flg)
