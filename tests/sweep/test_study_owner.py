"""A study belongs to one sweep: a sweep file that differs in its space, fixed settings, base
config, budget, metric, sampler or seed is refused by name (exit status 2) before any trial
runs or any result is written; the same sweep from another file name or data folder joins. A
study of the previous version is checked by what it keeps; one whose maker stopped before
writing anything is taken over. The budget is made as it is claimed: a billion trials cost
nothing up front. Real `bpnet sweep` processes on journal files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pytest
import yaml
from mnist import REPO
from sweeprun import TINY, assert_exact, catch, optuna, run, thaw, training, trials

OLD = REPO / "tests" / "fixtures" / "v0.1.0"


def write(tmp_path, name="tiny.yaml", n=3, epochs=1, **changes):
    doc = yaml.safe_load(TINY.format(n=n, epochs=epochs))
    for key, value in changes.items():
        part, _, leaf = key.partition("__")
        if leaf:
            doc[part][leaf.replace("_", ".", 1)] = value
        else:
            doc[key] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def sweep_on(bpnet_exe, tmp_path, data_dir, path, journal, out="out"):
    return run(
        bpnet_exe,
        [path, "--storage", journal, "--study", "tiny", "--out", tmp_path / out, "--jobs", "1"],
        tmp_path,
        data_dir,
    )


@pytest.mark.parametrize(
    "changes,expected",
    [
        (
            {"space__train_momentum": {"uniform": [0.5, 0.9]}},
            "space.train.momentum: uniform [0.5, 0.9] here, not searched in the study",
        ),
        (
            {"space__train_lr": {"log_uniform": [0.001, 0.1]}},
            "space.train.lr: log_uniform [0.001, 0.1] here, log_uniform [0.01, 0.5] in the study",
        ),
        ({"set__train_epochs": 2}, "train.epochs (fixed): 2 here, 1 in the study"),
        ({"set__model_hidden": [30]}, "model.hidden (fixed): [30] here, [20] in the study"),
        ({"n_trials": 5}, "n_trials: 5 here, 3 in the study"),
        ({"metric": "val_loss"}, "metric: val_loss here, val_acc in the study"),
        ({"sampler": "tpe"}, "sampler: tpe here, random in the study"),
        ({"seed": 2}, "seed: 2 here, 1 in the study"),
    ],
    ids=["new-key", "range", "set", "set-list", "budget", "metric", "sampler", "seed"],
)
def test_another_sweep_is_refused_by_what_differs(
    bpnet_exe, tmp_path, mnist_session_dir, changes, expected
):
    journal = tmp_path / "shared.log"
    first = sweep_on(bpnet_exe, tmp_path, mnist_session_dir, write(tmp_path), journal, "a")
    assert first.returncode == 0, first.stderr
    before = journal.read_bytes()
    other = write(tmp_path, "other.yaml", **changes)
    r = sweep_on(bpnet_exe, tmp_path, mnist_session_dir, other, journal, "b")
    assert r.returncode == 2, (r.stdout, r.stderr)
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("bpnet: error: study tiny belongs to another sweep: ")
    assert expected in line and line.endswith(
        "(use another --study, or --out for a journal of its own)"
    ), line
    assert journal.read_bytes() == before  # nothing ran, nothing was written
    assert not (tmp_path / "b" / "best.yaml").exists()


def test_an_edited_base_config_is_another_sweep(bpnet_exe, tmp_path, mnist_session_dir):
    base = tmp_path / "base.yaml"
    base.write_text("train:\n  optimizer: sgd\n")
    path = write(tmp_path, config="base.yaml")
    journal = tmp_path / "shared.log"
    assert sweep_on(bpnet_exe, tmp_path, mnist_session_dir, path, journal).returncode == 0
    base.write_text("train:\n  optimizer: adam\n")
    r = sweep_on(bpnet_exe, tmp_path, mnist_session_dir, path, journal)
    assert r.returncode == 2 and "train.optimizer (fixed): adam here, sgd in the study" in r.stderr


def test_the_same_sweep_from_elsewhere_joins(tmp_path, mnist_session_dir):
    """Another file name, another data folder: the same sweep, the same study."""
    from bpnet.sweep.spec import load_sweep
    from bpnet.sweep.study import open_study

    journal = str(tmp_path / "shared.log")
    one = load_sweep(str(write(tmp_path, "one.yaml")), {"data_dir": str(mnist_session_dir)})
    two = load_sweep(str(write(tmp_path, "two.yaml")), {"data_dir": str(tmp_path / "elsewhere")})
    made = open_study(one, journal, "tiny")
    joined = open_study(two, journal, "tiny")
    assert made.user_attrs["sweep"] == joined.user_attrs["sweep"] == two.definition()
    assert made.user_attrs["n_trials"] == 3 and made.user_attrs["metric"] == "val_acc"


def test_the_previous_versions_study_is_checked_by_its_trials_space(
    bpnet_exe, tmp_path, mnist_session_dir
):
    out = tmp_path / "sweep"
    shutil.copytree(OLD / "sweep", out)
    doc = yaml.safe_load((OLD / "tinysweep.yaml").read_text())
    doc["space"]["train.lr"] = {"log_uniform": [0.001, 0.5]}
    (tmp_path / "tinysweep.yaml").write_text(yaml.safe_dump(doc))
    r = run(bpnet_exe, ["tinysweep.yaml", "--out", out], tmp_path, mnist_session_dir)
    assert r.returncode == 2, r.stderr
    assert "study tinysweep belongs to another sweep: space.train.lr: " in r.stderr
    assert "FloatDistribution(high=0.5, log=True, low=0.01, step=None) in the study" in r.stderr


def test_a_study_whose_maker_stopped_before_recording_is_taken_over(
    bpnet_exe, tmp_path, mnist_session_dir
):
    """As the previous version left a study it was stopped in while enqueueing (trials
    waiting, no budget written): the next command takes it over and runs its budget."""
    from bpnet.sweep.study import open_storage

    journal = tmp_path / "j.log"
    study = optuna.create_study(storage=open_storage(journal), study_name="tiny")
    for _ in range(50):
        study.enqueue_trial({})
    r = sweep_on(bpnet_exe, tmp_path, mnist_session_dir, write(tmp_path), journal)
    assert r.returncode == 0, r.stderr
    assert "3 of 3 trials: 3 complete" in r.stdout
    ts = trials(journal, "tiny")
    assert_exact(ts, 3)  # those past the budget stay WAITING: never run
    assert len(ts) == 50
    assert len(open(tmp_path / "out" / "trials.csv").readlines()) == 1 + 3


def test_a_study_of_trials_without_a_record_is_refused(bpnet_exe, tmp_path, mnist_session_dir):
    from bpnet.sweep.study import open_storage

    journal = tmp_path / "j.log"
    study = optuna.create_study(storage=open_storage(journal), study_name="tiny")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    r = sweep_on(bpnet_exe, tmp_path, mnist_session_dir, write(tmp_path), journal)
    assert r.returncode == 2
    assert "it has 2 trial(s) and no record of the sweep they ran for" in r.stderr


def test_a_billion_trials_cost_nothing_up_front(bpnet_exe, tmp_path, mnist_session_dir):
    """The budget is not written ahead: the first trial starts at once, Ctrl-C ends the
    command at once, and the journal holds the trials that ran, not a billion."""
    path = write(tmp_path, n=10**9, epochs=300)
    out = tmp_path / "out"
    cmd = [bpnet_exe, "sweep", str(path), "--out", str(out), "--jobs", "1"]
    cmd += ["--data-dir", str(mnist_session_dir), "--offline", "--quiet"]
    p = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    journal = str(out / "journal.log")
    catch(journal, "tiny", p, lambda t: training(t) and t.number >= 2)
    os.killpg(p.pid, signal.SIGINT)
    thaw(p.pid)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr
    assert "of 1000000000 trials" in stdout and "1 interrupted" in stdout
    assert len(trials(journal, "tiny")) <= 4
    assert os.path.getsize(journal) < 1_000_000
