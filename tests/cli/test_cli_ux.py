"""One step off the lesson's path: option clashes, an existing run, Ctrl-C at any moment, and the
lines `bpnet train` prints (the same loss for every split, no figure selected on the test set)."""

import csv
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from faultserver import FaultServer
from mnist import MNIST_FILES

from bpnet.cli.main import main


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_epochs_with_iterations_is_a_usage_error(tmp_path):
    r = cli(
        "train",
        "--epochs",
        "1",
        "--iterations",
        "100",
        "--out",
        tmp_path / "r",
        "--data-dir",
        tmp_path,
        "--offline",
    )
    assert r.exit_code == 2, r.output
    assert "--epochs and --iterations cannot be combined" in r.output
    assert not (tmp_path / "r").exists()
    # one of them, or a --set of the other, stays fine (a later source clears the earlier one)
    r = cli(
        "train",
        "--set",
        "train.epochs=2",
        "--iterations",
        "100",
        "--out",
        tmp_path / "r",
        "--data-dir",
        tmp_path / "none",
        "--offline",
    )
    assert r.exit_code == 1 and "cannot be combined" not in r.output  # gets as far as the data


def test_resume_of_a_folder_that_is_no_run_says_so(tmp_path):
    r = cli("train", "--resume", tmp_path)
    assert r.exit_code == 2
    assert r.output == (
        f"bpnet: error: {tmp_path}: not a run directory (no config.yaml); --resume "
        f"takes a folder that bpnet train or Trainer.run() wrote\n"
    )


def _env_with_bpnet(bpnet_exe):
    """The environment of a shell where the typed `bpnet` is this installation's."""
    return {**os.environ, "PATH": f"{Path(bpnet_exe).parent}{os.pathsep}{os.environ['PATH']}"}


def test_an_existing_run_suggests_commands_that_work_as_typed(
    bpnet_exe, mnist_session_dir, tmp_path
):
    env = _env_with_bpnet(bpnet_exe)
    cmd = [
        "bpnet",
        "train",
        "--config",
        "quick",
        "--iterations",
        "20",
        "--data-dir",
        str(mnist_session_dir),
        "--out",
        "runs/q",
        "--quiet",
    ]

    def sh(argv):
        return subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )

    assert sh(cmd).returncode == 0
    longer = [*cmd[:5], "30", *cmd[6:]]  # the same config but --iterations 30: another run
    again = sh(longer)
    assert again.returncode == 2, again.stderr
    message = again.stderr.strip()
    assert message.count("\n") == 0 and message.startswith(
        "bpnet: error: runs/q already holds a run (weights.npz, best.npz, checkpoint.npz, "
        "metrics.csv, config.yaml) of another config (train.iterations: 20 there, 30 here): "
    )
    extend = re.search(r"extend it to 30 iterations with `([^`]+)`", message).group(1)
    data = shlex.quote(str(mnist_session_dir))
    assert extend == f"bpnet train --resume runs/q --data-dir {data} --iterations 30"
    r = sh(shlex.split(extend))
    assert r.returncode == 0, r.stderr
    assert "resuming runs/q at iteration 20 of 30 (extended from 20)" in r.stdout
    beside = re.search(r"train a new run beside it by adding (--out \S+)", message).group(1)
    assert beside == "--out runs/q-2"
    r = sh(cmd + shlex.split(beside))
    assert r.returncode == 0 and (tmp_path / "runs" / "q-2" / "weights.npz").is_file(), r.stderr
    assert "by adding --force to this command" in message
    r = sh(longer + ["--force"])
    assert r.returncode == 0, r.stderr


def test_train_lines_report_cross_entropy_and_no_test_selected_best(mnist_session_dir, tmp_path):
    """Without validation images: no best.npz and no "best" figure; with weight decay the epoch
    line shows the train cross-entropy (the quantity of metrics.csv's train_loss, like
    test_loss) and the penalty apart."""
    out = tmp_path / "wd"
    r = cli(
        "train",
        "--config",
        "quick",
        "--set",
        "data.validation=0",
        "--set",
        "train.weight_decay=0.01",
        "--iterations",
        "40",
        "--data-dir",
        mnist_session_dir,
        "--out",
        out,
        "--offline",
    )
    assert r.exit_code == 0, r.output
    row = next(csv.DictReader(open(out / "metrics.csv")))
    epoch_line = next(ln for ln in r.output.splitlines() if ln.startswith("epoch "))
    assert f"train loss {float(row['train_loss']):.4f}" in epoch_line
    assert f"penalty {float(row['train_penalty']):.4f}" in epoch_line
    assert float(row["train_penalty"]) > 0.01
    done = r.output.splitlines()[-1]
    assert done.startswith("done in") and "best" not in done.replace("no best.npz", "")
    assert "no best.npz: without validation images (data.validation: 0) nothing is selected" in done
    assert not (out / "best.npz").exists()


# -- Ctrl-C -----------------------------------------------------------------------------------

# Runs a bpnet entry point with an import hook that raises KeyboardInterrupt (as Ctrl-C would)
# when the named module is first imported: a deterministic interrupt during start-up.
INTERRUPT_DRIVER = """
import runpy, sys
target, how, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
if target in sys.modules:
    sys.exit(99)  # already loaded: the hook could never fire
class Interrupt:
    def find_spec(self, name, path=None, target_=None):
        if name == target:
            raise KeyboardInterrupt
sys.meta_path.insert(0, Interrupt())
sys.argv = ["bpnet", *argv]
if how == "module":
    runpy.run_module("bpnet", run_name="__main__", alter_sys=True)
else:
    runpy.run_path(how, run_name="__main__")
"""


@pytest.mark.parametrize(
    "module",
    ["importlib.metadata", "numpy", "click", "yaml", "bpnet.cli.common", "bpnet.nn.gradcheck"],
)
@pytest.mark.parametrize("how", ["script", "module"])
def test_ctrl_c_while_loading_is_one_line_and_130(bpnet_exe, module, how):
    """importlib.metadata: once a NameError about PackageNotFoundError from bpnet/__init__.py."""
    target = bpnet_exe if how == "script" else "module"
    p = subprocess.run(
        [sys.executable, "-c", INTERRUPT_DRIVER, module, target, "gradcheck"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode != 99, f"{module} is loaded before bpnet starts"
    assert (p.returncode, p.stderr, p.stdout) == (130, "bpnet: error: interrupted\n", "")


def test_ctrl_c_while_parsing_is_one_line_and_130(monkeypatch):
    """click would say "Aborted!" with exit status 1."""

    def interrupt():
        raise KeyboardInterrupt

    monkeypatch.setattr("bpnet.training.sources.list_configs", interrupt)
    r = cli("train", "--list-configs")
    assert (r.exit_code, r.output) == (130, "bpnet: error: interrupted\n")


def test_ctrl_c_while_running_is_one_line_and_130(bpnet_exe, tmp_path):
    """Interrupted while it waits for a server that never answers: one line, exit status 130."""
    with FaultServer({}, {name: ["silent"] for name in MNIST_FILES}, stall=60) as srv:
        proc = subprocess.Popen(
            [
                bpnet_exe,
                "download",
                "--mirror",
                srv.url,
                "--mirrors-only",
                "--data-dir",
                str(tmp_path),
                "--timeout",
                "60",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 120
        while not srv.requests:  # the command is running once its first request arrives
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err and lines[-1].startswith("bpnet: ") and "interrupted" in lines[-1]


def test_bpnet_train_resume_continues_a_library_run(mnist_session_dir, tmp_path):
    """Trainer(cfg, load_data(cfg), run_dir).run() writes config.yaml itself, so the command
    line resumes the run (here stopped at iteration 10 of 30) to the uninterrupted weights."""
    from bpnet.training.batches import load_data
    from bpnet.training.sources import load_config
    from bpnet.training.trainer import Progress, Trainer, TrainingInterrupted
    from bpnet.training.weights import load_weights

    cfg = load_config(
        "quick", ["train.iterations=30", "model.hidden=[20]"], {"data_dir": str(mnist_session_dir)}
    )
    data = load_data(cfg)
    Trainer(cfg, data, tmp_path / "whole").run()
    trainer = Trainer(cfg, data, tmp_path / "lib")

    class StopAt10(Progress):
        def step(self, iteration, loss):
            if iteration == 10:
                trainer.stop.requested = "SIGINT"

    trainer.progress = StopAt10()
    with pytest.raises(TrainingInterrupted):
        trainer.run()
    r = cli("train", "--resume", tmp_path / "lib", "--offline")
    assert r.exit_code == 0, r.output
    assert f"resuming {tmp_path / 'lib'} at iteration 10 of 30" in r.output
    a, _ = load_weights(tmp_path / "whole" / "weights.npz")
    b, _ = load_weights(tmp_path / "lib" / "weights.npz")
    assert all((a[k] == b[k]).all() for k in a)
