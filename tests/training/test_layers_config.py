"""``model.layers``: a config describing a convolutional network. Each layer's mistakes named by
its index, shapes that do not fit named with the shapes, no hidden-layer key beside it, the
canonical form round-tripped; weights files of such networks written, read back and refused
when hostile before anything is allocated; gradcheck, train and eval through real processes."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from bpnet.errors import ConfigError
from bpnet.training.config import build_network, dump_config
from bpnet.training.sources import load_config
from bpnet.training.weights import (
    WeightsError,
    network_from_weights,
    read_meta,
    save_weights,
)

TINY = """model:
  layers:
    - conv: {filters: 4, size: 5}
    - relu
    - pool: 2
    - affine: 20
    - relu
    - affine: 10
  weight_init: he
data: {subset: 1200, validation: 200}
train: {epochs: 3, optimizer: adam, lr: 0.002, batch_size: 50}
"""


def write(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path, text):
    with pytest.raises(ConfigError) as e:
        load_config(str(write(tmp_path, text)))
    message = str(e.value)
    assert "\n" not in message
    return message.split(": ", 1)[1]


@pytest.mark.parametrize(
    "layers,expected",
    [
        ("[{conv: {filters: 4}}]", "model.layers[0]: conv needs size"),
        ("[relu, {convv: 3}]", "model.layers[1]: unknown layer convv"),
        (
            "[{conv: {filters: 4, size: 3, strid: 2}}]",
            "model.layers[0]: conv has no option 'strid'",
        ),
        (
            "[{pool: {size: 0}}]",
            "model.layers[0]: pool size: expected an integer from 1 to 100000, got 0",
        ),
        ("[{dropout: 1.5}]", "model.layers[0]: dropout ratio: expected a number in [0, 1)"),
        ("[]", "model.layers: expected a non-empty list of layers, got []"),
        ("[[relu]]", "model.layers[0]: [relu] is no layer"),
        (
            "[{conv: {filters: 4, size: 5}}, {pool: 2}, {conv: {filters: 4, size: 5}}, "
            "{pool: 2}, {pool: 2}, {pool: 2}, {pool: 2}]",
            "model.layers[6]: pool 2x2 over 1x1 maps (pad 0): the pool is larger",
        ),
        (
            "[{affine: 10}, {conv: {filters: 2, size: 3}}]",
            "model.layers[1]: conv over 10 features: needs maps (C, H, W)",
        ),
        (
            "[{conv: {filters: 2, size: 29}}]",
            "model.layers[0]: conv 29x29 over 28x28 maps (pad 0): the filter is larger",
        ),
    ],
)
def test_a_layer_that_is_wrong_is_named_by_its_index(tmp_path, layers, expected):
    whole = layers if layers == "[]" else layers[:-1] + ", {affine: 10}]"  # the output affine
    assert error_of(tmp_path, f"model:\n  layers: {whole}\n") == expected


@pytest.mark.parametrize(
    "layers,expected",
    [
        (
            "[{conv: {filters: 4, size: 5}}, relu]",
            "model.layers: expected the network's layers to end with the affine that gives the "
            "classes' scores ({affine: 10} for MNIST), found no affine",
        ),
        (
            "[{affine: 10}, relu]",
            "model.layers[1]: only one dropout may follow the output affine (layers[0]), got relu",
        ),
        (
            "[{affine: 10}, {dropout: 0.5}, {dropout: 0.5}]",
            "model.layers[2]: only one dropout may follow the output affine (layers[0]), got "
            "dropout",
        ),
        (
            "[{affine: 100}, {dropout: 0.5}]",
            "model.layers[0]: the last affine gives the scores of the 10 classes: expected "
            "{affine: 10}, got {affine: 100}",
        ),
    ],
)
def test_the_network_ends_with_the_affine_that_gives_the_classes(tmp_path, layers, expected):
    assert error_of(tmp_path, f"model:\n  layers: {layers}\n") == expected


@pytest.mark.parametrize(
    "key,value", [("hidden", "[100]"), ("batchnorm", "true"), ("dropout", "0.5")]
)
def test_no_hidden_layer_key_beside_layers(tmp_path, key, value):
    message = error_of(tmp_path, f"model:\n  layers: [{{affine: 10}}]\n  {key}: {value}\n")
    assert message.startswith(f"model.{key}: not used with model.layers, which describes")


def test_the_canonical_form_round_trips_and_short_forms_are_the_long_ones(tmp_path):
    short = load_config(str(write(tmp_path, TINY)))
    assert short["model"]["layers"] == [
        {"conv": {"filters": 4, "size": 5, "stride": 1, "pad": 0}},
        "relu",
        {"pool": {"size": 2, "stride": 2, "pad": 0}},
        {"affine": {"units": 20}},
        "relu",
        {"affine": {"units": 10}},
    ]
    again = load_config(str(write(tmp_path, dump_config(short), "again.yaml")))
    assert again["model"] == short["model"]


def test_the_shipped_mnist_cnn_is_the_books_simple_convnet():
    cfg = load_config("mnist-cnn")
    net = build_network(cfg, rng=0)
    assert net.describe() == "1x28x28 > conv30 5x5 > relu > pool 2x2 > affine100 > relu > affine10"
    assert list(net.layers) == ["Conv1", "Relu1", "Pool1", "Affine1", "Relu2", "Affine2"]
    train = cfg["train"]
    assert (train["optimizer"], train["lr"], train["batch_size"], train["epochs"]) == (
        "adam",
        0.001,
        100,
        20,
    )
    assert cfg["model"]["weight_init"] == 0.01 and net.dtype == np.float32


def conv_weights(tmp_path, layers=None, **meta):
    cfg = load_config(str(write(tmp_path, TINY)))
    net = build_network(cfg, rng=0)
    full = {
        "sizes": [784, 10],
        "activation": "relu",
        "dataset": "mnist",
        "normalize": True,
        "dtype": "float32",
        "layers": cfg["model"]["layers"] if layers is None else layers,
        "input_shape": [1, 28, 28],
        **meta,
    }
    path = tmp_path / "conv.npz"
    save_weights(path, net.state_arrays(), full)
    return path, net


def test_conv_weights_read_back_as_the_same_network(tmp_path):
    path, net = conv_weights(tmp_path)
    back, meta = network_from_weights(path)
    assert back.describe() == net.describe() and meta["input_shape"] == [1, 28, 28]
    x = np.random.default_rng(0).random((3, 784), dtype=np.float32)
    net.training = False
    assert np.array_equal(back.predict(x), net.predict(x))


@pytest.mark.parametrize(
    "layers,meta,expected",
    [
        (
            [{"conv": {"filters": 100000, "size": 1}}, {"affine": {"units": 10}}],
            {},
            "meta.layers: one image makes 78,400,000 values in its layers, more than",
        ),
        (
            [{"pool": {"size": 50}}, {"affine": {"units": 10}}],
            {},
            "meta.layers[0]: pool 50x50 over 28x28 maps (pad 0): the pool is larger",
        ),
        ([{"conv": {"filters": 4}}], {}, "meta.layers[0]: conv needs size"),
        ([{"conv": {"filters": 4, "size": 3}}], {}, "meta.layers: expected the network's layers"),
        (None, {"sizes": [784, 20, 10]}, "meta.sizes: expected [784, 10] for a network of these"),
        (
            [{"conv": {"filters": 5, "size": 5}}, "relu", {"affine": {"units": 10}}],
            {},
            "arrays do not match its layers (3 in meta.layers)",
        ),
    ],
)
def test_hostile_conv_meta_is_refused_before_anything_is_allocated(
    tmp_path, layers, meta, expected
):
    path, _ = conv_weights(tmp_path, layers, **meta)
    with pytest.raises(WeightsError) as e:
        network_from_weights(path)
    assert expected in str(e.value), str(e.value)


def test_meta_of_conv_weights_is_read_without_the_arrays(tmp_path):
    path, _ = conv_weights(tmp_path)
    assert read_meta(path)["layers"][0] == {
        "conv": {"filters": 4, "size": 5, "stride": 1, "pad": 0}
    }


def run(bpnet_exe, args, cwd):
    return subprocess.run([bpnet_exe, *map(str, args)], cwd=cwd, capture_output=True, text=True)


def test_gradcheck_train_and_eval_a_conv_config_on_real_mnist(
    bpnet_exe, tmp_path, mnist_session_dir
):
    cfg = write(tmp_path, TINY, "tiny-cnn.yaml")
    data = ["--data-dir", mnist_session_dir]
    r = run(bpnet_exe, ["gradcheck", "--config", cfg, *data, "--json"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    names = [c["name"] for c in report["checks"]]
    assert "Convolution(stride 2, pad 2) dW" in names and "net W1" in names
    assert all(c["passed"] for c in report["checks"])
    r = run(bpnet_exe, ["train", "--config", cfg, *data, "--out", tmp_path / "run"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "1x28x28 > conv4 5x5 > relu > pool 2x2 > affine20 > relu > affine10" in r.stdout
    r = run(bpnet_exe, ["eval", tmp_path / "run", *data, "--json"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["accuracy"] > 0.7  # 3 epochs of 1000 images (chance: 0.1)
