"""The one place bpnet reaches into Optuna's private storage API.

A sweep's budget is exact: its trials are the study's trials numbered below ``n_trials``, and a
worker only ever takes a WAITING one of those. Optuna's public ``study.ask()`` takes a waiting
trial when there is one but creates a new trial when there is none, which would overrun the
budget; so a worker claims a trial itself, with the storage's atomic WAITING -> RUNNING
transition (``set_trial_state_values`` answers False to all but one of the processes asking), as
``ask`` does inside. Having claimed a trial outside ``ask``, bpnet also reaches the storage by
the trial's id: user attributes (heartbeat, error, seconds), FAIL for a lost trial, and RUNNING
-> WAITING for an interrupted one (its parameters stay, so whoever claims it next runs the same
trial again; every storage allows that move, and the process that made it claims nothing more).

Every private name bpnet uses is here and only here: ``Study._storage``,
``FrozenTrial._trial_id``, the storage methods in ``SIGNATURES`` (Optuna documents storages'
methods as not meant for users) and ``optuna.Trial(study, trial_id)``. ``broken_assumptions``
checks them against the installed Optuna with ``inspect``; tests/sweep/test_storage.py runs it,
and so does the first use of each storage class here, so an Optuna that changed them stops a
sweep at once with one line naming what changed, never deep inside one. For as long as this
module exists, Optuna is pinned below its next major release (``PIN``, as in pyproject.toml).
"""

from __future__ import annotations

import inspect

from bpnet.errors import BpnetError

PIN = "optuna>=4.0,<6"
# storage method -> (the parameters bpnet passes, in order; what it relies on the result being)
SIGNATURES = {
    "set_trial_state_values": (("trial_id", "state", "values"), "bool"),
    "set_trial_user_attr": (("trial_id", "key", "value"), "None"),
}
_checked = set()  # storage classes whose methods were found as SIGNATURES says


class OptunaChanged(BpnetError):
    """The installed Optuna lacks what this module relies on (exit status 1)."""


def _changed(problem):
    import optuna

    return OptunaChanged(
        f"Optuna {optuna.__version__} is not the Optuna bpnet's sweeps were "
        f"written for: {problem}; pip install '{PIN}'"
    )


def _signature_problem(cls, name, params, returns):
    """What is wrong with ``cls.name`` for a call with ``params``, or None."""
    method = getattr(cls, name, None)
    if not callable(method):
        return f"{cls.__name__}.{name} is gone"
    try:
        sig = inspect.signature(method)
    except (TypeError, ValueError):
        return f"{cls.__name__}.{name} has no readable signature"
    found = [p for p in sig.parameters.values() if p.name != "self"]
    positional = [p.name for p in found if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [
        p.name
        for p in found[len(params) :]
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if positional[: len(params)] != list(params) or required:
        return f"{cls.__name__}.{name}{sig} no longer takes ({', '.join(params)}) as bpnet calls it"
    annotation = sig.return_annotation  # a string where Optuna postpones annotations
    if annotation is not sig.empty:
        annotation = "None" if annotation is None else getattr(annotation, "__name__", annotation)
        if annotation != returns:
            return f"{cls.__name__}.{name} now returns {annotation}, not {returns}"
    return None


def storage_classes():
    """The storage classes a study of bpnet's may hold: Optuna's public ones and the cache
    ``get_storage`` wraps a relational storage in."""
    import optuna

    s = optuna.storages
    classes = [s.BaseStorage, s.InMemoryStorage, s.RDBStorage, s.JournalStorage]
    cached = getattr(getattr(s, "_cached_storage", None), "_CachedStorage", None)
    return classes + ([cached] if cached is not None else [])


def broken_assumptions(classes=None):
    """One line for each way the installed Optuna differs from what this module calls: a
    storage method of ``SIGNATURES`` gone or taking other parameters (on each of ``classes``,
    default ``storage_classes()``), or ``optuna.Trial`` no longer made from (study, trial_id).
    Empty when all holds."""
    import optuna

    problems = []
    for cls in storage_classes() if classes is None else classes:
        for name, (params, returns) in SIGNATURES.items():
            problem = _signature_problem(cls, name, params, returns)
            if problem:
                problems.append(problem)
    problem = _signature_problem(optuna.Trial, "__init__", ("study", "trial_id"), "None")
    if problem:
        problems.append(problem)
    return problems


def _verified(storage):
    """``storage``, once its class has been found to have the methods of SIGNATURES."""
    cls = type(storage)
    if cls not in _checked:
        problems = broken_assumptions([cls])
        if problems:
            raise _changed(problems[0])
        _checked.add(cls)
    return storage


def storage_of(study):
    """The storage behind ``study`` (``Study._storage``)."""
    storage = getattr(study, "_storage", None)
    if storage is None:
        raise _changed("a Study no longer keeps its storage as _storage")
    return _verified(storage)


def trial_id(trial):
    """The storage's id of a trial, frozen or live (``_trial_id``)."""
    tid = getattr(trial, "_trial_id", None)
    if not isinstance(tid, int):
        raise _changed(f"a {type(trial).__name__} no longer keeps its storage id as _trial_id")
    return tid


def claim_waiting(study, budget=None):
    """The WAITING trial of ``study`` with the lowest number (below ``budget``, if given) moved
    to RUNNING for this process (its FrozenTrial, as it was before the move), or None when none
    is left; each trial goes to one caller only, whichever processes and machines ask at once."""
    import optuna

    storage = storage_of(study)
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    for t in sorted(waiting, key=lambda t: t.number):
        if budget is not None and t.number >= budget:
            break
        try:
            if storage.set_trial_state_values(trial_id(t), optuna.trial.TrialState.RUNNING):
                return t
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def set_user_attr(storage, tid, key, value):
    """Set the user attribute ``key`` of the trial ``tid`` in ``storage`` (a storage, not a
    study: the heartbeat thread writes through its own)."""
    _verified(storage).set_trial_user_attr(tid, key, value)


def fail(storage, tid, reason):
    """Mark the trial ``tid`` FAIL with ``reason`` as its user attribute ``error``; False
    when it had finished already (then its state stays as it was)."""
    import optuna

    try:
        _verified(storage).set_trial_user_attr(tid, "error", reason)
        storage.set_trial_state_values(tid, optuna.trial.TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    return True


def release(storage, tid):
    """Move the running trial ``tid`` back to WAITING, its parameters and attributes kept;
    False when it had finished already (then it stays as it was)."""
    import optuna

    try:
        return bool(_verified(storage).set_trial_state_values(tid, optuna.trial.TrialState.WAITING))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def live_trial(study, tid):
    """The ``optuna.Trial`` of the claimed trial ``tid``: what a search space samples from,
    reports to and asks whether to prune."""
    import optuna

    return optuna.Trial(study, tid)
