"""``bpnet graph net``: real MNIST test digits through networks trained by real `bpnet train`
processes (fully connected, convolutional), drawn by real `bpnet graph` processes. The numbers of
the JSON beside the picture, and those drawn as the SVG's text, are compared with a forward and
backward pass the test runs itself through the network's own ``loss``, ``gradient`` and layers:
loss, probabilities, every node's output and the gradient arriving at it, every parameter's
gradient size, the gradient on the input. Also --target, --image and the refusals."""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from pngs import png_size

from bpnet.apps.graph.draw_net import BAND, COL, GAP, LEFT, RIGHT, TITLE
from bpnet.cli.main import main
from bpnet.nn.evaluate import input_scale
from bpnet.nn.layers import softmax
from bpnet.training.weights import network_from_weights

REPO = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"
CONV = "[{conv: {filters: 6, size: 5}}, relu, {pool: 2}, {affine: 30}, relu, {affine: 10}]"
TRAIN = {
    "mlp": ["--set", "model.hidden=[40,20]", "--iterations", "150"],
    "conv": ["--set", f"model.layers={CONV}", "--set", "train.optimizer=adam"]
    + ["--set", "train.lr=0.002", "--iterations", "100"],
}


@pytest.fixture(autouse=True)
def _matplotlib():
    pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def runs(bpnet_exe, mnist_session_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("graph-net")
    made = {}
    for kind, args in TRAIN.items():
        r = subprocess.run(
            [bpnet_exe, "train", "--config", "quick", *args, "--threads", "1"]
            + ["--out", str(root / kind), "--data-dir", str(mnist_session_dir), "--offline", "-q"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stderr
        made[kind] = root / kind / "weights.npz"
    return made


@pytest.fixture(scope="module")
def test_split(mnist_session_dir):
    from bpnet.data.idx import load_split

    return load_split(mnist_session_dir, "mnist", "test")


def graph_net(exe, data_dir, cwd, *args):
    r = subprocess.run(
        [exe, "graph", "net", *map(str, args), "--data-dir", str(data_dir), "--offline"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def own_pass(net, x, target):
    """The test's own pass through the network's layers: {"loss", "probabilities", "outputs"
    (each layer's), "arriving" (dL/d each layer's output), "dx" (dL/d input), "grads"}."""
    x = x.reshape(1, -1)
    loss = net.loss(x, np.array([target]), train_flg=False)
    outputs, y = [], x.reshape(1, *getattr(net, "input_shape", (net.input_size,)))
    for layer in net.layers.values():
        y = layer.forward(y, False)
        outputs.append(y[0])
    probabilities = softmax(y.reshape(1, -1))[0]
    net.loss(x, np.array([target]), train_flg=False)
    dout, arriving = net.last_layer.backward(1.0), []
    for layer in reversed(list(net.layers.values())):
        arriving.insert(0, dout[0])
        dout = layer.backward(dout)
    grads = {k: g.copy() for k, g in net.gradient(x, np.array([target])).items()}
    return {
        "loss": loss,
        "probabilities": probabilities,
        "outputs": outputs,
        "arriving": arriving,
        "dx": dout[0],
        "grads": grads,
    }


def close(a, b, rel=2e-5):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(float(np.abs(b).max()), 1e-300)
    assert np.allclose(a, b, rtol=rel, atol=rel * scale * 1e-2), np.abs(a - b).max()


def near(shown, value, rel=6e-4):
    """A number drawn to 4 significant digits is ``value``."""
    return math.isclose(float(shown), float(value), rel_tol=rel, abs_tol=1e-300)


def texts(svg):
    return [el.text or "" for el in ET.parse(svg).getroot().iter(f"{SVG}text")]


def check_drawing(svg, numbers, own, net):
    """The SVG shows the test's own numbers: loss, parameter gradient sizes, the gradient norms
    on the arrows and under the pictures; one picture per row per node."""
    words = texts(svg)
    loss = re.search(r"loss (\S+);", next(w for w in words if w.startswith("predicted ")))
    assert near(loss.group(1), own["loss"])
    for key, g in own["grads"].items():
        shape = "×".join(map(str, g.shape))
        at = words.index(f"d{key} {shape}")
        size = re.fullmatch(r"norm (\S+)  max (\S+)", words[at + 1])
        assert near(size.group(1), np.linalg.norm(g)), key
        assert near(size.group(2), np.abs(g).max()), key
    red = [w for w in words if re.fullmatch(r"[-\d.e+]+", w)]  # the arrows' numbers
    norms = [w.removeprefix("norm ") for w in words if re.fullmatch(r"norm \S+", w)]
    for d in [own["dx"], *own["arriving"]]:
        norm = np.linalg.norm(d)
        assert any(near(w, norm) for w in red), norm
        assert any(near(w, norm) for w in norms), norm
    images = list(ET.parse(svg).getroot().iter(f"{SVG}image"))
    assert len(images) == 2 * (1 + len(net.layers))  # X and every layer, forward and back


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_the_drawing_holds_the_networks_own_pass(
    bpnet_exe, mnist_session_dir, runs, test_split, tmp_path, kind
):
    images, labels = test_split
    index = 11
    out = graph_net(
        bpnet_exe, mnist_session_dir, tmp_path, runs[kind], "--index", index, "-o", "net.svg"
    )
    numbers = json.loads((tmp_path / "net.json").read_text())
    net, meta = network_from_weights(runs[kind], dtype=np.float64)
    x = images[index].astype(np.float64) * input_scale(meta["normalize"])
    label = int(labels[index])
    own = own_pass(net, x, label)
    assert numbers["target"] == numbers["label"] == label
    assert numbers["image"] == f"mnist test image {index} (label {label})"
    assert numbers["predicted"] == int(np.argmax(own["probabilities"]))
    assert numbers["loss"] == pytest.approx(own["loss"], rel=6e-6)
    close(numbers["probabilities"], own["probabilities"])
    close(numbers["input"]["image"], x.reshape(28, 28))
    close(numbers["input"]["grad"], own["dx"].reshape(28, 28))
    nodes = numbers["nodes"]
    assert [n["name"] for n in nodes] == [*net.layers, "SoftmaxWithLoss"]
    for node, y, d in zip(nodes, own["outputs"], own["arriving"]):
        if "maps" in node["forward"]:
            assert y.ndim == 3 and len(node["forward"]["maps"]) == node["forward"]["channels"] == 6
            close(node["forward"]["maps"], y)
            close(node["backward"]["maps"], d)
        else:
            close(node["forward"]["values"], y.reshape(-1))
            close(node["backward"]["values"], d.reshape(-1))
        assert node["backward"]["norm"] == pytest.approx(np.linalg.norm(d), rel=6e-6)
        assert node["out_shape"] == list(y.shape)
        for p in node["params"]:
            g = own["grads"][p["key"]]
            assert p["shape"] == list(g.shape)
            assert p["grad_norm"] == pytest.approx(np.linalg.norm(g), rel=6e-6)
            assert p["grad_max_abs"] == pytest.approx(np.abs(g).max(), rel=6e-6)
    assert sorted(p["key"] for n in nodes for p in n["params"]) == sorted(own["grads"])
    check_drawing(tmp_path / "net.svg", numbers, own, net)
    assert f"predicted {numbers['predicted']}" in out and f"target {label}" in out
    assert out.splitlines()[-1] == "wrote net.svg and net.json"


def test_target_image_png_and_json(bpnet_exe, mnist_session_dir, runs, test_split, tmp_path):
    images, labels = test_split
    index, label = 0, int(labels[0])
    target = (label + 3) % 10
    graph_net(
        bpnet_exe,
        mnist_session_dir,
        tmp_path,
        runs["mlp"],
        "--index",
        index,
        "--target",
        target,
        "-o",
        "t.svg",
    )
    numbers = json.loads((tmp_path / "t.json").read_text())
    net, meta = network_from_weights(runs["mlp"], dtype=np.float64)
    x = images[index].astype(np.float64) * input_scale(meta["normalize"])
    own = own_pass(net, x, target)
    assert numbers["target"] == target and numbers["label"] == label
    assert numbers["loss"] == pytest.approx(-math.log(own["probabilities"][target]), rel=6e-6)
    close(numbers["input"]["grad"], own["dx"].reshape(28, 28))
    assert f"dL/dX for class {target}" in texts(tmp_path / "t.svg")
    # a digit image of one's own (here a test digit saved as .npy), as `bpnet predict` reads it
    from bpnet.data.images import load_digit

    np.save(tmp_path / "digit.npy", images[7])
    printed = graph_net(
        bpnet_exe, mnist_session_dir, tmp_path, runs["mlp"], "--image", "digit.npy", "--json"
    )
    numbers = json.loads(printed)
    assert numbers == json.loads((tmp_path / "graph-net.json").read_text())
    x = load_digit(tmp_path / "digit.npy") * input_scale(meta["normalize"])
    own = own_pass(net, x, int(np.argmax(own_pass(net, x, 0)["probabilities"])))
    assert numbers["label"] is None and numbers["image"] == "image digit.npy"
    assert numbers["target"] == numbers["predicted"] == int(np.argmax(own["probabilities"]))
    assert numbers["loss"] == pytest.approx(own["loss"], rel=6e-6)
    columns = 1 + len(net.layers) + 1  # X, the layers, the loss
    width = LEFT + columns * COL + (columns - 1) * GAP + RIGHT
    height = TITLE + BAND  # one band of nodes under the title
    assert png_size(tmp_path / "graph-net.png") == (round(100 * width), round(100 * height))
    assert (tmp_path / "graph-net.png").stat().st_size < 150_000


def run(*args):
    return CliRunner().invoke(main, ["graph", "net", *map(str, args)])


def test_refusals_are_one_line_exit_2(runs, mnist_session_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = ["--data-dir", mnist_session_dir, "--offline"]
    (tmp_path / "digit.png").write_bytes(b"a picture")
    cases = [
        ([runs["mlp"], *data], "expected one of --index N (a test image) or --image FILE"),
        (
            [runs["mlp"], "--index", 1, "--image", "x.npy"],
            "--index and --image: expected one of them, not both",
        ),
        (
            [runs["mlp"], "--index", 10000, *data],
            "--index 10000: the mnist test split has 10000 images, expected 0 to 9999",
        ),
        ([runs["mlp"], "--index", 1, "--target", 10, *data], "target 10: expected a class 0..9"),
        ([runs["mlp"], "--image", "digit.png", "-o", "digit.png"], "would replace the input"),
        ([runs["mlp"], "--index", 1, "-o", "net.pdf"], "net.pdf: expected a .png or .svg"),
        ([tmp_path / "digit.png", "--index", 1], "not a weights file"),
    ]
    for args, needle in cases:
        r = run(*args)
        assert r.exit_code == 2, (args, r.output)
        assert r.output.startswith("bpnet: error: ") and r.output.count("\n") == 1, r.output
        assert needle in r.output, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digit.png"]
    assert (tmp_path / "digit.png").read_bytes() == b"a picture"


NUMBER = re.compile(r"\d+(?:\.\d+)?")


def agree(shown, actual):
    """The same words, and numbers equal to one unit of their last digit (another machine's
    rounding of the same run)."""
    if NUMBER.sub("#", shown) != NUMBER.sub("#", actual):
        return False
    for s, a in zip(NUMBER.findall(shown), NUMBER.findall(actual)):
        unit = 10.0 ** -len(s.split(".")[1]) if "." in s else 0
        if abs(float(s) - float(a)) > 1.0001 * unit:
            return False
    return True


def test_the_pages_network_example_is_as_shown(bpnet_exe, mnist_session_dir, tmp_path):
    """docs/graph.md's `bpnet graph net runs/mnist/weights.npz ...` on the README's main job's
    network prints what the page shows and draws a picture of the committed one's size."""
    page = (REPO / "docs" / "graph.md").read_text()
    block = re.search(r"^```\n(\$ bpnet graph net runs/mnist/.*?)^```$", page, re.S | re.M)
    command, *shown = block.group(1).splitlines()
    r = subprocess.run(
        [bpnet_exe, "train", "--config", "mnist.yaml", "--data-dir", str(mnist_session_dir)]
        + ["--offline", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr
    (tmp_path / "docs").mkdir()
    out = graph_net(bpnet_exe, mnist_session_dir, tmp_path, *shlex.split(command)[4:])
    assert len(out.splitlines()) == len(shown)
    for line, actual in zip(shown, out.splitlines()):
        assert agree(line, actual), (line, actual)
    picture = shlex.split(command)[-1]
    assert png_size(tmp_path / picture) == png_size(REPO / picture)


def test_a_long_chain_goes_on_in_bands_below(tmp_path):
    """From Python: a 784-20-…-20-10 sigmoid network of 15 columns (X, 14 nodes) is drawn in
    two bands of at most PER_BAND columns, every node named, the numbers beside it."""
    from bpnet.apps.graph.draw_net import PER_BAND, draw_net
    from bpnet.apps.graph.trace import network_trace
    from bpnet.nn.network import MultiLayerNet

    net = MultiLayerNet(784, [20] * 6, 10, activation="sigmoid", weight_init_std=0.5, rng=3)
    x = np.random.default_rng(4).random(784)
    trace = network_trace(net, x, target=4)
    about = {"title": "a long chain", "image": "random pixels"}
    picture, numbers = draw_net(trace, tmp_path / "long.svg", about)
    assert 1 + len(trace["nodes"]) == 15 and PER_BAND < 15 <= 2 * PER_BAND
    root = ET.parse(picture).getroot()
    assert root.get("height") == f"{72 * (TITLE + 2 * BAND):g}pt"
    words = texts(picture)
    assert [w for w in words if w in net.layers] == list(net.layers)  # Affine1, Sigmoid1, ...
    assert json.loads(numbers.read_text()) == {**about, **json.loads(json.dumps(trace))}
