"""A sweep file: a base config, fixed settings and a search space over dotted config keys,
checked against the config's own vocabulary before any trial runs."""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bpnet.base.yamlsafe import show as _show
from bpnet.errors import ConfigError
from bpnet.training.config import (FIELDS, Field, _did_you_mean, _is_name, _read, choice,
                                   list_configs, load_config, nullable, number,
                                   resolve_config_path, text)

METRICS = ("val_acc", "val_loss")
SAMPLERS = ("random", "grid", "tpe")
PRUNERS = ("none", "median")
DISTRIBUTIONS = ("log_uniform", "uniform", "int", "choice")


class SweepError(ConfigError):
    """A sweep file that does not fit its schema (exit status 2)."""


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


