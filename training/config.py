"""A run's config, declared once: the pydantic models of its sections, with every key's type,
bounds, default and meaning. Everything else reads them from here: the layering of sources
(:mod:`bpnet.training.sources`), the JSON Schema editors check files with, the documentation's
table of keys, and the network a config describes.

A resolved config is a plain nested dict holding every key (``cfg["train"]["lr"]``).
"""

from __future__ import annotations

import json
from typing import Annotated, Literal, NamedTuple, Optional, Union

import annotated_types as at
from pydantic import BeforeValidator, Field

from bpnet.base.schema import (
    Expected,
    Flag,
    FolderPath,
    Integer,
    Model,
    Name,
    Number,
    expected,
    is_model,
    json_schema,
)
from bpnet.base.yamlsafe import dump, show
from bpnet.data.augment import AugmentSettings
from bpnet.data.specs import DATASETS, SPECS
from bpnet.nn.defaults import EVAL_BATCH
from bpnet.nn.network import ACTIVATIONS
from bpnet.nn.optim import OPTIMIZERS as _UPDATE_RULES
from bpnet.nn.optim import SCHEDULES
from bpnet.training.layerspec import (  # noqa: F401  (read from here by the rest of training)
    LayerList,
    NetworkLayers,
    layer_tuples,
    split_layers,
)

INPUT_SIZE, OUTPUT_SIZE = 784, 10
INPUT_SHAPE = (1, 28, 28)  # what a convolutional network's first layer sees
TRAIN_SIZE, TEST_SIZE = SPECS["mnist"].files[0].count, SPECS["mnist"].files[2].count
OPTIMIZERS = tuple(_UPDATE_RULES)
DTYPES = ("float32", "float64")
SCHEMA_URL = "schema/config.json"  # beside the shipped configs; see config_schema()

PositiveInt = Annotated[Integer, at.Gt(0)]
Fraction = Annotated[Number, at.Ge(0), at.Lt(1)]


def _one_or_list(v):
    return [v] if isinstance(v, int) and not isinstance(v, bool) else v


Hidden = Annotated[
    list[PositiveInt],
    BeforeValidator(_one_or_list),
    Expected("a list of integers > 0 (or one integer > 0)"),
]
WeightInit = Annotated[
    Union[Annotated[Number, at.Gt(0)], Literal["he", "xavier"]],
    Expected("a number > 0, he or xavier"),
]


def _choice(names, fold_case=False):
    """One of ``names``; with ``fold_case`` written in any case (the book writes 'Adam')."""
    choice = Literal[tuple(names)]
    if not fold_case:
        return choice
    folded = {name.lower(): name for name in names}

    def fold(v):  # a value that is no name in any case stays as written, for the message
        return folded.get(v.lower(), v) if isinstance(v, str) else v

    return Annotated[choice, BeforeValidator(fold)]


class ModelSection(Model):
    layers: LayerList = Field(
        None,
        description=(
            "The network as a sequence of layers over the 1x28x28 input (convolutional "
            "networks), before the output Affine; null: `hidden`'s fully connected network."
        ),
    )
    hidden: Hidden = Field([50], description="Hidden layer sizes; `[]` is softmax regression.")
    activation: _choice(ACTIVATIONS) = Field("relu", description="Hidden-layer activation.")
    weight_init: WeightInit = Field(
        0.01, description=("Initial weight std; `he`: √(2/fan_in), `xavier`: √(1/fan_in).")
    )
    batchnorm: Flag = Field(
        False,
        description=("Batch normalization after every hidden Affine (before the activation)."),
    )
    dropout: Fraction = Field(
        0.0, description=("Ratio of hidden units dropped at random while training; 0: none.")
    )


class DataSection(Model):
    normalize: Flag = Field(True, description="Scale pixels by 1/255 (false: raw 0..255).")
    validation: Annotated[Integer, at.Ge(0), at.Lt(TRAIN_SIZE)] = Field(
        5000, description=("Training images held out for validation and early stopping; 0: none.")
    )
    subset: Optional[PositiveInt] = Field(
        None,
        description=(
            "Train on the first N training images only (validation is the last `data.validation` "
            "of them); null: all."
        ),
    )


class TrainSection(Model):
    epochs: Optional[PositiveInt] = Field(
        10, description=("Passes over the training set; setting it clears train.iterations.")
    )
    iterations: Optional[PositiveInt] = Field(
        None, description=("Mini-batch updates instead; setting it clears train.epochs.")
    )
    batch_size: PositiveInt = Field(100, description="Images per mini-batch.")
    optimizer: _choice(OPTIMIZERS, fold_case=True) = Field(
        "sgd",
        description=(
            "Update rule: plain SGD, SGD with momentum, Nesterov momentum, AdaGrad, RMSprop or "
            "Adam."
        ),
    )
    lr: Annotated[Number, at.Gt(0)] = Field(0.1, description="Learning rate.")
    momentum: Fraction = Field(0.9, description="`momentum`, `nesterov`: velocity decay.")
    decay_rate: Fraction = Field(
        0.99, description=("`rmsprop`: decay of the mean square gradient.")
    )
    beta1: Fraction = Field(0.9, description="`adam`: first-moment decay.")
    beta2: Fraction = Field(0.999, description="`adam`: second-moment decay.")
    eps: Annotated[Number, at.Gt(0)] = Field(
        1e-8, description=("`adagrad`, `rmsprop`, `adam`: denominator guard.")
    )
    weight_decay: Annotated[Number, at.Ge(0)] = Field(
        0.0, description=("L2 penalty λ: the loss gains ½·λ·ΣW², each weight gradient λ·W.")
    )
    schedule: _choice(SCHEDULES) = Field(
        "none",
        description=(
            "How lr changes: constant, stepped, cosine-annealed to `min_lr`, or onecycle "
            "(warm-up, then cosine)."
        ),
    )
    step_epochs: PositiveInt = Field(
        10, description=("`step`: multiply lr by `gamma` every this many epochs.")
    )
    gamma: Annotated[Number, at.Gt(0), at.Le(1)] = Field(0.1, description="`step`: the factor.")
    min_lr: Annotated[Number, at.Ge(0)] = Field(
        0.0,
        description=(
            "`cosine`, `onecycle`: the lr reached at the end (< `lr`); `onecycle` also starts "
            "from it."
        ),
    )
    warmup: Fraction = Field(
        0.3, description=("`onecycle`: fraction of the run over which lr rises to `lr`.")
    )
    seed: Annotated[Integer, at.Ge(0)] = Field(
        0, description=("Seed for everything random in the run.")
    )
    dtype: _choice(DTYPES) = Field(
        "float32", description=("Floating-point type of the data and the weights.")
    )
    shuffle: Flag = Field(
        True, description=("A fresh permutation every epoch (false: fixed order).")
    )
    threads: Optional[PositiveInt] = Field(
        None,
        description=(
            "Threads for the matrix products; null: `$BPNET_THREADS`, else every core this "
            "process may use (see bpnet.nn.threads)."
        ),
    )


class EvalSection(Model):
    every: PositiveInt = Field(1, description="Evaluate every this many epochs.")
    batch_size: PositiveInt = Field(EVAL_BATCH, description="Images per evaluation batch.")


class EarlyStoppingSection(Model):
    patience: Annotated[Integer, at.Ge(0)] = Field(
        0, description=("Evaluations without validation-accuracy gain before stopping; 0: off.")
    )
    min_delta: Annotated[Number, at.Ge(0)] = Field(
        0.0, description=("Smallest rise in validation accuracy that counts as a gain.")
    )


class OutputSection(Model):
    dir: Optional[FolderPath] = Field(None, description="Run directory; null: `runs/<name>`.")


class Config(Model):
    """A run: what to train, on what, how, and where to write it."""

    name: Optional[Name] = Field(
        None,
        description=("Run name, used for the default output dir; null: the config file's stem."),
    )
    dataset: _choice(DATASETS) = Field("mnist", description="Dataset to train and evaluate on.")
    data_dir: Optional[FolderPath] = Field(
        None,
        description=(
            "Folder holding `<dataset>/`; null: `$BPNET_DATA_DIR`, else the per-user data home."
        ),
    )
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    early_stopping: EarlyStoppingSection = Field(default_factory=EarlyStoppingSection)
    augment: AugmentSettings = Field(default_factory=AugmentSettings)
    output: OutputSection = Field(default_factory=OutputSection)


class Key(NamedTuple):
    """One config key: the model declaring it, its name there, its default, the words for
    what it accepts, and what it means."""

    model: type
    name: str
    default: object
    expected: str
    help: str


def _keys(model, prefix=""):
    for name, info in model.model_fields.items():
        if is_model(info.annotation):
            yield from _keys(info.annotation, f"{prefix}{name}.")
        else:
            default = info.get_default(call_default_factory=True)
            yield (
                f"{prefix}{name}",
                Key(model, name, default, expected(model, name), info.description or ""),
            )


FIELDS = dict(_keys(Config))
"""Every config key, dotted (``train.lr``), in file order."""
SECTIONS = {
    name: info.annotation for name, info in Config.model_fields.items() if is_model(info.annotation)
}


def get(cfg, dotted):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


def put(cfg, dotted, value):
    *sections, leaf = dotted.split(".")
    for part in sections:
        cfg = cfg[part]
    cfg[leaf] = value


def nest(dotted, value):
    """``{"train": {"lr": value}}`` of ``("train.lr", value)``."""
    for part in reversed(dotted.split(".")):
        value = {part: value}
    return value


def defaults():
    """A fresh nested dict of every key's default."""
    return Config().model_dump()


def dump_config(cfg):
    """YAML text of a resolved config in the models' order; ``load_config`` reads it back equal.
    ``model.layers`` is left out when null, so a fully connected run's file reads as before."""
    doc = Config.model_validate(cfg).model_dump()
    if doc["model"]["layers"] is None:
        del doc["model"]["layers"]
    return dump(doc)


def config_schema():
    """The JSON Schema of a config file (every key optional, unknown keys refused), for editors
    with a YAML language server; the shipped configs name it on their first line."""
    return {**json_schema(Config), "title": "bpnet config"}


def schema_text(schema):
    """The text a schema file holds (what the shipped schema files are compared against)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def key_table():
    """The documentation's table of config keys, in Markdown, made from the models."""
    rows = ["| key | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    rows += [
        f"| `{dotted}` | `{show(key.default)}` | {key.expected} | {key.help} |"
        for dotted, key in FIELDS.items()
    ]
    return "\n".join(rows) + "\n"


def build_network(cfg, rng=None, dtype=None, dropout_rng=None):
    """The untrained network the config's model describes: a ConvNet for ``model.layers``,
    else a MultiLayerNet of ``model.hidden``; ``dtype`` overrides ``train.dtype``."""
    import numpy as np

    model = cfg["model"]
    if model.get("layers") is None:
        from bpnet.nn.network import MultiLayerNet

        return MultiLayerNet(**network_kwargs(cfg, dtype), rng=rng, dropout_rng=dropout_rng)
    from bpnet.nn.convnet import ConvNet

    net = split_layers(model["layers"])
    return ConvNet(
        INPUT_SHAPE,
        net.body,
        net.classes,
        output_dropout=net.output_dropout,
        weight_init_std=model["weight_init"],
        weight_decay=cfg["train"]["weight_decay"],
        dtype=np.dtype(dtype or cfg["train"]["dtype"]),
        rng=rng,
        dropout_rng=dropout_rng,
    )


def network_kwargs(cfg, dtype=None):
    """``MultiLayerNet(**kw)`` arguments for the config's model; ``dtype`` overrides
    ``train.dtype`` (gradcheck forces float64)."""
    import numpy as np

    model = cfg["model"]
    return dict(
        input_size=INPUT_SIZE,
        hidden_sizes=list(model["hidden"]),
        output_size=OUTPUT_SIZE,
        activation=model["activation"],
        weight_init_std=model["weight_init"],
        weight_decay=cfg["train"]["weight_decay"],
        dtype=np.dtype(dtype or cfg["train"]["dtype"]),
        batchnorm=model["batchnorm"],
        dropout=model["dropout"],
    )
