"""Where datasets live: the data folder (``--data-dir``, else ``$BPNET_DATA_DIR``, else the
per-user data home, as scikit-learn and Keras keep theirs) and the commands that fill it.

The data home is platformdirs' user data folder for bpnet: ``~/.local/share/bpnet`` on Linux
(``$XDG_DATA_HOME/bpnet`` when that is set), ``~/Library/Application Support/bpnet`` on macOS,
``%LOCALAPPDATA%\\bpnet`` on Windows. Every command and ``bpnet.book``'s ``load_mnist`` use it,
whatever folder they run from.

Earlier versions kept datasets in ``data/`` under the current folder. A ``./data/<dataset>``
holding a dataset's files, while the default data dir has none of that dataset, is pointed out
(:func:`old_data_note`) with the two ways on: move it into the data home, or name it with
``--data-dir data``."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from bpnet.data.specs import get_spec

ENV = "BPNET_DATA_DIR"
OLD_DEFAULT = Path("data")  # the data dir of earlier versions: data/ under the current folder
NOTED = ".old-data-dirs"  # in the data home: the old folders already pointed out, one a line


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


def missing_files(folder, names, dataset, data_dir=None):
    """The words for files ``names`` of ``dataset`` missing from ``folder`` when nothing may be
    downloaded: the command that fetches them (and an old ./data/<dataset> to use instead)."""
    old = old_data_dir(dataset, data_dir)
    return (
        f"{folder}: missing {names}; run `{download_command(dataset, data_dir)}` to fetch them"
        + data_dir_note(data_dir)
        + (f"; or: {old_data_hint(dataset, old)}" if old else "")
    )


def no_mirror_hint(dataset, data_dir):
    """How to go on when no mirror answers: commands that work as typed."""
    cmd = download_command(dataset, data_dir)
    old = old_data_dir(dataset, data_dir)
    return (
        f"no mirror reachable? copy the files into a folder and run `{cmd} --mirror FOLDER`, "
        f"or use another mirror: `{cmd} --mirror URL` (BPNET_MIRROR=URL for every command)"
        + data_dir_note(data_dir)
        + (f"\n{old_data_hint(dataset, old)}" if old else "")
    )


def old_data_dir(dataset, data_dir=None):
    """``./data/<dataset>`` when an earlier version left files of ``dataset`` there and the
    default data dir is in use (``data_dir`` None, no ``$BPNET_DATA_DIR``) without a
    ``<dataset>/`` folder; else None."""
    if data_dir is not None or os.environ.get(ENV):
        return None
    old, new = OLD_DEFAULT / dataset, default_data_dir() / dataset
    if new.exists() or not any((old / f.name).is_file() for f in get_spec(dataset).files):
        return None
    return None if old.resolve() == new.resolve() else old


def old_data_hint(dataset, old):
    """The words that point out ``old`` (see :func:`old_data_dir`) and the ways on."""
    home = shlex.quote(str(default_data_dir()))
    return (
        f"{old} holds {dataset} files an earlier bpnet downloaded there (its default data dir "
        f"was ./data, now the per-user data home): move them with `mkdir -p {home} && mv "
        f"{shlex.quote(str(old))} {home}/`, or use them where they are with --data-dir "
        f"{shlex.quote(str(old.parent))}"
    )


def old_data_note(dataset, data_dir=None):
    """:func:`old_data_hint` the first time an old folder is seen, else None. The folders
    pointed out are listed in the data home's NOTED file; a data home that cannot be written
    means the note comes again."""
    old = old_data_dir(dataset, data_dir)
    if old is None:
        return None
    marker, key = default_data_dir() / NOTED, str(old.resolve())
    try:
        if key in marker.read_text(encoding="utf-8").splitlines():
            return None
    except (OSError, UnicodeDecodeError):
        pass
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        with open(marker, "a", encoding="utf-8") as fh:
            fh.write(key + "\n")
    except OSError:
        pass
    return old_data_hint(dataset, old)
