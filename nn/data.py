"""MNIST-format datasets: IDX files on disk to NumPy arrays, with a cache of the decoded arrays.

Files live in ``<data_dir>/<dataset>/`` under their published names
(``train-images-idx3-ubyte.gz`` …). What each file must be (IDX header, item count, SHA-256
of the decompressed content) and where it is published is a :class:`DatasetSpec`; the
real datasets' specs are in :data:`SPECS`.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BpnetError, InputError
from .files import atomic_write, read_bytes

IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
GZIP_MAGIC = b"\x1f\x8b"
ARRAYS = ("x_train", "t_train", "x_test", "t_test")
FILE_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
CACHE_NAME = "cache.npz"
CACHE_VERSION = 1


class DataMissing(BpnetError, FileNotFoundError):
    """A dataset file is not in the data directory."""


class DataCorrupt(BpnetError):
    """A dataset file is there but is not the IDX file it should be."""


@dataclass(frozen=True)
class FileSpec:
    """One published IDX file: its name, IDX magic, item count and decompressed SHA-256."""
    name: str
    magic: int
    count: int
    sha256: str


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's four files (in the order of :data:`ARRAYS`) and its built-in mirrors."""
    name: str
    files: tuple
    mirrors: tuple = ()


def mnist_layout(name, sha256s, mirrors=(), train=60000, test=10000):
    """A :class:`DatasetSpec` with MNIST's file names; ``sha256s`` in the order of :data:`ARRAYS`."""
    counts = (train, train, test, test)
    files = tuple(map(FileSpec, FILE_NAMES, (IMAGE_MAGIC, LABEL_MAGIC) * 2, counts, sha256s))
    return DatasetSpec(name, files, tuple(mirrors))


SPECS = {
    "mnist": mnist_layout("mnist", (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ), ("https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/")),
    "fashion-mnist": mnist_layout("fashion-mnist", (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ), ("https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",)),
}
DATASETS = tuple(SPECS)


def get_spec(dataset):
    """The pinned :class:`DatasetSpec` of a dataset name; unknown names are input errors."""
    if dataset not in SPECS:
        raise InputError(f"unknown dataset {dataset!r}: expected one of {', '.join(DATASETS)}")
    return SPECS[dataset]


def default_data_dir():
    """``$BPNET_DATA_DIR`` or ``data/`` under the current directory."""
    return Path(os.environ.get("BPNET_DATA_DIR") or "data")


def dataset_dir(data_dir, dataset="mnist"):
    """``<data_dir>/<dataset>`` (``data_dir`` None: the default); checks the dataset name."""
    get_spec(dataset)
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


def idx_content(data, name="IDX data"):
    """The uncompressed IDX bytes of a file's content, gzip-compressed or not."""
    if data[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataCorrupt(f"{name}: corrupt gzip ({e})") from None
    if int.from_bytes(data[:4], "big") not in (IMAGE_MAGIC, LABEL_MAGIC):
        got = "got HTML?" if data.lstrip()[:1] == b"<" else f"starts with {data[:8]!r}"
        raise DataCorrupt(f"{name}: not gzip/IDX ({got})")
    return data


def decode_idx(data, name="IDX data", expect_magic=None, expect_count=None, sha256=None):
    """Check and decode a file's bytes (gzip-compressed or raw IDX) into a uint8 array.

    With ``sha256``, the decompressed content must have that digest. Errors name ``name``.
    """
    raw = idx_content(data, name)
    array = parse_idx(raw, name, expect_magic, expect_count)
    if sha256 and (got := hashlib.sha256(raw).hexdigest()) != sha256:
        raise DataCorrupt(f"{name}: SHA-256 mismatch (content {got[:16]}…, expected {sha256[:16]}…)")
    return array


def read_idx(path, expect_magic=None, expect_count=None, sha256=None):
    """Read and check a .gz (or raw) IDX file; see :func:`decode_idx`."""
    data = read_bytes(path, DataMissing, DataCorrupt)
    return decode_idx(data, str(path), expect_magic, expect_count, sha256)


def _sources(folder, spec):
    """The cache key: one line per source file with its size, mtime and expected SHA-256."""
    rows = []
    for f in spec.files:
        try:
            st = (folder / f.name).stat()
        except FileNotFoundError:
            raise DataMissing(f"{folder / f.name}: no such file (run `bpnet download --dataset "
                              f"{spec.name}` to fetch it)") from None
        rows.append(f"{f.name} {st.st_size} {st.st_mtime_ns} {f.sha256}")
    return np.array(rows)


def _shape(f):
    return (f.count, 28, 28) if f.magic == IMAGE_MAGIC else (f.count,)


def _read_cache(path, sources, spec):
    """The cached arrays when the cache is intact and was built from exactly ``sources``, else None."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION or not np.array_equal(z["sources"], sources):
                return None
            arrays = {k: z[k] for k in ARRAYS}  # a damaged member fails its zip CRC here
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    shapes_ok = all(a.dtype == np.uint8 and a.shape == _shape(f)
                    for a, f in zip(arrays.values(), spec.files))
    return arrays if shapes_ok else None


def load_arrays(dataset="mnist", data_dir=None, spec=None):
    """The raw uint8 arrays ``{x_train, t_train, x_test, t_test}`` of a dataset.

    The first load decodes and verifies the IDX files and caches the arrays in
    ``<data_dir>/<dataset>/cache.npz``, keyed by the files' sizes, mtimes and SHA-256s;
    later loads read the cache, and a cache that is stale or damaged is rebuilt.
    """
    spec = spec or get_spec(dataset)
    folder = dataset_dir(data_dir, spec.name)
    sources = _sources(folder, spec)
    cache = folder / CACHE_NAME
    arrays = _read_cache(cache, sources, spec)
    if arrays is None:
        try:
            arrays = {k: read_idx(folder / f.name, f.magic, f.count, f.sha256)
                      for k, f in zip(ARRAYS, spec.files)}
        except DataCorrupt as e:
            raise DataCorrupt(f"{e} (run `bpnet download --dataset {spec.name}` to fetch it "
                              "again)") from None
        try:
            with atomic_write(cache) as fh:
                np.savez(fh, version=CACHE_VERSION, sources=sources, **arrays)
        except OSError:  # a read-only data dir: load without a cache
            pass
    return arrays


def load_split(data_dir=None, dataset="mnist", split="train", spec=None):
    """Raw (images uint8 (N, 28, 28), labels uint8 (N,)) of one split."""
    if split not in ("train", "test"):
        raise InputError(f"unknown split {split!r}: expected train or test")
    arrays = load_arrays(dataset, data_dir, spec)
    return arrays[f"x_{split}"], arrays[f"t_{split}"]


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
                 flatten=True, one_hot=False, spec=None):
    """(x_train, t_train, x_test, t_test) of a dataset in ``data_dir``.

    Images are (N, 784) or, with ``flatten=False``, (N, 1, 28, 28) of ``dtype``, scaled to [0, 1]
    unless ``normalize=False``; labels are int64 class indices, or (N, 10) one-hot rows.
    """
    a = load_arrays(dataset, data_dir, spec)
    return (*prepare(a["x_train"], a["t_train"], normalize, dtype, flatten, one_hot),
            *prepare(a["x_test"], a["t_test"], normalize, dtype, flatten, one_hot))
