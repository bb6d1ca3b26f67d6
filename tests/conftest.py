"""Shared fixtures: real MNIST where tests/helpers/mnist.py finds a verified copy (../shared/mnist,
$BPNET_DATA_DIR or the per-user data home, as the environment was when the session started),
weights files good and bad, and no way out to the internet. Plain helpers live in tests/helpers."""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

import pytest
from hostile import write_good_weights, write_not_weights
from mnist import CANDIDATES, MNIST_FILES, find_mnist, not_found

# A shell that starts the suite in the background (`pytest &` in a script) or under nohup starts
# it with SIGINT (or SIGHUP) ignored, and an ignored signal stays ignored in every child: the
# tests that send Ctrl-C, SIGHUP or SIGTERM to a real bpnet process would see it ignored. A
# handled signal is reset to its default on exec, so the children get the usual behaviour.
for _signum, _handler in (
    (signal.SIGINT, signal.default_int_handler),
    (signal.SIGHUP, signal.SIG_DFL),
    (signal.SIGTERM, signal.SIG_DFL),
):
    if signal.getsignal(_signum) is signal.SIG_IGN:
        signal.signal(_signum, _handler)


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


@pytest.fixture(autouse=True)
def own_data_home(monkeypatch, tmp_path_factory):
    """A per-user data home of each test's own (XDG_DATA_HOME, subprocesses too), so that a
    command run without --data-dir or BPNET_DATA_DIR never reads or fills the real one."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data-home")))


def _listing(folder):
    """{name: (size, mtime)} of a folder's files ({} when it does not exist)."""
    if not folder.is_dir():
        return {}
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.fixture(scope="session", autouse=True)
def shared_mnist_stays_untouched():
    """Tests read the folder real MNIST is found in (which may be the user's own data home) and
    never write into it: data dirs are copies in a temporary folder (``mnist_data_dir``,
    ``mnist_session_dir``); loading from that folder itself would leave a 55 MB cache.npz
    there. Every candidate folder is watched, so nothing is verified before a test needs it."""
    before = {folder: _listing(folder) for folder in CANDIDATES}
    yield
    for folder, listing in before.items():
        after = _listing(folder)
        assert after == listing, (
            f"the tests changed {folder}: {sorted(set(after.items()) ^ set(listing.items()))}"
        )


@pytest.fixture
def shared_mnist():
    """Path of a folder with the four real MNIST files, verified (skips when none is found)."""
    folder = find_mnist()
    if folder is None:
        pytest.skip(not_found())
    return folder


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
    shared = find_mnist()
    if shared is None:
        pytest.skip(not_found())
    from bpnet.data.idx import load_arrays

    root = tmp_path_factory.mktemp("mnist-data")
    (root / "mnist").mkdir()
    for f in MNIST_FILES:
        shutil.copyfile(shared / f, root / "mnist" / f)
    load_arrays("mnist", root)  # builds cache.npz once
    return root


@pytest.fixture
def good_weights(tmp_path):
    """A valid 784-16-10 weights file (random parameters)."""
    return write_good_weights(tmp_path / "good.npz")


@pytest.fixture
def not_weights(tmp_path, good_weights):
    """{path: needles} of files that are not weights files, and what refusing each must say."""
    return write_not_weights(tmp_path, good_weights)
