"""Optional extras: a heavy dependency (matplotlib, Pillow, onnx, Optuna, a database driver) is
imported inside the function that needs it, through :func:`require`, and its absence is one line
saying what needs it and the command that installs it (exit status 1)."""

from __future__ import annotations

import importlib

from bpnet.errors import BpnetError


class ExtraMissing(BpnetError):
    """An optional dependency is not installed (exit status 1)."""


def install_hint(extra):
    """The command that installs the optional extra ``extra``."""
    return f"pip install 'bpnet[{extra}]'"


def require(module, extra, purpose, package=None, error=ExtraMissing):
    """The imported ``module``, or ``error`` (an ExtraMissing) saying that ``purpose`` needs
    ``package`` (default: the module's name), which is not installed, and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise error(
            f"{purpose} needs {package or module.split('.')[0]}, which is not "
            f"installed: {install_hint(extra)}"
        ) from None
