"""``python -m bpnet`` and the ``bpnet`` console script (``bpnet.__main__:entry``)."""
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


if __name__ == "__main__":
    entry()
