"""``python -m bpnet`` and the ``bpnet`` console script (``bpnet.__main__:entry``)."""

import signal
import sys


def entry():
    """Run the ``bpnet`` command group. Ctrl-C at any moment, even while NumPy and the
    commands are still loading, ends in one line and exit status 130, as it does in a command."""
    try:
        from bpnet.cli.main import main

        main()
    except KeyboardInterrupt:
        sys.stderr.write("bpnet: error: interrupted\n")
        sys.exit(130)
    finally:
        # The command is over: a Ctrl-C while Python shuts down ends the process at once
        # (exit status 130 in the shell) instead of printing an "Exception ignored" traceback.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass


if __name__ == "__main__":
    entry()
