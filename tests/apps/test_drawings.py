"""`bpnet predict` on drawings people make: real MNIST test digits thinned to their centre lines
and drawn again with thin, medium and thick pens on canvases of several sizes come out of
preprocessing like MNIST digits (full intensity, MNIST's stroke widths and ink) and get their
labels from a network trained on MNIST."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from drawings import COMBINATIONS, DIGITS, draw_files, redraw
from mnist import train_mnist_net

from bpnet.cli.main import main
from bpnet.data.idx import load_split
from bpnet.data.images import load_digit, stroke_width

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mnist_net(mnist_session_dir, tmp_path_factory):
    """(weights path, test digits (24, 28, 28) uint8, their labels, MNIST's stroke width and ink
    ranges): 784-100-10 trained for 2000 momentum steps on real MNIST (about 97%)."""
    path = tmp_path_factory.mktemp("net") / "weights.npz"
    train_mnist_net(mnist_session_dir, 100, 2000, path)
    xt, tt = load_split(mnist_session_dir, "mnist", "test")
    sample = xt[::10].astype(np.float64)  # 1000 test digits: MNIST's own ranges, 1st to 99th
    widths = np.percentile([stroke_width(d) for d in sample], [1, 99])
    ink = np.percentile(sample.sum(axis=(1, 2)) / 255, [1, 99])
    return path, xt[DIGITS], tt[DIGITS].astype(int), widths, ink


@pytest.mark.parametrize("pen_kind,canvas,pen", COMBINATIONS)
def test_drawings_come_out_like_mnist_and_get_their_labels(
    mnist_net, tmp_path, pen_kind, canvas, pen
):
    pytest.importorskip("PIL.Image")
    weights, digits, labels, widths, ink = mnist_net
    files = draw_files(digits, tmp_path, pen_kind, canvas, pen)
    seen = np.stack([load_digit(f) for f in files])
    assert np.allclose(seen.max(axis=(1, 2)), 255)  # full intensity, like MNIST
    width = np.median([stroke_width(s) for s in seen])
    mass = np.median(seen.sum(axis=(1, 2)) / 255)
    assert widths[0] <= width <= widths[1], (width, widths)
    assert ink[0] <= mass <= ink[1], (mass, ink)
    r = CliRunner().invoke(main, ["predict", "--json", str(weights), *map(str, files)])
    assert r.exit_code == 0, r.output
    predicted = [doc["top"][0]["label"] for doc in json.loads(r.output)]
    right = int(np.sum(np.array(predicted) == labels))
    assert right >= 21, f"{right}/24 right ({pen_kind} pen {pen} px on {canvas} px)"


def test_a_thin_stroke_is_thickened_to_mnist_width_and_a_bold_one_left_alone(tmp_path):
    """A 4 px pen on a 600 px canvas: its stroke would come out a fifth of a pixel wide."""
    pytest.importorskip("PIL.Image")
    from bpnet.data.images import MNIST_STROKE, mnist_preprocess

    seven = np.zeros((28, 28), np.uint8)
    seven[5, 7:21] = seven[6, 7:21] = 255  # the bar of a 7 …
    for y in range(7, 25):  # … and its stem
        seven[y, 20 - (y - 7) // 2 : 22 - (y - 7) // 2] = 255
    thin = mnist_preprocess(redraw(seven, 600, 4).astype(np.float64))
    assert thin.max() == pytest.approx(255)
    assert abs(stroke_width(thin) - MNIST_STROKE) < 0.6
    bold = mnist_preprocess(redraw(seven, 600, 36).astype(np.float64))
    plain = mnist_preprocess(255.0 - redraw(seven, 600, 36))  # dark ink or light: the same digit
    assert np.abs(bold - plain).max() < 1e-6 and stroke_width(bold) > 1.5


def docs_table():
    """{column: [figures]} of the drawn-digits table in docs/training.md."""
    text = (ROOT / "docs" / "training.md").read_text()
    text = text[text.index("### Drawn digits: the convolutional network and the lesson's") :]
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[1:]]
    return {name: [row[j] for row in rows] for j, name in enumerate(header)}


def test_the_docs_drawn_digits_table_is_what_the_benchmark_prints(
    bpnet_exe, mnist_session_dir, mnist_net, tmp_path
):
    """benchmarks/drawn_digits.py, run as a real process on a real `bpnet train --config
    mnist` run (the README's main job): one row per combination, each count the number of the
    24 redrawn digits whose top class, computed here from the same drawings, is their label;
    and its table is the docs' mnist column (mnist-cnn's, 17 minutes of training, is measured
    there with its date)."""
    from bpnet.nn.evaluate import top_classes
    from bpnet.training.weights import network_from_weights

    pytest.importorskip("PIL.Image")
    _, digits, labels, _, _ = mnist_net
    run = tmp_path / "mnist"
    r = subprocess.run(
        [bpnet_exe, "train", "--config", "mnist", "--out", str(run), "-q", "--offline"]
        + ["--data-dir", str(mnist_session_dir)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "drawn_digits.py"), str(run)]
        + ["--data-dir", str(mnist_session_dir)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    table = [line for line in r.stdout.splitlines() if line.startswith("| ")]
    rows = {}
    for line in table:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] in ("thin", "medium", "thick"):
            rows[(cells[0], int(cells[1]), int(cells[2]))] = int(cells[3])
    assert list(rows) == COMBINATIONS
    net, _ = network_from_weights(run / "weights.npz")
    for kind, canvas, pen in COMBINATIONS:
        seen = np.stack([load_digit(f) for f in draw_files(digits, tmp_path, kind, canvas, pen)])
        top = [c[0]["label"] for c in top_classes(net, seen, 1 / 255, 1)]
        assert rows[(kind, canvas, pen)] == int(np.sum(np.array(top) == labels))
    assert f"| all | | | **{sum(rows.values())}/240** |" in r.stdout
    shown = docs_table()
    printed = [[c.strip() for c in line.strip("|").split("|")] for line in table[1:]]
    assert [row[0] for row in printed] == shown["pen"]
    assert [row[3] for row in printed] == shown["mnist"]
