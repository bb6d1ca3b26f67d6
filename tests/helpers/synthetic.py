"""Small MNIST-layout datasets made on the fly, with a DatasetSpec pinned to their content."""

from __future__ import annotations

import gzip
import hashlib
from types import SimpleNamespace

import numpy as np

from bpnet.data.specs import ARRAYS, IMAGE_MAGIC, LABEL_MAGIC, mnist_layout


def idx_bytes(array):
    """The uncompressed IDX encoding of a uint8 array of images (N, 28, 28) or labels (N,)."""
    magic = IMAGE_MAGIC if array.ndim == 3 else LABEL_MAGIC
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return magic.to_bytes(4, "big") + dims + array.astype(np.uint8).tobytes()


def synthetic_dataset(name="mnist", train=6, test=4, seed=0):
    """Namespace with ``spec`` (pinned to this content, no mirrors), ``arrays`` (by ARRAYS key),
    ``raw`` and ``files`` ({published file name: uncompressed / gzip bytes})."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
        "t_train": rng.integers(0, 10, train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
        "t_test": rng.integers(0, 10, test, dtype=np.uint8),
    }
    raws = [idx_bytes(arrays[k]) for k in ARRAYS]
    spec = mnist_layout(name, [hashlib.sha256(r).hexdigest() for r in raws], train=train, test=test)
    names = [f.name for f in spec.files]
    return SimpleNamespace(
        spec=spec,
        arrays=arrays,
        raw=dict(zip(names, raws)),
        files={n: gzip.compress(r, mtime=0) for n, r in zip(names, raws)},
    )


def write_dataset(ds, data_dir):
    """Write a synthetic dataset's .gz files into ``<data_dir>/<name>/``; returns that folder."""
    folder = data_dir / ds.spec.name
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in ds.files.items():
        (folder / name).write_bytes(data)
    return folder
