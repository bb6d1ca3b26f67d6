"""Where the real MNIST files are (../shared/mnist next to the repo, or $BPNET_SHARED_MNIST), and
a small network trained on them."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_MNIST = Path(os.environ.get("BPNET_SHARED_MNIST", REPO.parent / "shared" / "mnist"))
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def have_shared_mnist():
    return all((SHARED_MNIST / f).is_file() for f in MNIST_FILES)


def train_mnist_net(data_dir, hidden, steps, path):
    """A 784-hidden-10 ReLU net (He init, float32) after ``steps`` momentum steps on batches of
    100 real MNIST training images from ``data_dir``, also saved as a weights file at ``path``."""
    import numpy as np

    from bpnet.data.idx import load_split
    from bpnet.nn import TwoLayerNet
    from bpnet.nn.optim import make_optimizer
    from bpnet.training.weights import save_weights

    x, t = load_split(data_dir, "mnist", "train")
    rng = np.random.default_rng(0)
    net = TwoLayerNet(784, hidden, 10, weight_init_std="he", dtype=np.float32, rng=0)
    opt = make_optimizer("momentum", 0.05)
    for _ in range(steps):
        idx = rng.integers(0, len(x), 100)
        xb = (x[idx].reshape(100, -1) / 255.0).astype(np.float32)
        opt.update(net.params, net.gradient(xb, t[idx].astype(np.int64)))
    save_weights(
        path,
        net.params,
        {
            "sizes": net.sizes,
            "activation": "relu",
            "dataset": "mnist",
            "normalize": True,
            "dtype": "float32",
        },
    )
    return net
