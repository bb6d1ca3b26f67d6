"""bpnet sweep: sweep-file validation, real processes sharing one study on a journal file and on a
real PostgreSQL server, a SIGKILLed worker, results files."""

from __future__ import annotations

import csv
import os
import signal
import subprocess

import pytest
import yaml
from sweeprun import (  # skips this module when Optuna is missing
    TINY,
    assert_exact,
    catch,
    in_budget,
    optuna,
    run,
    sweep_file,
    trials,
    two_processes,
)

# -- validation ----------------------------------------------------------------------------------
MISTAKES = [
    ("colour: red\n", "colour: unknown key"),
    ("sampler: bayes\n", "sampler: expected one of random, grid, tpe"),
    ("n_trials: 0\n", "n_trials: expected an integer > 0"),
    ("metric: test_acc\n", "metric: expected one of val_acc, val_loss"),
    ("pruner: hyperband\n", "pruner: expected one of none, median"),
    ("config: nothere.yaml\n", "config: nothere.yaml: no such file"),
    ("set: {train.lr: -1}\n", "set.train.lr: expected a number > 0, got -1"),
    (
        "set: {train.learning_rate: 0.1}\n",
        "set.train.learning_rate: unknown config key (did you mean train.lr?)",
    ),
    ("set: {data.validation: 0}\n", "data.validation: a sweep selects on validation images"),
    ("space: {train.lr: {normal: [0, 1]}}\n", "space.train.lr: expected one of {log_uniform"),
    (
        "space: {train.lr: {log_uniform: [0, 1]}}\n",
        "space.train.lr.log_uniform: expected [low, high] numbers with low < high and low > 0",
    ),
    (
        "space: {train.lr: {uniform: [0.5, 0.1]}}\n",
        "space.train.lr.uniform: expected [low, high] numbers with low < high",
    ),
    (
        "space: {train.epochs: {int: [1.5, 3]}}\n",
        "space.train.epochs.int: expected [low, high] integers",
    ),
    (
        "space: {model.hidden: {choice: []}}\n",
        "space.model.hidden.choice: expected a non-empty list",
    ),
    (
        "space: {model.hidden: {choice: [[50], [0]]}}\n",
        "space.model.hidden: expected a list of integers > 0",
    ),
    (
        "space: {train.momentum: {uniform: [0.5, 1.5]}}\n",
        "space.train.momentum: expected a number in [0, 1)",
    ),
    (
        "space: {lr: {uniform: [0.1, 0.2]}}\n",
        "space.lr: unknown config key (did you mean train.lr?)",
    ),
    (
        "sampler: grid\nspace: {train.lr: {uniform: [0.1, 0.2]}}\n",
        "space.train.lr: the grid sampler needs choice or int",
    ),
    ("space: [train.lr]\n", "space: expected a mapping of dotted config keys"),
    ("n_trials: [3\n", "invalid YAML"),
    ("- 1\n", "expected a mapping of keys"),
]


@pytest.mark.parametrize("text,expected", MISTAKES, ids=[m[1][:30] for m in MISTAKES])
def test_sweep_file_mistakes_are_one_line_exit_2(bpnet_exe, tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    own_config = text.startswith(("config", "- "))
    path.write_text(text if own_config else "config: quick.yaml\n" + text)
    r = subprocess.run(
        [bpnet_exe, "sweep", str(path)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert str(path) in lines[0] and expected in lines[0], lines[0]
    assert not (tmp_path / "sweeps").exists()


def test_list_and_shipped_sweeps_validate():
    from bpnet.sweep.spec import list_sweeps, load_sweep

    names = dict(list_sweeps())
    assert "book-ch6" in names
    for name in names:
        load_sweep(name)
    book = load_sweep("book-ch6")
    assert (book.n_trials, book.sampler, book.metric) == (100, "random", "val_acc")
    assert book.base["data"] == {"normalize": True, "validation": 100, "subset": 500}
    assert book.base["model"]["hidden"] == [100] * 6 and book.base["train"]["epochs"] == 50
    assert {d.key: (d.kind, d.values) for d in book.space} == {
        "train.lr": ("log_uniform", [1e-6, 1e-2]),
        "train.weight_decay": ("log_uniform", [1e-8, 1e-4]),
    }


def test_subset_takes_validation_from_its_end(mnist_session_dir):
    from bpnet.data.idx import load_arrays
    from bpnet.errors import ConfigError
    from bpnet.training.batches import load_data
    from bpnet.training.sources import load_config

    cfg = load_config(
        "quick.yaml",
        ["data.subset=500", "data.validation=100"],
        {"data_dir": str(mnist_session_dir)},
    )
    a = load_arrays("mnist", mnist_session_dir)
    d = load_data(cfg, a)
    assert len(d.train) == 400 and len(d.val) == 100
    assert (d.train.x == a["x_train"][:400].reshape(400, -1)).all()
    assert (d.val.t == a["t_train"][400:500]).all()
    with pytest.raises(ConfigError, match="data.subset: 100 conflicts with data.validation"):
        load_config("quick.yaml", ["data.validation=100", "data.subset=100"])


def test_each_trial_trains_from_its_own_seed_unless_the_sweep_fixes_one(tmp_path):
    from bpnet.sweep.spec import load_sweep

    sweep = load_sweep(str(sweep_file(tmp_path)))
    params = {"train.lr": 0.1, "train.weight_decay": 1e-6}
    seeds = {sweep.trial_config(params, number=k)["train"]["seed"] for k in range(5)}
    assert seeds == {0, 1, 2, 3, 4}  # as the book's loop: fresh random weights per trial
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(
        TINY.format(n=3, epochs=1).replace("  train.epochs", "  train.seed: 7\n  train.epochs")
    )
    sweep = load_sweep(str(fixed))
    assert {sweep.trial_config(params, number=k)["train"]["seed"] for k in range(3)} == {7}


# -- real processes on one study --------------------------------------------------------------
def test_two_processes_share_one_journal_study(bpnet_exe, tmp_path, mnist_session_dir):
    path = sweep_file(tmp_path, n=12)
    journal = tmp_path / "shared" / "journal.log"
    two_processes(bpnet_exe, tmp_path, mnist_session_dir, [path, "--storage", journal])
    ts = trials(journal, "tiny")
    assert_exact(ts, 12)
    ts = in_budget(ts, 12)
    assert all(t.state.name == "COMPLETE" for t in ts)
    # each trial's values are a function of (seed, number): the same params were never drawn twice
    assert len({(t.params["train.lr"], t.params["train.weight_decay"]) for t in ts}) == 12
    for i in range(2):  # both saw the whole study at the end
        rows = list(csv.DictReader(open(tmp_path / f"out{i}" / "trials.csv")))
        assert sorted(int(r["number"]) for r in rows) == list(range(12))
        best = yaml.safe_load(open(tmp_path / f"out{i}" / "best.yaml"))
        top = max(ts, key=lambda t: t.value)
        assert best["train"]["lr"] == top.params["train.lr"]
        assert best["train"]["seed"] == top.number  # retraining starts from the winner's seed
        assert best["data"]["subset"] is None and best["data"]["validation"] == 100


def test_best_yaml_trains(bpnet_exe, tmp_path, mnist_session_dir):
    path = sweep_file(tmp_path, n=3)
    r = run(bpnet_exe, [path, "--jobs", "2"], tmp_path, mnist_session_dir)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "sweeps" / "tiny"
    assert {"journal.log", "trials.csv", "best.yaml", "sweep.png"} <= set(os.listdir(out))
    assert "trial  val_acc  train.lr  train.weight_decay" in r.stdout
    r = subprocess.run(
        [
            bpnet_exe,
            "train",
            "--config",
            str(out / "best.yaml"),
            "--iterations",
            "5",
            "--quiet",
            "--out",
            str(tmp_path / "retrain"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    meta_cfg = yaml.safe_load(open(tmp_path / "retrain" / "config.yaml"))
    assert meta_cfg["data"]["subset"] is None


def sigkill_then_finish(bpnet_exe, tmp_path, data_dir, storage):
    """Kill a sweep (its worker too) in the middle of a trial, then finish the study with two
    other processes: the killed trial is FAIL, the total exact."""
    path = sweep_file(tmp_path, n=4, epochs=400)
    args = [str(path), "--storage", storage, "--grace", "3"]
    victim = subprocess.Popen(
        [
            bpnet_exe,
            "sweep",
            *args,
            "--jobs",
            "1",
            "--data-dir",
            str(data_dir),
            "--offline",
            "--quiet",
        ],
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    catch(storage, "tiny", victim)  # frozen with a trial in its training
    os.killpg(victim.pid, signal.SIGKILL)  # the command and its worker process
    victim.wait()
    two_processes(bpnet_exe, tmp_path, data_dir, args)
    ts = trials(storage, "tiny")
    assert_exact(ts, 4)
    ts = in_budget(ts, 4)
    failed = [t for t in ts if t.state.name == "FAIL"]
    assert len(failed) == 1 and failed[0].user_attrs["error"] == "worker lost (no heartbeat)"
    assert sum(t.state.name == "COMPLETE" for t in ts) == 3


def test_sigkilled_worker_trial_fails_and_study_goes_on_journal(
    bpnet_exe, tmp_path, mnist_session_dir
):
    sigkill_then_finish(bpnet_exe, tmp_path, mnist_session_dir, str(tmp_path / "j.log"))


# -- PostgreSQL --------------------------------------------------------------------------------
def test_two_processes_share_one_postgres_study(bpnet_exe, tmp_path, mnist_session_dir, postgres):
    path = sweep_file(tmp_path, n=10)
    two_processes(bpnet_exe, tmp_path, mnist_session_dir, [path, "--storage", postgres])
    ts = trials(postgres, "tiny")
    assert_exact(ts, 10)
    assert all(t.state.name == "COMPLETE" for t in in_budget(ts, 10))


def test_sigkilled_worker_trial_fails_and_study_goes_on_postgres(
    bpnet_exe, tmp_path, mnist_session_dir, postgres
):
    sigkill_then_finish(bpnet_exe, tmp_path, mnist_session_dir, postgres)


def test_claims_racing_on_postgres_never_take_a_trial_twice(postgres):
    """Eight threads, each with a storage (connection pool) of its own, claim the 40 enqueued
    trials of one PostgreSQL study as fast as they can: every trial goes to exactly one."""
    import threading

    from bpnet.sweep.storage import claim_waiting
    from bpnet.sweep.study import open_storage

    study = optuna.create_study(storage=open_storage(postgres), study_name="race")
    for _ in range(40):
        study.enqueue_trial({})
    start, taken = threading.Barrier(8), [[] for _ in range(8)]

    def claim_all(mine):
        handle = optuna.load_study(study_name="race", storage=open_storage(postgres))
        start.wait()
        while (t := claim_waiting(handle)) is not None:
            mine.append(t.number)

    threads = [threading.Thread(target=claim_all, args=(mine,)) for mine in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(n for mine in taken for n in mine) == list(range(40))
    assert {t.state.name for t in study.get_trials()} == {"RUNNING"}
