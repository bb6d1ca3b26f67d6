"""One validation vocabulary: bpnet's files are declared as pydantic models (strict, unknown keys
forbidden, no NaN or infinity), with the value types YAML and JSON files use here, and every
failure is told in bpnet's one line: ``SOURCE: KEY: expected …, got …``.

A field's ``expected`` text is derived from its declaration (``an integer > 0``, ``a number in
[0, 1)``, ``one of relu, sigmoid``, ``… or null``), or given by an ``Expected("…")`` marker where
the type says less than the words (``a list of integers > 0 (or one integer > 0)``).
"""

from __future__ import annotations

import math
import re
import types
import typing
from functools import cache
from typing import Annotated, Literal, Union

import annotated_types as at
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic.fields import FieldInfo

from bpnet.base.text import excerpt
from bpnet.base.yamlsafe import BigInt, show
from bpnet.errors import ConfigError

__all__ = [
    "Model",
    "Expected",
    "Number",
    "Integer",
    "Flag",
    "Name",
    "FolderPath",
    "expected",
    "check_field",
    "first_error",
    "describe_error",
    "Invalid",
]

MAX_INT = 2**63 - 1  # no integer of a bpnet file needs more; a seed or size beyond is a mistake
YAML11_MISSED_FLOAT = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+$")


class Model(BaseModel):
    """A bpnet file or section: strict types, unknown keys refused, finite numbers only."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


class Expected:
    """Annotation marker: the words a message uses for what a field accepts."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return f"Expected({self.text!r})"


def _looks_numeric(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _int_like(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _plain_number(v, integer):
    """What YAML and JSON files give: a huge integer is refused outright, ``1e-3`` (a number in
    YAML 1.2 that PyYAML's YAML 1.1 reads as text) is a number, other numeric text is a hint."""
    if isinstance(v, BigInt) or (_int_like(v) and abs(v) > MAX_INT):
        raise ValueError("far too large")
    if isinstance(v, str):
        if not integer and YAML11_MISSED_FLOAT.match(v):
            return float(v)
        if _looks_numeric(v):
            raise ValueError("text, not a number: write numbers unquoted")
    if not integer and _int_like(v):
        return float(v)  # stored as float; bool stays refused by the strict float
    return v


Number = Annotated[float, BeforeValidator(lambda v: _plain_number(v, False))]
"""Finite numbers, stored as float: integers accepted, booleans and quoted text not."""
Integer = Annotated[int, BeforeValidator(lambda v: _plain_number(v, True))]
"""Integers below 2**63: not booleans, not 100.0, not quoted text."""
Flag = Annotated[bool, Expected("true or false")]


def _no_slashes(v):
    if isinstance(v, str) and (set(v) & set("/\\") or v in (".", "..")):
        raise ValueError
    return v


Name = Annotated[str, at.MinLen(1), BeforeValidator(_no_slashes), Expected("a name (no slashes)")]
FolderPath = Annotated[str, at.MinLen(1), Expected("a folder path")]


# -- the words for what a field accepts ------------------------------------------------------
def _bounds(metadata, integer):
    low = next(
        (
            (m.gt, True) if isinstance(m, at.Gt) else (m.ge, False)
            for m in metadata
            if isinstance(m, (at.Gt, at.Ge))
        ),
        None,
    )
    high = next(
        (
            (m.lt, True) if isinstance(m, at.Lt) else (m.le, False)
            for m in metadata
            if isinstance(m, (at.Lt, at.Le))
        ),
        None,
    )
    kind = "an integer" if integer else "a number"
    if low and high:
        return f"{kind} in {'(' if low[1] else '['}{low[0]:g}, {high[0]:g}{')' if high[1] else ']'}"
    if low:
        return f"{kind} {'>' if low[1] else '>='} {low[0]:g}"
    if high:
        return f"{kind} {'<' if high[1] else '<='} {high[0]:g}"
    return kind


def _flatten(tp, metadata=()):
    """(bare type, metadata) with Annotated layers peeled off."""
    metadata = list(metadata)
    while typing.get_origin(tp) is Annotated:
        tp, *more = typing.get_args(tp)
        metadata = list(more) + metadata
    flat = []
    for m in metadata:  # Field(gt=0) inside Annotated carries its constraints as metadata
        flat.extend(m.metadata if isinstance(m, FieldInfo) else [m])
    return tp, flat


def _words(tp, metadata=()):
    tp, metadata = _flatten(tp, metadata)
    marker = next((m for m in metadata if isinstance(m, Expected)), None)
    if marker:
        return marker.text
    origin = typing.get_origin(tp)
    if origin in (Union, getattr(types, "UnionType", Union)):
        args = typing.get_args(tp)
        parts = [_words(a) for a in args if a is not type(None)]
        text = " or ".join(parts)
        return f"{text} or null" if type(None) in args else text
    if origin is Literal:
        return "one of " + ", ".join(str(v) for v in typing.get_args(tp))
    if tp is bool:
        return "true or false"
    if tp in (int, float):
        return _bounds(metadata, tp is int)
    if tp is str:
        return "text"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "a mapping of " + ", ".join(tp.model_fields)
    if origin is list:
        return "a list"
    if origin is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def expected(model, name):
    """The words for what field ``name`` of ``model`` accepts."""
    info = model.model_fields[name]
    return _words(info.annotation, info.metadata)


# -- checking values and telling what went wrong ---------------------------------------------
class Invalid(ValueError):
    """One value that does not fit: ``key`` (dotted, within what was checked) and ``reason``."""

    def __init__(self, key, reason):
        super().__init__(f"{key}: {reason}" if key else reason)
        self.key, self.reason = key, reason


def first_error(model, error: ValidationError, doc=None, shown=show):
    """(dotted key, reason) of the first failure of validating ``doc`` against ``model``, the
    reason in bpnet's words (``expected an integer > 0, got 10.5``); the value shown is the
    whole field's (``[100, 0]``, not the item 0 that failed)."""
    err = error.errors(include_url=False)[0]
    path, owner, name = _field_path(model, err["loc"])
    cause = err.get("ctx", {}).get("error") if err["type"] == "value_error" else None
    if isinstance(cause, Invalid):  # a validator that names the part that failed ([3], .size)
        return ".".join(path) + cause.key, cause.reason
    if err["type"] == "extra_forbidden":
        return ".".join(map(str, err["loc"])), "unknown key"
    if doc is not None and path and len(path) < len(err["loc"]):
        value = doc
        for part in path:
            value = value[part] if isinstance(value, dict) and part in value else err.get("input")
        err = {**err, "input": value}
    return ".".join(path), describe_error(owner, name, err, shown)


def _field_path(model, loc):
    """(the dotted parts of ``loc`` that name fields, the model owning the last one, its
    name): a location inside a field (a list item, a branch of a union) stops at the field."""
    path, owner, name, current = [], model, None, model
    for part in loc:
        if not (is_model(current) and isinstance(part, str) and part in current.model_fields):
            break
        path.append(part)
        owner, name = current, part
        tp, _ = _flatten(current.model_fields[part].annotation)
        args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
        current = next((a for a in args if is_model(a)), None)
    return path, owner, name


def describe_error(owner, name, err, shown=show):
    """bpnet's words for one pydantic error at field ``name`` of model ``owner``; ``shown``
    writes the value found (YAML's way by default)."""
    if err["type"] == "missing":
        return "missing"
    value = err.get("input")
    hint = ""
    if err["type"] == "value_error":
        cause = str(err.get("ctx", {}).get("error", ""))
        hint = f" ({cause})" if cause else ""
    if name is None:
        return f"{err['msg'][:1].lower()}{err['msg'][1:]}, got {shown(value)}"
    return f"expected {expected(owner, name)}, got {shown(value)}{hint}"


@cache
def _single(model, name):
    """A model checking only field ``name`` of ``model`` (the others left out)."""
    from pydantic import create_model

    info = model.model_fields[name]
    tp = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    return create_model(f"{model.__name__}_{name}", __base__=Model, **{name: (tp, ...)})


_BOUNDS = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum"}


def _standard(node):
    """JSON Schema's own words for bounds (pydantic leaves a bound that follows a validator
    as ``gt``/``ge``/``lt``/``le``, which JSON Schema validators ignore)."""
    if isinstance(node, dict):
        return {
            _BOUNDS.get(k, k) if k in _BOUNDS and "type" in node else k: _standard(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_standard(v) for v in node]
    return node


def json_schema(model):
    """The JSON Schema of ``model`` (draft 2020-12)."""
    schema = _standard(model.model_json_schema())
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def field_schema(model, name):
    """The JSON Schema of field ``name`` of ``model`` alone."""
    return json_schema(_single(model, name))["properties"][name]


def check_field(model, name, value):
    """``value`` as field ``name`` of ``model`` stores it; Invalid(name, reason) otherwise."""
    single = _single(model, name)
    try:
        return getattr(single.model_validate({name: value}), name)
    except ValidationError as e:
        key, reason = first_error(single, e, {name: value})
        raise Invalid(key, reason) from None
    except (RecursionError, ValueError, TypeError, OverflowError) as e:
        raise Invalid(
            name, f"expected {expected(model, name)}, got {excerpt(value)} ({type(e).__name__})"
        ) from None


def validate(model, doc, source, prefix="", error=ConfigError):
    """``doc`` (a mapping) as an instance of ``model``; ``error(source, prefix + key, reason)``
    (a ConfigError) naming the first field that does not fit."""
    if not isinstance(doc, dict):
        raise error(
            source,
            prefix.rstrip(".") or None,
            f"expected a mapping of {', '.join(model.model_fields)}, got {show(doc)}",
        )
    try:
        return model.model_validate(doc)
    except ValidationError as e:
        key, reason = first_error(model, e, doc)
        if reason == "unknown key":
            reason += f" (expected one of {', '.join(model.model_fields)})"
        raise error(source, f"{prefix}{key}", reason) from None
    except (RecursionError, ValueError, TypeError, OverflowError) as e:
        raise error(
            source, prefix.rstrip(".") or None, f"unreadable ({type(e).__name__})"
        ) from None


def is_model(tp):
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def finite(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
