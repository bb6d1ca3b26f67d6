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
    ``package`` (default: the module's name), which is not installed, and how to install it.
    A package that is installed but cannot load (a dependency of its own missing, a shared
    library that would not open) is said to be so, without advice to install it; one that
    failed to load for want of memory is a MemoryError (bpnet's "out of memory" line)."""
    name = package or module.split(".")[0]
    missing = f"{purpose} needs {name}, which is not installed: {install_hint(extra)}"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and module.split(".")[0] != e.name.split(".")[0]:
            raise error(
                f"{purpose} needs {name}, which is installed but cannot be loaded "
                f"(module {e.name} is missing)"
            ) from None
        raise error(missing) from None
    except ImportError as e:
        text = str(e)
        if text.startswith("No module named"):
            raise error(missing) from None
        if "Cannot allocate memory" in text or "failed to map segment" in text:
            raise MemoryError(text) from None
        first = (text.splitlines() or [type(e).__name__])[0][:120]
        raise error(
            f"{purpose} needs {name}, which is installed but cannot be loaded ({first})"
        ) from None
