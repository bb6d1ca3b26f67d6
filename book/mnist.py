"""The book's ``dataset.mnist.load_mnist`` over bpnet's verified MNIST.

The files are read from ``$BPNET_DATA_DIR/mnist``, else the per-user data home's ``mnist``
folder (``bpnet.data.home``; downloaded and verified there when missing, saying so on stderr)
instead of the book's ``mnist.pkl``.
"""

import sys

import numpy as np

from bpnet.data.download import ensure_dataset
from bpnet.data.idx import load_arrays, prepare


def _say(message):
    """A download's notes (which files, into which folder; a mirror that failed) on stderr."""
    print(f"load_mnist: {message}", file=sys.stderr)


def load_mnist(normalize=True, flatten=True, one_hot_label=False):
    """((x_train, t_train), (x_test, t_test)) as the book returns them.

    x: (N, 784), or (N, 1, 28, 28) with ``flatten=False``; float32 in [0, 1] with
    ``normalize``, else uint8 0..255. t: uint8 labels, or (N, 10) float64 one-hot rows.
    """
    ensure_dataset("mnist", report=_say)
    a = load_arrays("mnist")

    def split(x, t):
        if normalize:
            x = prepare(x, t, normalize=True, dtype=np.float32, flatten=flatten)[0]
        else:
            x = x.reshape(len(x), -1) if flatten else x.reshape(len(x), 1, 28, 28)
        return x, np.eye(10)[t] if one_hot_label else t

    return split(a["x_train"], a["t_train"]), split(a["x_test"], a["t_test"])
