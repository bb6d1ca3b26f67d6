"""bpnet.data: the datasets: what each one is (specs), where it lives (home), its IDX files
read, verified and cached (idx), fetched from mirrors (mirrors, download), distorted for training
(augment), and digits of the user's own read as MNIST-style inputs (images).

    from bpnet.data import ensure_dataset, load_dataset
"""

from bpnet.base.compat import exports

__getattr__, __dir__ = exports(
    __name__,
    {
        "DatasetSpec": "bpnet.data.specs",
        "FileSpec": "bpnet.data.specs",
        "SPECS": "bpnet.data.specs",
        "DATASETS": "bpnet.data.specs",
        "mnist_layout": "bpnet.data.specs",
        "default_data_dir": "bpnet.data.home",
        "data_home": "bpnet.data.home",
        "dataset_dir": "bpnet.data.home",
        "load_dataset": "bpnet.data.idx",
        "load_arrays": "bpnet.data.idx",
        "load_split": "bpnet.data.idx",
        "DataMissing": "bpnet.data.idx",
        "DataCorrupt": "bpnet.data.idx",
        "ensure_dataset": "bpnet.data.download",
        "download_dataset": "bpnet.data.download",
        "HttpOptions": "bpnet.data.mirrors",
        "DownloadFailed": "bpnet.data.download",
        "Augmenter": "bpnet.data.augment",
        "AugmentSettings": "bpnet.data.augment",
        "load_digit": "bpnet.data.images",
        "read_image": "bpnet.data.images",
        "mnist_preprocess": "bpnet.data.images",
    },
)
__all__ = [
    "AugmentSettings",
    "Augmenter",
    "DATASETS",
    "DataCorrupt",
    "DataMissing",
    "DatasetSpec",
    "DownloadFailed",
    "FileSpec",
    "HttpOptions",
    "SPECS",
    "data_home",
    "dataset_dir",
    "default_data_dir",
    "download_dataset",
    "ensure_dataset",
    "load_arrays",
    "load_dataset",
    "load_digit",
    "load_split",
    "mnist_layout",
    "mnist_preprocess",
    "read_image",
]
