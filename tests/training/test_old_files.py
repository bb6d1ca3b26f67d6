"""Files written by bpnet 0.1.0 (tests/fixtures/v0.1.0, made before the house was re-laid out)
load unchanged: weights evaluate to the accuracy they recorded, an interrupted run's checkpoint
resumes to the very weights the old version trained, configs resolve as they did."""

from __future__ import annotations

import csv
import shutil
import subprocess

import numpy as np
import pytest
from mnist import REPO

from bpnet.data import load_split
from bpnet.nn.evaluate import evaluate, input_scale
from bpnet.training import load_config, network_from_weights
from bpnet.training.checkpoint import read_checkpoint

OLD = REPO / "tests" / "fixtures" / "v0.1.0"


def last_row(run):
    with open(OLD / run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))[-1]


def arrays(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "meta"}


@pytest.mark.parametrize(
    "weights,run", [("run/weights.npz", "run"), ("plain/weights.npz", "plain")]
)
def test_old_weights_evaluate_to_the_accuracy_they_recorded(mnist_session_dir, weights, run):
    net, meta = network_from_weights(OLD / weights)
    x, t = load_split(mnist_session_dir, "mnist", "test")
    _, acc, _, _ = evaluate(net, x, t.astype(np.int64), input_scale(meta["normalize"]))
    assert f"{acc:.6g}" == last_row(run)["test_acc"]
    assert meta["bpnet_version"] and meta["iteration"] == int(last_row(run)["iteration"])


def test_old_best_weights_load_with_their_meta():
    net, meta = network_from_weights(OLD / "run" / "best.npz")
    assert (meta["kind"], meta["selected_on"], meta["batchnorm"], meta["dropout"]) == (
        "best",
        "val",
        True,
        0.1,
    )
    assert net.describe() == "784-6-10 relu, batchnorm, dropout 0.1"


def test_an_old_interrupted_run_resumes_to_the_old_versions_weights(
    mnist_session_dir, tmp_path, bpnet_exe
):
    run = tmp_path / "half"
    shutil.copytree(OLD / "half", run)
    p = subprocess.run(
        [
            bpnet_exe,
            "train",
            "--resume",
            str(run),
            "--data-dir",
            str(mnist_session_dir),
            "--offline",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    new, old = arrays(run / "weights.npz"), arrays(OLD / "run" / "weights.npz")
    assert sorted(new) == sorted(old)
    for key in old:
        assert np.array_equal(new[key], old[key]), key
    with open(run / "metrics.csv", newline="") as a, open(OLD / "run" / "metrics.csv") as b:
        drop = lambda rows: [{k: v for k, v in r.items() if k != "elapsed"} for r in rows]  # noqa: E731
        assert drop(csv.DictReader(a)) == drop(csv.DictReader(b))


def test_old_checkpoints_read_with_their_counters():
    net, _ = network_from_weights(OLD / "plain" / "weights.npz")
    shapes = {k: v.shape for k, v in net.state_arrays().items()}
    params, opt_state, opt_step, state, total = read_checkpoint(
        OLD / "plain" / "checkpoint.npz", shapes, net.flat_params.shape
    )
    assert (opt_step, total, state.iteration) == (7, 7, 7)
    assert opt_state == {} and sorted(params) == sorted(shapes)
    assert state.rows[-1]["test_acc"] == pytest.approx(float(last_row("plain")["test_acc"]))


@pytest.mark.parametrize("run", ["run", "plain", "half"])
def test_old_resolved_configs_load_as_they_were_written(run):
    written = (OLD / run / "config.yaml").read_text()
    cfg = load_config(OLD / run / "config.yaml")
    assert cfg["output"]["dir"] == {"run": "run", "plain": "plain", "half": "half"}[run]
    from bpnet.training.config import dump_config

    assert dump_config(cfg) == written


def test_the_old_tiny_config_still_resolves_to_what_the_run_recorded():
    cfg = load_config(OLD / "tiny.yaml", cli={"data_dir": "data", "output.dir": "run"})
    assert cfg == load_config(OLD / "run" / "config.yaml")
