"""Errors the library raises for the command layer to report in one line.

``exit_code`` follows the command-line convention: 2 for bad usage, config or
input; 1 for failures at run time.
"""


class BpnetError(Exception):
    """A failure at run time (exit status 1)."""

    exit_code = 1


class InputError(BpnetError, ValueError):
    """Bad usage, config or input file (exit status 2)."""

    exit_code = 2


class ConfigError(InputError):
    """A config file, sweep file, override or option that does not fit its schema (exit status 2)."""

    def __init__(self, message):
        super().__init__(" ".join(str(message).splitlines()))
