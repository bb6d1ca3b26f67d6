"""What the benchmark scripts share: finding real MNIST, running a whole `bpnet train` command
and reading its final test accuracy, and reading CPU time from /proc (Linux)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bpnet.data.home import default_data_dir
from bpnet.data.idx import load_dataset

SHARED = Path(__file__).resolve().parents[2] / "shared"


def data_dir_default():
    """$BPNET_DATA_DIR, else, when ../shared/mnist is present, a folder of the benchmarks' own
    holding a copy of its four files (bpnet writes its cache.npz beside the files it loads, and
    ../shared is only ever read), else the per-user data home."""
    if os.environ.get("BPNET_DATA_DIR"):
        return Path(os.environ["BPNET_DATA_DIR"])
    if not (SHARED / "mnist").is_dir():
        return default_data_dir()
    own = Path(tempfile.gettempdir()) / f"bpnet-benchmarks-{os.getuid()}"
    (own / "mnist").mkdir(parents=True, exist_ok=True)
    for f in (SHARED / "mnist").glob("*.gz"):
        copy = own / "mnist" / f.name
        if not copy.exists() or copy.stat().st_size != f.stat().st_size:
            part = copy.with_suffix(".part")
            shutil.copyfile(f, part)
            os.replace(part, copy)  # a half-copied file never takes the name
    return own


def load_mnist(data_dir, dtype=np.float32):
    """(x_train, t_train, x_test, t_test), pixels scaled to [0, 1]."""
    return load_dataset("mnist", data_dir, normalize=True, dtype=dtype)


def cpu_ticks(stat_path):
    """(user, system) clock ticks of the process or thread whose /proc stat file this is
    (``/proc/self/stat``, ``/proc/self/task/TID/stat``); divide by SC_CLK_TCK for seconds."""
    with open(stat_path) as fh:
        fields = fh.read().rsplit(")", 1)[1].split()  # the name in () may hold spaces
    return int(fields[11]), int(fields[12])


def train_command(cmd, out, env=None, label=None):
    """(wall seconds, final test accuracy) of one whole ``bpnet train … --out OUT`` command
    ``cmd`` (a list); a failing command ends the benchmark with its stderr, named by ``label``
    (default: the command)."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{label or ' '.join(map(str, cmd))} failed:\n{done.stderr}")
    with open(Path(out) / "metrics.csv") as fh:
        return seconds, float(list(csv.DictReader(fh))[-1]["test_acc"])
