"""README.md stays true: its main job's commands run as printed, every ```python block runs as
printed (in order, each in its own process, from one temporary working directory, with
BPNET_DATA_DIR on a copy of real MNIST, after the main job, as a reader would), a block followed by
a plain ``` block prints exactly that, and every `bpnet ...` line it shows names commands and
options that exist."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bpnet.cli.main import main

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n(?:\n?```\n(.*?)^```$)?", re.S | re.M)


def blocks(language):
    """[(text, output shown right after it or None)] of the README's fenced blocks."""
    return [(m.group(2), m.group(3)) for m in FENCE.finditer(README) if m.group(1) == language]


def main_job():
    """The bpnet commands of the README's main job line (after the install)."""
    line = README.split("# install and run the main job\n", 1)[1].split("\n", 1)[0]
    return [
        shlex.split(part.strip())[1:]
        for part in line.split("&&")
        if part.strip().startswith(".venv/bin/bpnet ")
    ]


@pytest.fixture(scope="module")
def reader(mnist_session_dir, tmp_path_factory, bpnet_exe):
    """A working directory holding the README's pictures and digits (as a clone would) in which
    the README's main job has run, and the environment it ran in: `bpnet` on PATH, MNIST in a
    temporary copy named by BPNET_DATA_DIR."""
    cwd = tmp_path_factory.mktemp("reader")
    data = cwd.parent / (cwd.name + "-data")
    shutil.copytree(mnist_session_dir, data)
    shutil.copytree(REPO / "docs", cwd / "docs")
    env = {
        **os.environ,
        "BPNET_DATA_DIR": str(data),
        "PATH": f"{Path(bpnet_exe).parent}{os.pathsep}{os.environ['PATH']}",
    }
    outputs = []
    for args in main_job():
        p = subprocess.run(
            [bpnet_exe, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        outputs.append((args, p.stdout))
    return cwd, env, outputs


def test_the_main_job_matches_the_readme(reader):
    """`bpnet train --config mnist.yaml` ends as the README shows, up to the last digit."""
    _, _, outputs = reader
    assert [a[0] for a, _ in outputs] == ["download", "train", "eval"]
    done = outputs[1][1].splitlines()[-1]
    shown = re.search(r"^(done in .*)$", README, re.M).group(1)
    acc, shown_acc = (
        float(re.search(r"test accuracy (\d\.\d+)", d).group(1)) for d in (done, shown)
    )
    assert abs(acc - shown_acc) <= 0.0005, (done, shown)
    assert done.split(" s: ", 1)[1].replace(f"{acc:.4f}", "") == shown.split(" s: ", 1)[1].replace(
        f"{shown_acc:.4f}", ""
    )
    assert f"accuracy {acc:.4f}" in outputs[2][1]


PYTHON = blocks("python")


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_blocks_run_as_printed(reader, index):
    cwd, env, _ = reader
    code, shown = PYTHON[index]
    p = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 0, f"README python block {index + 1}:\n{code}\n{p.stderr}"
    if shown is not None:
        assert p.stdout == shown, f"README python block {index + 1} printed:\n{p.stdout}"


def test_the_readme_has_the_lessons_first_graph():
    code, shown = next(b for b in PYTHON if "MulLayer()" in b[0])
    assert (
        "price 715" in shown
        and "dapple 2.2  dapple_num 110  dorange 3.3  dorange_num 165  dtax 650" in shown
    )


def test_predict_example_runs_as_typed(reader):
    """The example's command, through a shell (it uses a glob), gives the labels shown."""
    cwd, env, _ = reader
    m = re.search(r"^\$ (bpnet predict .*)\n((?:docs/.*\n)+)", README, re.M)
    p = subprocess.run(
        ["bash", "-c", m.group(1)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr
    top = [line.split()[:2] for line in p.stdout.splitlines()]
    assert top == [line.split()[:2] for line in m.group(2).splitlines()]


def shown_commands():
    """Every `bpnet ...` command the README shows: lines of ```sh blocks (each part of a
    `&&` chain) and `$ bpnet ...` lines of plain blocks, as argument lists after `bpnet`."""
    found = []
    for text, _ in blocks("sh"):
        for line in text.splitlines():
            for part in line.split("#")[0].split("&&"):
                words = shlex.split(part)
                if words and Path(words[0]).name == "bpnet":
                    found.append(words[1:])
    for text, _ in blocks(""):
        found += [
            shlex.split(line[2:])[1:] for line in text.splitlines() if line.startswith("$ bpnet ")
        ]
    return found


def test_every_shown_command_names_options_that_exist():
    """Parsed with --help added: click rejects an unknown command or option, or an option
    without its value, before --help answers (values themselves are not run here)."""
    commands = shown_commands()
    assert len(commands) >= 10 and ["train", "--config", "mnist.yaml"] in commands
    for args in commands:
        r = CliRunner().invoke(main, [*args, "--help"], prog_name="bpnet")
        assert r.exit_code == 0, (args, r.output)
        assert r.output.startswith(f"Usage: bpnet {args[0]}" if args else "Usage: bpnet")


def test_synopses_list_every_option():
    """Each command's synopsis block (`bpnet CMD [--opt ...]`) shows all of its options."""
    for name in ("train", "eval"):
        synopsis = next(t for t, _ in blocks("") if t.startswith(f"bpnet {name} "))
        command = main.get_command(None, name)
        options = {o for p in command.params for o in p.opts if o.startswith("--")}
        missing = options - set(re.findall(r"--[\w-]+", synopsis)) - {"--help", "--debug"}
        assert not missing, (name, sorted(missing))
