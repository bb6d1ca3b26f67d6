"""The book's ``common.optimizer``: bpnet's update rules with the book's defaults (eps 1e-7).

``update(params, grads)`` never writes into ``grads``. ``from bpnet.book.optimizer import *``
also brings ``np``, as the book's module does.
"""

import numpy as np  # noqa: F401

from bpnet.nn import optim as _optim
from bpnet.nn.optim import SGD, Momentum, Nesterov  # noqa: F401  (same defaults as the book's)

EPS = 1e-7  # the book's denominator guard


class AdaGrad(_optim.AdaGrad):
    def __init__(self, lr=0.01):
        super().__init__(lr, eps=EPS)


class RMSprop(_optim.RMSprop):
    def __init__(self, lr=0.01, decay_rate=0.99):
        super().__init__(lr, decay_rate, eps=EPS)


class Adam(_optim.Adam):
    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        super().__init__(lr, beta1, beta2, eps=EPS)
