"""README.md and every page of docs/ stay true.

- The README's main job runs as printed (with BPNET_DATA_DIR on a copy of real MNIST), and every
  `bpnet train`/`bpnet eval` output of it shown on any page has its figures: the same words, the
  same numbers to the digits printed (one unit of the last decimal allowed, for another machine's
  rounding), times aside.
- Every ```python block of a page runs as printed, in order, each in a fresh process, from a
  temporary working directory of that page's own (holding `docs/` and the main job's
  `runs/mnist/`, as a clone would after the main job); a block followed by a plain ``` block
  prints exactly that.
- Every `bpnet ...` command shown names commands and options that exist, and every synopsis block
  lists all of its command's options.
- The cheap examples whose output is shown are run and compared (predict, gradcheck, the sweep
  list, the memory refusal, the batch-norm and dropout tables, mnist-fast's seeds), and the
  tables made from code (config keys, shipped configs) are the code's.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bpnet.cli.main import main

REPO = Path(__file__).resolve().parents[1]
PAGES = {
    p.relative_to(REPO).as_posix(): p.read_text()
    for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
}
README = PAGES["README.md"]
MAIN_JOB_LINE = (
    "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/bpnet download && "
    ".venv/bin/bpnet train --config mnist.yaml && .venv/bin/bpnet eval runs/mnist/weights.npz"
)
TEST_LINE = (
    "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"
)


@dataclass
class Block:
    page: str
    language: str
    text: str
    output: str | None  # the plain block right after it, if any (for a python block)


def _blocks():
    found = []
    for page, text in PAGES.items():
        fences = list(re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.S | re.M))
        taken = set()
        for i, m in enumerate(fences):
            if i in taken:
                continue
            output = None
            if m.group(1) == "python" and i + 1 < len(fences):
                nxt = fences[i + 1]
                if nxt.group(1) == "" and not text[m.end() : nxt.start()].strip():
                    output = nxt.group(2)
                    taken.add(i + 1)
            found.append(Block(page, m.group(1), m.group(2), output))
    return found


BLOCKS = _blocks()


def blocks(language, page=None):
    return [b for b in BLOCKS if b.language == language and page in (None, b.page)]


# --- comparing figures ----------------------------------------------------------------------

NUM = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")
TIME = re.compile(r"\b\d+(?:\.\d+)? s\b")


def agree(shown, actual):
    """Same words and numbers, times (`N s`) aside; a number with decimals may be one unit of its
    last decimal off (another machine's rounding), whole numbers must be equal."""
    shown, actual = (" ".join(TIME.sub("<t> s", s).split()) for s in (shown, actual))
    if NUM.sub("#", shown) != NUM.sub("#", actual):
        return False
    for s, a in zip(NUM.findall(shown), NUM.findall(actual)):
        if "." not in s:
            if s != a:
                return False
        elif abs(float(s) - float(a)) > 1.0001 * 10.0 ** -len(s.split(".")[1]):
            return False
    return True


def assert_shown_in(shown_lines, actual_text, what):
    """Each shown line (but `...`) agrees with a line of the actual output, in order."""
    actual = actual_text.splitlines()
    at = 0
    for line in shown_lines:
        if line.strip() in ("...", ""):
            continue
        for j in range(at, len(actual)):
            if agree(line, actual[j]):
                at = j + 1
                break
        else:
            pytest.fail(
                f"{what}: shown line not in the output:\n{line}\n--- output:\n{actual_text}"
            )


def shown_outputs(command):
    """(page, shown output lines) of every plain block that starts with `$ COMMAND`."""
    found = []
    for b in blocks(""):
        lines = b.text.splitlines()
        if lines and lines[0] == f"$ {command}":
            found.append((b.page, lines[1:]))
    return found


# --- the main job and the working directories -----------------------------------------------


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
    """A working directory holding the pictures and digits of docs/ (as a clone would) in which
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


@pytest.fixture(scope="module")
def workdirs(reader, tmp_path_factory):
    """{page: working directory}: each page's blocks run in a folder of its own holding docs/
    and the main job's runs/mnist/, so nothing a block writes lands in the repository or meets
    another page's files."""
    cwd, _, _ = reader
    made = {}

    def get(page):
        if page not in made:
            d = tmp_path_factory.mktemp("page-" + Path(page).stem)
            shutil.copytree(REPO / "docs", d / "docs")
            shutil.copytree(cwd / "runs" / "mnist", d / "runs" / "mnist")
            made[page] = d
        return made[page]

    return get


def test_the_first_two_commands_are_the_ones_ci_and_the_tests_read():
    """.ci/run runs the line after `# install and run the tests`; these tests run the line after
    `# install and run the main job`."""
    assert f"# install and run the main job\n{MAIN_JOB_LINE}\n" in README
    assert f"# install and run the tests\n{TEST_LINE}\n" in README
    ci = (REPO / ".ci" / "run").read_text()
    assert "awk '/^# install and run the tests$/ {getline; print; exit}' README.md" in ci


def test_the_main_job_matches_the_docs(reader):
    """`bpnet train --config mnist.yaml` and `bpnet eval` print what the pages show, and the
    README's figures of them (accuracy, files written) are the run's."""
    cwd, _, outputs = reader
    assert [a[0] for a, _ in outputs] == ["download", "train", "eval"]
    train, evaluation = outputs[1][1], outputs[2][1]
    shown_train = shown_outputs("bpnet train --config mnist.yaml")
    shown_eval = shown_outputs("bpnet eval runs/mnist/weights.npz")
    assert shown_train and shown_eval
    for page, lines in shown_train:
        assert_shown_in(lines, train, f"{page}: bpnet train --config mnist.yaml")
    for page, lines in shown_eval:
        assert_shown_in(lines, evaluation, f"{page}: bpnet eval runs/mnist/weights.npz")
    # the README's own words: the done line, eval's accuracy, the files and their sizes
    done = re.search(r"`(done in [^`]*)`", README).group(1)
    actual_done = next(line for line in train.splitlines() if line.startswith("done in "))
    assert agree(done, actual_done.split(";")[0]), (done, actual_done)
    acc = re.search(r"`(accuracy \d\.\d+ \(\d+/10000\))`", README).group(1)
    assert_shown_in([acc], evaluation.split("   mean loss")[0], "README: eval's accuracy")
    para = README[README.index("It writes `runs/mnist/`:") :].split("\n- ", 1)[0]
    named = re.findall(r"`(\w+\.(?:npz|csv|yaml))`(?: \((\d+) KB\))?", para)
    files = {p.name: p.stat().st_size for p in (cwd / "runs" / "mnist").iterdir()}
    assert sorted(n for n, _ in named) == sorted(files)
    for name, kb in named:
        if kb:
            assert abs(files[name] / 1000 - int(kb)) <= 0.05 * int(kb), (name, files[name])
    acc_pct = float(re.search(r"test accuracy (\d\.\d+)", done).group(1)) * 100
    row = next(
        r for r in PAGES["docs/configuration.md"].splitlines() if r.startswith("| `mnist` |")
    )
    assert agree(re.search(r"(\d+\.\d+)%", row).group(1), f"{acc_pct:.2f}"), row


PYTHON = blocks("python")


@pytest.mark.parametrize(
    "block", PYTHON, ids=[f"{b.page}-{blocks('python', b.page).index(b) + 1}" for b in PYTHON]
)
def test_python_blocks_run_as_printed(reader, workdirs, block):
    _, env, _ = reader
    p = subprocess.run(
        [sys.executable, "-c", block.text],
        cwd=workdirs(block.page),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, f"{block.page} python block:\n{block.text}\n{p.stderr}"
    if block.output is not None:
        assert p.stdout == block.output, f"{block.page} python block printed:\n{p.stdout}"


def test_the_docs_have_the_lessons_first_graph():
    block = next(b for b in PYTHON if "MulLayer()" in b.text)
    assert (
        "price 715" in block.output
        and "dapple 2.2  dapple_num 110  dorange 3.3  dorange_num 165  dtax 650" in block.output
    )


# --- commands shown ---------------------------------------------------------------------------


def bpnet_args(words):
    """The arguments after `bpnet` of a command's words (leading VAR=value assignments and a
    path to the script allowed), or None when it is not a bpnet command."""
    while words and re.match(r"^[A-Z_]+=", words[0]):
        words = words[1:]
    if words and Path(words[0]).name == "bpnet":
        return words[1:]
    return None


def shown_commands():
    """(page, args) of every `bpnet ...` command shown: lines of ```sh blocks (each part of a
    `&&` chain) and `$ ...bpnet ...` lines of plain blocks."""
    found = []
    for b in blocks("sh"):
        for line in b.text.replace("\\\n", " ").splitlines():  # continued lines joined
            for part in line.split("#")[0].split("&&"):
                args = bpnet_args(shlex.split(part))
                if args is not None:
                    found.append((b.page, args))
    for b in blocks(""):
        for line in b.text.splitlines():
            if line.startswith("$ "):
                args = bpnet_args(shlex.split(line[2:]))
                if args is not None:
                    found.append((b.page, args))
    return found


def test_every_shown_command_names_options_that_exist():
    """Parsed with --help added: click rejects an unknown command or option, or an option
    without its value, before --help answers (values themselves are not run here)."""
    commands = shown_commands()
    assert len(commands) >= 30 and ("README.md", ["train", "--config", "mnist.yaml"]) in commands
    assert {a[0] for _, a in commands if a} >= set(main.commands)
    for page, args in commands:
        r = CliRunner().invoke(main, [*args, "--help"], prog_name="bpnet")
        assert r.exit_code == 0, (page, args, r.output)
        if {"--list", "--list-configs", "--schema"} & set(args):
            continue  # eager options answer before --help does
        assert r.output.startswith(f"Usage: bpnet {args[0]}" if args else "Usage: bpnet")


def synopses():
    return {
        b.text.split()[1]: (b.page, b.text)
        for b in blocks("")
        if re.match(r"bpnet \w+ ", b.text) and b.text.split()[1] in main.commands
    }


def test_every_command_has_a_synopsis_listing_every_option():
    """Each command's synopsis block (`bpnet CMD [--opt ...]`) shows all of its options."""
    found = synopses()
    assert set(found) == set(main.commands)
    for name, (page, synopsis) in found.items():
        command = main.get_command(None, name)
        options = {o for p in command.params for o in p.opts if o.startswith("--")}
        missing = options - set(re.findall(r"--[\w-]+", synopsis)) - {"--help", "--debug"}
        assert not missing, (page, name, sorted(missing))


def test_paths_the_docs_name_exist():
    for page, text in PAGES.items():
        for path in re.findall(r"`((?:tests|benchmarks|configs|nn|data|training)/[\w/.-]+)`", text):
            assert (REPO / path.split("::")[0]).exists(), (page, path)
        if page == "README.md":
            for target in re.findall(r"\]\(((?:docs/)[^)#\s]*)", text):
                assert (REPO / target).exists(), (page, target)


# --- shown outputs of cheap examples ---------------------------------------------------------


def test_predict_examples_run_as_typed(reader, workdirs):
    """Each `$ bpnet predict ...` example, through a shell (it may use a glob), prints the labels
    and percentages shown."""
    _, env, _ = reader
    examples = [
        (page, lines, b.text.splitlines()[0][2:])
        for b in blocks("")
        for page, lines in [(b.page, b.text.splitlines()[1:])]
        if b.text.startswith("$ bpnet predict ")
    ]
    assert len(examples) >= 2
    for page, lines, command in examples:
        p = subprocess.run(
            ["bash", "-c", command],
            cwd=workdirs(page),
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert p.returncode == 0, p.stderr
        assert len(p.stdout.splitlines()) == len(lines), (page, p.stdout)
        assert_shown_in(lines, p.stdout, f"{page}: {command}")


def test_gradcheck_output_is_as_shown(bpnet_exe, tmp_path):
    """Names, shapes, coordinates, `tiny`, results and the count as shown; the two error
    columns (rounding of this machine) within a factor of 10 of the printed ones."""
    [(page, lines)] = shown_outputs("bpnet gradcheck")
    p = subprocess.run(
        [bpnet_exe, "gradcheck", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    actual = p.stdout.splitlines()
    assert actual[0] == lines[0] and actual[2] == lines[2]
    assert actual[1].split("(no MNIST in")[0] == lines[1].split("(no MNIST in")[0]
    rows = {" ".join(line.split()[:-6]): line.split()[-6:] for line in actual[3:-1]}
    for line in lines[3:-1]:
        if line == "...":
            continue
        name, shown = " ".join(line.split()[:-6]), line.split()[-6:]
        got = rows[name]
        assert got[:2] == shown[:2] and got[4:] == shown[4:], (line, got)
        for s, g in zip(shown[2:4], got[2:4]):
            assert float(s) / 10 <= float(g) <= float(s) * 10, (line, got)
    assert agree(lines[-1], actual[-1]), actual[-1]


def test_sweep_list_is_as_shown(bpnet_exe):
    [(page, lines)] = shown_outputs("bpnet sweep --list")
    p = subprocess.run([bpnet_exe, "sweep", "--list"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.splitlines() == lines, p.stdout


def test_the_memory_refusal_is_as_shown(bpnet_exe, tmp_path):
    [(page, lines)] = [
        (page, lines)
        for page, lines in [(b.page, b.text.splitlines()) for b in blocks("")]
        if lines[0].startswith("$ BPNET_MAX_MEMORY=")
    ]
    words = shlex.split(lines[0][2:])
    env = dict(os.environ, **dict(w.split("=", 1) for w in words[:1]))
    p = subprocess.run(
        [bpnet_exe, *words[2:]], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert p.returncode == 2 and p.stderr.splitlines() == lines[1:], p.stderr


def test_the_sweep_file_shown_is_the_shipped_one():
    shown = yaml.safe_load(
        next(b.text for b in blocks("yaml", "docs/sweep.md") if b.text.startswith("config:"))
    )
    shipped = yaml.safe_load((REPO / "configs" / "sweeps" / "book-ch6.yaml").read_text())
    assert shown.pop("pruner") == "none" and shown == shipped


def test_the_config_pages_tables_are_the_codes():
    """The key table is the one made from the config models, and the shipped configs' table
    quotes `--list-configs`; what it says of mnist-fast is what the config file's comment says."""
    from bpnet.training import list_configs
    from bpnet.training.config import key_table

    page = PAGES["docs/configuration.md"]
    assert key_table() in page
    rows = {
        m.group(1): m.group(2) for m in re.finditer(r"^\| `([\w-]+)` \| ([^|]+) \|", page, re.M)
    }
    for name, description in list_configs():
        assert rows.get(name, "").strip() == description, name
    for name, _ in list_configs():  # the file's own figures (two decimals) begin with the row's
        line = next(r for r in page.splitlines() if r.startswith(f"| `{name}` |"))
        shown = re.findall(r"\d+\.\d\d%", line.split("|")[3])
        comment = re.findall(r"\d+\.\d\d%", (REPO / "configs" / f"{name}.yaml").read_text())
        if comment:
            assert comment[: len(shown)] == shown, (name, shown, comment)


# --- measured tables, re-measured -----------------------------------------------------------


def section(page, heading):
    text = PAGES[page]
    start = text.index(f"\n### {heading}\n")
    end = text.find("\n##", start + 1)
    return text[start : end if end > 0 else len(text)]


def table(text):
    rows = [
        line.strip("|").split("|")
        for line in text.splitlines()
        if line.startswith("| ") and not set(line) <= set("|- ")
    ]
    return [[c.strip() for c in r] for r in rows[1:]]  # the header dropped


def train_metrics(bpnet_exe, args, data_dir, out):
    p = subprocess.run(
        [bpnet_exe, "train", *args, "--quiet", "--offline", "--out", str(out)]
        + ["--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr
    with open(out / "metrics.csv") as f:
        return list(csv.DictReader(f))


def with_set(args, key, value):
    return [a if not a.startswith(f"{key}=") else f"{key}={value}" for a in args]


def test_the_batch_norm_table_is_measured(bpnet_exe, mnist_session_dir, tmp_path):
    text = section("docs/training.md", "A deep net with and without batch norm")
    [command] = [a for p, a in shown_commands() if "model.batchnorm=true" in a]
    rows = [r for r in table(text) if r[0] in ("std 0.01", "He")]
    assert len(rows) == 4
    for init, bn, *figures in rows:
        args = with_set(command[1:], "model.weight_init", {"std 0.01": "0.01", "He": "he"}[init])
        args = with_set(args, "model.batchnorm", {"no": "false", "yes": "true"}[bn])
        rows_csv = train_metrics(bpnet_exe, args, mnist_session_dir, tmp_path / f"{init}-{bn}")
        got = [r["test_acc"] for r in rows_csv] + [rows_csv[-1]["train_loss"]]
        for shown, value in zip(figures, got):
            assert agree(shown, f"{float(value):.{len(shown.split('.')[1])}f}"), (init, bn, got)


def test_the_dropout_table_is_measured(bpnet_exe, mnist_session_dir, tmp_path):
    text = section("docs/training.md", "Dropout against overfitting")
    [command] = [a for p, a in shown_commands() if "model.dropout=0.2" in a]
    rows = table(text)
    assert [r[0] for r in rows] == ["0", "0.2", "0.5"]
    for ratio, train_acc, test_acc in rows:
        last = train_metrics(
            bpnet_exe,
            with_set(command[1:], "model.dropout", ratio),
            mnist_session_dir,
            tmp_path / ratio,
        )[-1]
        for shown, value in ((train_acc, last["train_acc"]), (test_acc, last["test_acc"])):
            assert agree(shown, f"{float(value):.4f}"), (ratio, last)


def test_mnist_fast_reaches_the_accuracies_shown(bpnet_exe, mnist_session_dir, tmp_path):
    line = next(
        r for r in PAGES["docs/configuration.md"].splitlines() if r.startswith("| `mnist-fast` |")
    )
    shown = re.findall(r"(\d+\.\d+)%", line.split("|")[3])
    assert len(shown) == 3  # seeds 0, 1, 2
    for seed, pct in enumerate(shown):
        last = train_metrics(
            bpnet_exe,
            ["--config", "mnist-fast", "--set", f"train.seed={seed}"],
            mnist_session_dir,
            tmp_path / str(seed),
        )[-1]
        assert agree(pct, f"{float(last['test_acc']) * 100:.2f}"), (seed, last)
