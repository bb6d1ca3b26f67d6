"""Worker processes that claim the study's trials one at a time and train each in memory."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time

from bpnet.errors import BpnetError
from bpnet.nn.threads import available_cores
from bpnet.nn.threads import use as use_threads
from bpnet.sweep import interrupts
from bpnet.sweep.storage import fail, live_trial, set_user_attr, trial_id
from bpnet.sweep.study import (
    GRACE,
    HEARTBEAT,
    _optuna,
    _pruner,
    _sampler,
    claim_trial,
    fail_stale_trials,
    interrupt,
    open_storage,
    open_study,
)

IDLE = 0.5  # seconds between looks of a worker waiting for other processes' last trials


class _Heartbeat(threading.Thread):
    def __init__(self, storage, trial_id):
        super().__init__(daemon=True, name="bpnet-heartbeat")
        self.storage, self.trial_id, self.done = storage, trial_id, threading.Event()

    def run(self):
        while True:
            with contextlib.suppress(Exception):
                set_user_attr(self.storage, self.trial_id, "heartbeat", time.time())
            if self.done.wait(HEARTBEAT):
                return


class _Reporter:
    """Trainer progress hooks that feed each evaluation's metric to the pruner. A trial run
    again after an interruption keeps the reports it made before (``reported`` steps)."""

    def __init__(self, trial, metric, reported=()):
        self.trial, self.metric, self.reported = trial, metric, set(reported)

    def start(self, total, done, iters_per_epoch): ...
    def step(self, iteration, loss): ...
    def message(self, text): ...
    def close(self): ...

    def evaluated(self, row):
        if self.metric is None:  # no pruner: nothing to feed (each report is a storage write)
            return
        optuna = _optuna()
        step = round(row["epoch"])
        if step not in self.reported:
            self.trial.report(row[self.metric], step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {step}")


def draw(sweep, trial, before=None):
    """Each searched key's value for ``trial``, in the space's order. A trial put back after
    an interruption (``before``: its FrozenTrial as claimed) keeps the values it drew; the
    sampler is asked for each of them again, its answer dropped, so that it draws the others
    as it did in an uninterrupted run (a seeded sampler's draws follow one another)."""
    drawn = before.params if before is not None else {}
    values = {}
    for d in sweep.space:
        # the first run drew jointly what the sampler draws so (multivariate TPE), at its
        # first value: asking for the joint draw here takes it at the same point
        if d.key in drawn and d.key not in trial.relative_params:
            trial.study.sampler.sample_independent(trial.study, before, d.key, d.distribution())
        values[d.key] = d.suggest(trial)
    return values


def run_trial(sweep, trial, arrays, cli=None, before=None):
    """Train one trial's config in memory; returns its metric (the last evaluation's).
    ``before``: the trial as claimed, when it runs again after an interruption."""
    from bpnet.data.idx import load_arrays
    from bpnet.training.batches import load_data
    from bpnet.training.trainer import Trainer

    cfg = sweep.trial_config(draw(sweep, trial, before), cli, number=trial.number)
    key = (cfg["dataset"], cfg["data_dir"])
    if key not in arrays:
        arrays[key] = load_arrays(*key)
    data = load_data(cfg, arrays[key])
    data.test = None  # selection happens on validation images only, and it saves the time
    metric = sweep.metric if sweep.pruner != "none" else None
    reported = before.intermediate_values if before is not None else ()
    trainer = Trainer(cfg, data, None, _Reporter(trial, metric, reported))
    try:
        row = trainer.run()
    finally:
        rows = trainer.state.rows
        trial.set_user_attr(
            "curve",
            {
                k: [r[k] for r in rows]
                for k in ("epoch", "val_acc", "val_loss", "train_acc", "train_loss")
            },
        )
    return row[sweep.metric]


def work(sweep, storage_url, study_name, cli=None, arrays=None, grace=GRACE):
    """One worker: claim and run trials of the study until its budget is spent (every trial
    of it finished, those of other processes too: one of theirs may be put back), on one
    thread (a sweep runs one trial per core instead; the trials' ``train.threads: null``
    inherits it). A trial that raises a bpnet error (e.g. a diverged loss) is FAIL with the
    message; a KeyboardInterrupt (Ctrl-C) puts the running trial back, WAITING with its
    parameters for whoever continues the study, and returns."""
    with use_threads(1):
        return _work(sweep, storage_url, study_name, cli, arrays, grace)


def _work(sweep, storage_url, study_name, cli, arrays, grace):
    optuna = _optuna()
    storage = open_storage(storage_url)
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=_pruner(sweep))
    arrays = {} if arrays is None else arrays
    while True:
        claimed = None
        try:  # from the claim on: an interrupt at any moment puts the claimed trial back
            fail_stale_trials(study, grace)
            with interrupts.deferred():  # claimed and kept, or not claimed: never in between
                claimed = claim_trial(study, sweep.n_trials)
            if claimed is None:
                if not _running(study, sweep.n_trials):
                    return  # the budget is spent: every trial of it finished
                time.sleep(IDLE)  # another process's trial may yet be put back
                continue
            _run(study, storage, sweep, claimed, arrays, cli)
            claimed = None
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt) or interrupts.received():
                interrupts.ignore()  # this process is stopping: a second Ctrl-C must not cut it
                if claimed is not None:
                    interrupt(storage, claimed)
                return
            if claimed is not None:  # a failure of bpnet's or a storage's: the trial failed
                fail(storage, trial_id(claimed), f"{type(e).__name__}: {e}".splitlines()[0])
            raise


def _running(study, budget):
    optuna = _optuna()
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return any(t.number < budget for t in running)


def _run(study, storage, sweep, frozen, arrays, cli):
    """Run the claimed trial ``frozen`` and tell the study how it ended."""
    optuna = _optuna()
    tid, started = trial_id(frozen), time.perf_counter()
    heartbeat = _Heartbeat(storage, tid)
    try:
        heartbeat.start()
        study.sampler = _sampler(sweep, frozen.number)
        trial = live_trial(study, tid)
        value = run_trial(sweep, trial, arrays, cli, frozen)
        state = optuna.trial.TrialState.COMPLETE
    except optuna.TrialPruned:
        state, value = optuna.trial.TrialState.PRUNED, None
    except (BpnetError, FloatingPointError) as e:
        set_user_attr(storage, tid, "error", str(e))
        state, value = optuna.trial.TrialState.FAIL, None
    finally:
        heartbeat.done.set()
        if heartbeat.ident is not None:  # started
            heartbeat.join()
    set_user_attr(storage, tid, "seconds", round(time.perf_counter() - started, 3))
    study.tell(frozen.number, value, state=state, skip_if_finished=True)


def _worker_main(errors, *args):
    """A forked worker: interrupting signals become a KeyboardInterrupt (its trial is put
    back); any other failure goes to ``errors`` as one line, never a traceback."""
    interrupts.install()
    try:
        work(*args)
    except KeyboardInterrupt:
        pass
    except BpnetError as e:
        errors.put(str(e))
    except Exception as e:  # reported by the parent in one line
        errors.put(f"{type(e).__name__}: {e}".splitlines()[0])


def default_jobs():
    """Worker processes when ``jobs`` is not given: one per core this process may use."""
    return available_cores()


def run_sweep(
    sweep, storage_url, study_name, jobs=None, cli=None, monitor=None, poll=0.5, grace=GRACE
):
    """Run the study with ``jobs`` worker processes (forked after the dataset is loaded, so
    they share it) until its budget is spent; ``monitor(study)`` is called every ``poll``
    seconds; a running trial without a heartbeat for ``grace`` seconds is marked FAIL.
    Returns the study. While it runs, the first SIGINT, SIGTERM or SIGHUP stops the workers
    (their running trials go back to WAITING) and raises an ``Interrupted`` (a
    KeyboardInterrupt with the signal's number); later ones are ignored until the workers are
    gone. The same call later continues the study. A worker that fails is a BpnetError."""
    from bpnet.data.idx import load_arrays
    from bpnet.training.batches import load_data  # noqa: F401 - imported once, before forking
    from bpnet.training.trainer import Trainer  # noqa: F401

    previous = interrupts.install()
    try:
        study = open_study(sweep, storage_url, study_name)
        key = (sweep.base["dataset"], sweep.base["data_dir"])
        arrays = {key: load_arrays(*key)}
        ctx = multiprocessing.get_context("fork")
        errors = ctx.SimpleQueue()
        args = (errors, sweep, storage_url, study_name, cli, arrays, grace)
        procs = [
            ctx.Process(target=_worker_main, args=args, daemon=False)
            for _ in range(jobs or default_jobs())
        ]
        try:
            for p in procs:
                p.start()
            _watch(study, procs, monitor, poll, grace)
        except KeyboardInterrupt:
            interrupts.ignore()
            for p in procs:  # those the signal did not reach (it went to this process only)
                if p.is_alive():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p.pid, signal.SIGINT)
            raise
        finally:
            for p in procs:
                if p.pid is not None:
                    p.join()
    finally:
        interrupts.restore(previous)
    if not errors.empty():
        raise BpnetError(f"a worker stopped: {errors.get()}")
    return study


def _watch(study, procs, monitor, poll, grace):
    """Until the workers are gone and no trial runs (a lost one is FAIL after ``grace``)."""
    optuna = _optuna()
    while True:
        alive = any(p.is_alive() for p in procs)
        if not alive:
            fail_stale_trials(study, grace)
            running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        if monitor:
            monitor(study)
        if not alive and not running:
            return
        time.sleep(poll)
