"""A package's face without its weight, and import paths that moved.

``exports(__name__, {name: module})`` gives a package names that are looked up in its modules on
first use, so ``import bpnet.data.specs`` loads no NumPy while ``from bpnet.data import
load_dataset`` still works. Paths that moved keep working for one release, with a
DeprecationWarning: a module at an old path is one line, ``moved(__name__, "bpnet.new.module",
...)``; importing it warns, names the new home, and looks every attribute up there.
"""

from __future__ import annotations

import importlib
import sys
import warnings


def moved(old, *new, stacklevel=3):
    """Make the module ``old`` (already in sys.modules) a deprecated alias of the modules
    ``new`` (dotted names, searched in order for each attribute)."""
    module = sys.modules[old]
    warnings.warn(
        f"{old} moved to {' and '.join(new)}; the old path goes in the next release",
        DeprecationWarning,
        stacklevel=stacklevel,
    )

    def __getattr__(name):
        for target in new:
            found = importlib.import_module(target)
            if hasattr(found, name):
                return getattr(found, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    def __dir__():
        return sorted({n for target in new for n in dir(importlib.import_module(target))})

    module.__getattr__, module.__dir__ = __getattr__, __dir__
    module.__moved_to__ = new


def moved_names(package, names):
    """A module ``__getattr__`` for ``package`` whose attributes ``names`` ({name: module}) moved:
    each is looked up there on first use, with a DeprecationWarning."""

    def __getattr__(name):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        warnings.warn(
            f"{package}.{name} moved to {names[name]}.{name}; the old path goes in "
            f"the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(names[name]), name)

    return __getattr__


def exports(package, names):
    """A module ``__getattr__`` and ``__dir__`` for ``package`` whose public ``names`` ({name:
    module}) are imported from their modules on first use."""

    def __getattr__(name):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(names[name]), name)

    def __dir__():
        return sorted(set(names) | set(sys.modules[package].__dict__))

    return __getattr__, __dir__
