"""MNIST-format datasets: IDX files on disk to NumPy arrays.

Files live in ``<data_dir>/<dataset>/`` under their published names
(``train-images-idx3-ubyte.gz`` …).
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from .errors import BpnetError, InputError

SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
DATASETS = ("mnist", "fashion-mnist")
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049


class DataMissing(BpnetError, FileNotFoundError):
    """A dataset file is not in the data directory."""


class DataCorrupt(BpnetError):
    """A dataset file is there but is not the IDX file it should be."""


def default_data_dir():
    """``$BPNET_DATA_DIR`` or ``data/`` under the current directory."""
    return Path(os.environ.get("BPNET_DATA_DIR") or "data")


def dataset_dir(data_dir, dataset="mnist"):
    if dataset not in DATASETS:
        raise InputError(f"unknown dataset {dataset!r}: expected one of {', '.join(DATASETS)}")
    return Path(data_dir if data_dir is not None else default_data_dir()) / dataset


def parse_idx(raw, name="IDX data", expect_magic=None, expect_count=None):
    """Decode an uncompressed IDX byte string into a uint8 array, checking its header."""
    if len(raw) < 8:
        raise DataCorrupt(f"{name}: {len(raw)} bytes, too short for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in (IMAGE_MAGIC, LABEL_MAGIC) or (expect_magic and magic != expect_magic):
        want = expect_magic or f"{LABEL_MAGIC} or {IMAGE_MAGIC}"
        raise DataCorrupt(f"{name}: IDX magic number {magic}, expected {want}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    if magic == IMAGE_MAGIC and dims[1:] != [28, 28]:
        raise DataCorrupt(f"{name}: images of {dims[1:]} pixels, expected 28x28")
    if expect_count is not None and dims[0] != expect_count:
        raise DataCorrupt(f"{name}: {dims[0]} items, expected {expect_count}")
    size = int(np.prod(dims))
    if len(raw) != offset + size:
        raise DataCorrupt(f"{name}: {len(raw) - offset} data bytes, expected {size}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def read_idx(path, expect_magic=None, expect_count=None):
    """Read a .gz (or raw) IDX file."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            raw = gzip.decompress(fh.read()) if head == b"\x1f\x8b" else fh.read()
    except FileNotFoundError:
        raise DataMissing(f"{path}: no such file") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataCorrupt(f"{path}: cannot decompress ({e})") from None
    return parse_idx(raw, str(path), expect_magic, expect_count)


def load_split(data_dir=None, dataset="mnist", split="train"):
    """Raw (images uint8 (N, 28, 28), labels uint8 (N,)) of one split."""
    folder = dataset_dir(data_dir, dataset)
    images, labels, count = SPLITS[split]
    x = read_idx(folder / images, IMAGE_MAGIC, count)
    t = read_idx(folder / labels, LABEL_MAGIC, count)
    return x, t


def prepare(x, t, normalize=True, dtype=np.float32, flatten=True, one_hot=False):
    """Scale uint8 pixels to [0, 1] (or keep 0..255), flatten, and encode labels."""
    x = x.reshape(len(x), -1) if flatten else x.reshape(len(x), 1, 28, 28)
    x = x.astype(dtype)
    if normalize:
        x *= np.asarray(1.0 / 255.0, dtype=dtype)
    t = t.astype(np.int64)
    if one_hot:
        t = np.eye(10, dtype=dtype)[t]
    return x, t


def load_dataset(dataset="mnist", data_dir=None, normalize=True, dtype=np.float32,
                 flatten=True, one_hot=False):
    """(x_train, t_train, x_test, t_test) of a dataset in ``data_dir``."""
    out = []
    for split in ("train", "test"):
        x, t = load_split(data_dir, dataset, split)
        out += prepare(x, t, normalize, dtype, flatten, one_hot)
    return tuple(out)
