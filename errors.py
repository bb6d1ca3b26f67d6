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
    """A value of a config, sweep file, override, option or file meta that does not fit (exit
    status 2), as fields: ``source`` (a file, ``--set KEY=VALUE``, ``command line``), ``key``
    (dotted; None when the whole source is at fault) and ``reason``. It prints as one line,
    ``SOURCE: KEY: REASON``."""

    def __init__(self, source, key=None, reason=""):
        self.source, self.key = str(source), key
        self.reason = " ".join(str(reason).splitlines())
        super().__init__(": ".join(part for part in (self.source, key, self.reason) if part))
