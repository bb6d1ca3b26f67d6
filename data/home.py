"""Where datasets live: the data folder (``--data-dir``, else ``$BPNET_DATA_DIR``, else the
per-user data home, as scikit-learn and Keras keep theirs) and the commands that fill it.

The data home is platformdirs' user data folder for bpnet: ``~/.local/share/bpnet`` on Linux
(``$XDG_DATA_HOME/bpnet`` when that is set), ``~/Library/Application Support/bpnet`` on macOS,
``%LOCALAPPDATA%\\bpnet`` on Windows. Every command and ``bpnet.book``'s ``load_mnist`` use it,
whatever folder they run from."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from bpnet.data.specs import get_spec

ENV = "BPNET_DATA_DIR"


def data_home():
    """The per-user data home (platformdirs), whether or not it exists yet."""
    from platformdirs import user_data_path

    return user_data_path("bpnet", appauthor=False)


def default_data_dir():
    """``$BPNET_DATA_DIR`` when set, else the per-user data home."""
    return Path(os.environ.get(ENV) or data_home())


def dataset_dir(data_dir, dataset="mnist"):
    """``<data_dir>/<dataset>`` (``data_dir`` None: the default); checks the dataset name."""
    get_spec(dataset)
    return Path(data_dir if data_dir is not None else default_data_dir()) / dataset


def download_command(dataset, data_dir=None):
    """The ``bpnet download`` line that fetches ``dataset`` into ``data_dir`` (None: the default,
    which ``BPNET_DATA_DIR`` or the data home gives again)."""
    where = "" if data_dir is None else f" --data-dir {shlex.quote(str(data_dir))}"
    return f"bpnet download --dataset {dataset}{where}"


def data_dir_note(data_dir):
    """How a message names the default data dir, pointing at the ways to choose another."""
    if data_dir is not None:
        return ""
    if os.environ.get(ENV):
        return f" (data dir {default_data_dir()} from {ENV}; --data-dir DIR chooses another)"
    return (
        f" (data dir {default_data_dir()}, the per-user data home; --data-dir DIR or "
        f"{ENV}=DIR choose another)"
    )
