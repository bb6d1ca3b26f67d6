"""Where the tests find the real MNIST files, and a small network trained on them.

The folders tried, in order (:func:`candidates`): ``$BPNET_SHARED_MNIST`` (else ``../shared/mnist``
next to the repo), ``$BPNET_DATA_DIR/mnist``, and the per-user data home's ``mnist/``, where the
README's main job (`bpnet download`) puts it, so that its test command then runs the real-MNIST
tests. The first folder whose four files pass bpnet's own verification (IDX header and SHA-256 of
the content) is used; the tests only read it and copy the files into temporary folders.

The environment is read when this module is imported, which conftest does at the start of the
session: a test's own XDG_DATA_HOME or BPNET_DATA_DIR (conftest's ``own_data_home``) changes
nothing here."""

from __future__ import annotations

import functools
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def candidates():
    """The folders that may hold real MNIST, in the order tried, under this environment."""
    from bpnet.data.home import data_home

    found = [Path(os.environ.get("BPNET_SHARED_MNIST") or REPO.parent / "shared" / "mnist")]
    if os.environ.get("BPNET_DATA_DIR"):
        found.append(Path(os.environ["BPNET_DATA_DIR"]) / "mnist")
    found.append(data_home() / "mnist")
    return list(dict.fromkeys(found))


CANDIDATES = candidates()  # at import, which is the session's start


def verified(folder):
    """Whether ``folder`` holds the four MNIST files, each passing bpnet's verification (the
    IDX header and the SHA-256 of the content, read in constant memory; nothing is written)."""
    from bpnet.data.idx import DataCorrupt, DataMissing, read_idx
    from bpnet.data.specs import SPECS

    try:
        for f in SPECS["mnist"].files:
            read_idx(Path(folder) / f.name, f, decode=False)
    except (DataCorrupt, DataMissing, OSError):
        return False
    return True


@functools.cache
def find_mnist():
    """The first of CANDIDATES holding verified MNIST, or None."""
    return next((folder for folder in CANDIDATES if verified(folder)), None)


def not_found():
    """The reason a test needing real MNIST is skipped."""
    return (
        f"real MNIST not found: no verified copy in {', '.join(map(str, CANDIDATES))} (run "
        "`bpnet download`, or set BPNET_SHARED_MNIST to a folder holding the four files)"
    )


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


def write_test_digits(data_dir, folder, n):
    """The first ``n`` real MNIST test digits saved as PNG files named ``{i}-{label}.png`` in
    ``folder``: (paths, labels, uint8 images)."""
    from PIL import Image

    from bpnet.data.idx import load_split

    x, t = load_split(data_dir, "mnist", "test")
    paths = [Path(folder) / f"{i}-{t[i]}.png" for i in range(n)]
    for path, image in zip(paths, x[:n]):
        Image.fromarray(image).save(path)
    return paths, t[:n], x[:n]
