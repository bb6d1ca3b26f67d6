"""Where a config's values come from, in order: the defaults, a YAML file, labelled sources of
typed values (a sweep's fixed settings and its trial's parameters), ``--set KEY=VALUE``
overrides, then a command's own options. Each value is checked against its key's declaration in
:mod:`bpnet.training.config` as its source is applied, so an error names that source; the last
source that set a key is blamed for a rule it breaks.

Each source that sets one of ``train.epochs`` / ``train.iterations`` to a value clears the
other, so a later source can switch how training length is counted; one source setting both is
an error. Every problem is a one-line :class:`~bpnet.errors.ConfigError` with the source, the
dotted key and the reason as fields.
"""

from __future__ import annotations

import copy
import difflib
import re
from importlib import resources
from pathlib import Path

from bpnet.base.files import describe, read_bytes
from bpnet.base.limits import limit
from bpnet.base.schema import Invalid, check_field
from bpnet.base.text import clip
from bpnet.base.yamlsafe import load_yaml, show
from bpnet.errors import ConfigError
from bpnet.training.config import (
    FIELDS,
    INPUT_SHAPE,
    OUTPUT_SIZE,
    SECTIONS,
    TRAIN_SIZE,
    Config,
    defaults,
    get,
    nest,
    put,
    split_layers,
)

LENGTH_KEYS = ("train.epochs", "train.iterations")
MAX_KEY_PARTS = 8  # dotted parts of a --set key; the config's keys have at most 2
# A --set value of numbers separated by commas, without brackets: the list they make (`100,50`
# as gradcheck's --hidden 100,50 reads it; brackets need quoting in some shells, zsh's globs).
_NUMBER = r"[-+]?[\d.]+(?:[eE][-+]?\d+)?"
NUMBER_LIST = re.compile(rf"\s*{_NUMBER}(?:\s*,\s*{_NUMBER})+\s*")
SCHEMA_LINE = "# yaml-language-server: $schema="
# Names other tools use for a key, for the did-you-mean hint on unknown keys.
ALIASES = {
    "lr": ["learning_rate"],
    "hidden": ["hidden_sizes", "hidden_size"],
    "layers": ["layer_list", "architecture", "net"],
    "weight_init": ["weight_init_std", "init"],
    "weight_decay": ["l2", "lambda"],
    "iterations": ["iters", "iters_num", "steps"],
    "dir": ["out", "output_dir"],
    "batchnorm": ["use_batchnorm", "batch_norm", "bn"],
    "dropout": ["use_dropout", "dropout_ratio", "dropout_ration"],
    "decay_rate": ["rho"],
}


def did_you_mean(key):
    """`` (did you mean train.lr?)`` for a close or relocated spelling of a known key, else ''."""
    spellings = {section: section for section in SECTIONS}
    for dotted in FIELDS:
        section, _, leaf = dotted.rpartition(".")
        for name in [leaf, *ALIASES.get(leaf, ())]:
            spellings[f"{section}.{name}".lstrip(".")] = dotted
    leaf = key.rpartition(".")[2]  # the right name in the wrong section, e.g. `lr` at the top
    matches = [s for s in spellings if s.rpartition(".")[2] == leaf] or difflib.get_close_matches(
        key, spellings, n=1, cutoff=0.75
    )
    hints = sorted({spellings[m] for m in matches})
    return f" (did you mean {' or '.join(hints)}?)" if hints else ""


def flatten(doc, source):
    """[(dotted key, value)] of a source's nested mapping, checked against the config's keys
    and sections (not yet their values); a null section is one with nothing under it."""
    pairs = []
    for key, value in doc.items():
        dotted = str(key)
        if not isinstance(key, str) or (key not in SECTIONS and key not in FIELDS):
            raise ConfigError(source, dotted, f"unknown key{did_you_mean(dotted)}")
        if key not in SECTIONS:
            pairs.append((dotted, value))
            continue
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(
                source,
                dotted,
                f"expected a mapping of {', '.join(SECTIONS[key].model_fields)}, got {show(value)}",
            )
        for leaf, inner in value.items():
            inner_key = f"{dotted}.{leaf}"
            if not isinstance(leaf, str) or inner_key not in FIELDS:
                raise ConfigError(source, inner_key, f"unknown key{did_you_mean(inner_key)}")
            pairs.append((inner_key, inner))
    return pairs


class Layers:
    """A config being built source by source: ``cfg`` (every key, checked values) and
    ``origin`` (dotted key -> the label of the source that set it last, in setting order)."""

    def __init__(self, cfg=None, origin=None):
        self.cfg = defaults() if cfg is None else cfg
        self.origin = {} if origin is None else origin

    def copy(self):
        return Layers(copy.deepcopy(self.cfg), dict(self.origin))

    def apply(self, source, doc, dotted=False):
        """Apply one source: a nested mapping (a file's), or with ``dotted`` a flat one of
        dotted keys (``{"train.lr": 0.05}``)."""
        pairs = (
            [p for k, v in doc.items() for p in flatten(nest(str(k), v), source)]
            if dotted
            else flatten(doc, source)
        )
        touched = []
        for dotted, value in pairs:
            key = FIELDS[dotted]
            try:
                put(self.cfg, dotted, check_field(key.model, key.name, value))
            except Invalid as e:  # e.key: the field's name and any part of it ([3])
                part = e.key[len(key.name) :] if (e.key or "").startswith(key.name) else ""
                raise ConfigError(source, dotted + part, e.reason) from None
            touched.append(dotted)
        lengths = [k for k in LENGTH_KEYS if k in touched and get(self.cfg, k) is not None]
        if len(lengths) == 2:
            epochs, iterations = (get(self.cfg, k) for k in LENGTH_KEYS)
            raise ConfigError(
                source,
                "train.iterations",
                f"expected train.epochs or "
                f"train.iterations, not both (got epochs {epochs}, iterations "
                f"{iterations})",
            )
        for other in LENGTH_KEYS if lengths else ():
            if other not in touched:
                put(self.cfg, other, None)
                touched.append(other)
        for key in touched:
            self.origin.pop(key, None)
            self.origin[key] = source
        return self

    def last_set(self, *keys):
        """(source, key) of whichever of ``keys`` was set last (a default: "defaults")."""
        order = list(self.origin)
        key = max(keys, key=lambda k: order.index(k) if k in self.origin else -1)
        return self.origin.get(key, "defaults"), key

    def check_rules(self):
        """The rules between keys; a violation is blamed on the key of the group set last."""
        cfg = self.cfg
        if all(get(cfg, k) is None for k in LENGTH_KEYS):
            source, key = self.last_set(*LENGTH_KEYS)
            raise ConfigError(
                source,
                key,
                "expected a value for train.epochs or train.iterations, got null for both",
            )

        def conflict(keys, reason):
            source, key = self.last_set(*keys)
            others = ", ".join(f"{k} = {show(get(cfg, k))}" for k in keys if k != key)
            raise ConfigError(
                source, key, f"{show(get(cfg, key))} conflicts with {others}: {reason}"
            )

        if cfg["early_stopping"]["patience"] > 0 and cfg["data"]["validation"] == 0:
            conflict(
                ("early_stopping.patience", "data.validation"),
                "early stopping (patience > 0) needs validation images (data.validation > 0)",
            )
        subset = cfg["data"]["subset"]
        if subset is not None and not cfg["data"]["validation"] < subset <= TRAIN_SIZE:
            conflict(
                ("data.subset", "data.validation"),
                f"the subset must hold more than the validation images and at most {TRAIN_SIZE}",
            )
        self._check_layers()
        train = cfg["train"]
        if train["schedule"] in ("cosine", "onecycle") and train["min_lr"] >= train["lr"]:
            conflict(
                ("train.min_lr", "train.lr", "train.schedule"),
                f"the {train['schedule']} schedule needs train.min_lr < train.lr",
            )
        return self

    def _check_layers(self):
        """``model.layers`` describes the whole network: no hidden-layer key beside it, and
        every layer fits what reaches it from the 1x28x28 input."""
        layers = self.cfg["model"]["layers"]
        if layers is None:
            return
        for key in ("model.hidden", "model.batchnorm", "model.dropout"):
            if get(self.cfg, key) != get(defaults(), key):  # a config.yaml holds the defaults
                raise ConfigError(
                    self.origin[key],
                    key,
                    f"not used with model.layers, which describes the whole network (put "
                    f"{key.split('.')[1]} in the layers, or leave model.layers null)",
                )
        from bpnet.nn.convnet import LayerMismatch, infer_shapes

        source, net = self.origin.get("model.layers", "defaults"), split_layers(layers)
        try:
            infer_shapes(INPUT_SHAPE, [*net.body, ("affine", {"units": net.classes})])
        except LayerMismatch as e:
            raise ConfigError(source, f"model.layers[{e.index}]", e.reason) from None
        if net.classes != OUTPUT_SIZE:
            last = len(net.body)
            raise ConfigError(
                source,
                f"model.layers[{last}]",
                f"the last affine gives the scores of the {OUTPUT_SIZE} classes: expected "
                f"{{affine: {OUTPUT_SIZE}}}, got {{affine: {net.classes}}}",
            )

    def resolve(self, stem):
        """The finished config: rules checked, the memory it needs checked against what there
        is, ``name`` defaulting to ``stem`` and ``output.dir`` to ``runs/<name>``."""
        from bpnet.training.memory import check_memory

        self.check_rules()
        check_memory(self.cfg, self.origin)
        cfg = copy.deepcopy(self.cfg)
        cfg["name"] = cfg["name"] or stem
        cfg["output"]["dir"] = cfg["output"]["dir"] or f"runs/{cfg['name']}"
        return cfg


def parse_override(text):
    """``"train.lr=0.05"`` -> ``("train.lr", 0.05)``: the value is read as a YAML scalar
    or flow collection (``[100, 50]``, ``null``, ``he``); numbers separated by commas without
    brackets (``100,50``) are the list they make."""
    source = f"--set {clip(text)}"
    key, sep, raw = str(text).partition("=")
    key = key.strip()
    if not sep or not all(key.split(".")):
        raise ConfigError(
            source, None, "expected KEY=VALUE with a dotted key, e.g. --set train.lr=0.05"
        )
    if key.count(".") >= MAX_KEY_PARTS:
        raise ConfigError(
            source,
            clip(key, 40),
            f"unknown key of {key.count('.') + 1} parts; config keys have at most 2 (train.lr)",
        )
    if len(raw) > limit("config_bytes"):
        raise ConfigError(
            source,
            key,
            f"a value of {len(raw)} characters, over the limit for a "
            f"config ({limit('config_bytes')} bytes)",
        )
    if NUMBER_LIST.fullmatch(raw):
        raw = f"[{raw}]"
    return key, load_yaml(raw, source, key=key)


def _shipped(folder=""):
    files = resources.files("bpnet.configs")
    return files / folder if folder else files


def list_configs(folder=""):
    """``[(name, description)]`` of the shipped configs (in ``folder`` of them: ``sweeps``);
    the description is the first comment line of the file (after the schema line)."""
    found = []
    for entry in _shipped(folder).iterdir():
        if entry.name.endswith(".yaml"):
            lines = entry.read_text(encoding="utf-8").splitlines()
            about = next(
                (
                    ln.lstrip("#").strip()
                    for ln in lines
                    if ln.startswith("#") and not ln.startswith(SCHEMA_LINE)
                ),
                "",
            )
            found.append((entry.name[: -len(".yaml")], about))
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
        raise ConfigError(path, None, f"is a directory, expected a YAML {what} file")
    if path.exists():  # a FIFO or a device: read_yaml refuses it by name, without opening it
        return path
    names = [name for name, _ in list_configs(folder)]
    near = difflib.get_close_matches(path.name.removesuffix(".yaml"), names, n=1, cutoff=0.6)
    hint = f"did you mean {near[0]}? " if near and len(path.parts) == 1 else ""
    raise ConfigError(
        path,
        None,
        f"no such file, nor a shipped {what} of that name ({hint}shipped: {', '.join(names)})",
    )


def read_yaml(path, keys=None):
    """The top-level mapping of a YAML file ({} for an empty one); ``keys`` name what it may
    hold (default: a config's)."""

    def fail(message):
        return ConfigError(path, None, str(message).removeprefix(f"{path}: "))

    raw = read_bytes(
        path, fail, fail, limit("config_bytes"), "a config file (BPNET_MAX_CONFIG_BYTES)"
    )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        what = describe(raw[:512])
        what = "undecodable bytes" if what.startswith(("binary", "a text")) else what
        raise ConfigError(path, None, f"expected UTF-8 text, got {what}") from None
    doc = load_yaml(text, str(path))
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        keys = keys or Config.model_fields
        raise ConfigError(
            path,
            None,
            f"expected a mapping of keys ({', '.join(keys)}) at the top level, got {show(doc)}",
        )
    return doc


def load_config(path_or_name, overrides=(), cli=None, sources=()):
    """The resolved config: file, then ``sources`` (``[(label, {dotted key: typed value})]``,
    e.g. a sweep's settings), then ``overrides`` (``"key=value"`` strings, in order), then
    ``cli`` (``{"train.epochs": 5, ...}``, typed values, None: not given).

    ``name`` defaults to the file's stem and ``output.dir`` to ``runs/<name>``.
    """
    path = resolve_config_path(path_or_name)
    layers = Layers().apply(str(path), read_yaml(path))
    for label, values in sources:
        layers.apply(label, values, dotted=True)
    for text in overrides:
        key, value = parse_override(text)
        layers.apply(f"--set {clip(text)}", {key: value}, dotted=True)
    given = {k: v for k, v in (cli or {}).items() if v is not None}
    if given:
        layers.apply("command line", given, dotted=True)
    return layers.resolve(path.stem)
