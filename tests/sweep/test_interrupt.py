"""An interrupted sweep loses nothing: Ctrl-C (SIGINT to the command's group), SIGTERM or SIGHUP
to the command alone, a second Ctrl-C, one of two processes interrupted; each trial caught in
the middle of its training (the command frozen while the test looks) goes back to WAITING with
its values, runs again when the study is continued, and the final table is an uninterrupted
run's. Real `bpnet sweep` processes on a journal file."""

from __future__ import annotations

import csv
import os
import signal
import subprocess

import pytest
from sweeprun import (  # skips this module when Optuna is missing
    TINY,
    assert_exact,
    catch,
    in_budget,
    midway,
    optuna,
    signal_command_alone,
    thaw,
    training,
    trials,
)


def write_sweep(tmp_path, n, epochs, sampler="random", pruner="median"):
    """The tiny sweep; with the median pruner each epoch is reported, so a test sees how far a
    trial is (trials 0-4 are never pruned: its start-up)."""
    path = tmp_path / "tiny.yaml"
    text = TINY.format(n=n, epochs=epochs).replace("sampler: random", f"sampler: {sampler}")
    path.write_text(text + f"pruner: {pruner}\n")
    return path


def command(bpnet_exe, path, out, data_dir, jobs=1, quiet=False):
    return [
        bpnet_exe,
        "sweep",
        str(path),
        "--jobs",
        str(jobs),
        "--out",
        str(out),
        "--data-dir",
        str(data_dir),
        "--offline",
        *(["--quiet"] if quiet else []),
    ]


def start(cmd, cwd):
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a group of its own, as a terminal's foreground job
    )


def finish(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return r


def table(out):
    """trials.csv without the seconds each trial took."""
    with open(out / "trials.csv", newline="") as fh:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]


def printed(stdout):
    """The printed table of the best trials without its seconds column."""
    lines = stdout.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("trial "))
    rows = lines[start : next(i for i, ln in enumerate(lines) if ln.startswith("wrote "))]
    return [ln.rsplit(None, 1)[0] for ln in rows]


def test_an_interrupted_trial_runs_again_and_the_table_is_an_uninterrupted_runs(
    bpnet_exe, tmp_path, mnist_session_dir
):
    path = write_sweep(tmp_path, 4, 1000)
    reference = finish(command(bpnet_exe, path, tmp_path / "ref", mnist_session_dir), tmp_path)
    out = tmp_path / "run"
    cmd = command(bpnet_exe, path, out, mnist_session_dir)
    p = start(cmd, tmp_path)
    journal = str(out / "journal.log")
    (caught,) = [t for t in catch(journal, "tiny", p, midway(1000)) if training(t)]
    os.killpg(p.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's whole foreground group
    thaw(p.pid)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, stderr
    assert "of 4 trials" in stdout and "1 interrupted" in stdout, stdout
    assert stderr.strip().splitlines()[-1].startswith("interrupted; run the same command")
    back = trials(journal, "tiny")[caught.number]
    assert back.state.name == "WAITING" and back.user_attrs["interrupted"] == 1
    assert back.params == caught.params  # the values it drew stay with it
    assert not [t for t in trials(journal, "tiny") if t.state.name == "RUNNING"]
    rows = {r["number"]: r for r in table(out)}
    assert rows[str(caught.number)]["state"] == "INTERRUPTED"

    again = finish(cmd, tmp_path)
    ts = trials(journal, "tiny")
    assert_exact(ts, 4)
    assert {t.state.name for t in ts} == {"COMPLETE"}
    assert ts[caught.number].params == caught.params
    assert ts[caught.number].user_attrs["interrupted"] == 1
    assert table(out) == table(tmp_path / "ref")
    assert printed(again.stdout) == printed(reference.stdout)
    best = [(d / "best.yaml").read_text().replace(str(d), "OUT") for d in (out, tmp_path / "ref")]
    assert best[0] == best[1]


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_a_trial_put_back_draws_what_an_uninterrupted_run_drew(
    tmp_path, monkeypatch, mnist_session_dir, sampler
):
    """Interrupted between drawing its first and its second value, trial 10 keeps the first
    and draws the second as an uninterrupted run did (past its 10 start-up trials TPE draws
    from the trials before it): the same values and results for every trial."""
    from bpnet.sweep.spec import Dimension, load_sweep
    from bpnet.sweep.study import open_study
    from bpnet.sweep.workers import work

    sweep = load_sweep(str(write_sweep(tmp_path, 12, 1, sampler, "none")))
    cli = {"data_dir": str(mnist_session_dir)}
    open_study(sweep, str(tmp_path / "ref.log"), "tiny")
    work(sweep, str(tmp_path / "ref.log"), "tiny", cli)
    journal = str(tmp_path / "run.log")
    open_study(sweep, journal, "tiny")
    suggest = Dimension.suggest

    def interrupted(dim, trial):
        if trial.number == 10 and dim.key == "train.weight_decay":
            monkeypatch.setattr(Dimension, "suggest", suggest)
            raise KeyboardInterrupt
        return suggest(dim, trial)

    monkeypatch.setattr(Dimension, "suggest", interrupted)
    work(sweep, journal, "tiny", cli)
    ten = trials(journal, "tiny")[10]
    assert (ten.state.name, list(ten.params)) == ("WAITING", ["train.lr"])
    work(sweep, journal, "tiny", cli)
    ref, run = trials(str(tmp_path / "ref.log"), "tiny"), trials(journal, "tiny")
    assert [(t.params, t.value) for t in run] == [(t.params, t.value) for t in ref]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_to_the_command_alone_puts_every_running_trial_back(
    bpnet_exe, tmp_path, mnist_session_dir, signum
):
    """`kill PID` (SIGTERM), a closed terminal (SIGHUP) or `kill -INT PID`, to the command
    only: it stops its two workers, their trials go back, and it exits 128 + the signal."""
    path = write_sweep(tmp_path, 6, 1000)
    out = tmp_path / "run"
    cmd = command(bpnet_exe, path, out, mnist_session_dir, jobs=2, quiet=True)
    p = start(cmd, tmp_path)
    journal = str(out / "journal.log")
    caught = {t.number for t in catch(journal, "tiny", p, midway(1000)) if midway(1000)(t)}
    signal_command_alone(p, signum)
    _, stderr = p.communicate(timeout=120)
    assert p.returncode == 128 + signum, stderr
    ts = trials(journal, "tiny")
    assert not [(t.number, t.user_attrs) for t in ts if t.state.name == "RUNNING"], stderr
    for n in caught:
        assert (ts[n].state.name, ts[n].user_attrs["interrupted"]) == ("WAITING", 1)
    finish(cmd, tmp_path)
    ts = trials(journal, "tiny")
    assert_exact(ts, 6)
    assert {t.state.name for t in in_budget(ts, 6)} <= {"COMPLETE", "PRUNED"}  # 5 may be pruned


def test_a_second_ctrl_c_does_not_cut_the_first_short(bpnet_exe, tmp_path, mnist_session_dir):
    path = write_sweep(tmp_path, 4, 1000)
    out = tmp_path / "run"
    p = start(command(bpnet_exe, path, out, mnist_session_dir, jobs=2, quiet=True), tmp_path)
    journal = str(out / "journal.log")
    caught = [t.number for t in catch(journal, "tiny", p, midway(1000)) if midway(1000)(t)]
    os.killpg(p.pid, signal.SIGINT)
    thaw(p.pid)
    os.killpg(p.pid, signal.SIGINT)  # the impatient second press, while the first is handled
    _, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, stderr
    ts = trials(journal, "tiny")
    assert not [(t.number, t.params, t.user_attrs) for t in ts if t.state.name == "RUNNING"], (
        caught,
        stderr,
    )
    assert all(ts[n].state.name == "WAITING" for n in caught)
    assert "Traceback" not in stderr


def test_the_other_process_runs_the_interrupted_trial(bpnet_exe, tmp_path, mnist_session_dir):
    """Two commands on one study: the first is caught in a trial and interrupted once the
    second runs one of its own; the second runs the first's trial too, and the whole budget."""
    path = write_sweep(tmp_path, 5, 1000)
    journal = str(tmp_path / "shared.log")

    def launch(i):
        cmd = command(bpnet_exe, path, tmp_path / f"out{i}", mnist_session_dir, quiet=True)
        # a frozen command writes no heartbeat: a long grace keeps its trial from being lost
        return start(cmd + ["--storage", journal, "--grace", "300"], tmp_path)

    a = launch(0)
    # a's trial (b is not there yet), a long way from its end
    (caught,) = [t for t in catch(journal, "tiny", a, midway(1000)) if training(t)]
    b = launch(1)
    catch(journal, "tiny", b, lambda t: training(t) and t.number != caught.number)
    thaw(b.pid)
    os.killpg(a.pid, signal.SIGINT)
    thaw(a.pid)
    _, err_a = a.communicate(timeout=120)
    assert a.returncode == 130, err_a
    _, err_b = b.communicate(timeout=600)
    assert b.returncode == 0, err_b
    ts = trials(journal, "tiny")
    assert_exact(ts, 5)
    assert {t.state.name for t in in_budget(ts, 5)} == {"COMPLETE"}, [
        t.user_attrs.get("error") for t in ts
    ]
    assert ts[caught.number].user_attrs["interrupted"] == 1
    assert caught.params.items() <= ts[caught.number].params.items()


def test_a_ctrl_c_right_after_a_claim_puts_that_trial_back(
    tmp_path, monkeypatch, mnist_session_dir
):
    # the moment between taking a trial and starting its heartbeat, where a loaded machine
    # can deliver the interrupt: the trial must not stay RUNNING until it is called lost
    from bpnet.sweep.spec import load_sweep
    from bpnet.sweep.study import open_study
    from bpnet.sweep.workers import _Heartbeat, work

    path = write_sweep(tmp_path, 2, 1)
    sweep = load_sweep(str(path))
    journal = str(tmp_path / "j.log")
    open_study(sweep, journal, "tiny")

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(_Heartbeat, "start", interrupted)
    try:
        work(sweep, journal, "tiny", cli={"data_dir": str(mnist_session_dir)})
    except KeyboardInterrupt:
        pytest.fail("the interrupt escaped work() and left its trial RUNNING")
    (t,) = trials(journal, "tiny")
    assert (t.state.name, t.user_attrs) == ("WAITING", {"interrupted": 1})
    monkeypatch.undo()
    work(sweep, journal, "tiny", cli={"data_dir": str(mnist_session_dir)})
    ts = trials(journal, "tiny")
    assert [t.state for t in ts] == [optuna.trial.TrialState.COMPLETE] * 2
    assert ts[0].user_attrs["interrupted"] == 1
