"""Weights and checkpoints as .npz, written atomically and read without pickle.

A weights file holds W1, b1 … Wn, bn and ``meta``, a JSON string with at least
``sizes``, ``activation``, ``dataset``, ``normalize`` and ``dtype``. With
``meta.batchnorm`` it also holds gamma{i}, beta{i}, running_mean{i}, running_var{i} for
every hidden layer i; ``meta.dropout`` is the training dropout ratio (inference scales by
1 − dropout). Files without these keys mean false / 0.0. A convolutional network's meta also
holds ``layers`` (its ``model.layers``) and ``input_shape`` ([1, 28, 28]), its ``sizes`` being
[784, classes]; its arrays are named as :mod:`bpnet.nn.convnet` names them. The reading of the
.npz itself is :mod:`bpnet.training.npz`'s.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Literal, Optional

import annotated_types as at
import numpy as np
from pydantic import ConfigDict, ValidationError

from bpnet.base.schema import Expected, Flag, Integer, Model, Number, first_error
from bpnet.base.text import clip, excerpt, printable
from bpnet.data.specs import DATASETS
from bpnet.nn import convnet
from bpnet.nn.network import ACTIVATIONS, MultiLayerNet, buffer_shapes, param_shapes
from bpnet.training.config import LayerList, split_layers
from bpnet.training.npz import (  # noqa: F401  (the weights file's own names, as before)
    MAX_DEFLATE_RATIO,
    MAX_HEADER,
    MAX_MEMBERS,
    READ_CHUNK,
    ZIP_ERRORS,
    Npz,
    WeightsError,
    load_npz,
    save_npz,
)

FORMAT = "bpnet-weights"
MAX_LAYERS, MAX_UNITS = 1000, 10**8  # layers and units per layer in meta.sizes
# values one image makes in a convolutional network's layers (DeepConvNet: about 70,000): what
# evaluating it needs per image is bounded before anything is allocated
MAX_IMAGE_VALUES = 4_000_000


def save_weights(path, params, meta):
    """Write parameters and ``meta`` (a dict, stored as JSON) to ``path``."""
    meta = {"format": FORMAT, **meta}
    save_npz(path, {**params, "meta": json.dumps(meta, sort_keys=True)})


Sizes = Annotated[
    list[Annotated[Integer, at.Gt(0), at.Le(MAX_UNITS)]],
    at.Len(2, MAX_LAYERS + 1),
    Expected(f"a list of 2 to {MAX_LAYERS + 1} integers in 1..{MAX_UNITS}"),
]
Text = Annotated[str, Expected("a string")]


class WeightsMeta(Model):
    """A weights file's ``meta``: what network it holds and how its inputs are scaled. Fields
    absent from older files take these defaults; fields bpnet does not know are kept as they
    are (``labels``, later versions' additions)."""

    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False)

    sizes: Sizes
    activation: Literal[tuple(ACTIVATIONS)]
    dataset: Literal[DATASETS] = "mnist"
    normalize: Flag = True
    dtype: Optional[Annotated[Literal["float32", "float64"], Expected("float32 or float64")]] = None
    batchnorm: Flag = False
    dropout: Annotated[Number, at.Ge(0), at.Lt(1)] = 0.0
    layers: LayerList = None
    input_shape: Optional[
        Annotated[
            list[Annotated[Integer, at.Gt(0), at.Le(MAX_UNITS)]],
            at.Len(3, 3),
            Expected("[channels, height, width]"),
        ]
    ] = None
    iteration: Optional[Annotated[Integer, at.Ge(0)]] = None
    format: Optional[Text] = None
    kind: Optional[Text] = None
    selected_on: Optional[Text] = None
    bpnet_version: Optional[Text] = None
    metrics: Optional[Annotated[dict, Expected("a mapping")]] = None
    config: Optional[Annotated[dict, Expected("a mapping")]] = None


def parse_json(path, text, what):
    """A JSON document from an untrusted file: too deep a nesting is a WeightsError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise WeightsError(
            f"{printable(path)}: {what} is nested too deeply to be bpnet's"
        ) from None
    except ValueError as e:
        raise WeightsError(f"{printable(path)}: {what} is not valid JSON ({clip(e)})") from None


def check_meta(path, meta):
    """``meta`` (parsed JSON) with every field :class:`WeightsMeta` declares (defaults filled
    in) if it describes a network bpnet can build, else WeightsError naming the field, what was
    expected and a short excerpt of what was found."""
    if not isinstance(meta, dict):
        raise WeightsError(f"{printable(path)}: meta: expected a JSON object, got {excerpt(meta)}")
    for key, info in WeightsMeta.model_fields.items():
        if info.is_required() and key not in meta:
            raise WeightsError(
                f"{printable(path)}: meta has no {key!r}; expected a bpnet weights file"
            )
    try:
        checked = WeightsMeta.model_validate(meta)
    except ValidationError as e:
        key, reason = first_error(WeightsMeta, e, meta, shown=excerpt)
        raise WeightsError(f"{printable(path)}: meta.{key}: {reason}") from None
    meta = {**meta, **checked.model_dump(exclude_none=True, exclude=set(checked.model_extra))}
    if meta.get("layers") is not None:
        _check_layers(path, meta)
    return meta


def _check_layers(path, meta):
    """A convolutional network's meta: its layers fit its input, its output is
    ``sizes[-1]`` classes, and one image's values through it are bounded."""
    shape = meta.get("input_shape") or [1, 28, 28]
    meta["input_shape"] = shape
    net = split_layers(meta["layers"])  # checked by WeightsMeta: ends with the output affine
    try:
        shapes = convnet.infer_shapes(shape, net.body)
    except convnet.LayerMismatch as e:
        raise WeightsError(f"{printable(path)}: meta.layers[{e.index}]: {e.reason}") from None
    values = sum(math.prod(s) for s in shapes)
    if values > MAX_IMAGE_VALUES:
        raise WeightsError(
            f"{printable(path)}: meta.layers: one image makes {values:,} values in its layers, "
            f"more than the {MAX_IMAGE_VALUES:,} a network bpnet evaluates may"
        )
    if meta["sizes"] != [math.prod(shape), net.classes]:
        raise WeightsError(
            f"{printable(path)}: meta.sizes: expected [{math.prod(shape)}, {net.classes}] for "
            f"a network of these layers, got {excerpt(meta['sizes'])}"
        )


def expected_arrays(meta):
    """{name: shape} of the arrays a weights file with this (checked) meta holds: W1, b1 …
    Wn, bn, and gamma{i}, beta{i}, running_mean{i}, running_var{i} of each hidden layer i
    when ``meta.batchnorm``."""
    if meta.get("layers") is not None:
        shape, net = meta["input_shape"], split_layers(meta["layers"])
        return {
            **convnet.param_shapes(shape, net.body, net.classes),
            **convnet.buffer_shapes(shape, net.body),
        }
    sizes, batchnorm = meta["sizes"], meta["batchnorm"]
    return {**param_shapes(sizes, batchnorm), **buffer_shapes(sizes, batchnorm)}


def read_meta(path):
    """The checked ``meta`` of a weights file, without reading its arrays."""
    with Npz(path) as z:
        if "meta" not in z.headers:
            z.fail("no 'meta' entry; expected a bpnet weights file")
        return check_meta(path, parse_json(path, z.text("meta"), "meta"))


def _check_arrays(z, path):
    """(meta, {name: shape}) of the open weights file ``z`` once its meta, keys, shapes,
    dtypes and total size, all read from headers, are what a weights file holds."""
    if "meta" not in z.headers and "state" in z.headers:
        z.fail(_checkpoint_hint(Path(path)))
    if "meta" not in z.headers:
        z.fail(
            f"no 'meta' entry; expected a bpnet weights file (it holds "
            f"{excerpt(sorted(z.headers))})"
        )
    meta = check_meta(path, parse_json(path, z.text("meta"), "meta"))
    expected = expected_arrays(meta)
    keys = set(z.headers) - {"meta"}
    if keys != set(expected):
        missing, extra = sorted(set(expected) - keys), sorted(keys - set(expected))
        z.fail(
            f"arrays do not match {_layout(meta)} (missing "
            f"{excerpt(missing)}, unexpected {excerpt(extra)})"
        )
    for key, shape in expected.items():
        found, dtype = z.headers[key]
        if found != shape:
            z.fail(f"{key} has shape {excerpt(found)}, expected {shape}")
        if dtype not in (np.float32, np.float64):
            z.fail(f"{key} has dtype {dtype}, expected float32 or float64")
    dtypes = {z.headers[k][1] for k in expected}
    if len(dtypes) != 1:
        z.fail(f"arrays mix dtypes {sorted(map(str, dtypes))}")
    z.check_total(expected)
    return meta, expected


def _layout(meta):
    if meta.get("layers") is not None:
        return f"its layers ({len(meta['layers'])} in meta.layers)"
    return f"layer sizes {excerpt(meta['sizes'])}"


def _check_finite(z, key, a):
    flat = a.reshape(-1)
    step = max(1, READ_CHUNK // a.itemsize)
    if not all(np.isfinite(flat[i : i + step]).all() for i in range(0, flat.size, step)):
        z.fail(f"{key} contains NaN or infinite values")


def load_weights(path):
    """(params, meta) from a weights file, checking keys, shapes, dtypes and sizes from the
    arrays' headers before reading their data, then finiteness."""
    with Npz(path) as z:
        meta, expected = _check_arrays(z, path)
        params = {}
        for key in expected:
            params[key] = z.read(key)
            _check_finite(z, key, params[key])
    return params, meta


def _checkpoint_hint(path):
    """What to read instead of a training checkpoint: the weights files beside it."""
    found = [
        f"{path.with_name(name)} ({what})"
        for name, what in (
            ("weights.npz", "the final weights"),
            ("best.npz", "the best on validation"),
        )
        if path.with_name(name).is_file()
    ]
    instead = (
        f": use {' or '.join(found)}"
        if found
        else f"; there is no weights.npz or best.npz beside it yet: `bpnet train --resume "
        f"{path.parent}` finishes the run"
    )
    return (
        "a training checkpoint (what bpnet train --resume continues from), not a weights "
        f"file{instead}"
    )


class _Unused:
    """The random generator of a network whose parameters are read from a file next: it draws
    nothing, so no random array the size of the weights is ever made."""

    @staticmethod
    def standard_normal(shape=None):
        return 0.0


def network_from_weights(path, dtype=None):
    """(MultiLayerNet in inference mode, meta) rebuilt from a weights file, checked as
    :func:`load_weights` checks it; dtype defaults to the file's. Each array is read straight
    into the network's own, so the network costs the memory of its weights once."""
    with Npz(path) as z:
        meta, expected = _check_arrays(z, path)
        sizes = meta["sizes"]
        net = (
            _network(meta, dtype or z.headers["W1"][1])
            if meta.get("layers")
            else MultiLayerNet(
                sizes[0],
                sizes[1:-1],
                sizes[-1],
                activation=meta["activation"],
                dtype=dtype or z.headers["W1"][1],
                rng=_Unused(),
                batchnorm=meta["batchnorm"],
                dropout=meta["dropout"],
            )
        )
        arrays = net.state_arrays()
        for key in expected:
            if arrays[key].dtype == z.headers[key][1]:
                _check_finite(z, key, z.read_into(key, arrays[key]))
            else:  # another dtype: the file's values are checked before the cast
                a = z.read(key)
                _check_finite(z, key, a)
                arrays[key][...] = a
    net.training = False
    return net, meta


def _network(meta, dtype):
    net = split_layers(meta["layers"])
    return convnet.ConvNet(
        meta["input_shape"],
        net.body,
        net.classes,
        dtype=dtype,
        rng=_Unused(),
        output_dropout=net.output_dropout,
    )
