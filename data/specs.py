"""What each dataset is: its four published IDX files (name, IDX magic, item count, SHA-256 of the
decompressed content) and the mirrors that publish them. Plain data, no NumPy: the command
line's help reads the dataset names from here."""

from __future__ import annotations

from dataclasses import dataclass

from bpnet.errors import InputError

IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
CHUNK = 1 << 16  # bytes read, inflated and hashed at a time
ARRAYS = ("x_train", "t_train", "x_test", "t_test")
FILE_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


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
    """A :class:`DatasetSpec` with MNIST's file names; ``sha256s`` in the order of
    :data:`ARRAYS`."""
    counts = (train, train, test, test)
    files = tuple(map(FileSpec, FILE_NAMES, (IMAGE_MAGIC, LABEL_MAGIC) * 2, counts, sha256s))
    return DatasetSpec(name, files, tuple(mirrors))


SPECS = {
    "mnist": mnist_layout(
        "mnist",
        (
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
        (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
    ),
    "fashion-mnist": mnist_layout(
        "fashion-mnist",
        (
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
        ("https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",),
    ),
}
DATASETS = tuple(SPECS)


def get_spec(dataset):
    """The pinned :class:`DatasetSpec` of a dataset name; unknown names are input errors."""
    if dataset not in SPECS:
        raise InputError(f"unknown dataset {dataset!r}: expected one of {', '.join(DATASETS)}")
    return SPECS[dataset]


def idx_size(f):
    """Bytes of FileSpec ``f``'s uncompressed IDX content: header and items."""
    return 16 + 784 * f.count if f.magic == IMAGE_MAGIC else 8 + f.count


def max_transfer(f):
    """The most bytes a good copy of FileSpec ``f`` can take on the wire or on disk: its content
    plus what gzip adds to data it cannot compress (5 bytes per 64 KiB stored block, header)."""
    return idx_size(f) + idx_size(f) // 100 + 1024
