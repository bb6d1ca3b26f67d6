"""Shared fixtures: real MNIST from ../shared/mnist when that folder exists, synthetic datasets,
and no way out to the internet."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = Path(os.environ.get("BPNET_SHARED_MNIST", REPO.parent / "shared" / "mnist"))
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Route every HTTP request except to 127.0.0.1 into a closed local port (subprocesses too),
    so a test that reached for a built-in mirror fails instead of going out."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    monkeypatch.delenv("BPNET_MIRROR", raising=False)
    monkeypatch.delenv("BPNET_DATA_DIR", raising=False)


def _listing(folder):
    """{name: (size, mtime)} of a folder's files ({} when it does not exist)."""
    if not folder.is_dir():
        return {}
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.fixture(scope="session", autouse=True)
def shared_mnist_stays_untouched():
    """Tests read the shared MNIST folder and never write into it: data dirs are copies in a
    temporary folder (``mnist_data_dir``, ``mnist_session_dir``); loading from the shared
    folder itself would leave a 55 MB cache.npz there."""
    before = _listing(SHARED_MNIST)
    yield
    after = _listing(SHARED_MNIST)
    assert after == before, (f"the tests changed {SHARED_MNIST}: "
                             f"{sorted(set(after.items()) ^ set(before.items()))}")


def have_shared_mnist():
    return all((SHARED_MNIST / f).is_file() for f in MNIST_FILES)


@pytest.fixture
def shared_mnist():
    """Path of the folder with the four real MNIST files (skips when absent)."""
    if not have_shared_mnist():
        pytest.skip(f"real MNIST not found in {SHARED_MNIST} (set BPNET_SHARED_MNIST)")
    return SHARED_MNIST


@pytest.fixture
def mnist_data_dir(shared_mnist, tmp_path):
    """A data dir holding mnist/ with copies of the real files."""
    d = tmp_path / "data" / "mnist"
    d.mkdir(parents=True)
    for f in MNIST_FILES:
        shutil.copyfile(shared_mnist / f, d / f)
    return d.parent


@pytest.fixture(scope="session")
def bpnet_exe():
    """The installed ``bpnet`` console script next to this interpreter."""
    exe = Path(sys.executable).with_name("bpnet")
    found = str(exe) if exe.exists() else shutil.which("bpnet")
    if not found:
        pytest.fail("the bpnet console script is not installed: run pip install -e '.[test]'")
    return found


@pytest.fixture(scope="session")
def mnist_session_dir(tmp_path_factory):
    """One data dir per test session with copies of the real files and their decoded cache."""
    if not have_shared_mnist():
        pytest.skip(f"real MNIST not found in {SHARED_MNIST} (set BPNET_SHARED_MNIST)")
    from bpnet.nn.data import load_arrays
    root = tmp_path_factory.mktemp("mnist-data")
    (root / "mnist").mkdir()
    for f in MNIST_FILES:
        shutil.copyfile(SHARED_MNIST / f, root / "mnist" / f)
    load_arrays("mnist", root)  # builds cache.npz once
    return root


def train_mnist_net(data_dir, hidden, steps, path):
    """A 784-hidden-10 ReLU net (He init, float32) after ``steps`` momentum steps on batches of
    100 real MNIST training images from ``data_dir``, also saved as a weights file at ``path``."""
    import numpy as np

    from bpnet.nn import TwoLayerNet
    from bpnet.nn.data import load_split
    from bpnet.nn.io import save_weights
    from bpnet.nn.optim import make_optimizer
    x, t = load_split(data_dir, "mnist", "train")
    rng = np.random.default_rng(0)
    net = TwoLayerNet(784, hidden, 10, weight_init_std="he", dtype=np.float32, rng=0)
    opt = make_optimizer("momentum", 0.05)
    for _ in range(steps):
        idx = rng.integers(0, len(x), 100)
        xb = (x[idx].reshape(100, -1) / 255.0).astype(np.float32)
        opt.update(net.params, net.gradient(xb, t[idx].astype(np.int64)))
    save_weights(path, net.params, {"sizes": net.sizes, "activation": "relu", "dataset": "mnist",
                                    "normalize": True, "dtype": "float32"})
    return net
