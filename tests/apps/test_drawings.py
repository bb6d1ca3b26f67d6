"""`bpnet predict` on drawings people make: real MNIST test digits thinned to their centre lines
and drawn again with thin, medium and thick pens on canvases of several sizes come out of
preprocessing like MNIST digits (full intensity, MNIST's stroke widths and ink) and get their
labels from a network trained on MNIST."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from drawings import redraw
from mnist import train_mnist_net

from bpnet.cli.main import main
from bpnet.data.idx import load_split
from bpnet.data.images import load_digit, stroke_width

DIGITS = slice(1000, 1024)  # 24 test digits, every class among them


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


# (canvas pixels, pen pixels): the digit's 20-pixel box fills 70% of the canvas, so a pen of
# about canvas/12 draws MNIST's median stroke (2.5 pixels); thin pens draw a tenth of that
PENS = {
    "thin": [(600, 4), (1200, 6), (300, 3), (120, 1)],
    "medium": [(600, 12), (300, 8), (120, 3)],
    "thick": [(600, 40), (300, 20), (120, 8)],
}


@pytest.mark.parametrize("pen_kind,canvas,pen", [(k, c, p) for k, v in PENS.items() for c, p in v])
def test_drawings_come_out_like_mnist_and_get_their_labels(
    mnist_net, tmp_path, pen_kind, canvas, pen
):
    Image = pytest.importorskip("PIL.Image")
    weights, digits, labels, widths, ink = mnist_net
    files = []
    for i, d in enumerate(digits):
        files.append(tmp_path / f"{pen_kind}{i}.png")
        Image.fromarray(redraw(d, canvas, pen, dark_on_light=i % 2 == 0)).save(files[-1])
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
