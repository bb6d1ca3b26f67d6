"""Where datasets live: the data folder (``--data-dir``, ``$BPNET_DATA_DIR`` or the default) and
the commands that fill it."""
from __future__ import annotations

import os
import shlex
from pathlib import Path

from bpnet.data.specs import get_spec


def default_data_dir():
    """``$BPNET_DATA_DIR`` or ``data/`` under the current directory."""
    return Path(os.environ.get("BPNET_DATA_DIR") or "data")


def dataset_dir(data_dir, dataset="mnist"):
    """``<data_dir>/<dataset>`` (``data_dir`` None: the default); checks the dataset name."""
    get_spec(dataset)
    return Path(data_dir if data_dir is not None else default_data_dir()) / dataset


def download_command(dataset, data_dir=None):
    """The ``bpnet download`` line that fetches ``dataset`` into ``data_dir`` (None: the default,
    which the same current folder and ``BPNET_DATA_DIR`` find again)."""
    where = "" if data_dir is None else f" --data-dir {shlex.quote(str(data_dir))}"
    return f"bpnet download --dataset {dataset}{where}"


def data_dir_note(data_dir):
    """How a message names the default data dir, pointing at the ways to choose another."""
    if data_dir is not None:
        return ""
    if os.environ.get("BPNET_DATA_DIR"):
        return (f" (data dir {default_data_dir()} from BPNET_DATA_DIR; --data-dir DIR chooses "
                "another)")
    return (f" (data dir {default_data_dir()}/ under the current folder, the default; "
            "--data-dir DIR or BPNET_DATA_DIR=DIR choose another)")


