"""What the benchmark scripts share: finding real MNIST and one epoch of mini-batch training."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bpnet.nn import cross_entropy_error
from bpnet.nn.data import default_data_dir, load_dataset

SHARED = Path(__file__).resolve().parents[2] / "shared"


def data_dir_default():
    """$BPNET_DATA_DIR, else ../shared (holding mnist/) when present, else data/."""
    if os.environ.get("BPNET_DATA_DIR"):
        return Path(os.environ["BPNET_DATA_DIR"])
    return SHARED if (SHARED / "mnist").is_dir() else default_data_dir()


def load_mnist(data_dir, dtype=np.float32):
    """(x_train, t_train, x_test, t_test), pixels scaled to [0, 1]."""
    return load_dataset("mnist", data_dir, normalize=True, dtype=dtype)


def train_epoch(net, x, t, batch, rng, update, augment=None):
    """One pass over (x, t) in shuffled mini-batches; update(grads) changes net.params in place.
    Returns the mean loss and accuracy on the (augmented) training batches as they were seen."""
    order = rng.permutation(len(x))
    losses, hits = [], 0
    for start in range(0, len(x) - batch + 1, batch):
        idx = order[start:start + batch]
        xb = x[idx] if augment is None else augment(x[idx])
        grads = net.gradient(xb, t[idx])
        losses.append(cross_entropy_error(net.last_layer.y, t[idx]))  # the batch's loss
        hits += int(np.sum(net.last_layer.y.argmax(axis=1) == t[idx]))
        update(grads)
    return float(np.mean(losses)), hits / (len(losses) * batch)
