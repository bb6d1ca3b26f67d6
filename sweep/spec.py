"""A sweep file: a base config, fixed settings and a search space over dotted config keys,
declared once as models and checked against the config's own vocabulary before any trial runs.

Every value a trial can take is checked as its config key is (``set`` values, each bound and
each choice of the space), and the base config is read once: a trial's config is the base with
two labelled sources on top, ``set`` and ``space``, so an error names the sweep file and the key
as ``set.KEY`` or ``space.KEY``. Each bound and choice is checked once, as a trial would take it
(its key, the rules between keys, the memory it needs), on a copy of the base's sections rather
than a whole trial config: the cost grows with the file, a few tens of microseconds a value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import annotated_types as at
import yaml
from pydantic import AfterValidator, Field

from bpnet.base.schema import Expected, Integer, Model, Name, Number, validate
from bpnet.base.yamlsafe import show
from bpnet.errors import ConfigError
from bpnet.training.config import FIELDS, get, schema_text
from bpnet.training.memory import check_memory
from bpnet.training.sources import (
    Layers,
    did_you_mean,
    list_configs,
    read_yaml,
    resolve_config_path,
)

METRICS = ("val_acc", "val_loss")
SAMPLERS = ("random", "grid", "tpe")
PRUNERS = ("none", "median")
SCHEMA_URL = "../schema/sweep.json"  # from configs/sweeps/; see sweep_schema()


class SweepError(ConfigError):
    """A sweep file that does not fit its schema (exit status 2)."""


def _increasing(strict, positive=False):
    def check(pair):
        low, high = pair
        if (low >= high if strict else low > high) or (positive and low <= 0):
            raise ValueError
        return pair

    return AfterValidator(check)


Pair = Annotated[list[Number], at.Len(2, 2)]
IntPair = Annotated[list[Integer], at.Len(2, 2)]


class LogUniform(Model):
    log_uniform: Annotated[
        Pair, _increasing(True, True), Expected("[low, high] numbers with low < high and low > 0")
    ]


class Uniform(Model):
    uniform: Annotated[Pair, _increasing(True), Expected("[low, high] numbers with low < high")]


class IntRange(Model):
    int: Annotated[IntPair, _increasing(False), Expected("[low, high] integers with low <= high")]


class Choice(Model):
    choice: Annotated[list[Any], at.MinLen(1), Expected("a non-empty list")]


DISTRIBUTIONS = {"log_uniform": LogUniform, "uniform": Uniform, "int": IntRange, "choice": Choice}
DottedKeys = Annotated[dict[str, Any], Expected("a mapping of dotted config keys")]


class SweepFile(Model):
    """What a sweep file may hold."""

    name: Optional[Name] = Field(
        None,
        description=(
            "Sweep name: the default study name and `sweeps/<name>`; null: the file stem."
        ),
    )
    config: Annotated[str, at.MinLen(1), Expected("a config path or shipped name")] = Field(
        "mnist.yaml",
        description=(
            "Base config: a path (relative to the sweep file) or a shipped config's name."
        ),
    )
    set: DottedKeys = Field(
        {}, description=("Fixed settings: a mapping of dotted config keys to values.")
    )
    space: DottedKeys = Field(
        {},
        description=(
            "Search space: dotted config key -> {log_uniform|uniform|int: [low, high]} or "
            "{choice: [values]}."
        ),
    )
    sampler: Literal[SAMPLERS] = Field("tpe", description="random (the book's), grid or tpe.")
    seed: Annotated[Integer, at.Ge(0)] = Field(
        0, description=("Seed of the sampler (trial k draws from seed, k).")
    )
    n_trials: Annotated[Integer, at.Gt(0)] = Field(
        20,
        description=(
            "Trials in the whole study, over every process and machine; each is made when a "
            "worker takes it, so a large budget costs nothing up front."
        ),
    )
    metric: Literal[METRICS] = Field(
        "val_acc",
        description=("Last evaluation's validation accuracy (maximised) or loss (minimised)."),
    )
    pruner: Literal[PRUNERS] = Field(
        "none",
        description=(
            "median: stop a trial whose epoch's metric is worse than the median of earlier trials "
            "at that epoch."
        ),
    )


@dataclass
class Dimension:
    """One searched config key: ``kind`` in DISTRIBUTIONS and its bounds or choices; a
    choice's ``labels`` are what Optuna records (``_label``), one per value, all different."""

    key: str
    kind: str
    values: list
    labels: Optional[list] = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.kind == "choice" and self.labels is None:
            self.labels = [_label(v) for v in self.values]

    def value_of(self, label):
        """The choice recorded as ``label``; a number or bound is itself."""
        if self.kind != "choice":
            return label
        if not hasattr(self, "_index"):
            self._index = {lab: i for i, lab in reversed(list(enumerate(self.labels)))}
        return self.values[self._index[label]]

    def suggest(self, trial):
        if self.kind == "choice":
            return self.value_of(trial.suggest_categorical(self.key, self.labels))
        low, high = self.values
        if self.kind == "int":
            return trial.suggest_int(self.key, low, high)
        return trial.suggest_float(self.key, low, high, log=self.kind == "log_uniform")

    def distribution(self):
        """The Optuna distribution ``suggest`` draws from."""
        from optuna import distributions as d

        if self.kind == "choice":
            return d.CategoricalDistribution(self.labels)
        low, high = self.values
        if self.kind == "int":
            return d.IntDistribution(low, high)
        return d.FloatDistribution(low, high, log=self.kind == "log_uniform")

    def grid(self):
        if self.kind == "choice":
            return list(self.labels)
        return list(range(self.values[0], self.values[1] + 1))


def _label(value):
    """Optuna's categorical choices are scalars: lists and mappings go as their YAML text on
    one line, whole (two long lists never share a label)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list) and all(type(v) is int for v in value):
        return "[" + ", ".join(map(str, value)) + "]"  # YAML's own text for a list of integers
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf).strip()
    return text[: -len("\n...")] if text.endswith("\n...") else text


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
    _layers: dict = field(default_factory=dict, repr=False)

    @property
    def direction(self):
        return "maximize" if self.metric == "val_acc" else "minimize"

    def _base_layers(self):
        """The base config with ``set`` applied (read once)."""
        if "base" not in self._layers:
            path = resolve_config_path(self.config)
            try:
                layers = Layers().apply(str(path), read_yaml(path)).apply("set", self.set, True)
            except ConfigError as e:
                raise self._blame(e) from None
            self._layers["base"], self._layers["stem"] = layers, path.stem
        return self._layers["base"]

    def _blame(self, e):
        if e.source in ("set", "space"):
            return SweepError(self.path, f"{e.source}.{e.key}", e.reason)
        return SweepError(f"{self.path}: {e.source}", e.key, e.reason)

    def trial_config(self, params, cli=None, number=None):
        """The resolved config of one trial: base, ``set``, then ``params`` (dotted key ->
        value); a value the config refuses is a SweepError naming the sweep file and key.
        Trial ``number`` trains with ``train.seed`` = its number (its own initial weights and
        batch order, as each trial of the book's loop), unless ``set`` or the space gives one."""
        values = dict(params)
        if number is not None and "train.seed" not in values and "train.seed" not in self.set:
            values["train.seed"] = number
        try:
            cfg = self._layered(values, cli).resolve(self._layers["stem"])
        except ConfigError as e:
            raise self._blame(e) from None
        self._check_validation(cfg)
        return cfg

    def _layered(self, values, cli):
        """The base layers with ``values`` (source ``space``) and ``cli`` on top, on a copy of
        the base's sections (the values are replaced, never changed in place: no deep copy)."""
        base = self._base_layers()
        cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in base.cfg.items()}
        layers = Layers(cfg, dict(base.origin)).apply("space", values, dotted=True)
        given = {k: v for k, v in (cli or {}).items() if v is not None}
        if given:
            layers.apply("command line", given, dotted=True)
        return layers

    def check_value(self, key, value, cli=None):
        """``value`` of the searched ``key`` as a trial takes it, checked as its config would be
        (each key, the rules between keys, the memory it needs), without making that config;
        returns the value as the config stores it."""
        try:
            layers = self._layered({key: value}, cli).check_rules()
            check_memory(layers.cfg, layers.origin)
        except ConfigError as e:
            raise self._blame(e) from None
        self._check_validation(layers.cfg)
        return get(layers.cfg, key)

    def _check_validation(self, cfg):
        if cfg["data"]["validation"] == 0:
            raise SweepError(
                self.path,
                "data.validation",
                "a sweep selects on validation "
                "images, got 0 in its config (never on the test set): set "
                "data.validation > 0",
            )

    def definition(self):
        """What defines this sweep, for its study to keep (see :mod:`bpnet.sweep.record`)."""
        from bpnet.sweep.record import definition

        return definition(self)


def list_sweeps():
    """``[(name, description)]`` of the shipped sweep files (first comment line)."""
    return list_configs("sweeps")


def resolve_sweep_path(path_or_name):
    """An existing file; else the shipped sweep of that name (with or without ``.yaml``)."""
    return resolve_config_path(path_or_name, "sweeps", "sweep")


def _distribution(path, key, spec):
    """``(kind, values)`` of ``space.KEY: spec``, its shape checked (not yet its values)."""
    where = f"space.{key}"
    if not (isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in DISTRIBUTIONS):
        raise SweepError(
            path,
            where,
            f"expected one of {{{': ..., '.join(DISTRIBUTIONS)}: ...}}, got {show(spec)}",
        )
    kind = next(iter(spec))
    return kind, getattr(validate(DISTRIBUTIONS[kind], spec, path, f"{where}.", SweepError), kind)


def _dimension(sweep, key, kind, values, cli):
    """The Dimension of ``space.KEY``: each bound or choice checked as a trial takes it (its
    key, the rules between keys, the memory), once; the same choice twice is refused."""
    dim = Dimension(key, kind, [sweep.check_value(key, v, cli) for v in values])
    if kind == "choice" and len(set(dim.labels)) < len(dim.labels):
        seen = set()
        twice = next(lab for lab in dim.labels if lab in seen or seen.add(lab))
        raise SweepError(sweep.path, f"space.{key}.choice", f"{show(twice)} is given twice")
    return dim


def load_sweep(path_or_name, cli=None):
    """The checked Sweep of a file (or shipped name). ``cli``: typed config values applied to
    every trial (``{"data_dir": ...}``). Each bound and choice of the space is tried on the
    config, so a value the config would refuse is refused here, naming the sweep key."""
    path = resolve_sweep_path(path_or_name)
    doc = validate(SweepFile, read_yaml(path, SweepFile.model_fields), path, error=SweepError)
    config = doc.config
    if not Path(config).is_absolute() and (path.parent / config).is_file():
        config = str(path.parent / config)
    try:
        resolve_config_path(config)
    except ConfigError as e:
        raise SweepError(path, "config", str(e)) from None
    for part, keys in (("set", doc.set), ("space", doc.space)):
        for key in keys:
            if key not in FIELDS:
                raise SweepError(
                    path, f"{part}.{key}", f"unknown config key{did_you_mean(str(key))}"
                )
    shapes = {key: _distribution(path, key, spec) for key, spec in doc.space.items()}
    if doc.sampler == "grid":
        bad = next((k for k, (kind, _) in shapes.items() if kind not in ("choice", "int")), None)
        if bad:
            raise SweepError(
                path,
                f"space.{bad}",
                f"the grid sampler needs choice or int dimensions, got {shapes[bad][0]}",
            )
    sweep = Sweep(
        path,
        doc.name or path.stem,
        config,
        dict(doc.set),
        [],
        doc.sampler,
        doc.seed,
        doc.n_trials,
        doc.metric,
        doc.pruner,
    )
    sweep.base = sweep.trial_config({}, cli)
    sweep.space = [_dimension(sweep, key, *shape, cli) for key, shape in shapes.items()]
    return sweep


def sweep_schema():
    """The JSON Schema of a sweep file; ``set`` and ``space`` list every config key."""
    from bpnet.base.schema import field_schema, json_schema

    schema = {**json_schema(SweepFile), "title": "bpnet sweep"}
    props, defs = schema["properties"], schema.setdefault("$defs", {})
    defs["Distribution"] = {"oneOf": [json_schema(model) for model in DISTRIBUTIONS.values()]}
    props["set"].update(
        properties={k: field_schema(f.model, f.name) for k, f in FIELDS.items()},
        additionalProperties=False,
    )
    props["space"].update(
        properties={k: {"$ref": "#/$defs/Distribution"} for k in FIELDS}, additionalProperties=False
    )
    return schema


__all__ = [
    "SweepError",
    "Sweep",
    "Dimension",
    "SweepFile",
    "load_sweep",
    "list_sweeps",
    "resolve_sweep_path",
    "sweep_schema",
    "schema_text",
    "METRICS",
    "SAMPLERS",
    "PRUNERS",
    "DISTRIBUTIONS",
]
