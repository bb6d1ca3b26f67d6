"""Plain helpers of the sweep tests: a tiny sweep file, `bpnet sweep` processes, reading a
study back, the processes of a command's group and their freezing; PostgreSQL's binaries."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import time

import pytest

optuna = pytest.importorskip("optuna", reason="pip install 'bpnet[sweep]'")

TINY = """\
# tiny sweep for tests
config: quick.yaml
set:
  data.subset: 300
  data.validation: 100
  model.hidden: [20]
  train.epochs: {epochs}
space:
  train.lr: {{log_uniform: [0.01, 0.5]}}
  train.weight_decay: {{log_uniform: [1.0e-8, 1.0e-4]}}
sampler: random
seed: 1
n_trials: {n}
"""


def sweep_file(tmp_path, n=10, epochs=2, name="tiny"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(TINY.format(n=n, epochs=epochs))
    return path


def run(bpnet_exe, args, cwd, data_dir, **kw):
    return subprocess.run(
        [bpnet_exe, "sweep", *map(str, args), "--data-dir", str(data_dir), "--offline", "--quiet"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        **kw,
    )


def two_processes(bpnet_exe, tmp_path, data_dir, args):
    """Two `bpnet sweep ARGS --jobs 1` at once, each with its own --out; both must succeed."""
    procs = [
        subprocess.Popen(
            [
                bpnet_exe,
                "sweep",
                *map(str, args),
                "--jobs",
                "1",
                "--out",
                str(tmp_path / f"out{i}"),
                "--data-dir",
                str(data_dir),
                "--offline",
                "--quiet",
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs


def trials(storage, name):
    from bpnet.sweep.study import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(storage)).get_trials()


def in_budget(ts, n):
    """The trials of a budget of ``n`` (see ``assert_exact``)."""
    return [t for t in ts if t.number < n]


def assert_exact(ts, n):
    """The budget of ``n`` trials ran, each once. Two processes making the last trial at once
    may leave one more, numbered past the budget: it stays WAITING, never run."""
    budget = [t for t in ts if t.number < n]
    assert sorted(t.number for t in budget) == list(range(n))
    assert all(t.state.is_finished() for t in budget)
    assert all(t.state.name == "WAITING" and not t.params for t in ts if t.number >= n)


def group_pids(pgid):
    """The processes of the process group ``pgid`` (a command started in a session of its
    own, and the workers it forked)."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            found.append(int(stat.split("/")[2]))
    return found


def _state(pid):
    try:
        return open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[0]
    except OSError:
        return "gone"


def freeze(pgid, timeout=30):
    """SIGSTOP the group and wait until each of its processes is stopped: nothing of it can
    write to the study until ``thaw``."""
    os.killpg(pgid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while any(_state(p) not in ("T", "t", "Z", "gone") for p in group_pids(pgid)):
        assert time.monotonic() < deadline, "the group did not stop"
        time.sleep(0.01)


def thaw(pgid):
    os.killpg(pgid, signal.SIGCONT)


def pg_bin(name):
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


def training(t):
    """A trial in the middle of its training: claimed, its values drawn, no curve written."""
    return t.state.name == "RUNNING" and t.params and "curve" not in t.user_attrs


def catch(storage, name, proc, wanted=training, timeout=300):
    """Freeze ``proc``'s group (the command and its workers) at a moment when a trial of the
    study is ``wanted``, seen while frozen: nothing can move it on until ``thaw``. Returns
    the trials as they stand then. Where the command is when the test signals it is thus
    observed, not guessed from a sleep. A journal's lock must be free then (Optuna's lock
    file, ``JOURNAL.lock``): no write is half done, and no other process waits on the frozen
    one (it would break a lock held past Optuna's grace period)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            seen = any(wanted(t) for t in trials(storage, name))
        except KeyError:  # the study is not made yet
            seen = False
        if seen:
            freeze(proc.pid)
            ts = trials(storage, name)
            if any(wanted(t) for t in ts) and not os.path.lexists(f"{storage}.lock"):
                return ts
            thaw(proc.pid)
        time.sleep(0.02)
    pytest.fail("no trial was caught in the wanted state")


def pending(pid, signum):
    """Whether ``signum`` waits to be delivered to the (stopped) process ``pid``."""
    try:
        status = open(f"/proc/{pid}/status").read()
    except OSError:
        return False
    masks = [int(ln.split()[1], 16) for ln in status.splitlines() if ln[:6] in ("SigPnd", "ShdPnd")]
    return any(mask >> (signum - 1) & 1 for mask in masks)


def signal_command_alone(proc, signum, timeout=60):
    """Send ``signum`` to the frozen command alone and let only it run until it has passed
    the interrupt on to each of its (still frozen) workers; then let them all run."""
    os.kill(proc.pid, signum)
    os.kill(proc.pid, signal.SIGCONT)
    workers = [p for p in group_pids(proc.pid) if p != proc.pid]
    deadline = time.monotonic() + timeout
    while not all(pending(w, signal.SIGINT) for w in workers):
        assert time.monotonic() < deadline, "the command did not pass the interrupt on"
        time.sleep(0.01)
    thaw(proc.pid)


def midway(epochs):
    """A trial provably in the middle of its training, not at its end: claimed, its values
    drawn, no curve written, and between its first and its half-way epoch reported (the
    median pruner's reports, one per epoch)."""
    return lambda t: training(t) and 1 <= len(t.intermediate_values) <= epochs // 2
