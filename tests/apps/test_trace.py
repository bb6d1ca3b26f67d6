"""``network_trace``: one real MNIST digit through networks trained by real `bpnet train` processes
(a fully connected one with batch normalization and dropout, a convolutional one), compared with
what the test computes on its own: the network's scores and softmax, centred differences of the
loss (for the input's pixels, every node's output and every parameter), and the network's own
backward pass. Also: the trace is bounded, JSON, and leaves the network as it was."""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pytest

from bpnet.apps.graph.trace import MAX_CHANNELS, MAX_NUMBERS, network_trace
from bpnet.errors import InputError
from bpnet.nn.convnet import ConvNet
from bpnet.nn.evaluate import input_scale, to_input
from bpnet.nn.gradient import numerical_gradient, numerical_partials
from bpnet.nn.layers import SoftmaxWithLoss, softmax
from bpnet.training.weights import network_from_weights

MLP = ["--set", "model.hidden=[40,20]", "--set", "model.batchnorm=true"]
MLP += ["--set", "model.dropout=0.2", "--iterations", "200"]
CONV = "[{conv: {filters: 6, size: 5}}, relu, {pool: 2}, {affine: 30}, relu, {affine: 10}]"
CONV_ARGS = ["--set", f"model.layers={CONV}", "--set", "train.optimizer=adam"]
CONV_ARGS += ["--set", "train.lr=0.002", "--set", "train.dtype=float32", "--iterations", "150"]


def train(bpnet_exe, data_dir, out, args):
    r = subprocess.run(
        [bpnet_exe, "train", "--config", "quick", *args, "--threads", "1", "--out", str(out)]
        + ["--data-dir", str(data_dir), "--offline", "-q"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    return out / "weights.npz"


@pytest.fixture(scope="module")
def runs(bpnet_exe, mnist_session_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("trace")
    return {
        "mlp": train(bpnet_exe, mnist_session_dir, root / "mlp", MLP),
        "conv": train(bpnet_exe, mnist_session_dir, root / "conv", CONV_ARGS),
    }


@pytest.fixture(scope="module")
def digits(mnist_session_dir):
    from bpnet.data.idx import load_split

    x, t = load_split(mnist_session_dir, "mnist", "test")
    return x[:20], t[:20]


def image(meta, digit):
    """The digit as the network takes it (``bpnet predict``'s scaling), float64, (784,)."""
    return to_input(digit[None], input_scale(meta["normalize"]), np.float64)[0]


def loss_of(net, x, target):
    """The network's own inference-mode scores of x, and their cross-entropy against target."""
    scores = net.predict(x[None], train_flg=False).astype(np.float64)
    return -math.log(softmax(scores)[0, target]), scores[0]


def rest_loss(layers, target):
    """The loss as a function of what reaches ``layers`` (the rest of the chain)."""

    def f(y):
        for layer in layers:
            y = layer.forward(y, False)
        return SoftmaxWithLoss().forward(y.reshape(1, -1), np.array([target]))

    return f


def close(a, b, rel=2e-5, abs_=1e-7):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    assert np.allclose(a, b, rtol=rel, atol=abs_), np.max(np.abs(a - b))


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_probabilities_loss_and_input_gradient_are_the_networks(runs, digits, kind):
    net, meta = network_from_weights(runs[kind], dtype=np.float64)
    xs, labels = digits
    for i in (0, 1, 2):
        x = image(meta, xs[i])
        for target in (None, int(labels[i]), (int(labels[i]) + 3) % 10):
            tr = network_trace(net, x, target)
            probs = softmax(net.predict(x[None], train_flg=False))[0]
            predicted = int(np.argmax(probs))
            assert tr["predicted"] == predicted
            assert tr["target"] == (predicted if target is None else target)
            loss, _ = loss_of(net, x, tr["target"])
            close(tr["probabilities"], probs)
            close(tr["loss"], loss)
            close(tr["nodes"][-1]["forward"]["values"], [loss])
            grad = np.array(tr["input"]["grad"]).reshape(-1)
            assert np.array(tr["input"]["image"]).shape == (28, 28)
            close(np.array(tr["input"]["image"]).reshape(-1), x)
            # centred differences at the inked pixels the gradient is largest on, and a few more
            inked = np.flatnonzero(x > 0.3)
            picked = [*inked[np.argsort(-np.abs(grad[inked]))[:5]], *inked[:: len(inked) // 4]]
            f = lambda v, t=tr["target"]: loss_of(net, v, t)[0]  # noqa: E731
            numeric = numerical_partials(f, x.copy(), picked, 1e-6)
            close(grad[picked], numeric, rel=1e-4, abs_=1e-8)
            close(tr["input"]["grad_norm"], np.linalg.norm(grad), rel=1e-5)
        assert tr["predicted"] == labels[i]  # a trained network reads these digits


def test_every_node_and_parameter_of_a_net_with_batchnorm_and_dropout(runs, digits):
    net, meta = network_from_weights(runs["mlp"], dtype=np.float64)
    assert net.batchnorm and net.dropout == 0.2
    x, target = image(meta, digits[0][3]), 4
    tr = network_trace(net, x, target)
    names = list(net.layers)
    assert [n["name"] for n in tr["nodes"]] == [*names, "SoftmaxWithLoss"]
    assert [n["kind"] for n in tr["nodes"][:5]] == [
        "affine",
        "batchnorm",
        "relu",
        "dropout",
        "affine",
    ]
    # forward: the network's own layers, one after another in inference mode
    layers, y = list(net.layers.values()), x[None]
    for i, (layer, node) in enumerate(zip(layers, tr["nodes"])):
        assert node["in_shape"] == list(y.shape[1:])
        y = layer.forward(y, False)
        assert node["out_shape"] == list(y.shape[1:])
        close(node["forward"]["values"], y[0])
        # backward: dL/d this node's output, by centred differences through the layers after it
        numeric = numerical_gradient(rest_loss(layers[i + 1 :], target), y.copy(), 1e-6)
        close(node["backward"]["values"], numeric[0], rel=1e-4, abs_=1e-8)
        close(node["backward"]["norm"], np.linalg.norm(numeric), rel=1e-4)
    # every parameter's gradient, by centred differences of the inference-mode loss
    seen = {p["key"]: p for n in tr["nodes"] for p in n["params"]}
    assert sorted(seen) == sorted(net.params)
    for key, p in net.params.items():
        numeric = numerical_gradient(lambda _: loss_of(net, x, target)[0], p, 1e-6)
        assert seen[key]["shape"] == list(p.shape)
        assert seen[key]["name"] == key.rstrip("0123456789")
        close(seen[key]["grad_norm"], np.linalg.norm(numeric), rel=1e-4)
        close(seen[key]["grad_max_abs"], np.abs(numeric).max(), rel=1e-4)


def test_a_convolutional_net_against_its_own_backward_pass(runs, digits):
    net, meta = network_from_weights(runs["conv"], dtype=np.float64)
    x, target = image(meta, digits[0][5]), int(digits[1][5])
    tr = network_trace(net, x, target)
    assert [n["kind"] for n in tr["nodes"]] == [
        "conv",
        "relu",
        "pool",
        "affine",
        "relu",
        "affine",
        "softmax-loss",
    ]
    assert tr["input"]["shape"] == [1, 28, 28]
    # the network's forward and backward, layer by layer, as its backward() chains them
    layers, outs, y = list(net.layers.values()), [], x.reshape(1, 1, 28, 28)
    for layer in layers:
        y = layer.forward(y, False)
        outs.append(y)
    last = SoftmaxWithLoss()
    close(tr["loss"], last.forward(y, np.array([target])))
    dout, arriving = last.backward(1.0), []
    for layer in reversed(layers):
        arriving.append(dout)
        dout = layer.backward(dout)
    arriving.reverse()
    close(np.array(tr["input"]["grad"]), dout.reshape(28, 28), abs_=1e-9)
    for node, out, d in zip(tr["nodes"], outs, arriving):
        assert node["out_shape"] == list(out.shape[1:])
        close(node["backward"]["norm"], np.linalg.norm(d), rel=1e-5)
        if out.ndim == 4:  # maps: every channel here (fewer than MAX_CHANNELS)
            assert node["forward"]["channels"] == out.shape[1] <= MAX_CHANNELS
            close(node["forward"]["maps"], out[0])
            close(node["backward"]["maps"], d[0], abs_=1e-9)
        else:
            close(node["forward"]["values"], out[0])
            close(node["backward"]["values"], d[0], abs_=1e-9)
    # parameter gradients: the network's own, for this one image (its loss in inference mode)
    net.loss(x[None], np.array([target]), train_flg=False)
    grads = net.backward()
    seen = {p["key"]: p for n in tr["nodes"] for p in n["params"]}
    assert sorted(seen) == sorted(net.params)
    for key, g in grads.items():
        close(seen[key]["grad_norm"], np.linalg.norm(g), rel=1e-5)
        close(seen[key]["grad_max_abs"], np.abs(g).max(), rel=1e-5)


def test_float32_weights_are_traced_in_float64_and_the_network_is_left_alone(runs, digits):
    net32, meta = network_from_weights(runs["conv"])  # float32, as bpnet serve loads it
    net64, _ = network_from_weights(runs["conv"], dtype=np.float64)
    assert net32.dtype == np.float32
    x = image(meta, digits[0][7])
    state = {k: a.copy() for k, a in net32.state_arrays().items()}
    grads = net32.flat_grads.copy()
    before = net32.predict(x[None].astype(np.float32))
    assert network_trace(net32, x) == network_trace(net64, x)
    assert all(np.array_equal(state[k], a) for k, a in net32.state_arrays().items())
    assert np.array_equal(grads, net32.flat_grads)
    assert np.array_equal(before, net32.predict(x[None].astype(np.float32)))
    assert not net32.training


def numbers(doc):
    if isinstance(doc, list):
        return sum(numbers(v) for v in doc)
    if isinstance(doc, dict):
        return sum(numbers(v) for v in doc.values())
    return 1


def test_the_trace_is_bounded_whatever_the_network():
    deep = [("conv", {"filters": 32, "size": 3, "pad": 1}), ("relu", {})] * 12
    net = ConvNet((1, 28, 28), [*deep, ("pool", {"size": 2}), ("affine", {"units": 5000})], 10)
    x = np.random.default_rng(0).random(784)
    tr = network_trace(net, x)
    text = json.dumps(tr, allow_nan=False)  # plain JSON
    arrays = sum(
        numbers(n[part].get(k, []))
        for n in tr["nodes"]
        for part in ("forward", "backward")
        for k in ("maps", "values")
    )
    arrays += numbers(tr["input"]["image"]) + numbers(tr["input"]["grad"])
    assert arrays <= MAX_NUMBERS
    assert len(text) < 20 * MAX_NUMBERS
    convs = [n for n in tr["nodes"] if n["kind"] == "conv"]
    assert all(n["forward"]["channels"] == 32 for n in convs)
    assert all(0 < len(n["forward"]["maps"]) <= MAX_CHANNELS for n in convs)
    wide = next(n for n in tr["nodes"] if n["name"] == "Affine1")
    assert wide["forward"]["size"] == 5000 and 0 < len(wide["forward"]["values"]) < 5000
    # the norms are of the whole gradient, not of what is shown
    shown = np.array(convs[0]["backward"]["maps"])
    assert convs[0]["backward"]["norm"] >= np.linalg.norm(shown)


def test_bad_images_and_targets_are_refused_in_one_line(runs, digits):
    net, meta = network_from_weights(runs["mlp"])
    x = image(meta, digits[0][0])
    with pytest.raises(InputError, match=r"image of 783 values .*the network takes 784"):
        network_trace(net, x[:-1])
    for bad in (10, -1, 2.0, True, "3"):
        with pytest.raises(InputError, match=r"target .*expected a class 0\.\.9"):
            network_trace(net, x, bad)
    assert network_trace(net, x.reshape(1, 28, 28), np.int64(3))["target"] == 3
