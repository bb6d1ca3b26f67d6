"""What the benchmark scripts share: finding real MNIST."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bpnet.data.home import default_data_dir
from bpnet.data.idx import load_dataset

SHARED = Path(__file__).resolve().parents[2] / "shared"


def data_dir_default():
    """$BPNET_DATA_DIR, else ../shared (holding mnist/) when present, else data/."""
    if os.environ.get("BPNET_DATA_DIR"):
        return Path(os.environ["BPNET_DATA_DIR"])
    return SHARED if (SHARED / "mnist").is_dir() else default_data_dir()


def load_mnist(data_dir, dtype=np.float32):
    """(x_train, t_train, x_test, t_test), pixels scaled to [0, 1]."""
    return load_dataset("mnist", data_dir, normalize=True, dtype=dtype)
