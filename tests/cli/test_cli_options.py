"""Configs and options as a newcomer types them: a mistyped config name, hidden sizes written
with commas, the book's 'Adam', a --set value split from its key, and the folders bpnet writes
into a clone staying out of git."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bpnet.cli.main import main
from bpnet.training.sources import load_config
from bpnet.training.weights import load_weights

REPO = Path(__file__).resolve().parents[2]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_mistyped_config_name_gets_a_did_you_mean(tmp_path):
    r = cli("train", "--config", "mnst", "--out", tmp_path / "r", "--offline")
    assert r.exit_code == 2
    assert r.output.startswith(
        "bpnet: error: mnst: no such file, nor a shipped config of that name (did you mean mnist? "
    )
    assert not (tmp_path / "r").exists()


def test_hidden_sizes_with_commas_and_the_books_optimizer_names_train(mnist_session_dir, tmp_path):
    """`--set model.hidden=20,10` is the list [20, 10] (no brackets to quote for zsh), and
    train.optimizer takes the book's spelling 'Adam', stored as adam."""
    out = tmp_path / "r"
    r = cli(
        "train",
        "--config",
        "quick",
        "--iterations",
        "5",
        "--set",
        "model.hidden=20,10",
        "--set",
        "train.optimizer=Adam",
        "--set",
        "train.lr=1e-3",
        "--data-dir",
        mnist_session_dir,
        "--out",
        out,
        "--offline",
        "--quiet",
    )
    assert r.exit_code == 0, r.output
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["hidden"] == [20, 10] and saved["train"]["optimizer"] == "adam"
    _, meta = load_weights(out / "weights.npz")
    assert meta["sizes"] == [784, 20, 10, 10]


@pytest.mark.parametrize(
    "value,parsed",
    [("100,50", [100, 50]), (" 100 , 50 ", [100, 50]), ("[100,50]", [100, 50]), ("100", [100])],
)
def test_set_reads_numbers_separated_by_commas_as_a_list(value, parsed):
    cfg = load_config("quick", [f"model.hidden={value}"])
    assert cfg["model"]["hidden"] == parsed


@pytest.mark.parametrize("spelling", ["ADAM", "Adam", "adam", "RMSprop", "AdaGrad", "SGD"])
def test_optimizer_names_are_case_insensitive_in_files_too(tmp_path, spelling):
    path = tmp_path / "c.yaml"
    path.write_text(f"train:\n  optimizer: {spelling}\n")
    assert load_config(path)["train"]["optimizer"] == spelling.lower()


def test_an_unknown_optimizer_is_still_refused_naming_the_choices(tmp_path):
    r = cli("train", "--set", "train.optimizer=LBFGS", "--out", tmp_path / "r", "--offline")
    assert r.exit_code == 2
    assert r.output == (
        "bpnet: error: --set train.optimizer=LBFGS: train.optimizer: expected one of sgd, "
        "momentum, nesterov, adagrad, rmsprop, adam, got LBFGS\n"
    )


@pytest.mark.parametrize(
    "args,hint",
    [
        (["--set", "train.epochs", "3"], "write --set train.epochs=VALUE, as one word"),
        (["--set", "train.epochs"], "write --set train.epochs=VALUE, as one word"),
        (["--set", "train.epochs 3"], "write --set train.epochs=3, as one word"),
    ],
)
def test_a_set_value_without_equals_is_told_to_write_key_equals_value(tmp_path, args, hint):
    r = cli("train", *args, "--out", tmp_path / "r", "--offline")
    assert r.exit_code == 2, r.output
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("Error: Invalid value for '--set': ") and last.endswith(
        f"is not KEY=VALUE: {hint} (no space around =)"
    )
    assert "unexpected extra argument" not in r.output and "Traceback" not in r.output
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_runs_and_sweeps_of_a_clone_are_ignored_by_git_but_not_the_shipped_sweeps():
    if not (REPO / ".git").exists():
        pytest.skip(f"{REPO} is not a git checkout")

    def ignored(path):
        p = subprocess.run(
            ["git", "check-ignore", "-q", "--no-index", path], cwd=REPO, capture_output=True
        )
        return p.returncode == 0

    assert ignored("runs/mnist/weights.npz") and ignored("sweeps/mnist-lr/trials.csv")
    assert ignored("data/mnist/train-images-idx3-ubyte.gz")
    assert not ignored("configs/sweeps/book-ch6.yaml")
