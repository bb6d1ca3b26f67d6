"""A toy dataset a small network learns in a second, a config for it, and a training run."""

from __future__ import annotations

import numpy as np

from bpnet.training.batches import Data, Split, split_validation
from bpnet.training.sources import load_config
from bpnet.training.trainer import Trainer


def toy_data(n_train=600, n_test=200, seed=0):
    """Separable 'images': class c lights up pixel block c; noise elsewhere."""
    rng = np.random.default_rng(seed)

    def make(n):
        t = rng.integers(0, 10, n)
        x = rng.integers(0, 60, (n, 784)).astype(np.uint8)
        for c in range(10):
            x[t == c, c * 78 : (c + 1) * 78] += 150
        return x, t

    x, t = make(n_train)
    train, val = split_validation(x, t, 100)
    return Data(train, val, Split(*make(n_test)))


def toy_cfg(tmp_path, **sets):
    overrides = [
        f"{k}={v}"
        for k, v in {
            "model.hidden": "[16]",
            "train.epochs": 3,
            "train.batch_size": 32,
            "train.lr": 0.05,
            "data.validation": 100,
            **sets,
        }.items()
    ]
    return load_config("quick", overrides, {"output.dir": str(tmp_path)})


def run(cfg, data, run_dir, progress=None):
    run_dir.mkdir(parents=True, exist_ok=True)
    return Trainer(cfg, data, run_dir, progress).run()
