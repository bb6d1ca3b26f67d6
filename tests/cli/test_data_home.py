"""The data home from a newcomer's side: a ./data/mnist an earlier version left is pointed out
once, with commands that work as typed, and the test suite finds MNIST where the README's main
job put it (the per-user data home). Real processes, real files."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mnist import MNIST_FILES

from bpnet.data.home import NOTED, data_home

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def old_layout(shared_mnist, tmp_path, bpnet_exe):
    """A working folder holding data/mnist as an earlier bpnet left it, a data home of this
    test's own without MNIST, and a shell there with `bpnet` on PATH."""
    cwd = tmp_path / "project"
    (cwd / "data" / "mnist").mkdir(parents=True)
    for name in MNIST_FILES:
        shutil.copyfile(shared_mnist / name, cwd / "data" / "mnist" / name)
    env = {**os.environ, "PATH": f"{Path(bpnet_exe).parent}{os.pathsep}{os.environ['PATH']}"}

    def sh(command, **extra):
        return subprocess.run(
            ["bash", "-c", command],
            cwd=cwd,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=300,
        )

    sh.cwd = cwd
    return sh


INSTEAD = "instead of this download (Ctrl-C stops it)"


def hint(home):
    return (
        "data/mnist holds mnist files an earlier bpnet downloaded there (its default data dir was "
        f"./data, now the per-user data home): move them with `mkdir -p {home} && mv data/mnist "
        f"{home}/`, or use them where they are with --data-dir data"
    )


def test_an_old_data_folder_is_named_in_the_offline_error_with_commands_that_work(old_layout):
    home = data_home()
    r = old_layout("bpnet train --config quick --iterations 5 --offline -q")
    assert r.returncode == 1
    assert r.stderr.startswith(f"bpnet: error: {home / 'mnist'}: missing train-images")
    assert r.stderr.endswith(f"; or: {hint(home)}\n")
    assert not home.exists()  # pointing out writes nothing
    r = old_layout("bpnet train --config quick --iterations 5 --offline -q --data-dir data")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    move = hint(home).split("`")[1]
    assert old_layout(move).returncode == 0
    assert sorted(os.listdir(home / "mnist")) == sorted([*MNIST_FILES, "cache.npz"])
    assert not (old_layout.cwd / "data" / "mnist").exists()
    r = old_layout("bpnet train --config quick --iterations 5 --offline -q --out runs/again")
    assert r.returncode == 0, r.stderr


def test_an_old_data_folder_is_pointed_out_once_and_in_every_failure(old_layout, tmp_path):
    home = data_home()
    unreachable = "bpnet download --mirror http://127.0.0.1:9/ --mirrors-only --tries 1"
    first = old_layout(unreachable)
    assert first.returncode == 1
    lines = first.stderr.splitlines()
    assert lines[0] == f"{hint(home)}, {INSTEAD}" and lines[-1] == hint(home)
    assert (home / NOTED).read_text() == f"{old_layout.cwd / 'data' / 'mnist'}\n"
    second = old_layout(unreachable)
    assert second.returncode == 1
    lines = second.stderr.splitlines()
    assert lines[0].startswith("bpnet: error: no mirror served") and lines[-1] == hint(home)
    # nothing to point out with a data dir named, nor once the data home has the dataset
    named = old_layout(unreachable, BPNET_DATA_DIR=str(tmp_path / "elsewhere"))
    assert "earlier bpnet" not in named.stderr
    (home / "mnist").mkdir()
    assert "earlier bpnet" not in old_layout(unreachable).stderr


def test_a_download_that_goes_on_says_so_after_the_note(old_layout, shared_mnist):
    """The note comes before the download, so Ctrl-C there leaves the choice open."""
    home = data_home()
    train = "bpnet train --config quick --iterations 5 --out runs/{}"
    r = old_layout(train.format("a"), BPNET_MIRROR=str(shared_mnist))
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        f"{hint(home)}, {INSTEAD}",
        f"downloading {', '.join(MNIST_FILES)} into {home / 'mnist'}",
    ]
    again = old_layout(train.format("b"))
    assert again.returncode == 0 and again.stderr == ""


def test_the_tests_find_verified_mnist_in_the_data_home(shared_mnist, tmp_path):
    """The README's test command after its main job: MNIST only in the data home (the shared
    folder elsewhere), and a test that needs it runs; a data home with a damaged file is not
    used (the test is skipped, saying where it looked), and nothing is written into it."""
    home = tmp_path / "xdg" / "bpnet" / "mnist"
    home.mkdir(parents=True)
    for name in MNIST_FILES:
        shutil.copyfile(shared_mnist / name, home / name)
    test = (
        "tests/data/test_download.py::test_cli_fashion_mnist_is_checked_against_its_own_checksums"
    )
    env = {
        **os.environ,
        "XDG_DATA_HOME": str(tmp_path / "xdg"),
        "BPNET_SHARED_MNIST": str(tmp_path / "nowhere"),
    }

    def pytest_run():
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", test],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    listing = sorted(os.listdir(home))
    r = pytest_run()
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout + r.stderr
    assert sorted(os.listdir(home)) == listing
    labels = home / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-9] + b"\0" * 9)
    r = pytest_run()
    assert r.returncode == 0 and "1 skipped" in r.stdout, r.stdout + r.stderr
    assert f"real MNIST not found: no verified copy in {tmp_path / 'nowhere'}, {home}" in r.stdout
