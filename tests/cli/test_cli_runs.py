"""Runs that go on: the README's main job run twice, a run trained on to a new length, and a run
folder that an interruption left with a checkpoint only, as `bpnet eval` and `bpnet plot` see
it. Real processes on real MNIST."""

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bpnet.data.home import data_home
from bpnet.training.weights import load_weights

REPO = Path(__file__).resolve().parents[2]


def main_job():
    """The bpnet commands of the README's main job line (after the install), as typed."""
    readme = (REPO / "README.md").read_text()
    line = readme.split("# install and run the main job\n", 1)[1].split("\n", 1)[0]
    return [
        ["bpnet", *shlex.split(part.strip())[1:]]
        for part in line.split("&&")
        if part.strip().startswith(".venv/bin/bpnet ")
    ]


@pytest.fixture
def shell(bpnet_exe, tmp_path):
    """Run a typed command line in a fresh working directory, `bpnet` on PATH."""
    env = {**os.environ, "PATH": f"{Path(bpnet_exe).parent}{os.pathsep}{os.environ['PATH']}"}
    cwd = tmp_path / "work"
    cwd.mkdir()

    def sh(argv):
        argv = shlex.split(argv) if isinstance(argv, str) else argv
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)

    sh.cwd = cwd
    return sh


@pytest.fixture
def mnist_in_data_home(mnist_session_dir):
    """Real MNIST in this test's own per-user data home (see conftest's own_data_home), where
    the README's `bpnet download` puts it."""
    home = data_home()
    shutil.copytree(mnist_session_dir / "mnist", home / "mnist")
    return home


def test_the_main_job_runs_twice(shell, mnist_in_data_home):
    """The second `bpnet train` finds the run it would make already there: it says so, with
    its accuracy and the ways on (exit 0, nothing written), and the chain goes on to eval."""
    job = main_job()
    assert [argv[1] for argv in job] == ["download", "train", "eval"]
    first = [shell(argv) for argv in job]
    assert [p.returncode for p in first] == [0, 0, 0], [p.stderr for p in first]
    run = shell.cwd / "runs" / "mnist"
    files = {p.name: p.read_bytes() for p in run.iterdir()}
    acc = load_weights(run / "weights.npz")[1]["metrics"]["test_acc"]
    second = [shell(argv) for argv in job]
    assert [p.returncode for p in second] == [0, 0, 0], [p.stderr for p in second]
    assert second[1].stderr == ""
    assert second[1].stdout == (
        f"runs/mnist already holds this run, trained to iteration 10000 of 10000: test "
        f"accuracy {acc:.4f} -> runs/mnist/weights.npz\n"
        "evaluate it with `bpnet eval runs/mnist`; train it again by adding --force; train it "
        "longer with `bpnet train --resume runs/mnist --iterations N` (N > 10000)\n"
    )
    assert {p.name: p.read_bytes() for p in run.iterdir()} == files
    assert second[2].stdout == first[2].stdout and f"accuracy {acc:.4f}" in second[2].stdout
    # the way on it names works as typed (--force: see test_cli_ux.py)
    longer = shell("bpnet train --resume runs/mnist --iterations 10600 --quiet")
    assert longer.returncode == 0, longer.stderr
    assert load_weights(run / "weights.npz")[1]["iteration"] == 10600


def test_resume_with_a_new_length_trains_on_to_the_longer_runs_weights(shell, mnist_session_dir):
    data = f"--data-dir {mnist_session_dir} --offline --quiet"
    short = shell(f"bpnet train --config quick --iterations 20 --out runs/a {data}")
    whole = shell(f"bpnet train --config quick --iterations 50 --out runs/b {data}")
    assert short.returncode == 0 and whole.returncode == 0, short.stderr + whole.stderr
    done = shell("bpnet train --resume runs/a --offline")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "resuming runs/a at iteration 20 of 20 (it is finished; adding --epochs N or "
        "--iterations N trains it longer)\n"
    )
    extended = shell("bpnet train --resume runs/a --iterations 50 --offline")
    assert extended.returncode == 0, extended.stderr
    assert extended.stdout.startswith("resuming runs/a at iteration 20 of 50 (extended from 20)\n")
    a, _ = load_weights(shell.cwd / "runs" / "a" / "weights.npz")
    b, _ = load_weights(shell.cwd / "runs" / "b" / "weights.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    behind = shell("bpnet train --resume runs/a --iterations 30 --offline")
    assert behind.returncode == 2
    assert behind.stderr == (
        "bpnet: error: runs/a is at iteration 50 already: a length of 30 iterations ends "
        "before it; give a longer one to extend it\n"
    )


def test_a_cosine_run_extended_says_what_becomes_of_its_lr(shell, mnist_session_dir):
    data = f"--data-dir {mnist_session_dir} --offline --quiet"
    cosine = "--set train.schedule=cosine --set train.min_lr=0.001"
    assert (
        shell(f"bpnet train --config quick --iterations 20 {cosine} --out r {data}").returncode == 0
    )
    r = shell("bpnet train --resume r --iterations 40 --offline")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == (
        "resuming r at iteration 20 of 40 (extended from 20); the cosine schedule now spans 40 "
        "iterations: lr 0.0505 from here (the 20-iteration schedule's was 0.001)"
    )


def interrupted_run(run_dir, data_dir, at=10, replace=False):
    """A run of quick.yaml stopped at iteration ``at`` of its first epoch, as Ctrl-C stops one
    (with ``replace``: while replacing the run there, as --force does)."""
    from bpnet.training.batches import load_data
    from bpnet.training.sources import load_config
    from bpnet.training.trainer import Progress, Trainer, TrainingInterrupted

    cfg = load_config("quick", [], {"data_dir": str(data_dir)})
    trainer = Trainer(cfg, load_data(cfg), run_dir, replace=replace)

    class StopAt(Progress):
        def step(self, iteration, loss):
            if iteration == at:
                trainer.stop.requested = "SIGINT"

    trainer.progress = StopAt()
    with pytest.raises(TrainingInterrupted):
        trainer.run()


@pytest.mark.parametrize("during_force", [False, True])
def test_eval_and_plot_of_an_interrupted_run_say_so_and_how_to_resume(
    shell, mnist_session_dir, during_force
):
    run = shell.cwd / "runs" / "quick"
    if during_force:  # a finished run there, being replaced when Ctrl-C came
        r = shell(f"bpnet train --config quick --iterations 5 --data-dir {mnist_session_dir} -q")
        assert r.returncode == 0 and (run / "weights.npz").exists(), r.stderr
    interrupted_run(run, mnist_session_dir, replace=during_force)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.npz", "config.yaml"]
    data = f"--data-dir {mnist_session_dir}"
    message = (
        "bpnet: error: runs/quick: the run was interrupted at iteration 10 of 590 and has no "
        "{} yet; resume it with `bpnet train --resume runs/quick`\n"
    )
    for command, missing in [
        (f"bpnet eval runs/quick {data}", "weights.npz"),
        (f"bpnet eval runs/quick/weights.npz {data}", "weights.npz"),
        (f"bpnet eval runs/quick/best.npz {data}", "best.npz"),
        ("bpnet plot runs/quick", "metrics.csv"),
        ("bpnet plot runs/quick/metrics.csv", "metrics.csv"),
    ]:
        r = shell(command)
        assert r.returncode == 2 and r.stdout == "", (command, r.stdout)
        assert r.stderr == message.format(missing), command
    checkpoint = shell(f"bpnet eval runs/quick/checkpoint.npz {data}")
    assert checkpoint.returncode == 2
    assert checkpoint.stderr == (
        "bpnet: error: runs/quick/checkpoint.npz: a training checkpoint (what bpnet train "
        "--resume continues from), not a weights file; there is no weights.npz or best.npz "
        "beside it yet: `bpnet train --resume runs/quick` finishes the run\n"
    )
    resume = re.search(r"`([^`]+)`", message).group(1)
    r = shell(resume)
    assert r.returncode == 0 and "resuming runs/quick at iteration 10 of 590" in r.stdout, r.stderr
    assert shell(f"bpnet eval runs/quick {data}").returncode == 0
    if importlib.util.find_spec("matplotlib"):
        assert shell("bpnet plot runs/quick").returncode == 0


def test_eval_takes_a_run_folder_and_points_from_a_checkpoint_to_the_weights(
    shell, mnist_session_dir
):
    data = f"--data-dir {mnist_session_dir}"
    assert shell(f"bpnet train --config quick --iterations 30 --out r {data} -q").returncode == 0
    folder = shell(f"bpnet eval r {data} --json")
    file = shell(f"bpnet eval r/weights.npz {data} --json")
    assert folder.returncode == 0 and file.returncode == 0, folder.stderr
    assert json.loads(folder.stdout) == json.loads(file.stdout)
    assert json.loads(folder.stdout)["weights"] == "r/weights.npz"
    table = shell(f"bpnet eval r {data}")
    assert table.stdout.startswith("r/weights.npz: 784-50-10 relu, mnist test split")
    checkpoint = shell(f"bpnet eval r/checkpoint.npz {data}")
    assert checkpoint.returncode == 2 and checkpoint.stderr == (
        "bpnet: error: r/checkpoint.npz: a training checkpoint (what bpnet train --resume "
        "continues from), not a weights file: use r/weights.npz (the final weights) or "
        "r/best.npz (the best on validation)\n"
    )
    (shell.cwd / "empty").mkdir()
    r = shell(f"bpnet eval empty {data}")
    assert r.returncode == 2 and r.stderr == (
        "bpnet: error: empty: a folder without weights.npz; expected a weights file or a run "
        "directory\n"
    )
