"""Hyperparameter sweeps on Optuna: a sweep file, worker processes, a shared study, results.

A sweep file (YAML) names a base config, fixed overrides and a search space over dotted config
keys; every trial is that config with the sampled values, validated by ``load_config`` and trained
in memory (no run directory) on the validation split. Trials run in worker processes (one BLAS
thread each) that share one Optuna study through its storage: a journal file by default, or any
Optuna storage URL, so several commands on several machines share one study.

The trial budget is exact across processes and machines: whoever creates the study enqueues
``n_trials`` empty trials, and a worker only ever claims one of those (the storage's atomic
WAITING -> RUNNING transition), never creates one. A running trial writes a heartbeat (a user
attribute, every ``HEARTBEAT`` seconds); a trial whose heartbeat is older than ``GRACE`` seconds
(its worker was killed) is marked FAIL by the next worker that looks, and counts in the budget.

Optuna (``pip install 'bpnet[sweep]'``) is imported inside the functions that need it.
"""
from __future__ import annotations

import contextlib
import csv
import difflib
import io
import math
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .config import (FIELDS, ConfigError, Field, _did_you_mean, _is_name, _read, _show, choice,
                     dump_config, list_configs, load_config, nullable, number,
                     resolve_config_path, text)
from .errors import BpnetError, InputError
from .files import atomic_write
from .threads import use as use_threads

INSTALL_HINT = "pip install 'bpnet[sweep]'"
HEARTBEAT, GRACE = 1.0, 10.0  # seconds
METRICS = ("val_acc", "val_loss")
SAMPLERS = ("random", "grid", "tpe")
PRUNERS = ("none", "median")
DISTRIBUTIONS = ("log_uniform", "uniform", "int", "choice")


class SweepError(ConfigError):
    """A sweep file that does not fit its schema (exit status 2)."""


class OptunaMissing(BpnetError):
    """Optuna is not installed (exit status 1)."""


def _optuna():
    try:
        import optuna
    except ImportError:
        raise OptunaMissing(f"sweeps need Optuna, which is not installed: {INSTALL_HINT}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


SCHEMA = {
    "name": Field(nullable(text("a name (no slashes)", _is_name)), None,
                  "Sweep name: the default study name and `sweeps/<name>`; null: the file stem."),
    "config": Field(text("a config path or shipped name"), "mnist.yaml",
                    "Base config: a path (relative to the sweep file) or a shipped config's name."),
    "set": Field(None, {}, "Fixed overrides: a mapping of dotted config keys to values."),
    "space": Field(None, {}, "Search space: dotted config key -> {log_uniform|uniform|int: "
                             "[low, high]} or {choice: [values]}."),
    "sampler": Field(choice(*SAMPLERS), "tpe", "random (the book's), grid or tpe."),
    "seed": Field(number(0, integer=True), 0, "Seed of the sampler (trial k draws from seed, k)."),
    "n_trials": Field(number(0, low_open=True, integer=True), 20, "Trials in the whole study."),
    "metric": Field(choice(*METRICS), "val_acc",
                    "Last evaluation's validation accuracy (maximised) or loss (minimised)."),
    "pruner": Field(choice(*PRUNERS), "none",
                    "median: stop a trial whose epoch's metric is worse than the median of "
                    "earlier trials at that epoch."),
}


@dataclass
class Dimension:
    """One searched config key: ``kind`` in DISTRIBUTIONS and its bounds or choices."""

    key: str
    kind: str
    values: list

    def suggest(self, trial):
        if self.kind == "choice":
            labels = [_label(v) for v in self.values]
            return self.values[labels.index(trial.suggest_categorical(self.key, labels))]
        low, high = self.values
        if self.kind == "int":
            return trial.suggest_int(self.key, low, high)
        return trial.suggest_float(self.key, low, high, log=self.kind == "log_uniform")

    def grid(self):
        if self.kind == "choice":
            return [_label(v) for v in self.values]
        return list(range(self.values[0], self.values[1] + 1))


def _label(value):
    """Optuna's categorical choices are scalars: lists and mappings go as their YAML text."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else _show(value)


@dataclass
class Sweep:
    path: Path
    name: str
    config: str
    set: dict
    space: list
    sampler: str = "tpe"
    seed: int = 0
    n_trials: int = 20
    metric: str = "val_acc"
    pruner: str = "none"
    base: dict = field(default_factory=dict)

    @property
    def direction(self):
        return "maximize" if self.metric == "val_acc" else "minimize"

    def trial_config(self, params, cli=None, where="space", number=None):
        """The resolved config of one trial: base, ``set``, then ``params`` (dotted key ->
        value); a value the config refuses is a SweepError naming the sweep file and key.
        Trial ``number`` trains with ``train.seed`` = its number (its own initial weights and
        batch order, as each trial of the book's loop), unless ``set`` or the space gives one."""
        values = {**self.set, **params}
        if number is not None and "train.seed" not in values:
            values["train.seed"] = number
        overrides = [f"{k}={_flow(v)}" for k, v in values.items()]
        try:
            cfg = load_config(self.config, overrides, cli)
        except ConfigError as e:
            msg = str(e)
            for k in overrides:
                if msg.startswith(f"--set {k}: "):
                    key = k.partition("=")[0]
                    part = where if key in params else "set"
                    rest = msg[len(f"--set {k}: "):]
                    rest = rest[len(key) + 2:] if rest.startswith(f"{key}: ") else rest
                    raise SweepError(f"{self.path}: {part}.{key}: {rest}") from None
            raise SweepError(f"{self.path}: {msg}") from None
        if cfg["data"]["validation"] == 0:
            raise SweepError(f"{self.path}: data.validation: a sweep selects on validation "
                             f"images, got 0 in its config (never on the test set): set "
                             f"data.validation > 0")
        return cfg


def _flow(value):
    return yaml.safe_dump(value, default_flow_style=True, width=math.inf).strip().removesuffix(
        "\n...")


def list_sweeps():
    """``[(name, description)]`` of the shipped sweep files (first comment line)."""
    return list_configs("sweeps")


def resolve_sweep_path(path_or_name):
    """An existing file; else the shipped sweep of that name (with or without ``.yaml``)."""
    return resolve_config_path(path_or_name, "sweeps", "sweep")


def _pair(kind, v, spec_where):
    ok = isinstance(v, list) and len(v) == 2
    if kind == "int":
        ok = ok and all(isinstance(b, int) and not isinstance(b, bool) for b in v) and v[0] <= v[1]
        expected = "[low, high] integers with low <= high"
    else:
        v = [float(b) if isinstance(b, str) and _is_float(b) else b for b in v] if ok else v
        ok = ok and all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b)
                        for b in v) and v[0] < v[1] and (kind == "uniform" or v[0] > 0)
        expected = "[low, high] numbers with low < high" + (" and low > 0" if kind != "uniform"
                                                              else "")
    if not ok:
        raise SweepError(f"{spec_where}: expected {expected}, got {_show(v)}")
    return list(v)


def _is_float(s):
    try:
        float(s)
    except ValueError:
        return False
    return True


def load_sweep(path_or_name, cli=None):
    """The checked Sweep of a file (or shipped name). ``cli``: typed config values applied to
    every trial (``{"data_dir": ...}``). Each bound and choice of the space is tried on the
    config, so a value the config would refuse is refused here, naming the sweep key."""
    path = resolve_sweep_path(path_or_name)
    doc = _read(path, SCHEMA)
    values = {}
    for key, value in doc.items():
        spec = SCHEMA.get(key) if isinstance(key, str) else None
        if spec is None:
            near = difflib.get_close_matches(str(key), SCHEMA, n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]}?)" if near else f" (expected {', '.join(SCHEMA)})"
            raise SweepError(f"{path}: {key}: unknown key{hint}")
        if spec.kind is not None:
            try:
                value = spec.kind.convert(value)
            except (ValueError, TypeError):
                raise SweepError(f"{path}: {key}: expected {spec.kind.expected}, "
                                 f"got {_show(value)}") from None
        elif not isinstance(value, dict):
            raise SweepError(f"{path}: {key}: expected a mapping of dotted config keys, "
                             f"got {_show(value)}")
        values[key] = value
    config = values.get("config", SCHEMA["config"].default)
    if not Path(config).is_absolute() and (path.parent / config).is_file():
        config = str(path.parent / config)
    try:
        resolve_config_path(config)
    except ConfigError as e:
        raise SweepError(f"{path}: config: {e}") from None
    sets, space = values.get("set", {}), []
    for key in list(sets) + list(values.get("space", {})):
        if key not in FIELDS:
            raise SweepError(f"{path}: {'set' if key in sets else 'space'}.{key}: unknown config "
                             f"key{_did_you_mean(str(key))}")
    for key, spec in values.get("space", {}).items():
        where = f"{path}: space.{key}"
        if not (isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in DISTRIBUTIONS):
            raise SweepError(f"{where}: expected one of {{{': ..., '.join(DISTRIBUTIONS)}: ...}}, "
                             f"got {_show(spec)}")
        kind, v = next(iter(spec.items()))
        if kind == "choice":
            if not (isinstance(v, list) and v):
                raise SweepError(f"{where}: expected choice: a non-empty list, got {_show(v)}")
        else:
            v = _pair(kind, v, f"{where}.{kind}")
        space.append(Dimension(key, kind, v))
    sweep = Sweep(path, values.get("name") or path.stem, config, dict(sets), space,
                  **{k: values[k] for k in ("sampler", "seed", "n_trials", "metric", "pruner")
                     if k in values})
    sweep.base = sweep.trial_config({}, cli)
    for dim in space:  # every bound and choice must make a valid config
        for v in dim.values:
            sweep.trial_config({dim.key: v}, cli)
    if sweep.sampler == "grid":
        bad = [d.key for d in space if d.kind not in ("choice", "int")]
        if bad:
            raise SweepError(f"{path}: space.{bad[0]}: the grid sampler needs choice or int "
                             f"dimensions, got {next(d.kind for d in space if d.key == bad[0])}")
    return sweep


# -- the study ------------------------------------------------------------------------------
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
                raise OptunaMissing(f"storage {url.split('://')[0]}: {e}; "
                                    f"pip install 'bpnet[postgres]'") from None
            except Exception as e:  # sqlalchemy's errors: a table another process just made
                if attempt == 4 or "already exists" not in str(e) and "duplicate" not in str(e):
                    raise BpnetError(f"storage {url.split('@')[-1]}: {e}".splitlines()[0]) \
                        from None
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
        study = optuna.create_study(storage=storage, study_name=study_name, pruner=_pruner(sweep),
                                    direction=sweep.direction)
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
            raise BpnetError(f"study {study_name}: its trials were never enqueued (the process "
                             f"that created it died?); delete the study or choose another --study")
        time.sleep(0.2)
    made = study.user_attrs["n_trials"], study.user_attrs.get("metric")
    if made != (sweep.n_trials, sweep.metric):
        raise InputError(f"study {study_name} was created for {made[0]} trials on {made[1]}; "
                         f"the sweep asks for {sweep.n_trials} on {sweep.metric} "
                         f"(use another --study)")
    return study


def fail_stale_trials(study, grace=GRACE):
    """Mark FAIL each running trial whose heartbeat is older than ``grace`` seconds."""
    optuna = _optuna()
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        beat = t.user_attrs.get("heartbeat") or (t.datetime_start.timestamp()
                                                 if t.datetime_start else now)
        if now - beat > grace:
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                study._storage.set_trial_user_attr(t._trial_id, "error",
                                                   "worker lost (no heartbeat)")
                study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)


def claim_trial(study):
    """A trial of the budget moved from WAITING to RUNNING for this process, or None when the
    budget is spent: the storage's state transition is atomic, so no trial runs twice."""
    optuna = _optuna()
    storage = study._storage
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.RUNNING):
                return t
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


class _Heartbeat(threading.Thread):
    def __init__(self, storage, trial_id):
        super().__init__(daemon=True, name="bpnet-heartbeat")
        self.storage, self.trial_id, self.done = storage, trial_id, threading.Event()

    def run(self):
        while True:
            with contextlib.suppress(Exception):
                self.storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())
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
    from .data import load_arrays
    from .train import Trainer, load_data
    cfg = sweep.trial_config({d.key: d.suggest(trial) for d in sweep.space}, cli,
                             number=trial.number)
    key = (cfg["dataset"], cfg["data_dir"])
    if key not in arrays:
        arrays[key] = load_arrays(*key)
    data = load_data(cfg, arrays[key])
    data.test = None  # selection happens on validation images only, and it saves the time
    trainer = Trainer(cfg, data, None,
                      _Reporter(trial, sweep.metric if sweep.pruner != "none" else None))
    try:
        row = trainer.run()
    finally:
        rows = trainer.state.rows
        trial.set_user_attr("curve", {k: [r[k] for r in rows] for k in
                                      ("epoch", "val_acc", "val_loss", "train_acc", "train_loss")})
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
            tid, started = frozen._trial_id, time.perf_counter()
            heartbeat = _Heartbeat(storage, tid)
            heartbeat.start()
            beat = heartbeat
            study.sampler = _sampler(sweep, frozen.number)
            trial = optuna.Trial(study, tid)
            value = run_trial(sweep, trial, arrays, cli)
        except optuna.TrialPruned:
            state, value = optuna.trial.TrialState.PRUNED, None
        except KeyboardInterrupt:
            if frozen is not None:
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                    storage.set_trial_user_attr(frozen._trial_id, "error", "interrupted")
                    storage.set_trial_state_values(frozen._trial_id,
                                                   optuna.trial.TrialState.FAIL)
            return
        except (BpnetError, FloatingPointError) as e:
            storage.set_trial_user_attr(tid, "error", str(e))
            state, value = optuna.trial.TrialState.FAIL, None
        else:
            state = optuna.trial.TrialState.COMPLETE
        finally:
            if beat is not None:
                beat.done.set()
                beat.join()
        storage.set_trial_user_attr(tid, "seconds", round(time.perf_counter() - started, 3))
        study.tell(frozen.number, value, state=state, skip_if_finished=True)


def _worker_main(*args):
    try:
        work(*args)
    except KeyboardInterrupt:
        pass


def default_jobs():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def run_sweep(sweep, storage_url, study_name, jobs=None, cli=None, monitor=None, poll=0.5,
              grace=GRACE):
    """Run the study with ``jobs`` worker processes (forked after the dataset is loaded, so
    they share it) until its budget is spent; ``monitor(study)`` is called every ``poll``
    seconds; a running trial without a heartbeat for ``grace`` seconds is marked FAIL.
    Returns the study. Ctrl-C stops the workers (their running trials are FAIL) and
    raises KeyboardInterrupt; the same call later continues the study."""
    from .data import load_arrays
    study = open_study(sweep, storage_url, study_name)
    arrays = {(sweep.base["dataset"], sweep.base["data_dir"]):
              load_arrays(sweep.base["dataset"], sweep.base["data_dir"])}
    ctx = multiprocessing.get_context("fork")
    args = (sweep, storage_url, study_name, cli, arrays, grace)
    procs = [ctx.Process(target=_worker_main, args=args,
                         daemon=False) for _ in range(jobs or default_jobs())]
    for p in procs:
        p.start()
    optuna = _optuna()
    try:
        while True:
            alive = any(p.is_alive() for p in procs)
            if not alive:
                fail_stale_trials(study, grace)
                running = study.get_trials(deepcopy=False,
                                           states=(optuna.trial.TrialState.RUNNING,))
            if monitor:
                monitor(study)
            if not alive and not running:
                break
            time.sleep(poll)
    finally:
        for p in procs:
            p.join()
    return study


# -- results --------------------------------------------------------------------------------
def trial_rows(study, sweep):
    """One dict per trial: number, state, value, each parameter, last metrics, seconds, error."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        curve = t.user_attrs.get("curve") or {}
        row = {"number": t.number, "state": t.state.name, "value": t.value}
        for d in sweep.space:
            row[d.key] = t.params.get(d.key)
        for k in ("val_acc", "val_loss", "train_acc", "train_loss"):
            row[k] = curve[k][-1] if curve.get(k) else None
        row["epochs"] = curve["epoch"][-1] if curve.get("epoch") else None
        row["seconds"] = t.user_attrs.get("seconds")
        row["error"] = t.user_attrs.get("error", "")
        rows.append(row)
    return rows


def best_trials(study, sweep, k=10):
    optuna = _optuna()
    done = [t for t in study.get_trials(deepcopy=False,
                                        states=(optuna.trial.TrialState.COMPLETE,))]
    return sorted(done, key=lambda t: -t.value if sweep.direction == "maximize" else t.value)[:k]


def write_trials_csv(study, sweep, path):
    rows = trial_rows(study, sweep)
    buf = io.StringIO()
    cols = list(rows[0]) if rows else ["number", "state", "value"]
    w = csv.DictWriter(buf, cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if v is None else v for k, v in r.items()})
    with atomic_write(path) as fh:
        fh.write(buf.getvalue().encode())


def best_config(study, sweep, cli=None):
    """The winner's complete config for ``bpnet train --config``: its parameters on the base
    config, ``data.subset`` dropped (null: all training images), named ``<sweep>-best``."""
    best = best_trials(study, sweep, 1)
    if not best:
        return None, None
    t = best[0]
    params = {}
    for d in sweep.space:
        v = t.params[d.key]
        params[d.key] = d.values[[_label(c) for c in d.values].index(v)] if d.kind == "choice" \
            else v
    cfg = sweep.trial_config(params, cli, number=t.number)
    cfg["data"]["subset"] = None
    cfg["name"], cfg["output"]["dir"] = f"{sweep.name}-best", None
    return t, cfg


def write_best_yaml(study, sweep, path, cli=None):
    t, cfg = best_config(study, sweep, cli)
    if t is None:
        return None
    head = (f"# Best trial {t.number} of sweep {sweep.name}: {sweep.metric} {t.value:.6g}\n"
            f"# (data.subset dropped: `bpnet train --config {path}` retrains it on all images)\n")
    with atomic_write(path) as fh:
        fh.write((head + dump_config(cfg)).encode())
    return t


def plot_sweep(study, sweep, path, k=10):
    """The book's picture: validation curves of the ``k`` best trials, and the sampled points of
    the first two float dimensions coloured by the metric."""
    from .plots import _figure, save_png
    fig = _figure((11.0, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    for t in best_trials(study, sweep, k):
        curve = t.user_attrs.get("curve") or {}
        if curve.get("epoch"):
            ax1.plot(curve["epoch"], curve[sweep.metric], label=f"#{t.number} {t.value:.3f}")
    ax1.set(xlabel="epoch", ylabel=sweep.metric.replace("_", " "),
            title=f"best {k} trials of {sweep.name}")
    if ax1.lines:
        ax1.legend(fontsize=7)
    dims = [d for d in sweep.space if d.kind in ("log_uniform", "uniform", "int")][:2]
    done = [t for t in study.get_trials(deepcopy=False) if t.value is not None]
    if len(dims) == 2 and done:
        xs = [t.params[dims[0].key] for t in done]
        ys = [t.params[dims[1].key] for t in done]
        sc = ax2.scatter(xs, ys, c=[t.value for t in done], cmap="viridis", s=18)
        ax2.set(xlabel=dims[0].key, ylabel=dims[1].key, title="sampled points")
        ax2.set_xscale("log" if dims[0].kind == "log_uniform" else "linear")
        ax2.set_yscale("log" if dims[1].kind == "log_uniform" else "linear")
        fig.colorbar(sc, ax=ax2, label=sweep.metric)
    else:
        ax2.set_axis_off()
    fig.tight_layout()
    save_png(fig, path)
