"""``python -m bpnet``: the same as the ``bpnet`` command."""
from bpnet.cli.main import main

if __name__ == "__main__":
    main()
