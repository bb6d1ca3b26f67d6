"""The run-directory policy from Python alone: a Trainer is as safe as `bpnet train`. A run is
refused where one already is (naming the same ways out), replace=True replaces it whole and only
once the new run has started, --resume's check, and what killed replacements leave behind."""

import errno
import os
import subprocess

import numpy as np
import pytest
from toy import run, toy_cfg, toy_data

from bpnet.errors import InputError
from bpnet.training import rundir
from bpnet.training.rundir import RunDir, RunExists, check_new_run, check_resumable
from bpnet.training.trainer import Trainer, TrainingDiverged
from bpnet.training.weights import load_weights


@pytest.fixture(scope="module")
def data():
    return toy_data()


@pytest.fixture
def old_run(tmp_path, data):
    """A finished toy run with a metrics.png drawn from it, and each file's bytes."""
    run_dir = tmp_path / "runs" / "old"
    run(toy_cfg(tmp_path, **{"train.epochs": 1}), data, run_dir)
    (run_dir / "metrics.png").write_bytes(b"an old picture")
    return run_dir, files_of(run_dir)


def files_of(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_new_run_where_one_is_refused_naming_the_commands_bpnet_train_names(
    old_run, data, tmp_path
):
    run_dir, before = old_run
    with pytest.raises(RunExists) as exc:
        Trainer(toy_cfg(tmp_path), data, run_dir).run()
    python = str(exc.value)
    assert exc.value.exit_code == 2 and isinstance(exc.value, InputError)
    assert python.startswith(
        f"{run_dir} already holds a run (weights.npz, best.npz, "
        f"checkpoint.npz, metrics.csv, config.yaml, metrics.png): "
    )
    assert f"continue it with `bpnet train --resume {run_dir}`" in python
    assert "replace it with Trainer(..., replace=True) (bpnet train --force)" in python
    assert python.endswith(f"or train a new run beside it in {run_dir.parent / 'old-2'}")
    assert (exc.value.resume, exc.value.beside) == (
        f"bpnet train --resume {run_dir}",
        run_dir.parent / "old-2",
    )
    with pytest.raises(RunExists) as cli:  # the check `bpnet train` makes, in its words
        check_new_run(run_dir, command=True)
    assert (cli.value.resume, cli.value.beside) == (exc.value.resume, exc.value.beside)
    assert str(cli.value) == (
        f"{run_dir} already holds a run (weights.npz, best.npz, checkpoint.npz, metrics.csv, "
        f"config.yaml, metrics.png): continue it with `bpnet train --resume {run_dir}`, replace "
        f"it by adding --force to this command, or train a new run beside it by adding --out "
        f"{run_dir.parent / 'old-2'}"
    )
    assert files_of(run_dir) == before
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["old"]


def test_the_resume_command_repeats_the_data_dir_and_beside_skips_taken_names(old_run, tmp_path):
    run_dir, _ = old_run
    (run_dir.parent / "old-2").mkdir()
    with pytest.raises(RunExists) as exc:
        check_new_run(run_dir, data_dir=tmp_path / "my data", command=True)
    assert exc.value.resume == f"bpnet train --resume {run_dir} --data-dir '{tmp_path / 'my data'}'"
    assert exc.value.beside == run_dir.parent / "old-3"
    (run_dir / "checkpoint.npz").unlink()  # nothing to resume: no resume command
    with pytest.raises(RunExists, match="already holds a run") as exc:
        check_new_run(run_dir)
    assert exc.value.resume is None and "--resume" not in str(exc.value)


def test_replace_from_python_replaces_every_file_of_the_old_run(old_run, data, tmp_path):
    run_dir, before = old_run
    cfg = toy_cfg(tmp_path, **{"train.iterations": 5})
    Trainer(cfg, data, run_dir, replace=True).run()
    assert sorted(files_of(run_dir)) == sorted(set(before) - {"metrics.png"})
    assert load_weights(run_dir / "weights.npz")[1]["iteration"] == 5
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["old"]  # no staging left


def test_replace_from_python_leaves_the_old_run_whole_when_the_new_one_fails_to_start(
    old_run, data, tmp_path, monkeypatch
):
    """The first checkpoint cannot be written (a full disk): the new run never started."""
    run_dir, before = old_run

    def disk_full(path, *args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr("bpnet.training.trainer.write_checkpoint", disk_full)
    trainer = Trainer(toy_cfg(tmp_path), data, run_dir, replace=True)
    with pytest.raises(OSError, match="No space left"):
        trainer.run()
    assert files_of(run_dir) == before
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["old"]
    assert trainer.dir.path == run_dir and not trainer.dir.staged


def test_replace_from_python_swaps_in_once_the_new_run_has_started(old_run, data, tmp_path):
    """A run that diverges at its first step had started (config.yaml and the first checkpoint
    written): it is the run in the folder now, and resumable from that checkpoint."""
    run_dir, _ = old_run
    cfg = toy_cfg(tmp_path, **{"train.lr": 1e6, "train.optimizer": "sgd"})
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged) as exc:
        Trainer(cfg, data, run_dir, replace=True).run()
    assert f"the last good checkpoint is {run_dir / 'checkpoint.npz'} (iteration 0)" in str(
        exc.value
    )
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.npz", "config.yaml"]
    assert "lr: 1000000.0" in (run_dir / "config.yaml").read_text()
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["old"]


def test_replace_from_python_refuses_a_folder_with_files_that_are_not_a_run(
    old_run, data, tmp_path
):
    run_dir, before = old_run
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(InputError) as exc:
        Trainer(toy_cfg(tmp_path), data, run_dir, replace=True).run()
    assert str(exc.value) == (
        f"{run_dir} holds files that are not part of a run (notes.txt); "
        f"replace=True replaces a run directory whole: move them, or "
        f"train into another folder"
    )
    assert files_of(run_dir) == {**before, "notes.txt": b"mine"}
    with pytest.raises(
        InputError,
        match=r"\(notes.txt\); --force replaces a run directory "
        r"whole: move them, or train into another --out",
    ):
        check_new_run(run_dir, replace=True, command=True)


def test_a_folder_without_a_run_is_written_in_place_keeping_other_files(data, tmp_path):
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine")
    for replace in (False, True):  # nothing to replace: --force changes nothing
        Trainer(toy_cfg(tmp_path, **{"train.iterations": 3}), data, run_dir, replace=replace).run()
        assert (run_dir / "notes.txt").read_text() == "mine"
        assert (run_dir / "weights.npz").is_file()
        for f in rundir.run_files(run_dir):  # no run there again
            (run_dir / f).unlink()


def test_a_resumed_run_continues_in_place(old_run, data, tmp_path):
    run_dir, _ = old_run
    cfg = toy_cfg(tmp_path, **{"train.epochs": 1})
    trainer = Trainer(cfg, data, run_dir)
    trainer.load_checkpoint()  # a finished run: nothing left to train, written where it is
    assert trainer.resumed and trainer.run()["iteration"] == trainer.total
    assert (run_dir / "metrics.png").read_bytes() == b"an old picture"


def test_resume_takes_only_a_run_directory(tmp_path, old_run):
    run_dir, _ = old_run
    assert check_resumable(str(run_dir)) == run_dir
    with pytest.raises(InputError) as exc:
        check_resumable(tmp_path)
    assert str(exc.value) == (
        f"{tmp_path}: not a run directory (no config.yaml); --resume takes "
        f"a folder that bpnet train or Trainer.run() wrote"
    )


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_what_a_killed_replacement_left_is_tidied_before_the_check(old_run, data, tmp_path):
    """A kill between the two renames of a swap (where renameat2 is missing) leaves the old run
    set aside and no folder at its path: it is put back, and so refused, before a new run."""
    run_dir, before = old_run
    pid = dead_pid()
    os.rename(run_dir, run_dir.with_name(f".old.old-{pid}-0123abcd"))
    (run_dir.parent / f".old.new-{pid}-4567cdef").mkdir()  # a half-built replacement
    with pytest.raises(RunExists):
        Trainer(toy_cfg(tmp_path), data, run_dir).run()
    assert files_of(run_dir) == before
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["old"]


def test_run_dir_lifecycle(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    (target / "weights.npz").write_bytes(b"old")
    d = RunDir(target, replace=True)
    staged = d.open()
    assert d.staged and staged.parent == tmp_path and staged.name.startswith(".run.new-")
    (staged / "weights.npz").write_bytes(b"new")
    assert (target / "weights.npz").read_bytes() == b"old"  # untouched until started
    d.started()
    assert (target / "weights.npz").read_bytes() == b"new" and d.path == target
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    d.abandon()  # after the start: nothing to undo
    assert (target / "weights.npz").read_bytes() == b"new"
    d = RunDir(target, replace=True)
    staged = d.open()
    d.abandon()
    assert not staged.exists() and [p.name for p in tmp_path.iterdir()] == ["run"]
    with pytest.raises(RunExists):
        RunDir(target).open()
    assert RunDir(target).open(resume=True) == target
    fresh = RunDir(tmp_path / "a" / "b")
    assert fresh.open() == tmp_path / "a" / "b" and fresh.path.is_dir() and not fresh.staged


def test_a_finished_run_is_set_against_a_config_key_by_key(old_run, data, tmp_path):
    run_dir, _ = old_run
    same = rundir.finished_run(run_dir, toy_cfg(tmp_path, **{"train.epochs": 1}))
    assert same is not None and same.differences == ()
    assert same.iteration == same.total == 16 and same.metrics["test_acc"] > 0.5
    elsewhere = toy_cfg(
        tmp_path, **{"train.epochs": 1, "train.threads": 1, "data_dir": str(tmp_path)}
    )  # where the data is and how many threads multiply change nothing in the run
    assert rundir.finished_run(run_dir, elsewhere).differences == ()
    other = toy_cfg(tmp_path, **{"train.epochs": 3, "train.lr": 0.5})
    assert rundir.finished_run(run_dir, other).differences == (
        ("train.epochs", 1, 3),
        ("train.lr", 0.05, 0.5),
    )
    with pytest.raises(RunExists) as exc:
        check_new_run(run_dir, command=True, cfg=other)
    assert "of another config (train.epochs: 1 there, 3 here; train.lr: 0.05 there, 0.5 " in str(
        exc.value
    )
    assert exc.value.resume is None  # a finished run is not continued as it is
    longer = toy_cfg(tmp_path, **{"train.epochs": 3})
    with pytest.raises(RunExists) as exc:
        check_new_run(run_dir, command=True, cfg=longer)
    assert exc.value.resume == f"bpnet train --resume {run_dir} --epochs 3"
    assert f"extend it to 3 epochs with `{exc.value.resume}`" in str(exc.value)


def test_an_interrupted_run_is_no_finished_run(data, tmp_path):
    from bpnet.training.trainer import Progress, TrainingInterrupted

    cfg = toy_cfg(tmp_path)
    trainer = Trainer(cfg, data, tmp_path / "cut")

    class StopAt20(Progress):
        def step(self, iteration, loss):
            if iteration == 20:
                trainer.stop.requested = "SIGINT"

    trainer.progress = StopAt20()
    with pytest.raises(TrainingInterrupted):
        trainer.run()
    assert rundir.finished_run(tmp_path / "cut", cfg) is None
    assert str(rundir.unfinished(tmp_path / "cut", "weights.npz")) == (
        f"{tmp_path / 'cut'}: the run was interrupted at iteration 20 of 48 and has no "
        f"weights.npz yet; resume it with `bpnet train --resume {tmp_path / 'cut'}`"
    )
    with pytest.raises(InputError, match="interrupted at iteration 20 of 48"):
        rundir.weights_path(tmp_path / "cut")
    with pytest.raises(RunExists, match="continue it with `bpnet train --resume"):
        check_new_run(tmp_path / "cut", command=True, cfg=cfg)
