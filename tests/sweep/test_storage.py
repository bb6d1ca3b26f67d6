"""bpnet.sweep.storage, the one module using Optuna's private storage API: the installed Optuna
has what it calls (checked with inspect, so an upgrade fails here with one clear line), the
pin in pyproject.toml keeps Optuna below its next major release, nothing else in bpnet names a
private Optuna attribute, and claiming, failing and attributes behave as sweeps rely on, on a
journal file, SQLite and in memory."""

from __future__ import annotations

import re

import pytest
import tomllib
from mnist import REPO

optuna = pytest.importorskip("optuna", reason="pip install 'bpnet[sweep]'")
from bpnet.sweep import storage as adapter  # noqa: E402

WAITING, RUNNING = optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING


def test_the_installed_optuna_has_what_the_adapter_calls():
    """Every storage method the adapter calls exists on every storage class a study may hold,
    taking the parameters the adapter passes, and optuna.Trial is made from (study, trial_id)."""
    problems = adapter.broken_assumptions()
    assert problems == [], (
        f"Optuna {optuna.__version__} changed the private API "
        f"bpnet/sweep/storage.py relies on:\n" + "\n".join(problems)
    )
    names = {c.__name__ for c in adapter.storage_classes()}
    assert {"BaseStorage", "RDBStorage", "JournalStorage", "InMemoryStorage"} <= names
    # what get_storage really wraps a relational storage in (the _CachedStorage of today)
    wrapped = optuna.storages.get_storage(optuna.storages.RDBStorage("sqlite:///:memory:"))
    assert adapter.broken_assumptions([type(wrapped)]) == []
    # the private attributes, on real objects
    study = optuna.create_study()
    study.enqueue_trial({})
    assert isinstance(adapter.storage_of(study), optuna.storages.BaseStorage)
    frozen = study.get_trials()[0]
    assert adapter.trial_id(frozen) == frozen._trial_id
    assert adapter.trial_id(adapter.live_trial(study, frozen._trial_id)) == frozen._trial_id


def test_a_changed_signature_is_reported_in_one_line(monkeypatch):
    class Renamed:
        def set_trial_state_values(self, trial, state, values=None) -> bool: ...
        def set_trial_user_attr(self, trial_id, key, value, *, overwrite) -> None: ...

    class Returns:
        def set_trial_state_values(self, trial_id, state, values=None) -> None: ...

    assert adapter.broken_assumptions([Renamed, Returns]) == [
        "Renamed.set_trial_state_values(self, trial, state, values=None) -> 'bool' no longer "
        "takes (trial_id, state, values) as bpnet calls it",
        "Renamed.set_trial_user_attr(self, trial_id, key, value, *, overwrite) -> 'None' no "
        "longer takes (trial_id, key, value) as bpnet calls it",
        "Returns.set_trial_state_values now returns None, not bool",
        "Returns.set_trial_user_attr is gone",
    ]
    # at run time: the first use of a storage class that changed stops with that line
    study = optuna.create_study()
    study.enqueue_trial({})
    cls = type(adapter.storage_of(study))
    monkeypatch.setattr(adapter, "_checked", set())
    monkeypatch.setattr(cls, "set_trial_state_values", Renamed.set_trial_state_values)
    with pytest.raises(
        adapter.OptunaChanged,
        match=re.escape(
            f"Optuna {optuna.__version__} is not the Optuna bpnet's sweeps were written for: "
            f"InMemoryStorage.set_trial_state_values"
        )
        + r".*; pip install 'optuna>=4\.0,<6'$",
    ):
        adapter.claim_waiting(study)
    monkeypatch.delattr(study, "_storage")
    with pytest.raises(adapter.OptunaChanged, match="no longer keeps its storage as _storage"):
        adapter.claim_waiting(study)


def test_optuna_is_pinned_below_its_next_major_release():
    """pyproject's sweep and postgres extras pin Optuna as the adapter says (its message names
    the pin), and the installed Optuna is within it."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for extra in ("sweep", "postgres"):
        pins = [d for d in extras[extra] if re.match(r"optuna\b", d)]
        assert pins == [adapter.PIN], (extra, pins)
    low, high = re.fullmatch(r"optuna>=(\d+)\.(\d+),<(\d+)", adapter.PIN).group(1, 3)
    assert int(low) <= int(optuna.__version__.split(".")[0]) < int(high)


def test_no_other_module_names_a_private_optuna_attribute():
    private = re.compile(
        r"\._storage\b|\._trial_id\b|\.set_trial_state_values\b|"
        r"\.set_trial_user_attr\b|optuna\.Trial\(|optuna\.storages\._"
    )
    found = [
        f"{p.relative_to(REPO)}:{n}: {line.strip()}"
        for p in sorted(REPO.glob("**/*.py"))
        if not {".venv", "tests", "build"} & set(p.relative_to(REPO).parts)
        and p != REPO / "sweep" / "storage.py"
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert found == []


@pytest.fixture(params=["journal", "sqlite", "memory"])
def two_handles(request, tmp_path):
    """Two Study objects on one study, each through a storage of its own where the backend
    allows it (as two processes would have), with three enqueued trials."""
    from bpnet.sweep.study import open_storage

    if request.param == "memory":
        shared = optuna.storages.InMemoryStorage()
        urls = [shared, shared]
    else:
        url = (
            str(tmp_path / "j.log")
            if request.param == "journal"
            else f"sqlite:///{tmp_path / 'db.sqlite'}"
        )
        urls = [open_storage(url), open_storage(url)]
    first = optuna.create_study(storage=urls[0], study_name="s")
    for _ in range(3):
        first.enqueue_trial({})
    return first, optuna.load_study(storage=urls[1], study_name="s")


def test_each_waiting_trial_is_claimed_once(two_handles):
    a, b = two_handles
    claimed = [adapter.claim_waiting(s) for s in (a, b, a, b)]
    assert claimed[3] is None
    numbers = [t.number for t in claimed[:3]]
    assert sorted(numbers) == [0, 1, 2]
    assert [t.state for t in a.get_trials()] == [RUNNING] * 3
    # the transition answers False to a second claim of a trial no longer waiting
    tid = adapter.trial_id(claimed[0])
    assert adapter.storage_of(b).set_trial_state_values(tid, RUNNING) is False


def test_fail_writes_the_reason_once_and_user_attrs_reach_the_trial(two_handles):
    a, b = two_handles
    t = adapter.claim_waiting(a)
    tid = adapter.trial_id(t)
    adapter.set_user_attr(adapter.storage_of(b), tid, "heartbeat", 12.5)
    assert adapter.fail(adapter.storage_of(b), tid, "worker lost (no heartbeat)") is True
    assert adapter.fail(adapter.storage_of(a), tid, "interrupted") is False  # finished already
    done = b.get_trials()[t.number]
    assert done.state.name == "FAIL"
    assert done.user_attrs == {"heartbeat": 12.5, "error": "worker lost (no heartbeat)"}
    # a claimed trial is a live optuna.Trial for sampling and reporting, told like any other
    t = adapter.claim_waiting(b)
    live = adapter.live_trial(b, adapter.trial_id(t))
    assert live.number == t.number and 0 <= live.suggest_float("x", 0, 1) <= 1
    b.tell(t.number, 0.5)
    assert a.get_trials()[t.number].value == 0.5
