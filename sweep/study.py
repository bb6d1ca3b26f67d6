"""Hyperparameter sweeps on Optuna: a sweep file, worker processes, a shared study, results.

A sweep file (YAML) names a base config, fixed overrides and a search space over dotted config
keys; every trial is that config with the sampled values, validated by ``load_config`` and trained
in memory (no run directory) on the validation split. Trials run in worker processes (one BLAS
thread each) that share one Optuna study through its storage: a journal file by default, or any
Optuna storage URL, so several commands on several machines share one study.

A study belongs to one sweep: its maker records what defines the sweep (base config with the
fixed settings, space, sampler, seed, budget, metric, pruner) as the study's user attribute
``sweep``, and a sweep file that differs is refused by name before any trial runs.

The trial budget is exact across processes and machines, and costs nothing up front: the budget
is the study's trials numbered below ``n_trials``; a worker claims the waiting one with the
lowest number (the storage's atomic WAITING -> RUNNING transition, through the one module that
touches Optuna's private storage API, :mod:`bpnet.sweep.storage`), and makes the next trial
only when none is waiting. A running trial writes a heartbeat (a user attribute, every
``HEARTBEAT`` seconds); a trial whose heartbeat is older than ``GRACE`` seconds (its worker was
killed) is marked FAIL by the next worker that looks, and counts in the budget. An interrupted
trial (Ctrl-C, SIGTERM, SIGHUP) goes back to WAITING with its parameters and runs again.

Optuna (``pip install 'bpnet[sweep]'``) is imported inside the functions that need it.
"""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

from bpnet.base.extras import ExtraMissing, require
from bpnet.errors import BpnetError, InputError
from bpnet.sweep.interrupts import deferred
from bpnet.sweep.record import differences
from bpnet.sweep.storage import (
    claim_waiting,
    fail,
    release,
    set_user_attr,
    storage_of,
    trial_id,
)
from bpnet.sweep.urls import check_storage, engine_kwargs, redis_url, shown

HEARTBEAT, GRACE = 1.0, 10.0  # seconds
BARE_WAIT = 3.0  # seconds a study without a record is given for its maker to write one


class OptunaMissing(ExtraMissing):
    """Optuna is not installed (exit status 1)."""


def _optuna():
    optuna = require("optuna", "sweep", "sweeps", "Optuna", OptunaMissing)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_storage(url):
    """An Optuna storage: a URL with ``://`` (``postgresql://``, ``mysql://``, ``sqlite:///``:
    relational; ``redis://``: journal on Redis), else the path of a journal file. What cannot
    work is refused before connecting (:mod:`bpnet.sweep.urls`); a server that does not answer
    within ``CONNECT_TIMEOUT`` seconds is a one-line BpnetError."""
    optuna = _optuna()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

    url = str(url)
    kind = check_storage(url)
    if kind == "journal":
        return JournalStorage(_journal_file(JournalFileBackend)(url))
    for attempt in range(5):  # processes starting together race to create the tables
        try:
            if kind == "redis":
                with warnings.catch_warnings():  # Optuna calls its Redis journal experimental
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return JournalStorage(JournalRedisBackend(redis_url(url)))
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(url))
        except Exception as e:  # the drivers' errors: unreachable, refused, a table just made
            if attempt == 4 or "already exists" not in str(e) and "duplicate" not in str(e):
                reason = " ".join(str(e).split("\n")[0].split()) or type(e).__name__
                reason = re.sub(r"^\([\w.]+\) ", "", reason)  # SQLAlchemy's (driver.Error)
                raise BpnetError(f"storage {shown(url)}: {reason}") from None
            time.sleep(0.5)


_JOURNAL_FILE = []


def _journal_file(base):
    """Optuna's journal file backend with each append made with interrupts ``deferred``: its
    lock file is not safe against an interrupt (one inside taking or giving back the lock
    turns into an OSError, or leaves the lock taken for other processes to wait on)."""
    if not _JOURNAL_FILE:

        class JournalFile(base):
            def append_logs(self, logs):
                with deferred():
                    super().append_logs(logs)

        _JOURNAL_FILE.append(JournalFile)
    return _JOURNAL_FILE[0]


def storage_kind(url):
    """:func:`bpnet.sweep.urls.check_storage`, once Optuna is known to be there: the kind of
    storage ``url`` names, refused up front if it cannot work."""
    _optuna()
    return check_storage(url)


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


def open_study(sweep, storage, study_name, bare_wait=BARE_WAIT):
    """The study of ``sweep``: made, with the record of what defines the sweep (its
    ``definition()``, as the user attribute ``sweep``), or joined. A study that belongs to
    another sweep is an InputError naming what differs; one written before studies kept that
    record is checked by what it does keep (budget, metric, its trials' search space). A study
    without any record (its maker stopped before writing it) is waited for ``bare_wait``
    seconds, then taken over if no trial of it ever ran. Nothing is enqueued: workers make the
    budget's trials as they claim them (:func:`claim_trial`)."""
    optuna = _optuna()
    storage = open_storage(storage) if isinstance(storage, (str, Path)) else storage
    mine = sweep.definition()
    study = find_study(sweep, storage, study_name)  # joining writes nothing before the check
    if study is None:
        try:
            with deferred():  # a Ctrl-C here lands after the record is written
                study = optuna.create_study(
                    storage=storage,
                    study_name=study_name,
                    pruner=_pruner(sweep),
                    direction=sweep.direction,
                )
                _write_record(study, sweep, mine)
            return study
        except optuna.exceptions.DuplicatedStudyError:  # another process made it meanwhile
            study = find_study(sweep, storage, study_name)
    attrs = _wait_for_record(study, bare_wait)
    if "sweep" in attrs:
        problems = differences(mine, attrs["sweep"])
    elif "n_trials" in attrs:
        problems = _legacy_differences(study, sweep, attrs)
    else:
        problems = _take_over(study, sweep, mine)
    if problems:
        shown_problems = "; ".join(problems[:3]) + (
            f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        )
        raise InputError(
            f"study {study_name} belongs to another sweep: {shown_problems} "
            f"(use another --study, or --out for a journal of its own)"
        )
    return study


def find_study(sweep, storage, study_name):
    """The study ``study_name`` as it stands (no record checked, nothing written), or None."""
    optuna = _optuna()
    storage = open_storage(storage) if isinstance(storage, (str, Path)) else storage
    try:
        return optuna.load_study(study_name=study_name, storage=storage, pruner=_pruner(sweep))
    except KeyError:
        return None


def _write_record(study, sweep, mine):
    """The record first, then what versions before it read (budget and metric)."""
    study.set_user_attr("sweep", mine)
    study.set_user_attr("n_trials", sweep.n_trials)
    study.set_user_attr("metric", sweep.metric)


def _wait_for_record(study, wait):
    deadline = time.monotonic() + wait
    attrs = study.user_attrs
    while not ({"sweep", "n_trials"} & set(attrs)) and time.monotonic() < deadline:
        time.sleep(0.1)
        attrs = study.user_attrs
    return attrs


def _take_over(study, sweep, mine):
    """Write the record into a study that has none, if none of its trials ever ran (its maker
    stopped before writing it, or an older version stopped while enqueueing)."""
    optuna = _optuna()
    ran = [
        t for t in study.get_trials(deepcopy=False) if t.state != optuna.trial.TrialState.WAITING
    ]
    if ran:
        return [f"it has {len(ran)} trial(s) and no record of the sweep they ran for"]
    _write_record(study, sweep, mine)
    return []


def _legacy_differences(study, sweep, attrs):
    """A study of bpnet 0.1.0: its budget and metric, and the search space its trials drew
    from (each parameter's distribution), against ``sweep``'s."""
    optuna = _optuna()
    made = attrs["n_trials"], attrs.get("metric")
    if made != (sweep.n_trials, sweep.metric):
        return [
            f"it was made for {made[0]} trials on {made[1]}, "
            f"the sweep asks for {sweep.n_trials} on {sweep.metric}"
        ]
    wanted = {d.key: d.distribution() for d in sweep.space}
    problems = []
    for t in study.get_trials(deepcopy=False):
        if t.state == optuna.trial.TrialState.COMPLETE:
            problems += [
                f"space.{k}: searched here, not in the study" for k in wanted.keys() - set(t.params)
            ]
        for name, dist in t.distributions.items():
            if name not in wanted:
                problems.append(f"space.{name}: searched in the study, not here")
            elif dist != wanted[name]:
                problems.append(f"space.{name}: {dist} in the study, {wanted[name]} here")
        if problems:
            return sorted(set(problems))
    return []


def fail_stale_trials(study, grace=GRACE):
    """Mark FAIL each running trial whose heartbeat (or claim, if later) is older than
    ``grace`` seconds: its worker was lost."""
    optuna = _optuna()
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        started = t.datetime_start.timestamp() if t.datetime_start else now
        beat = max(t.user_attrs.get("heartbeat") or 0.0, started)  # a rerun keeps its old beat
        if now - beat > grace:
            fail(storage_of(study), trial_id(t), "worker lost (no heartbeat)")


def claim_trial(study, budget=None):
    """A trial of the budget (numbers below ``budget``) moved from WAITING to RUNNING for this
    process, made first when none is waiting and fewer than ``budget`` exist; None when the
    budget is spent. The storage's state transition is atomic, so no trial runs twice; two
    processes making the last trial at once leave one numbered past the budget, which nothing
    claims or reports. Without ``budget``: a waiting trial, or None. A caller that must not
    lose a claimed trial to a Ctrl-C runs this and keeps its answer within
    :func:`bpnet.sweep.interrupts.deferred`."""
    optuna = _optuna()
    while True:
        claimed = claim_waiting(study, budget)
        if claimed is not None or budget is None:
            return claimed
        if len(study.get_trials(deepcopy=False)) >= budget:
            return None
        # a plain waiting trial (enqueue_trial's would carry fixed parameters, which the grid
        # sampler takes for a trial whose values are all given)
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING))


def interrupt(storage, frozen):
    """Put the claimed trial ``frozen`` back: WAITING again with its parameters, counted in its
    user attribute ``interrupted``; whoever claims it next runs it again. False when it had
    finished already (then it keeps its state and gains no count)."""
    tid = trial_id(frozen)
    if not release(storage, tid):
        return False
    try:
        set_user_attr(storage, tid, "interrupted", frozen.user_attrs.get("interrupted", 0) + 1)
    except _optuna().exceptions.UpdateFinishedTrialError:  # claimed again and finished since
        pass
    return True
