"""The one way bpnet reads YAML: ``yaml.safe_load`` with nesting bounded before anything is built,
huge integer literals kept unconverted, and every failure a one-line ``ConfigError``; and the one
way it writes YAML (lists on one line) and shows a value in a message."""

from __future__ import annotations

import math

import yaml

from bpnet.base.limits import MAX_DEPTH
from bpnet.base.text import clip
from bpnet.errors import ConfigError

MAX_INT_DIGITS = 30  # longer integer literals are not converted (Python refuses > 4300 digits)


class BigInt:
    """An integer literal of more than MAX_INT_DIGITS digits, kept as its digit count."""

    def __init__(self, text):
        self.digits = sum(c.isdigit() for c in text)

    def __repr__(self):
        return f"an integer of {self.digits} digits"


class _PyLoader(yaml.SafeLoader):
    """yaml.safe_load's loader, except that huge integer literals stay unconverted."""


# libyaml's parser (in PyYAML's wheels) where present: the same documents and events, several
# times faster than the pure-Python one, which a long list needs (a sweep's choice of 40,000
# values: 1.7 s to read in pure Python, 0.2 s with libyaml). A document it refuses is read again
# by the pure-Python parser, whose messages are the ones bpnet shows.
class _CLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """The same, on libyaml."""


def _construct_int(loader, node):
    text = loader.construct_scalar(node)
    if len(text) > MAX_INT_DIGITS:
        return BigInt(text)
    return yaml.SafeLoader.construct_yaml_int(loader, node)


for _cls in (_PyLoader, _CLoader):
    _cls.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _bounded_load(text, source, key, loader):
    """``yaml.load(text)`` with nesting bounded by MAX_DEPTH, checked on the event stream before
    anything is built."""
    depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                where = f"line {event.start_mark.line + 1}: " if event.start_mark else ""
                raise ConfigError(
                    source,
                    key,
                    f"{where}nested more than {MAX_DEPTH} levels "
                    f"deep; a config has sections of keys, 2 levels",
                )
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return yaml.load(text, Loader=loader)


def load_yaml(text, source, key=None):
    """``yaml.safe_load(text)`` with nesting bounded by MAX_DEPTH (checked on the event
    stream, before anything is built) and any failure a one-line ConfigError of ``source``;
    with ``key``, ``text`` is that key's one value (``--set KEY=VALUE``) rather than a file."""
    try:
        try:
            return _bounded_load(text, source, key, _CLoader)
        except yaml.YAMLError:
            if _CLoader.__mro__[1] is yaml.SafeLoader:
                raise
            return _bounded_load(text, source, key, _PyLoader)  # for its message
    except ConfigError:
        raise
    except yaml.YAMLError as e:
        if key is not None:
            raise ConfigError(
                source,
                key,
                f"expected a YAML value, got {clip(repr(text), 60)} "
                f"({clip(getattr(e, 'problem', None) or e)})",
            ) from None
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = ", ".join(filter(None, (getattr(e, "context", None), getattr(e, "problem", None))))
        raise ConfigError(source, None, f"{where}invalid YAML ({clip(what or str(e))})") from None
    except (RecursionError, ValueError, OverflowError) as e:
        raise ConfigError(source, key, f"unreadable YAML ({clip(str(e))})") from None


def show(value):
    """A value as YAML writes it, on one short line."""
    if isinstance(value, (list, dict)) and len(value) > 60:
        return f"a {'list' if isinstance(value, list) else 'mapping'} of {len(value)} entries"
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=math.inf).strip()
    except (yaml.YAMLError, RecursionError, ValueError):  # a BigInt, a deeply nested value
        return (
            clip(repr(value), 60)
            if isinstance(value, BigInt)
            else f"a {type(value).__name__} nested too deeply to show"
        )
    text = text[: -len("\n...")] if text.endswith("\n...") else text  # a scalar's document end
    return clip(text, 60)


class _Dumper(yaml.SafeDumper):
    """Safe YAML with lists on one line (``hidden: [800]``)."""


_Dumper.add_representer(
    list, lambda dumper, v: dumper.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


def dump(doc):
    """YAML text of ``doc`` (mappings in their order, lists on one line)."""
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
