"""The gradient check of a config's model: every layer type on its own, then every parameter
of the config's network in float64 on a few images of its dataset (always scaled to [0, 1]: on
raw 0..255 pixels centered differences lose the accuracy the check needs), or on synthetic
images where the dataset is not there. What ``bpnet gradcheck`` runs."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from bpnet.data.home import dataset_dir
from bpnet.data.idx import DataCorrupt, DataMissing, load_split, prepare
from bpnet.nn.defaults import GRADCHECK_STEP, GRADCHECK_TOL
from bpnet.nn.gradcheck import CheckResult, check_layers, check_network
from bpnet.training.config import INPUT_SIZE, OUTPUT_SIZE, build_network

TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


@dataclass
class Report:
    """What a check found: one CheckResult per compared gradient, the network checked, the
    batch it was checked on, and the seconds it took."""

    results: list[CheckResult]
    network: str
    batch: str
    seconds: float

    @property
    def failed(self):
        return [r for r in self.results if not r.passed]


def check_batch(data_dir, dataset, samples, rng):
    """(x, t, source): ``samples`` real training images scaled to [0, 1] in float64 if the
    dataset is there, else synthetic ones; ``source`` says which."""
    folder, title = dataset_dir(data_dir, dataset), TITLES[dataset]
    try:
        images, labels = load_split(data_dir, dataset, "train")
        idx = rng.choice(len(images), size=samples, replace=False)
        x, t = prepare(images[idx], labels[idx], dtype=np.float64)
        return x, t, f"{samples} {title} training images from {folder}"
    except DataMissing:
        note = f"no {title} in {folder}"
    except DataCorrupt as e:
        note = f"{title} unreadable ({e})"
    x = rng.random((samples, INPUT_SIZE))
    t = rng.integers(0, OUTPUT_SIZE, size=samples)
    return x, t, f"{samples} synthetic images ({note})"


def check_config(
    cfg, samples=3, seed=0, tol=GRADCHECK_TOL, h=GRADCHECK_STEP, max_coords=2000, threads=None
):
    """Check every layer type, then the config's network (``max_coords`` seeded coordinates per
    parameter, None: all of them) on ``samples`` images; a :class:`Report`."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    results = check_layers(tol=tol, h=h, rng=rng)
    x, t, source = check_batch(cfg["data_dir"], cfg["dataset"], samples, rng)
    net = build_network(cfg, rng=rng, dtype=np.float64, dropout_rng=rng)
    network = net.describe()
    if hasattr(net, "layer_specs"):
        # A convolution over a blank patch gives its bias alone, which at 0 sits exactly on
        # ReLU's kink (or ties a pooling window), where a centered difference is not the
        # derivative: the check draws the biases away from 0.
        for key, b in net.params.items():
            if key.startswith("b"):
                b[...] = rng.uniform(0.01, 0.1, b.shape) * rng.choice([-1.0, 1.0], b.shape)
        network += ", biases drawn from ±U(0.01, 0.1)"
    if cfg["name"]:
        network += (
            f", weight_init {cfg['model']['weight_init']}, weight_decay "
            f"{net.weight_decay:g} (config {cfg['name']})"
        )
    results += check_network(
        net, x, t, tol=tol, h=h, max_coords=max_coords, rng=rng, name="net", threads=threads
    )
    return Report(results, network, source, time.perf_counter() - start)
