"""bpnet export: the ONNX model against bpnet's own network on all 10,000 real MNIST test images,
every layer kind, the CLI, refusals shared with eval, and the missing-extra hint."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hostile import refused, run

from bpnet.nn.evaluate import input_scale, to_input
from bpnet.training.batches import load_data
from bpnet.training.sources import load_config
from bpnet.training.trainer import Trainer
from bpnet.training.weights import network_from_weights

onnx = pytest.importorskip("onnx", reason="pip install 'bpnet[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="pip install onnxruntime (the test extra)")

from bpnet.apps.export import export_onnx  # noqa: E402


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def bpnet_outputs(weights, x):
    """(scores, probabilities) of bpnet's own network for uint8 rows x, as `bpnet eval`."""
    net, meta = network_from_weights(weights)
    scores = net.predict(
        to_input(x, input_scale(meta.get("normalize", True)), net.dtype), train_flg=False
    ).astype(np.float64)
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return scores, e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def mnist_test(mnist_session_dir):
    from bpnet.data.idx import load_split

    x, t = load_split(mnist_session_dir, "mnist", "test")
    return x.reshape(len(x), -1), t


def trained(data_dir, out, *sets):
    """A network trained briefly on real MNIST with the config overrides ``sets``."""
    cfg = load_config(
        "mnist", ["train.iterations=300", "data.validation=0", *sets], {"data_dir": str(data_dir)}
    )
    Trainer(cfg, load_data(cfg), out).run()
    return out / "weights.npz"


NETS = {
    "lesson": [],
    "batchnorm-dropout-sigmoid": [
        "model.hidden=[100,60]",
        "model.activation=sigmoid",
        "model.batchnorm=true",
        "model.dropout=0.2",
        "train.optimizer=adam",
        "train.lr=0.001",
    ],
    "unnormalized-float64": ["data.normalize=false", "train.dtype=float64", "train.lr=0.0005"],
}


@pytest.mark.parametrize("kind", NETS)
def test_the_model_matches_bpnet_on_all_10000_test_images(
    tmp_path, mnist_session_dir, mnist_test, kind
):
    weights = trained(mnist_session_dir, tmp_path / "run", *NETS[kind])
    model = export_onnx(weights, tmp_path / "model.onnx")
    onnx.checker.check_model(onnx.load(tmp_path / "model.onnx"), full_check=True)
    x, t = mnist_test
    scores, probs = session(tmp_path / "model.onnx").run(None, {"pixels": x.astype(np.float32)})
    ref_scores, ref_probs = bpnet_outputs(weights, x)
    assert scores.shape == probs.shape == (10000, 10) and probs.dtype == np.float32
    assert np.array_equal(probs.argmax(axis=1), ref_probs.argmax(axis=1))  # same class, all 10,000
    assert np.abs(probs - ref_probs).max() < 1e-5
    assert (probs.argmax(axis=1) == t).mean() > 0.8  # a network that learned, not a constant
    props = {p.key: p.value for p in model.metadata_props}
    _, meta = network_from_weights(weights)
    assert json.loads(props["sizes"]) == meta["sizes"] and props["dataset"] == "mnist"
    assert json.loads(props["class_labels"]) == [str(c) for c in range(10)]
    from bpnet import __version__

    assert props["bpnet_version"] == __version__ == model.producer_version
    ops = {n.op_type for n in model.graph.node}
    if kind == "batchnorm-dropout-sigmoid":
        assert {"BatchNormalization", "Sigmoid", "Mul"} <= ops and "Relu" not in ops
    if kind == "unnormalized-float64":
        assert "Cast" in ops and "input_scale" not in {i.name for i in model.graph.initializer}


def test_images_input_and_any_batch_size(tmp_path, mnist_session_dir, mnist_test):
    weights = trained(mnist_session_dir, tmp_path / "run")
    export_onnx(weights, tmp_path / "images.onnx", images=True)
    sess = session(tmp_path / "images.onnx")
    shape = sess.get_inputs()[0].shape
    assert shape[1:] == [1, 28, 28] and not isinstance(shape[0], int)  # batch size free
    x, _ = mnist_test
    _, ref = bpnet_outputs(weights, x[:257])
    for n in (1, 7, 257):
        _, probs = sess.run(None, {"pixels": x[:n].reshape(n, 1, 28, 28).astype(np.float32)})
        assert np.abs(probs - ref[:n]).max() < 1e-5


def test_cli_writes_the_model_and_says_what_it_wrote(tmp_path, bpnet_exe, good_weights):
    out = tmp_path / "model.onnx"
    r = subprocess.run(
        [bpnet_exe, "export", str(good_weights), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"wrote {out}: 784-16-10 relu network, ONNX opset 21"
    first = out.read_bytes()
    onnx.checker.check_model(onnx.load(out), full_check=True)
    r = subprocess.run(
        [bpnet_exe, "export", str(good_weights), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and out.read_bytes() == first  # replaced, the same bytes
    assert [p.name for p in tmp_path.iterdir()] == ["good.npz", "model.onnx"]  # no temp left


def test_bad_weights_are_refused_exactly_as_eval_refuses_them(tmp_path, bpnet_exe, not_weights):
    out = tmp_path / "out.onnx"
    for path in not_weights:
        if path.name == "weights.npz":
            continue
        by_eval = refused(run(bpnet_exe, "eval", path, "--offline"), 2, str(path))
        by_export = refused(run(bpnet_exe, "export", path, "-o", out), 2, str(path))
        assert by_export == by_eval
        assert not out.exists()


def test_a_failing_write_leaves_the_old_model(tmp_path, bpnet_exe, good_weights):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"old model")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(good_weights.read_bytes()[:3000])
    r = subprocess.run(
        [bpnet_exe, "export", str(bad), "-o", str(out)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2 and out.read_bytes() == b"old model"
    r = subprocess.run(
        [bpnet_exe, "export", str(good_weights), "-o", str(tmp_path / "missing" / "model.onnx")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode in (1, 2) and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_images_layout_needs_a_square_input(tmp_path):
    from bpnet.apps.export import onnx_model
    from bpnet.errors import InputError

    rng = np.random.default_rng(0)
    arrays = {
        "W1": rng.random((30, 5), np.float32),
        "b1": np.zeros(5, np.float32),
        "W2": rng.random((5, 3), np.float32),
        "b2": np.zeros(3, np.float32),
    }
    meta = {"sizes": [30, 5, 3], "activation": "relu", "normalize": False}
    with pytest.raises(InputError, match="not a square image"):
        onnx_model(arrays, meta, images=True)
    model = onnx_model(arrays, meta)  # rows work for any input size
    probs = session_from(model).run(None, {"pixels": np.ones((2, 30), np.float32)})[1]
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1)


def session_from(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_missing_onnx_names_the_extra(tmp_path, bpnet_exe, good_weights):
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoOnnx:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'onnx' or name.startswith('onnx.'):\n"
        "            raise ImportError('No module named ' + repr(name))\n"
        "sys.meta_path.insert(0, _NoOnnx())\n"
    )
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [bpnet_exe, "export", str(good_weights), "-o", str(tmp_path / "m.onnx")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines() == [
        "bpnet: error: exporting to ONNX needs the onnx package, which is not installed: "
        "pip install 'bpnet[onnx]'"
    ]
    assert not (tmp_path / "m.onnx").exists()
    probe = subprocess.run([sys.executable, "-c", "import onnx"], env=env, capture_output=True)
    assert probe.returncode != 0  # the hiding works, so the test is not vacuous


def test_batchnorm_eps_is_the_networks_layers(tmp_path, monkeypatch):
    """The ONNX BatchNormalization nodes take eps from the network's layers: the layer's own
    default, or whatever eps the layers of the exported network were built with."""
    from bpnet.apps import export
    from bpnet.nn.layers import BatchNormalization
    from bpnet.nn.network import MultiLayerNet
    from bpnet.training.weights import save_weights

    net = MultiLayerNet(30, [6, 5], 3, batchnorm=True, rng=0, dtype=np.float32)
    rng = np.random.default_rng(1)
    for key, value in net.state_arrays().items():
        value[...] = rng.random(value.shape) + (0.5 if key.startswith("running_var") else 0)
    weights = tmp_path / "bn.npz"
    save_weights(
        weights,
        net.state_arrays(),
        {"sizes": net.sizes, "activation": "relu", "batchnorm": True, "normalize": False},
    )

    def epsilons(model):
        return [
            a.f
            for n in model.graph.node
            if n.op_type == "BatchNormalization"
            for a in n.attribute
            if a.name == "epsilon"
        ]

    default = export_onnx(weights, tmp_path / "default.onnx")
    assert epsilons(default) == [pytest.approx(BatchNormalization.EPS, rel=1e-6)] * 2
    built = network_from_weights

    def with_eps(path):  # a network whose batch-norm layers were built with other eps
        net, meta = built(path)
        for layer, eps in zip(net.batchnorm_layers, (0.25, 0.5)):
            layer.eps = eps
        return net, meta

    monkeypatch.setattr(export, "network_from_weights", with_eps)
    model = export_onnx(weights, tmp_path / "eps.onnx")
    assert epsilons(model) == [0.25, 0.5]
    x = rng.random((4, 30)).astype(np.float32)
    net, _ = with_eps(weights)
    scores = session(tmp_path / "eps.onnx").run(None, {"pixels": x})[0]
    np.testing.assert_allclose(scores, net.predict(x, train_flg=False), rtol=1e-5, atol=1e-5)
    assert not np.allclose(scores, built(weights)[0].predict(x, train_flg=False), atol=1e-3)
