"""`bpnet --help` and `bpnet COMMAND --help` answer without loading NumPy (or the other heavy
modules a command needs only when it runs): commands are loaded lazily, and each command's module
imports what its work needs inside the command. Timing is measured by benchmarks/startup.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bpnet.cli.main import COMMANDS

HEAVY = (
    "numpy",
    "yaml",
    "pydantic",
    "requests",
    "optuna",
    "matplotlib",
    "PIL",
    "onnx",
    "tqdm",
    "threadpoolctl",
    "filelock",
)


def modules_after(args):
    """The modules loaded after the command line ``bpnet ARGS`` ran in a fresh interpreter,
    and what it printed."""
    code = (
        "import json, sys\nfrom bpnet.cli.main import main\n"
        f"try:\n    main({args!r}, prog_name='bpnet')\nexcept SystemExit as e:\n"
        "    code = e.code\n"
        "sys.stderr.write(json.dumps([code, sorted(sys.modules)]))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    code, modules = json.loads(p.stderr.strip().splitlines()[-1])
    return code, set(modules), p.stdout


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"]] + [[c, "--help"] for c in COMMANDS],
    ids=lambda a: " ".join(a),
)
def test_help_loads_no_numpy(args):
    code, modules, out = modules_after(args)
    assert code == 0 and out.startswith(("Usage: bpnet", "bpnet, version")), out
    loaded = sorted(h for h in HEAVY if h in modules)
    assert not loaded, f"bpnet {' '.join(args)} loads {loaded}"


def test_the_group_lists_every_command_in_the_users_order():
    _, _, out = modules_after(["--help"])
    listed = [line.split()[0] for line in out.split("Commands:", 1)[1].splitlines() if line.strip()]
    assert listed == list(COMMANDS)
    assert listed[:3] == ["download", "train", "eval"]


def test_a_command_still_runs_and_loads_what_it_needs():
    code, modules, out = modules_after(["gradcheck", "--coords", "5", "--json"])
    assert code in (0, None) and json.loads(out)["passed"] is True
    assert "numpy" in modules
