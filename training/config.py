"""Run configs: one schema, YAML files merged onto its defaults, dotted overrides, validation.

A config is a YAML file given by path, or by name from the configs shipped in
the package (``bpnet.configs``). ``load_config`` merges it onto the defaults of
``SCHEMA``, applies ``--set key=value`` overrides and then typed command-line
shortcuts, in that order, checks every value and the rules between values, and
returns a plain nested dict holding every key. Each source that sets one of
``train.epochs`` / ``train.iterations`` to a value clears the other, so a later
source can switch how training length is counted; one source setting both is an
error. Every problem is a one-line ``ConfigError``: source, dotted key, value and
what was expected.
"""
from __future__ import annotations

import difflib
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

from bpnet.base.files import describe, read_bytes
from bpnet.base.limits import limit
from bpnet.base.text import clip
from bpnet.base.yamlsafe import BigInt, dump, load_yaml, show
from bpnet.data.specs import DATASETS, SPECS
from bpnet.errors import ConfigError
from bpnet.nn.network import ACTIVATIONS
from bpnet.nn.optim import OPTIMIZERS as _UPDATE_RULES

INPUT_SIZE, OUTPUT_SIZE = 784, 10
TRAIN_SIZE, TEST_SIZE = SPECS["mnist"].files[0].count, SPECS["mnist"].files[2].count
OPTIMIZERS = tuple(_UPDATE_RULES)
SCHEDULES = ("none", "step", "cosine", "onecycle")
DTYPES = ("float32", "float64")
LENGTH_KEYS = ("train.epochs", "train.iterations")
# Names other tools use for a key, for the did-you-mean hint on unknown keys.
ALIASES = {"lr": ["learning_rate"], "hidden": ["hidden_sizes", "hidden_size", "layers"],
           "weight_init": ["weight_init_std", "init"], "weight_decay": ["l2", "lambda"],
           "iterations": ["iters", "iters_num", "steps"], "dir": ["out", "output_dir"],
           "batchnorm": ["use_batchnorm", "batch_norm", "bn"],
           "dropout": ["use_dropout", "dropout_ratio", "dropout_ration"], "decay_rate": ["rho"]}


class Kind(NamedTuple):
    """A value type: ``expected`` names it in errors; ``convert`` returns the value
    in its stored form or raises ValueError (whose text, if any, is a hint)."""

    expected: str
    convert: Callable[[Any], Any]


class Field(NamedTuple):
    """One config key: its kind, its default and what it means."""

    kind: Kind
    default: Any
    help: str


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def number(low=None, high=None, low_open=False, high_open=False, integer=False):
    """Integers, or finite numbers stored as float (ints accepted, booleans and text not)."""
    if low is not None and high is not None:
        bounds = f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        bounds = f" {'>' if low_open else '>='} {low:g}"
    else:
        bounds = ""

    def convert(v):
        if isinstance(v, BigInt) or (_is_int(v) and abs(v) > MAX_INT):
            raise ValueError("far too large")
        if isinstance(v, str) and not integer and YAML11_MISSED_FLOAT.match(v):
            v = float(v)  # 1e-3: a number in YAML 1.2 that PyYAML's YAML 1.1 reads as text
        if isinstance(v, str) and _looks_numeric(v):
            raise ValueError("text, not a number: write numbers unquoted")
        ok = _is_int(v) or (not integer and isinstance(v, float) and math.isfinite(v))
        if not ok or (low is not None and (v <= low if low_open else v < low)) \
                or (high is not None and (v >= high if high_open else v > high)):
            raise ValueError
        return v if integer else float(v)
    return Kind(("an integer" if integer else "a number") + bounds, convert)


MAX_INT = 2 ** 63 - 1  # no config integer needs more; a seed or size beyond is a mistake
MAX_KEY_PARTS = 8  # dotted parts of a --set key; the schema's keys have at most 2
YAML11_MISSED_FLOAT = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+$")


def _looks_numeric(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def choice(*options):
    """One of the given strings."""
    def convert(v):
        if not (isinstance(v, str) and v in options):
            raise ValueError
        return v
    return Kind("one of " + ", ".join(options), convert)


def nullable(kind):
    """``kind`` or null (None)."""
    return Kind(f"{kind.expected} or null", lambda v: None if v is None else kind.convert(v))


def text(expected, ok=lambda s: True):
    """Non-empty strings that pass ``ok``."""
    def convert(v):
        if not (isinstance(v, str) and v and ok(v)):
            raise ValueError
        return v
    return Kind(expected, convert)


def _is_name(text):
    return not set(text) & set("/\\") and text not in (".", "..")


def _bool(v):
    if not isinstance(v, bool):
        raise ValueError
    return v


def _hidden(v):
    sizes = [v] if _is_int(v) else v
    if not (isinstance(sizes, list) and all(_is_int(s) and s > 0 for s in sizes)):
        raise ValueError
    return list(sizes)


def _weight_init(v):
    return v if v in ("he", "xavier") else POSITIVE.convert(v)


MAX_SIGMA = 1000.0  # the elastic field's Gaussian kernel has 8·sigma + 57 entries
POSITIVE = number(0, low_open=True)
POSITIVE_INT = number(0, low_open=True, integer=True)
NON_NEGATIVE = number(0)
FRACTION = number(0, 1, high_open=True)
BOOL = Kind("true or false", _bool)
PATH = nullable(text("a folder path"))

SCHEMA = {
    "name": Field(nullable(text("a name (no slashes)", _is_name)), None,
                  "Run name, used for the default output dir; null: the config file's stem."),
    "dataset": Field(choice(*DATASETS), "mnist", "Dataset to train and evaluate on."),
    "data_dir": Field(PATH, None,
                      "Folder holding `<dataset>/`; null: `$BPNET_DATA_DIR` or `data/`."),
    "model": {
        "hidden": Field(Kind("a list of integers > 0 (or one integer > 0)", _hidden), [50],
                        "Hidden layer sizes; `[]` is softmax regression."),
        "activation": Field(choice(*ACTIVATIONS), "relu", "Hidden-layer activation."),
        "weight_init": Field(Kind("a number > 0, he or xavier", _weight_init), 0.01,
                             "Initial weight std; `he`: √(2/fan_in), `xavier`: √(1/fan_in)."),
        "batchnorm": Field(BOOL, False,
                           "Batch normalization after every hidden Affine (before the activation)."),
        "dropout": Field(FRACTION, 0.0,
                         "Ratio of hidden units dropped at random while training; 0: none."),
    },
    "data": {
        "normalize": Field(BOOL, True, "Scale pixels by 1/255 (false: raw 0..255)."),
        "validation": Field(
            number(0, TRAIN_SIZE, high_open=True, integer=True), 5000,
            "Training images held out for validation and early stopping; 0: none."),
        "subset": Field(nullable(POSITIVE_INT), None,
                        "Train on the first N training images only (validation is the last "
                        "`data.validation` of them); null: all."),
    },
    "train": {
        "epochs": Field(nullable(POSITIVE_INT), 10,
                        "Passes over the training set; setting it clears train.iterations."),
        "iterations": Field(nullable(POSITIVE_INT), None,
                            "Mini-batch updates instead; setting it clears train.epochs."),
        "batch_size": Field(POSITIVE_INT, 100, "Images per mini-batch."),
        "optimizer": Field(choice(*OPTIMIZERS), "sgd",
                           "Update rule: plain SGD, SGD with momentum, Nesterov momentum, AdaGrad, "
                           "RMSprop or Adam."),
        "lr": Field(POSITIVE, 0.1, "Learning rate."),
        "momentum": Field(FRACTION, 0.9, "`momentum`, `nesterov`: velocity decay."),
        "decay_rate": Field(FRACTION, 0.99, "`rmsprop`: decay of the mean square gradient."),
        "beta1": Field(FRACTION, 0.9, "`adam`: first-moment decay."),
        "beta2": Field(FRACTION, 0.999, "`adam`: second-moment decay."),
        "eps": Field(POSITIVE, 1e-8, "`adagrad`, `rmsprop`, `adam`: denominator guard."),
        "weight_decay": Field(NON_NEGATIVE, 0.0,
                              "L2 penalty λ: the loss gains ½·λ·ΣW², each weight gradient λ·W."),
        "schedule": Field(choice(*SCHEDULES), "none",
                          "How lr changes: constant, stepped, cosine-annealed to `min_lr`, or "
                          "onecycle (warm-up, then cosine)."),
        "step_epochs": Field(POSITIVE_INT, 10,
                             "`step`: multiply lr by `gamma` every this many epochs."),
        "gamma": Field(number(0, 1, low_open=True), 0.1, "`step`: the factor."),
        "min_lr": Field(NON_NEGATIVE, 0.0,
                        "`cosine`, `onecycle`: the lr reached at the end (< `lr`); "
                        "`onecycle` also starts from it."),
        "warmup": Field(FRACTION, 0.3,
                        "`onecycle`: fraction of the run over which lr rises to `lr`."),
        "seed": Field(number(0, integer=True), 0, "Seed for everything random in the run."),
        "dtype": Field(choice(*DTYPES), "float32",
                       "Floating-point type of the data and the weights."),
        "shuffle": Field(BOOL, True, "A fresh permutation every epoch (false: fixed order)."),
        "threads": Field(nullable(POSITIVE_INT), None,
                         "Threads for the matrix products; null: `$BPNET_THREADS`, else every "
                         "core this process may use (see bpnet.nn.threads)."),
    },
    "eval": {
        "every": Field(POSITIVE_INT, 1, "Evaluate every this many epochs."),
        "batch_size": Field(POSITIVE_INT, 10000, "Images per evaluation batch."),
    },
    "early_stopping": {
        "patience": Field(number(0, integer=True), 0,
                          "Evaluations without validation-accuracy gain before stopping; 0: off."),
        "min_delta": Field(NON_NEGATIVE, 0.0,
                           "Smallest rise in validation accuracy that counts as a gain."),
    },
    "augment": {
        "shift": Field(number(0, 14, integer=True), 0,
                       "Largest shift in whole pixels; each image draws dy, dx in ±shift."),
        "rotate": Field(number(0, 180), 0.0, "Largest rotation in degrees."),
        "scale": Field(number(0, 1, high_open=True), 0.0,
                       "Largest zoom: the factor is uniform in 1 ± scale."),
        "shear": Field(number(0, 90, high_open=True), 0.0, "Largest shear angle in degrees."),
        "elastic_alpha": Field(NON_NEGATIVE, 0.0,
                               "Elastic distortion strength in pixels; 0: off."),
        "elastic_sigma": Field(number(0, MAX_SIGMA, low_open=True), 4.0,
                               "Smoothness of the elastic field in pixels (beyond about 100, "
                               "one shift for the whole 28x28 image)."),
    },
    "output": {
        "dir": Field(PATH, None, "Run directory; null: `runs/<name>`."),
    },
}


def _leaves(schema, prefix=""):
    for key, spec in schema.items():
        if isinstance(spec, dict):
            yield from _leaves(spec, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", spec


FIELDS = dict(_leaves(SCHEMA))
"""Every config key, dotted (``train.lr``), in file order, with its Field."""


def defaults(schema=SCHEMA):
    """A fresh nested dict of the schema's defaults."""
    return {key: defaults(spec) if isinstance(spec, dict) else
            (list(spec.default) if isinstance(spec.default, list) else spec.default)
            for key, spec in schema.items()}


def _did_you_mean(key):
    """`` (did you mean train.lr?)`` for a close or relocated spelling of a known key, else ''."""
    spellings = {section: section for section, spec in SCHEMA.items() if isinstance(spec, dict)}
    for dotted in FIELDS:
        section, _, leaf = dotted.rpartition(".")
        for name in [leaf, *ALIASES.get(leaf, ())]:
            spellings[f"{section}.{name}".lstrip(".")] = dotted
    leaf = key.rpartition(".")[2]  # the right name in the wrong section, e.g. `lr` at the top
    matches = [s for s in spellings if s.rpartition(".")[2] == leaf] \
        or difflib.get_close_matches(key, spellings, n=1, cutoff=0.75)
    hints = sorted({spellings[m] for m in matches})
    return f" (did you mean {' or '.join(hints)}?)" if hints else ""


def _get(cfg, dotted):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


def _set(cfg, dotted, value):
    *sections, leaf = dotted.split(".")
    for part in sections:
        cfg = cfg[part]
    cfg[leaf] = value


def _merge(cfg, doc, schema, source, touched, prefix=""):
    """Write ``doc``'s values into ``cfg``, each checked against ``schema``; list keys set."""
    for key, value in doc.items():
        dotted = f"{prefix}{key}"
        spec = schema.get(key) if isinstance(key, str) else None
        if spec is None:
            raise ConfigError(f"{source}: {dotted}: unknown key{_did_you_mean(dotted)}")
        if isinstance(spec, dict):
            if value is None:  # a section with nothing under it but comments
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {dotted}: expected a mapping of "
                                  f"{', '.join(spec)}, got {show(value)}")
            _merge(cfg[key], value, spec, source, touched, f"{dotted}.")
            continue
        try:
            cfg[key] = spec.kind.convert(value)
        except (ValueError, TypeError, OverflowError) as e:
            hint = f" ({e})" if str(e) else ""
            raise ConfigError(f"{source}: {dotted}: expected {spec.kind.expected}, "
                              f"got {show(value)}{hint}") from None
        touched.append(dotted)


def _apply(cfg, doc, source, origin):
    """Merge one source and keep epochs/iterations exclusive; ``origin`` maps each key
    to the source that set it last, in the order they were set."""
    touched = []
    _merge(cfg, doc, SCHEMA, source, touched)
    lengths = [k for k in LENGTH_KEYS if k in touched and _get(cfg, k) is not None]
    if len(lengths) == 2:
        epochs, iterations = (_get(cfg, k) for k in LENGTH_KEYS)
        raise ConfigError(f"{source}: train.iterations: expected train.epochs or train.iterations, "
                          f"not both (got epochs {epochs}, iterations {iterations})")
    for other in LENGTH_KEYS if lengths else ():
        if other not in touched:
            _set(cfg, other, None)
            touched.append(other)
    for key in touched:
        origin.pop(key, None)
        origin[key] = source


def _check_rules(cfg, origin):
    """The rules between keys; a violation is blamed on the key of the pair set last."""
    def last_set(*keys):
        order = list(origin)
        key = max(keys, key=lambda k: order.index(k) if k in origin else -1)
        return origin.get(key, "defaults"), key

    if all(_get(cfg, k) is None for k in LENGTH_KEYS):
        source, key = last_set(*LENGTH_KEYS)
        raise ConfigError(f"{source}: {key}: expected a value for train.epochs or "
                          "train.iterations, got null for both")

    def conflict(keys, reason):
        source, key = last_set(*keys)
        others = ", ".join(f"{k} = {show(_get(cfg, k))}" for k in keys if k != key)
        raise ConfigError(f"{source}: {key}: {show(_get(cfg, key))} conflicts with {others}: "
                          f"{reason}")

    if cfg["early_stopping"]["patience"] > 0 and cfg["data"]["validation"] == 0:
        conflict(("early_stopping.patience", "data.validation"),
                 "early stopping (patience > 0) needs validation images (data.validation > 0)")
    subset = cfg["data"]["subset"]
    if subset is not None and not cfg["data"]["validation"] < subset <= TRAIN_SIZE:
        conflict(("data.subset", "data.validation"), f"the subset must hold more than the "
                 f"validation images and at most {TRAIN_SIZE}")
    train = cfg["train"]
    if train["schedule"] in ("cosine", "onecycle") and train["min_lr"] >= train["lr"]:
        conflict(("train.min_lr", "train.lr", "train.schedule"),
                 f"the {train['schedule']} schedule needs train.min_lr < train.lr")


def _nest(dotted, value):
    for part in reversed(dotted.split(".")):
        value = {part: value}
    return value


def parse_override(text):
    """``"train.lr=0.05"`` -> ``("train.lr", 0.05)``: the value is read as a YAML scalar
    or flow collection (``[100, 50]``, ``null``, ``he``)."""
    key, sep, raw = str(text).partition("=")
    key = key.strip()
    if not sep or not all(key.split(".")):
        raise ConfigError(f"--set {clip(text)}: expected KEY=VALUE with a dotted key, "
                          "e.g. --set train.lr=0.05")
    if key.count(".") >= MAX_KEY_PARTS:
        raise ConfigError(f"--set {clip(text)}: {clip(key, 40)}: unknown key of "
                          f"{key.count('.') + 1} parts; config keys have at most 2 (train.lr)")
    if len(raw) > limit("config_bytes"):
        raise ConfigError(f"--set {clip(text)}: {key}: a value of {len(raw)} characters, over "
                          f"the limit for a config ({limit('config_bytes')} bytes)")
    return key, load_yaml(raw, f"--set {clip(text)}: {key}", value=True)


def _shipped(folder=""):
    files = resources.files("bpnet.configs")
    return files / folder if folder else files


def list_configs(folder=""):
    """``[(name, description)]`` of the shipped configs (in ``folder`` of them: ``sweeps``);
    the description is the first comment line of the file."""
    found = []
    for entry in _shipped(folder).iterdir():
        if entry.name.endswith(".yaml"):
            lines = entry.read_text(encoding="utf-8").splitlines()
            about = next((ln.lstrip("#").strip() for ln in lines if ln.startswith("#")), "")
            found.append((entry.name[:-len(".yaml")], about))
    return sorted(found)


def resolve_config_path(path_or_name, folder="", what="config"):
    """An existing file path; else the shipped config (in ``folder``) of that bare name
    (with or without ``.yaml``); else a ConfigError listing the shipped names."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    if len(path.parts) == 1:
        for name in (path.name, f"{path.name}.yaml"):
            entry = _shipped(folder) / name
            if entry.is_file():
                return Path(str(entry))
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a YAML {what} file")
    if path.exists():  # a FIFO or a device: _read refuses it by name, without opening it
        return path
    names = ", ".join(name for name, _ in list_configs(folder))
    raise ConfigError(f"{path}: no such file, nor a shipped {what} of that name "
                      f"(shipped: {names})")


def _read(path, keys=SCHEMA):
    """The top-level mapping of a YAML file ({} for an empty one); ``keys`` name what it holds."""
    raw = read_bytes(path, ConfigError, ConfigError, limit("config_bytes"),
                     "a config file (BPNET_MAX_CONFIG_BYTES)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        what = describe(raw[:512])
        what = "undecodable bytes" if what.startswith(("binary", "a text")) else what
        raise ConfigError(f"{path}: expected UTF-8 text, got {what}") from None
    doc = load_yaml(text, str(path))
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of keys ({', '.join(keys)}) at the top "
                          f"level, got {show(doc)}")
    return doc


def load_config(path_or_name, overrides=(), cli=None):
    """The resolved config: file, then ``overrides`` (``"key=value"`` strings, in
    order), then ``cli`` (``{"train.epochs": 5, ...}``, typed values, None: not given).

    ``name`` defaults to the file's stem and ``output.dir`` to ``runs/<name>``.
    """
    path = resolve_config_path(path_or_name)
    cfg, origin = defaults(), {}
    _apply(cfg, _read(path), str(path), origin)
    for text in overrides:
        _apply(cfg, _nest(*parse_override(text)), f"--set {clip(text)}", origin)
    for key, value in (cli or {}).items():
        if value is not None:
            _apply(cfg, _nest(key, value), "command line", origin)
    _check_rules(cfg, origin)
    from bpnet.training.memory import check_memory
    check_memory(cfg, origin)
    cfg["name"] = cfg["name"] or path.stem
    cfg["output"]["dir"] = cfg["output"]["dir"] or f"runs/{cfg['name']}"
    return cfg


def dump_config(cfg):
    """YAML text of a resolved config in schema order; ``load_config`` reads it back equal."""
    def ordered(values, schema):
        return {k: ordered(values[k], s) if isinstance(s, dict) else values[k]
                for k, s in schema.items()}
    return dump(ordered(cfg, SCHEMA))


def network_kwargs(cfg, dtype=None):
    """``MultiLayerNet(**kw)`` arguments for the config's model; ``dtype`` overrides
    ``train.dtype`` (gradcheck forces float64)."""
    model = cfg["model"]
    return dict(input_size=INPUT_SIZE, hidden_sizes=list(model["hidden"]), output_size=OUTPUT_SIZE,
                activation=model["activation"], weight_init_std=model["weight_init"],
                weight_decay=cfg["train"]["weight_decay"],
                dtype=np.dtype(dtype or cfg["train"]["dtype"]),
                batchnorm=model["batchnorm"], dropout=model["dropout"])
