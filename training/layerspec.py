"""``model.layers``: a network described as a sequence of layers, read and checked.

Each entry is ``relu``, ``sigmoid``, ``batchnorm`` or a one-key mapping: ``{conv: {filters,
size, stride, pad}}``, ``{pool: {size, stride, pad}}`` (or ``{pool: SIZE}``), ``{affine: {units}}``
(or ``{affine: UNITS}``), ``{dropout: {ratio}}`` (or ``{dropout: RATIO}``). The canonical form
(what a resolved config holds and a weights file's meta keeps) spells every option out. The list
is the whole network: its last affine gives the classes' scores, and one dropout may follow it.
A mistake is an :class:`~bpnet.base.schema.Invalid` naming the entry (``[3]``).
"""

from __future__ import annotations

from typing import Annotated, NamedTuple, Optional, Union

from pydantic import BeforeValidator, WithJsonSchema

from bpnet.base.schema import Expected, Invalid
from bpnet.base.yamlsafe import show

LAYER_WORDS = (
    "a list of layers, each relu, sigmoid, batchnorm, {conv: {filters: N, size: K, stride: S, "
    "pad: P}}, {pool: {size: K, stride: S, pad: P}}, {affine: {units: N}} (or {affine: N}) or "
    "{dropout: {ratio: R}} (or {dropout: R})"
)
_LAYER_OPTIONS = {  # kind -> (required, optional with defaults), all integers but dropout's ratio
    "conv": (("filters", "size"), {"stride": 1, "pad": 0}),
    "pool": (("size",), {"stride": None, "pad": 0}),
    "affine": (("units",), {}),
    "dropout": ((), {"ratio": 0.5}),
}
_SHORT = {"affine": "units", "dropout": "ratio", "pool": "size"}  # {affine: 100}
_BARE = ("relu", "sigmoid", "batchnorm")
MAX_LAYER_SIZE = 100_000  # filters, units, a filter's or pool's side, stride, pad


def _layer(i, item):
    """The canonical form of one ``model.layers`` entry (every option given), or ValueError."""
    where = f"[{i}]"
    if isinstance(item, str) and item.lower() in _BARE:
        return item.lower()
    if not (isinstance(item, dict) and len(item) == 1):
        raise Invalid(where, f"{show(item)} is no layer")
    ((kind, options),) = item.items()
    kind = str(kind).lower()
    if kind in _BARE and options in (None, {}):
        return kind
    if kind not in _LAYER_OPTIONS:
        raise Invalid(where, f"unknown layer {show(kind)}")
    required, optional = _LAYER_OPTIONS[kind]
    if not isinstance(options, dict):
        options = {_SHORT[kind]: options} if kind in _SHORT else options
    if not isinstance(options, dict):
        raise Invalid(where, f"{kind} takes a mapping of options, got {show(options)}")
    unknown = set(options) - set(required) - set(optional)
    if unknown:
        raise Invalid(where, f"{kind} has no option {sorted(unknown)[0]!r}")
    missing = [k for k in required if k not in options]
    if missing:
        raise Invalid(where, f"{kind} needs {' and '.join(missing)}")
    out = {k: options[k] for k in required}
    out.update({k: options.get(k, default) for k, default in optional.items()})
    for key, value in out.items():
        if kind == "dropout":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (ok and 0 <= value < 1):
                raise Invalid(where, "dropout ratio: expected a number in [0, 1)")
            out[key] = float(value)
            continue
        if value is None and key == "stride":
            value = out["size"]
        low = 0 if key == "pad" else 1
        if not (isinstance(value, int) and not isinstance(value, bool)) or not (
            low <= value <= MAX_LAYER_SIZE
        ):
            raise Invalid(
                where,
                f"{kind} {key}: expected an integer from {low} to {MAX_LAYER_SIZE}, "
                f"got {show(value)}",
            )
        out[key] = value
    return {kind: out}


def _layers(v):
    if v is None:
        return None
    if not isinstance(v, list) or not v:
        raise Invalid("", f"expected a non-empty list of layers, got {show(v)}")
    layers = [_layer(i, item) for i, item in enumerate(v)]
    split_layers(layers)  # ends with the output affine
    return layers


def _layer_schema():
    """The JSON Schema of one ``model.layers`` entry, for editors."""
    size = {"type": "integer", "minimum": 1, "maximum": MAX_LAYER_SIZE}
    pad = {"type": "integer", "minimum": 0, "maximum": MAX_LAYER_SIZE}
    ratio = {"type": "number", "minimum": 0, "exclusiveMaximum": 1}

    def entry(kind, options, required, short=None):
        body = {
            "type": "object",
            "properties": options,
            "required": list(required),
            "additionalProperties": False,
        }
        value = {"anyOf": [body, short]} if short else body
        return {
            "type": "object",
            "properties": {kind: value},
            "required": [kind],
            "additionalProperties": False,
        }

    return {
        "anyOf": [
            {"enum": list(_BARE)},
            entry(
                "conv",
                {"filters": size, "size": size, "stride": size, "pad": pad},
                ("filters", "size"),
            ),
            entry("pool", {"size": size, "stride": size, "pad": pad}, ("size",), size),
            entry("affine", {"units": size}, ("units",), size),
            entry("dropout", {"ratio": ratio}, (), ratio),
        ]
    }


LayerList = Annotated[
    Optional[list[Union[str, dict]]],
    BeforeValidator(_layers),
    Expected(LAYER_WORDS),
    WithJsonSchema(
        {"anyOf": [{"type": "array", "minItems": 1, "items": _layer_schema()}, {"type": "null"}]}
    ),
]


def layer_tuples(layers):
    """``[(kind, options)]`` (what :class:`~bpnet.nn.convnet.ConvNet` takes) of the canonical
    ``model.layers``."""
    out = []
    for item in layers:
        if isinstance(item, str):
            out.append((item, {}))
        else:
            ((kind, options),) = item.items()
            out.append((kind, dict(options)))
    return out


class NetworkLayers(NamedTuple):
    """A whole network's ``model.layers`` as :class:`~bpnet.nn.convnet.ConvNet` takes it."""

    body: list  # [(kind, options)] before the output Affine
    classes: int  # the output Affine's units
    output_dropout: float  # the ratio of a Dropout after it (0.0: none)


def split_layers(layers):
    """The :class:`NetworkLayers` of a canonical ``model.layers``: its last affine gives the
    classes' scores, and only a dropout may follow it; Invalid naming the layer otherwise."""
    tuples = layer_tuples(layers)
    last = max((i for i, (kind, _) in enumerate(tuples) if kind == "affine"), default=None)
    if last is None:
        raise Invalid(
            "",
            "expected the network's layers to end with the affine that gives the classes' "
            "scores ({affine: 10} for MNIST), found no affine",
        )
    tail = tuples[last + 1 :]
    for i, (kind, _) in enumerate(tail, start=last + 1):
        if kind != "dropout" or i > last + 1:
            raise Invalid(
                f"[{i}]",
                f"only one dropout may follow the output affine (layers[{last}]), got {kind}",
            )
    ratio = tail[0][1]["ratio"] if tail else 0.0
    return NetworkLayers(tuples[:last], tuples[last][1]["units"], ratio)
