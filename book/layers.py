"""The book's ``common.layers``: bpnet's layers under the book's names and arguments.

``from bpnet.book.layers import *`` gives the layers, the functions of
``bpnet.book.functions`` and ``np``, as the book's module does. bpnet's layers never write
into their inputs (the book's Relu.backward writes into dout) and SoftmaxWithLoss is fused
and stable; Convolution and Pooling (chapter 7) are not provided.
"""

from bpnet.book.functions import *  # noqa: F401,F403  (the book's module re-exports them)
from bpnet.nn.layers import Affine, BatchNormalization, Sigmoid, SoftmaxWithLoss  # noqa: F401
from bpnet.nn.layers import Dropout as _Dropout
from bpnet.nn.layers import Relu as _Relu


class Relu(_Relu):
    """The book's ``Relu``: ``mask`` is ``x <= 0``, the positions forward zeroed (None
    before the first forward), the complement of bpnet's ``positive``."""

    @property
    def mask(self):
        return None if self.positive is None else ~self.positive


class Dropout(_Dropout):
    """The book's ``Dropout(dropout_ratio=0.5)``; masks from NumPy's global generator."""

    def __init__(self, dropout_ratio=0.5):
        super().__init__(dropout_ratio)
