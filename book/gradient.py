"""The book's ``common.gradient``: centered differences with the book's step h = 1e-4."""

from bpnet.nn.gradient import numerical_gradient as _numerical_gradient

STEP = 1e-4  # the book's h


def numerical_gradient(f, x):
    """Gradient of the scalar f(x) at x, (f(x+h) − f(x−h)) / 2h per coordinate; x's shape."""
    return _numerical_gradient(f, x, h=STEP)
