"""``bpnet graph`` for the lesson's small graphs (apples, relu, sigmoid, affine, softmax-loss),
run as real processes: the numbers of the JSON beside each picture, and those drawn as the SVG's
text, are what the test computes on its own from the inputs given; a changed input changes them;
bad input is one line and exit status 2, and nothing is written."""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from pngs import png_size

from bpnet.apps.graph.small import affine_graph, apple_graph
from bpnet.cli.main import main

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def _matplotlib():
    pytest.importorskip("matplotlib")


def graph(exe, cwd, *args):
    """``bpnet graph ARGS`` in ``cwd``; its stdout (exit status 0 asserted)."""
    r = subprocess.run(
        [exe, "graph", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return r.stdout


def texts(svg):
    """Every <text> of an SVG, in order (each line of a text is one element)."""
    return [el.text or "" for el in ET.parse(svg).getroot().iter(f"{SVG}text")]


def shown_numbers(svg):
    """The tokens of every text made of numbers only (what an edge's value block holds)."""
    found = []
    for text in texts(svg):
        words = text.split()
        try:
            [float(w) for w in words]
        except ValueError:
            continue
        found += words
    return found


def same_numbers(shown, expected, rel=6e-4):
    """The shown tokens are the expected values, each to the digits shown."""
    shown = sorted(float(s) for s in shown)
    expected = sorted(float(v) for v in expected)
    assert len(shown) == len(expected), (shown, expected)
    for s, e in zip(shown, expected):
        assert math.isclose(s, e, rel_tol=rel, abs_tol=1e-12), (s, e, shown, expected)


def edges(numbers):
    return {e["name"]: e for e in numbers["edges"]}


def flat(values):
    return [] if values is None else np.ravel(values).tolist()


@pytest.mark.parametrize(
    "args,prices",
    [
        ([], (100, 2, 150, 3, 1.1)),
        (["--apples", "4"], (100, 4, 150, 3, 1.1)),
        (["--apple", "120", "--oranges", "5", "--tax", "1.08"], (120, 2, 150, 5, 1.08)),
    ],
)
def test_the_apple_graph_shows_the_lessons_numbers(bpnet_exe, tmp_path, args, prices):
    apple, apple_num, orange, orange_num, tax = prices
    graph(bpnet_exe, tmp_path, "apples", *args, "-o", "apples.svg")
    numbers = json.loads((tmp_path / "apples.json").read_text())
    e = edges(numbers)
    # the lesson's arithmetic, here by hand
    all_price = apple * apple_num + orange * orange_num
    expected = {
        "apple": (apple, tax * apple_num),
        "apple_num": (apple_num, tax * apple),
        "orange": (orange, tax * orange_num),
        "orange_num": (orange_num, tax * orange),
        "apple_price": (apple * apple_num, tax),
        "orange_price": (orange * orange_num, tax),
        "all_price": (all_price, tax),
        "tax": (tax, all_price),
        "price": (all_price * tax, 1),
    }
    assert set(e) == set(expected)
    for name, (forward, backward) in expected.items():
        assert e[name]["forward"] == pytest.approx(forward, rel=1e-12), name
        assert e[name]["backward"] == pytest.approx(backward, rel=1e-12), name
    shown = shown_numbers(tmp_path / "apples.svg")
    same_numbers(shown, [v for pair in expected.values() for v in pair], rel=1e-6)
    if not args:  # the book's figure, to the digit
        for figure in ("715", "2.2", "110", "3.3", "165", "650", "200", "450", "1.1"):
            assert figure in shown, figure
        graph(bpnet_exe, tmp_path, "apples", "-o", "again.svg")  # same numbers, same file
        assert (tmp_path / "again.svg").read_bytes() == (tmp_path / "apples.svg").read_bytes()
    else:
        assert "715" not in shown
    words = texts(tmp_path / "apples.svg")
    assert words.count("×") == 3 and words.count("+") == 1
    assert words.count("MulLayer") == 3 and words.count("AddLayer") == 1
    assert any("derivative of price" in w for w in words)  # the legend says which colour


def test_png_json_and_the_summary(bpnet_exe, tmp_path):
    out = graph(bpnet_exe, tmp_path, "apples")
    assert out.splitlines() == [
        "price 715; d price / d apple 2.2, apple_num 110, orange 3.3, orange_num 165, tax 650",
        "wrote graph-apples.png and graph-apples.json",
    ]
    width, height = png_size(tmp_path / "graph-apples.png")
    assert (width, height) == (1020, 480)
    assert (tmp_path / "graph-apples.png").stat().st_size < 150_000
    printed = graph(bpnet_exe, tmp_path, "apples", "--json", "-o", "again.png")
    assert json.loads(printed) == json.loads((tmp_path / "again.json").read_text())
    assert json.loads(printed) == json.loads((tmp_path / "graph-apples.json").read_text())
    assert json.loads(printed) == apple_graph()  # the library's own dict, as JSON


def test_relu_and_sigmoid_on_given_numbers(bpnet_exe, tmp_path):
    x = np.array([[1.0, -0.5, 0.0], [2.5, -3.0, 0.25]])
    dout = np.array([[0.5, 2.0, 1.0], [-1.0, 3.0, 4.0]])
    x_text, dout_text = "1.0,-0.5,0;2.5,-3,0.25", "0.5,2,1;-1,3,4"
    for kind in ("relu", "sigmoid"):
        graph(bpnet_exe, tmp_path, kind, "--x", x_text, "--dout", dout_text, "-o", f"{kind}.svg")
        e = edges(json.loads((tmp_path / f"{kind}.json").read_text()))
        if kind == "relu":
            y, dx = np.maximum(x, 0), np.where(x > 0, dout, 0.0)
        else:
            y = 1 / (1 + np.exp(-x))
            dx = dout * y * (1 - y)
        assert e["x"]["shape"] == e["y"]["shape"] == [2, 3]
        np.testing.assert_allclose(e["x"]["forward"], x)
        np.testing.assert_allclose(e["y"]["forward"], y, rtol=1e-12)
        np.testing.assert_allclose(e["y"]["backward"], dout)
        np.testing.assert_allclose(e["x"]["backward"], dx, rtol=1e-12)
        same_numbers(
            shown_numbers(tmp_path / f"{kind}.svg"), [*flat(x), *flat(dx), *flat(y)] + flat(dout)
        )
    # without --dout, dL/dy is all ones (L = the sum of y)
    graph(bpnet_exe, tmp_path, "relu", "--x", "3,-2", "-o", "ones.svg")
    e = edges(json.loads((tmp_path / "ones.json").read_text()))
    assert e["y"]["backward"] == [1.0, 1.0] and e["x"]["backward"] == [1.0, 0.0]


def test_affine_with_given_arrays_and_with_a_seed(bpnet_exe, tmp_path):
    x = np.array([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])
    W = np.array([[0.1, -0.2], [0.3, 0.4], [-0.5, 0.6]])
    b = np.array([0.05, -0.1])
    dout = np.array([[1.0, -2.0], [0.5, 3.0]])
    graph(
        bpnet_exe,
        tmp_path,
        "affine",
        "--x",
        "1,2,-1;0.5,0,3",
        "--w",
        "0.1,-0.2;0.3,0.4;-0.5,0.6",
        "--b",
        "0.05,-0.1",
        "--dout",
        "1,-2;0.5,3",
        "-o",
        "affine.svg",
    )
    e = edges(json.loads((tmp_path / "affine.json").read_text()))
    expected = {
        "X": (x, dout @ W.T),
        "W": (W, x.T @ dout),
        "b": (b, dout.sum(axis=0)),
        "Y": (x @ W + b, dout),
    }
    for name, (forward, backward) in expected.items():
        np.testing.assert_allclose(e[name]["forward"], forward, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(e[name]["backward"], backward, rtol=1e-12, atol=1e-15)
        assert e[name]["shape"] == list(forward.shape)
    shown = shown_numbers(tmp_path / "affine.svg")
    same_numbers(shown, [v for pair in expected.values() for a in pair for v in flat(a)])
    words = texts(tmp_path / "affine.svg")
    for label in ("X (2, 3)", "W (3, 2)", "b (2)", "Y (2, 2)"):
        assert label in words
    # a seed draws what is not given, in the sizes asked for; the same seed, the same arrays
    graph(bpnet_exe, tmp_path, "affine", "--shape", "3,4,2", "--seed", "7", "-o", "s.svg")
    numbers = json.loads((tmp_path / "s.json").read_text())
    e = edges(numbers)
    X, W, b = (np.array(e[k]["forward"]) for k in "XWb")
    assert X.shape == (3, 4) and W.shape == (4, 2) and b.shape == (2,)
    np.testing.assert_allclose(e["Y"]["forward"], X @ W + b, rtol=1e-12)
    np.testing.assert_allclose(e["W"]["backward"], X.T @ np.ones((3, 2)), rtol=1e-12)
    assert numbers == json.loads(json.dumps(affine_graph(shape=(3, 4, 2), seed=7)))
    assert numbers != json.loads(json.dumps(affine_graph(shape=(3, 4, 2), seed=8)))


def test_softmax_with_loss(bpnet_exe, tmp_path):
    graph(bpnet_exe, tmp_path, "softmax-loss", "-o", "sm.svg")  # the lesson's a and t
    a = np.array([[0.3, 2.9, 4.0]])
    y = np.exp(a) / np.exp(a).sum()
    e = edges(json.loads((tmp_path / "sm.json").read_text()))
    assert e["L"]["forward"] == pytest.approx(-math.log(y[0, 2]), rel=1e-12)
    np.testing.assert_allclose(e["a"]["backward"], y - [[0, 0, 1]], rtol=1e-12)
    assert e["t"]["forward"] == [2] and e["t"]["backward"] is None
    shown = shown_numbers(tmp_path / "sm.svg")
    assert f"{-math.log(y[0, 2]):.6g}" in shown
    # two rows: the mean loss, and (y - t) / 2
    graph(
        bpnet_exe,
        tmp_path,
        "softmax-loss",
        "--scores",
        "1,2,0;0,0,5",
        "--label",
        "0,2",
        "-o",
        "two.svg",
    )
    a = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 5.0]])
    y = np.exp(a) / np.exp(a).sum(axis=1, keepdims=True)
    e = edges(json.loads((tmp_path / "two.json").read_text()))
    loss = -(math.log(y[0, 0]) + math.log(y[1, 2])) / 2
    assert e["L"]["forward"] == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(e["a"]["backward"], (y - [[1, 0, 0], [0, 0, 1]]) / 2, rtol=1e-12)
    same_numbers(
        shown_numbers(tmp_path / "two.svg"),
        flat(a) + flat(e["a"]["backward"]) + [0, 2] + [loss, 1] + flat(y),
    )


def run(*args):
    return CliRunner().invoke(main, ["graph", *map(str, args)])


@pytest.mark.parametrize(
    "args,needle",
    [
        (["apples", "-o", "{tmp}/a.jpg"], "a.jpg: expected a .png or .svg file name"),
        (["apples", "-o", "{tmp}/no/a.png"], "does not exist"),
        (["apples", "-o", "{tmp}/dir.svg"], "dir.json: a folder, not a regular file"),
        (["relu", "--x", "1,a"], "--x '1,a': expected numbers separated by commas"),
        (["relu", "--x", "1,2;3"], "rows of [1, 2] numbers; expected equal rows"),
        (["relu", "--x", ",".join(["1"] * 11)], "at most 4 rows of 10 numbers"),
        (["relu", "--x", "1,inf"], "expected finite numbers"),
        (["sigmoid", "--x", "1,2", "--dout", "1,2,3"], "dout: shape (3,); expected the output's"),
        (["affine", "--x", "1,2,3", "--w", "1,0;0,1"], "W: shape (2, 2); expected (D, M) = (3,"),
        (["affine", "--shape", "2,3"], "--shape '2,3': expected three sizes N,D,M"),
        (["affine", "--shape", "100000,100000,9"], "shape (N, D, M) = (100000, 100000, 9); a"),
        (["affine", "--x", "1,2,3,4,5"], "draws N and D up to 4 (the rows of X and of W)"),
        (["softmax-loss", "--label", "3"], "label '3': expected classes 0 to 2 (3 scores)"),
        (["softmax-loss", "--label", "1,2"], "expected 1 class number(s), one per row"),
        (["softmax-loss", "--label", "x"], "expected class numbers separated by commas"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "dir.json").mkdir()
    r = run(*(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert r.exit_code == 2, r.output
    assert r.output.startswith("bpnet: error: ") and r.output.count("\n") == 1, r.output
    assert needle in r.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["dir.json", "dir.png"]


def test_a_number_that_is_not_finite_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run("apples", "--tax", "nan")
    assert r.exit_code == 2 and "Invalid value for '--tax': nan is not a finite number" in r.output
    assert list(tmp_path.iterdir()) == []


def test_without_matplotlib_one_line_exit_1_and_good_files_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "graph-apples.png").write_bytes(b"an older picture")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    r = run("apples")
    assert r.exit_code == 1
    assert r.output == (
        "bpnet: error: drawing needs matplotlib, which is not installed: "
        "pip install 'bpnet[plot]'\n"
    )
    assert (tmp_path / "graph-apples.png").read_bytes() == b"an older picture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph-apples.png"]


# --- the page docs/graph.md ---------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
PAGE = (REPO / "docs" / "graph.md").read_text()


def plain_blocks():
    return [m[1] for m in re.findall(r"^```(\w*)\n(.*?)^```$", PAGE, re.S | re.M) if not m[0]]


def shown_examples(prefix):
    """(command words, shown output lines) of each plain block of the page starting `$ PREFIX`."""
    found = []
    for block in plain_blocks():
        lines = block.splitlines()
        if lines and lines[0].startswith(f"$ {prefix}"):
            found.append((shlex.split(lines[0][2:]), lines[1:]))
    return found


def test_the_page_lists_every_option_of_every_drawing():
    synopsis = next(b for b in plain_blocks() if b.startswith("bpnet graph apples"))
    group = main.get_command(None, "graph")
    assert set(group.commands) == {"apples", "relu", "sigmoid", "affine", "softmax-loss", "net"}
    for name, command in group.commands.items():
        line = next(
            part
            for part in re.split(r"\n(?=bpnet graph )", synopsis)
            if name in part.split()[2].split("|")
        )
        options = {o for p in command.params for o in p.opts if o.startswith("-")}
        missing = options - set(re.findall(r"--?[\w-]+", line)) - {"--help", "--debug"}
        assert not missing, (name, sorted(missing))


def test_the_pages_small_examples_print_what_they_show(bpnet_exe, tmp_path):
    """Each `$ bpnet graph ...` example of the page but the network's, run from a folder with a
    docs/ of its own, prints what the page shows and draws a picture of the committed one's size."""
    (tmp_path / "docs").mkdir()
    examples = [e for e in shown_examples("bpnet graph ") if e[0][2] != "net"]
    assert [words[2] for words, _ in examples] == ["apples", "relu", "affine"]
    for words, shown in examples:
        out = graph(bpnet_exe, tmp_path, *words[2:])
        assert out.splitlines() == shown, words
        if "-o" in words:
            picture = words[words.index("-o") + 1]
            assert png_size(tmp_path / picture) == png_size(REPO / picture)
    for picture in (REPO / "docs").glob("graph-*.png"):
        assert picture.stat().st_size < 150_000, picture


def test_the_apple_graphs_numbers_come_from_the_layers(monkeypatch):
    """apple_graph runs MulLayer and AddLayer forward and backward (three and one of them): a
    layer that computed otherwise would change every number downstream of it."""
    from bpnet.apps.graph import small
    from bpnet.nn.layers import AddLayer, MulLayer

    calls = []

    class Mul(MulLayer):
        def forward(self, x, y):
            calls.append(("mul forward", x, y))
            return super().forward(x, y)

        def backward(self, dout):
            calls.append(("mul backward", dout))
            return super().backward(dout)

    class OffByOne(AddLayer):  # a wrong + node: its output one too high
        def forward(self, x, y):
            return super().forward(x, y) + 1

    monkeypatch.setattr(small, "MulLayer", Mul)
    e = edges(small.apple_graph())
    assert [c[0] for c in calls] == ["mul forward"] * 3 + ["mul backward"] * 3
    assert e["price"]["forward"] == pytest.approx(715)
    monkeypatch.setattr(small, "AddLayer", OffByOne)
    e = edges(small.apple_graph())
    assert e["all_price"]["forward"] == 651 and e["tax"]["backward"] == 651
    assert e["price"]["forward"] == pytest.approx(651 * 1.1)
