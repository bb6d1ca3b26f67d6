"""Worker processes that claim the study's trials one at a time and train each in memory."""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time

from bpnet.errors import BpnetError
from bpnet.nn.threads import available_cores
from bpnet.nn.threads import use as use_threads
from bpnet.sweep.storage import fail, live_trial, set_user_attr, trial_id
from bpnet.sweep.study import (
    GRACE,
    HEARTBEAT,
    _optuna,
    _pruner,
    _sampler,
    claim_trial,
    fail_stale_trials,
    open_storage,
    open_study,
)


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
    """Trainer progress hooks that feed each evaluation's metric to the pruner."""

    def __init__(self, trial, metric):
        self.trial, self.metric = trial, metric

    def start(self, total, done, iters_per_epoch): ...
    def step(self, iteration, loss): ...
    def message(self, text): ...
    def close(self): ...

    def evaluated(self, row):
        if self.metric is None:  # no pruner: nothing to feed (each report is a storage write)
            return
        optuna = _optuna()
        step = round(row["epoch"])
        self.trial.report(row[self.metric], step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {step}")


def run_trial(sweep, trial, arrays, cli=None):
    """Train one trial's config in memory; returns its metric (the last evaluation's)."""
    from bpnet.data.idx import load_arrays
    from bpnet.training.batches import load_data
    from bpnet.training.trainer import Trainer

    cfg = sweep.trial_config(
        {d.key: d.suggest(trial) for d in sweep.space}, cli, number=trial.number
    )
    key = (cfg["dataset"], cfg["data_dir"])
    if key not in arrays:
        arrays[key] = load_arrays(*key)
    data = load_data(cfg, arrays[key])
    data.test = None  # selection happens on validation images only, and it saves the time
    trainer = Trainer(
        cfg, data, None, _Reporter(trial, sweep.metric if sweep.pruner != "none" else None)
    )
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
    """One worker: claim and run trials of the study until its budget is spent, on one
    thread (a sweep runs one trial per core instead; the trials' ``train.threads: null``
    inherits it). A trial that raises a bpnet error (e.g. a diverged loss) is FAIL with the
    message; Ctrl-C marks the running trial FAIL (interrupted) and returns."""
    with use_threads(1):
        return _work(sweep, storage_url, study_name, cli, arrays, grace)


def _work(sweep, storage_url, study_name, cli, arrays, grace):
    optuna = _optuna()
    storage = open_storage(storage_url)
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=_pruner(sweep))
    arrays = {} if arrays is None else arrays
    while True:
        fail_stale_trials(study, grace)
        frozen = beat = None
        try:  # from the claim on: a Ctrl-C at any moment marks the claimed trial interrupted
            frozen = claim_trial(study)
            if frozen is None:
                return
            tid, started = trial_id(frozen), time.perf_counter()
            heartbeat = _Heartbeat(storage, tid)
            heartbeat.start()
            beat = heartbeat
            study.sampler = _sampler(sweep, frozen.number)
            trial = live_trial(study, tid)
            value = run_trial(sweep, trial, arrays, cli)
        except optuna.TrialPruned:
            state, value = optuna.trial.TrialState.PRUNED, None
        except KeyboardInterrupt:
            if frozen is not None:
                fail(storage, trial_id(frozen), "interrupted")
            return
        except (BpnetError, FloatingPointError) as e:
            set_user_attr(storage, tid, "error", str(e))
            state, value = optuna.trial.TrialState.FAIL, None
        else:
            state = optuna.trial.TrialState.COMPLETE
        finally:
            if beat is not None:
                beat.done.set()
                beat.join()
        set_user_attr(storage, tid, "seconds", round(time.perf_counter() - started, 3))
        study.tell(frozen.number, value, state=state, skip_if_finished=True)


def _worker_main(*args):
    try:
        work(*args)
    except KeyboardInterrupt:
        pass


def default_jobs():
    """Worker processes when ``jobs`` is not given: one per core this process may use."""
    return available_cores()


def run_sweep(
    sweep, storage_url, study_name, jobs=None, cli=None, monitor=None, poll=0.5, grace=GRACE
):
    """Run the study with ``jobs`` worker processes (forked after the dataset is loaded, so
    they share it) until its budget is spent; ``monitor(study)`` is called every ``poll``
    seconds; a running trial without a heartbeat for ``grace`` seconds is marked FAIL.
    Returns the study. Ctrl-C stops the workers (their running trials are FAIL) and
    raises KeyboardInterrupt; the same call later continues the study."""
    from bpnet.data.idx import load_arrays

    study = open_study(sweep, storage_url, study_name)
    arrays = {
        (sweep.base["dataset"], sweep.base["data_dir"]): load_arrays(
            sweep.base["dataset"], sweep.base["data_dir"]
        )
    }
    ctx = multiprocessing.get_context("fork")
    args = (sweep, storage_url, study_name, cli, arrays, grace)
    procs = [
        ctx.Process(target=_worker_main, args=args, daemon=False)
        for _ in range(jobs or default_jobs())
    ]
    for p in procs:
        p.start()
    optuna = _optuna()
    try:
        while True:
            alive = any(p.is_alive() for p in procs)
            if not alive:
                fail_stale_trials(study, grace)
                running = study.get_trials(
                    deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)
                )
            if monitor:
                monitor(study)
            if not alive and not running:
                break
            time.sleep(poll)
    finally:
        for p in procs:
            p.join()
    return study
