"""A ``cache.npz`` that is not a regular file (a FIFO, a socket, a device node, a link to
/dev/zero, a folder) is a damaged cache: never opened, so nothing blocks or reads forever, and
rebuilt as a regular file by atomic replace; a folder there is left alone and the arrays are
decoded from the IDX files instead. In the library, through ``bpnet.book``'s ``load_mnist``
and through ``bpnet eval --offline``, each a real process on real MNIST."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys

import numpy as np
import pytest
from hostile import run
from synthetic import synthetic_dataset, write_dataset

from bpnet.data import idx
from bpnet.data.idx import CACHE_NAME, load_arrays, load_split


@contextlib.contextmanager
def deadline(seconds):
    """Fail the block instead of hanging when it blocks (an open of a FIFO) for ``seconds``;
    after that, every second again, should the first interruption be swallowed."""

    def expired(*_):
        raise TimeoutError(f"blocked for {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def make_special(path, kind):
    """Put a ``kind`` of non-regular file at ``path``."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()
    elif kind == "device":
        if os.geteuid() != 0:
            pytest.skip("making a device node needs root")
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 5))  # like /dev/zero
    elif kind.startswith("link to "):
        target = kind[len("link to ") :]
        if target == "fifo":
            os.mkfifo(path.with_name("elsewhere"))
            target = path.with_name("elsewhere")
        path.symlink_to(target)
    elif kind == "dangling link":
        path.symlink_to(path.with_name("nowhere"))
    else:
        raise ValueError(kind)


KINDS = [
    "fifo",
    "socket",
    "device",
    "link to /dev/zero",
    "link to /dev/urandom",
    "link to fifo",
    "dangling link",
]


@pytest.fixture
def ds():
    return synthetic_dataset()


@pytest.fixture
def decodes(monkeypatch):
    seen = []
    read = idx.read_idx

    def spy(path, *args, **kw):
        seen.append(os.path.basename(path))
        return read(path, *args, **kw)

    monkeypatch.setattr(idx, "read_idx", spy)
    return seen


@pytest.mark.parametrize("kind", KINDS)
def test_a_cache_that_is_not_a_regular_file_is_rebuilt(ds, tmp_path, decodes, kind):
    folder = write_dataset(ds, tmp_path)
    cache = folder / CACHE_NAME
    make_special(cache, kind)
    with deadline(20):
        arrays = load_arrays(data_dir=folder.parent, spec=ds.spec)
    assert all(np.array_equal(arrays[k], a) for k, a in ds.arrays.items())
    assert stat.S_ISREG(os.lstat(cache).st_mode)  # a regular file now, not a link
    assert len(decodes) == 4
    with deadline(20):
        x, _ = load_split(folder.parent, "mnist", "test", spec=ds.spec)
    assert np.array_equal(x, ds.arrays["x_test"]) and len(decodes) == 4  # from the cache
    if kind == "link to fifo":
        assert stat.S_ISFIFO(os.lstat(folder / "elsewhere").st_mode)  # only the link went
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_a_folder_named_cache_is_left_alone_and_the_files_decoded(ds, tmp_path, decodes):
    folder = write_dataset(ds, tmp_path)
    (folder / CACHE_NAME).mkdir()
    (folder / CACHE_NAME / "mine.txt").write_text("kept")
    for loads in (1, 2):
        with deadline(20):
            arrays = load_arrays(data_dir=folder.parent, spec=ds.spec)
        assert all(np.array_equal(arrays[k], a) for k, a in ds.arrays.items())
        assert len(decodes) == 4 * loads  # no cache: decoded every time
    assert (folder / CACHE_NAME / "mine.txt").read_text() == "kept"
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def real_data(shared_mnist, tmp_path):
    d = tmp_path / "data" / "mnist"
    d.mkdir(parents=True)
    for name in os.listdir(shared_mnist):
        if name.endswith(".gz"):
            shutil.copyfile(shared_mnist / name, d / name)
    return d


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero", "link to fifo", "socket"])
def test_eval_offline_with_such_a_cache_evaluates(bpnet_exe, good_weights, real_data, kind):
    make_special(real_data / CACHE_NAME, kind)
    r = run(
        bpnet_exe, "eval", good_weights, "--offline", "--data-dir", real_data.parent, timeout=60
    )
    assert r.code == 0, r.err
    assert "10000 images" in r.out and r.seconds < 50
    assert stat.S_ISREG(os.lstat(real_data / CACHE_NAME).st_mode)
    r = run(bpnet_exe, "eval", good_weights, "--offline", "--data-dir", real_data.parent, "--json")
    assert r.code == 0 and '"images": 10000' in r.out, r.err


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/urandom"])
def test_the_books_load_mnist_with_such_a_cache_loads(real_data, kind):
    make_special(real_data / CACHE_NAME, kind)
    code = (
        "from bpnet.book.mnist import load_mnist\n"
        "(x, t), (xt, tt) = load_mnist()\n"
        "print(x.shape, t.shape, xt.shape, tt.shape)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "BPNET_DATA_DIR": str(real_data.parent)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == "(60000, 784) (60000,) (10000, 784) (10000,)"
    assert stat.S_ISREG(os.lstat(real_data / CACHE_NAME).st_mode)
