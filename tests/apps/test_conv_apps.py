"""A convolutional network's weights in the applications: `bpnet serve` answers what `bpnet
predict --json` prints for the same real MNIST digits, and both are right on most of them; a
real server process on a loopback port and real predict processes."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from mnist import write_test_digits
from servers import Server

from bpnet.training.batches import load_data
from bpnet.training.sources import load_config
from bpnet.training.trainer import Trainer

Image = pytest.importorskip("PIL.Image", reason="pip install 'bpnet[image]'")

LAYERS = "[{conv: {filters: 6, size: 5}}, relu, {pool: 2}, {affine: 40}, relu, {affine: 10}]"


@pytest.fixture(scope="module")
def conv_weights(tmp_path_factory, mnist_session_dir):
    out = tmp_path_factory.mktemp("conv") / "run"
    cfg = load_config(
        "mnist",
        [
            f"model.layers={LAYERS}",
            "model.weight_init=he",
            "train.optimizer=adam",
            "train.lr=0.002",
            "train.iterations=300",
            "data.validation=0",
        ],
        {"data_dir": str(mnist_session_dir)},
    )
    Trainer(cfg, load_data(cfg), out).run()
    return out / "weights.npz"


@pytest.fixture(scope="module")
def digits(mnist_session_dir, tmp_path_factory):
    paths, labels, _ = write_test_digits(mnist_session_dir, tmp_path_factory.mktemp("digits"), 10)
    return paths, labels


def test_serve_answers_as_predict_for_a_convolutional_network(bpnet_exe, conv_weights, digits):
    paths, labels = digits
    r = subprocess.run(
        [bpnet_exe, "predict", str(conv_weights), *map(str, paths), "--json", "--top", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    predicted = json.loads(r.stdout)
    srv = Server(bpnet_exe, conv_weights)
    try:
        right = 0
        for path, label, want in zip(paths, labels, predicted):
            status, _, body = srv.post(path.read_bytes(), "image/png")
            assert status == 200, body
            got = json.loads(body)
            assert [t["label"] for t in got["top"]] == [t["label"] for t in want["top"]]
            assert np.allclose(
                [t["probability"] for t in got["top"]],
                [t["probability"] for t in want["top"]],
                atol=1e-6,
            )
            right += got["top"][0]["label"] == label
        assert right >= 8, right  # 300 Adam steps of a small conv net: a real network
    finally:
        srv.stop()
