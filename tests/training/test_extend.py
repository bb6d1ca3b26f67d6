"""Runs that go on: a finished or interrupted run given a new length (``bpnet train --resume RUN
--epochs N``, ``Trainer.load_checkpoint(extend=True)``). With a constant learning rate, or the
step schedule, it ends with the weights of a run of that length from the start; cosine and
onecycle are stretched over the new total from where the run is."""

import numpy as np
import pytest
import yaml
from toy import run, toy_cfg, toy_data

from bpnet.errors import InputError
from bpnet.nn.optim import learning_rate
from bpnet.training.checkpoint import checkpoint_progress
from bpnet.training.metrics import METRIC_COLUMNS
from bpnet.training.trainer import Progress, Trainer, TrainingInterrupted
from bpnet.training.weights import WeightsError, load_weights

PER_EPOCH = 16  # toy_data: 500 training images in batches of 32


class StopAt(Progress):
    def __init__(self, trainer_stop, at):
        self.stop, self.at = trainer_stop, at

    def step(self, iteration, loss):
        if iteration == self.at:
            self.stop.requested = "SIGINT"


def same_weights(a, b):
    pa, pb = load_weights(a / "weights.npz")[0], load_weights(b / "weights.npz")[0]
    return set(pa) == set(pb) and all(np.array_equal(pa[k], pb[k]) for k in pa)


def extend(cfg, data, run_dir):
    trainer = Trainer(cfg, data, run_dir)
    trainer.load_checkpoint(extend=True)
    return trainer, trainer.run()


LENGTHS = {"epochs": ("train.epochs", 2, 4), "iterations": ("train.iterations", 25, 41)}
RULES = {
    "sgd": {},
    "adam": {"train.optimizer": "Adam", "train.lr": 0.01},
    "step": {"train.optimizer": "momentum", "train.schedule": "step", "train.step_epochs": 1},
    "bn-dropout": {
        "model.hidden": "[16, 12]",
        "model.batchnorm": "true",
        "model.dropout": 0.2,
        "train.optimizer": "rmsprop",
        "train.lr": 0.01,
    },
}


@pytest.mark.parametrize("unit", LENGTHS)
@pytest.mark.parametrize("rule", RULES)
def test_a_finished_run_extended_has_the_weights_of_the_longer_run(tmp_path, unit, rule):
    """Iterations 25 and 41 end mid-epoch: the short run's last evaluation falls inside an
    epoch the extension then finishes."""
    data = toy_data()
    key, short, long = LENGTHS[unit]
    run(toy_cfg(tmp_path, **RULES[rule], **{key: long}), data, tmp_path / "long")
    run(toy_cfg(tmp_path, **RULES[rule], **{key: short}), data, tmp_path / "ext")
    before = load_weights(tmp_path / "ext" / "weights.npz")[0]
    trainer, result = extend(
        toy_cfg(tmp_path, **RULES[rule], **{key: long}), data, tmp_path / "ext"
    )
    total = long * PER_EPOCH if unit == "epochs" else long
    assert trainer.extended_from == (short * PER_EPOCH if unit == "epochs" else short)
    assert result["iteration"] == total
    assert same_weights(tmp_path / "long", tmp_path / "ext")
    assert not np.array_equal(before["W1"], load_weights(tmp_path / "ext" / "weights.npz")[0]["W1"])
    # the run now is the longer one: its config, checkpoint and weights say so
    saved = yaml.safe_load((tmp_path / "ext" / "config.yaml").read_text())
    assert saved["train"][key.split(".")[1]] == long
    assert checkpoint_progress(tmp_path / "ext" / "checkpoint.npz") == (total, total)
    meta = load_weights(tmp_path / "ext" / "weights.npz")[1]
    assert meta["iteration"] == total and meta["config"]["train"][key.split(".")[1]] == long
    # metrics.csv goes on where it was: the short run's rows, then the extension's
    rows = (tmp_path / "ext" / "metrics.csv").read_text().splitlines()
    iterations = [int(r.split(",")[METRIC_COLUMNS.index("iteration")]) for r in rows[1:]]
    assert iterations == sorted(set(iterations)) and iterations[-1] == total


@pytest.mark.parametrize("stop_at", [5, 16, 40])
def test_an_interrupted_run_extended_has_the_weights_of_the_longer_run(tmp_path, stop_at):
    data = toy_data()
    adam = {"train.optimizer": "adam", "train.lr": 0.01}
    run(toy_cfg(tmp_path, **adam, **{"train.epochs": 4}), data, tmp_path / "long")
    cut = tmp_path / "cut"
    cut.mkdir()
    trainer = Trainer(toy_cfg(tmp_path, **adam, **{"train.epochs": 3}), data, cut)
    trainer.progress = StopAt(trainer.stop, stop_at)
    with pytest.raises(TrainingInterrupted):
        trainer.run()
    extended, _ = extend(toy_cfg(tmp_path, **adam, **{"train.epochs": 4}), data, cut)
    assert extended.extended_from == 3 * PER_EPOCH
    assert same_weights(tmp_path / "long", cut)


def test_an_extension_interrupted_resumes_without_a_length(tmp_path):
    """The new length is in config.yaml and the checkpoint as soon as the extension starts,
    so a plain resume (the config as the run wrote it) finishes it."""
    data = toy_data()
    run(toy_cfg(tmp_path, **{"train.epochs": 4}), data, tmp_path / "long")
    run(toy_cfg(tmp_path, **{"train.epochs": 1}), data, tmp_path / "ext")
    trainer = Trainer(toy_cfg(tmp_path, **{"train.epochs": 4}), data, tmp_path / "ext")
    trainer.load_checkpoint(extend=True)
    trainer.progress = StopAt(trainer.stop, 30)
    with pytest.raises(TrainingInterrupted, match="at iteration 30 of 64"):
        trainer.run()
    saved = yaml.safe_load((tmp_path / "ext" / "config.yaml").read_text())
    assert saved["train"]["epochs"] == 4
    assert checkpoint_progress(tmp_path / "ext" / "checkpoint.npz") == (30, 64)
    cfg = {**toy_cfg(tmp_path), **saved}
    resumed = Trainer(cfg, data, tmp_path / "ext")
    resumed.load_checkpoint()
    assert resumed.extended_from is None
    resumed.run()
    assert same_weights(tmp_path / "long", tmp_path / "ext")


@pytest.mark.parametrize("kind", ["cosine", "onecycle"])
def test_cosine_and_onecycle_are_stretched_over_the_new_total(tmp_path, kind):
    """From the resume point on, the lr is the new total's schedule (config.yaml tells the
    truth of every later step); the steps before had the shorter schedule's, so the weights
    differ from a run of the new length from the start."""
    data = toy_data()
    sched = {"train.schedule": kind, "train.min_lr": 0.001}
    run(toy_cfg(tmp_path, **sched, **{"train.epochs": 4}), data, tmp_path / "long")
    run(toy_cfg(tmp_path, **sched, **{"train.epochs": 2}), data, tmp_path / "ext")
    seen = []

    class Lr(Progress):
        def step(self, iteration, loss):
            seen.append((iteration, trainer.opt.lr))

    trainer = Trainer(toy_cfg(tmp_path, **sched, **{"train.epochs": 4}), data, tmp_path / "ext")
    trainer.load_checkpoint(extend=True)
    trainer.progress = Lr()
    trainer.run()
    total, lr = 4 * PER_EPOCH, 0.05
    expected = [
        (i + 1, learning_rate(kind, lr, i, total, PER_EPOCH, 10, 0.1, 0.001, 0.3))
        for i in range(2 * PER_EPOCH, total)
    ]
    assert seen == expected
    # at the resume point the lr rises from where the 2-epoch schedule had brought it
    assert trainer.schedule(2 * PER_EPOCH)(2 * PER_EPOCH) < seen[0][1]
    assert not same_weights(tmp_path / "long", tmp_path / "ext")


def test_a_length_behind_the_checkpoint_is_refused(tmp_path):
    data = toy_data()
    run(toy_cfg(tmp_path, **{"train.epochs": 3}), data, tmp_path / "r")
    trainer = Trainer(toy_cfg(tmp_path, **{"train.epochs": 2}), data, tmp_path / "r")
    with pytest.raises(InputError) as exc:
        trainer.load_checkpoint(extend=True)
    assert str(exc.value) == (
        f"{tmp_path / 'r'} is at iteration 48 already: a length of 32 iterations ends before "
        "it; give a longer one to extend it"
    )
    same = Trainer(toy_cfg(tmp_path, **{"train.epochs": 3}), data, tmp_path / "r")
    same.load_checkpoint(extend=True)  # the same length: a plain resume
    assert same.extended_from is None


def test_without_extend_another_length_is_still_refused(tmp_path):
    data = toy_data()
    run(toy_cfg(tmp_path, **{"train.epochs": 1}), data, tmp_path / "r")
    trainer = Trainer(toy_cfg(tmp_path, **{"train.epochs": 2}), data, tmp_path / "r")
    with pytest.raises(
        WeightsError, match="checkpoint is for 16 iterations, the config asks for 32"
    ):
        trainer.load_checkpoint()
