"""Hyperparameter sweeps on Optuna: a sweep file, worker processes, a shared study, results.

A sweep file (YAML) names a base config, fixed overrides and a search space over dotted config
keys; every trial is that config with the sampled values, validated by ``load_config`` and trained
in memory (no run directory) on the validation split. Trials run in worker processes (one BLAS
thread each) that share one Optuna study through its storage: a journal file by default, or any
Optuna storage URL, so several commands on several machines share one study.

The trial budget is exact across processes and machines: whoever creates the study enqueues
``n_trials`` empty trials, and a worker only ever claims one of those (the storage's atomic
WAITING -> RUNNING transition, through the one module that touches Optuna's private storage
API, :mod:`bpnet.sweep.storage`), never creates one. A running trial writes a heartbeat (a user
attribute, every ``HEARTBEAT`` seconds); a trial whose heartbeat is older than ``GRACE`` seconds
(its worker was killed) is marked FAIL by the next worker that looks, and counts in the budget.

Optuna (``pip install 'bpnet[sweep]'``) is imported inside the functions that need it.
"""

from __future__ import annotations

import time
from pathlib import Path

from bpnet.base.extras import ExtraMissing, install_hint, require
from bpnet.errors import BpnetError, InputError
from bpnet.sweep.storage import claim_waiting, fail, storage_of, trial_id

HEARTBEAT, GRACE = 1.0, 10.0  # seconds


class OptunaMissing(ExtraMissing):
    """Optuna is not installed (exit status 1)."""


def _optuna():
    optuna = require("optuna", "sweep", "sweeps", "Optuna", OptunaMissing)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_storage(url):
    """An Optuna storage: a URL with ``://`` (``postgresql://``, ``mysql://``, ``sqlite:///``:
    relational; ``redis://``: journal on Redis), else the path of a journal file."""
    optuna = _optuna()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

    url = str(url)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return JournalStorage(JournalRedisBackend(url))
    if "://" in url:
        for attempt in range(5):  # processes starting together race to create the tables
            try:
                return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
            except ImportError as e:
                raise OptunaMissing(
                    f"storage {url.split('://')[0]}: {e}; {install_hint('postgres')}"
                ) from None
            except Exception as e:  # sqlalchemy's errors: a table another process just made
                if attempt == 4 or "already exists" not in str(e) and "duplicate" not in str(e):
                    raise BpnetError(f"storage {url.split('@')[-1]}: {e}".splitlines()[0]) from None
                time.sleep(0.5)
    Path(url).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(url))


def _sampler(sweep, number):
    """A fresh sampler for trial ``number``, seeded by (seed, number): the same trial draws the
    same values whichever process or machine runs it."""
    optuna = _optuna()
    seed = (sweep.seed * 1_000_003 + number) % 2**32
    if sweep.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if sweep.sampler == "grid":
        return optuna.samplers.GridSampler({d.key: d.grid() for d in sweep.space}, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(sweep):
    optuna = _optuna()
    if sweep.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def open_study(sweep, storage, study_name, wait=60.0):
    """Create the study with its budget of ``n_trials`` enqueued trials, or load it (waiting
    for its creator to finish enqueueing); a study made for another budget is an InputError."""
    optuna = _optuna()
    storage = open_storage(storage) if isinstance(storage, (str, Path)) else storage
    try:
        study = optuna.create_study(
            storage=storage, study_name=study_name, pruner=_pruner(sweep), direction=sweep.direction
        )
        for _ in range(sweep.n_trials):
            study.enqueue_trial({}, skip_if_exists=False)
        study.set_user_attr("n_trials", sweep.n_trials)
        study.set_user_attr("metric", sweep.metric)
        return study
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=study_name, storage=storage, pruner=_pruner(sweep))
    deadline = time.monotonic() + wait
    while "n_trials" not in study.user_attrs:
        if time.monotonic() > deadline:
            raise BpnetError(
                f"study {study_name}: its trials were never enqueued (the process "
                f"that created it died?); delete the study or choose another --study"
            )
        time.sleep(0.2)
    made = study.user_attrs["n_trials"], study.user_attrs.get("metric")
    if made != (sweep.n_trials, sweep.metric):
        raise InputError(
            f"study {study_name} was created for {made[0]} trials on {made[1]}; "
            f"the sweep asks for {sweep.n_trials} on {sweep.metric} "
            f"(use another --study)"
        )
    return study


def fail_stale_trials(study, grace=GRACE):
    """Mark FAIL each running trial whose heartbeat is older than ``grace`` seconds."""
    optuna = _optuna()
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        beat = t.user_attrs.get("heartbeat") or (
            t.datetime_start.timestamp() if t.datetime_start else now
        )
        if now - beat > grace:
            fail(storage_of(study), trial_id(t), "worker lost (no heartbeat)")


def claim_trial(study):
    """A trial of the budget moved from WAITING to RUNNING for this process, or None when the
    budget is spent: the storage's state transition is atomic, so no trial runs twice."""
    _optuna()
    return claim_waiting(study)
