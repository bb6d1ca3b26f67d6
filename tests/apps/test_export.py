"""bpnet export: the ONNX model against bpnet's own network on all 10,000 real MNIST test images,
every layer kind, the CLI, refusals shared with eval, and the missing-extra hint; the file written
piece by piece (byte for byte the serialized model), never over the weights, beside them without
-o, at about the weights' own memory, and one line under any memory limit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

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
    x = to_input(x, input_scale(meta.get("normalize", True)), net.dtype)
    scores = np.concatenate(  # 1000 at a time: a convolution's im2col rows of 10,000 are large
        [net.predict(x[i : i + 1000], train_flg=False) for i in range(0, len(x), 1000)]
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
    "convolutional": [
        "model.layers=[{conv: {filters: 6, size: 5}}, relu, {pool: 2}, {affine: 30}, relu, "
        "{affine: 10}]",
        "model.weight_init=he",
        "train.optimizer=adam",
        "train.lr=0.002",
    ],
    "convolutional-every-layer": [
        "model.layers=[{conv: {filters: 4, size: 3, pad: 1}}, relu, "
        "{pool: {size: 3, stride: 2, pad: 1}}, {conv: {filters: 6, size: 2, stride: 2}}, "
        "batchnorm, sigmoid, {affine: 40}, {dropout: 0.2}, relu, {affine: 10}, {dropout: 0.5}]",
        "model.weight_init=he",
        "train.optimizer=adam",
        "train.lr=0.002",
        "train.dtype=float64",
    ],
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
    if kind == "convolutional":
        assert {"Conv", "MaxPool", "Flatten", "Gemm", "Relu"} <= ops and "Pad" not in ops
    if kind == "convolutional-every-layer":  # bpnet's pooling pads zeros: an explicit Pad
        assert {"Conv", "Pad", "MaxPool", "BatchNormalization", "Reshape", "Mul"} <= ops


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


# --- the file written piece by piece, the output's name, memory ------------------------------


def small_net(sizes, dtype=np.float32, batchnorm=False, dropout=0.0, activation="relu"):
    from bpnet.nn.network import MultiLayerNet

    net = MultiLayerNet(
        sizes[0],
        sizes[1:-1],
        sizes[-1],
        activation=activation,
        batchnorm=batchnorm,
        dropout=dropout,
        rng=0,
        dtype=dtype,
    )
    rng = np.random.default_rng(2)
    for key, a in net.state_arrays().items():
        a[...] = rng.random(a.shape) + (0.5 if key.startswith("running_var") else -0.5)
    return net


@pytest.mark.parametrize(
    "sizes, dtype, batchnorm, dropout, images, normalize",
    [
        ([784, 16, 10], np.float32, False, 0.0, False, True),
        ([784, 16, 10], np.float32, False, 0.0, True, True),
        ([784, 40, 30, 10], np.float64, True, 0.3, True, False),
        ([30, 6, 5, 3], np.float32, True, 0.0, False, False),
        ([4, 3], np.float64, False, 0.0, True, True),
    ],
)
def test_the_file_is_the_serialized_model_byte_for_byte(
    tmp_path, sizes, dtype, batchnorm, dropout, images, normalize
):
    import io

    from bpnet.apps.export import check_outline, model_outline, onnx_model, write_model

    activation = "sigmoid" if batchnorm else "relu"
    net = small_net(sizes, dtype, batchnorm, dropout, activation)
    meta = {
        "sizes": sizes,
        "activation": activation,
        "batchnorm": batchnorm,
        "dropout": dropout,
        "normalize": normalize,
    }
    whole = onnx_model(net.state_arrays(), meta, version="9.9", images=images).SerializeToString()
    model, tensors = model_outline(net.state_arrays(), meta, version="9.9", images=images)
    assert len(model.SerializeToString()) < 5000  # no tensor data in the outline
    check_outline(model)
    out = io.BytesIO()
    assert write_model(out, model, tensors) == len(whole)
    assert out.getvalue() == whole
    (tmp_path / "m.onnx").write_bytes(out.getvalue())
    onnx.checker.check_model(str(tmp_path / "m.onnx"), full_check=True)
    x = np.random.default_rng(3).random((5, sizes[0])).astype(np.float32) * 255
    feed = x.reshape(5, 1, 2, 2) if images and sizes[0] == 4 else x
    feed = x.reshape(5, 1, 28, 28) if images and sizes[0] == 784 else feed
    scores = session(tmp_path / "m.onnx").run(None, {"pixels": feed})[0]
    want = net.predict((x / 255 if normalize else x).astype(dtype), train_flg=False)
    np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-5)


def test_the_outline_check_is_a_full_check(tmp_path):
    from bpnet.apps.export import check_outline, model_outline

    net = small_net([30, 6, 3])
    meta = {"sizes": [30, 6, 3], "activation": "relu"}
    model, _ = model_outline(net.state_arrays(), meta)
    model.graph.initializer[1].dims[0] = 7  # W1 no longer (30, 6): Gemm's shapes disagree
    with pytest.raises((onnx.checker.ValidationError, onnx.shape_inference.InferenceError)):
        check_outline(model)
    model, _ = model_outline(net.state_arrays(), meta)
    model.graph.node[1].op_type = "NoSuchOp"
    with pytest.raises(onnx.checker.ValidationError):
        check_outline(model)


def test_a_model_over_protobufs_2_gb_is_refused_before_writing(tmp_path):
    import io

    from bpnet.apps.export import model_outline, write_model
    from bpnet.errors import InputError

    sizes = [784, 700_000, 10]  # 2.2 GB of float32 weights, none of it in memory
    arrays = {
        k: np.broadcast_to(np.float32(0), s)
        for k, s in {
            "W1": (784, 700_000),
            "b1": (700_000,),
            "W2": (700_000, 10),
            "b2": (10,),
        }.items()
    }
    model, tensors = model_outline(arrays, {"sizes": sizes, "activation": "relu"})
    out = io.BytesIO()
    with pytest.raises(InputError, match=r"2\.\d+ GB, more than the 2 GB a single ONNX file"):
        write_model(out, model, tensors)
    assert out.getvalue() == b""


def test_the_weights_file_is_never_the_output(tmp_path, bpnet_exe, good_weights):
    weights = good_weights
    before = weights.read_bytes()
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.onnx").symlink_to(weights)
    (tmp_path / "sub" / "rel-link.onnx").symlink_to(Path("..") / weights.name)
    os.link(weights, tmp_path / "hard.onnx")
    outputs = {
        str(weights): "is the weights file itself",
        str(tmp_path / "sub" / ".." / weights.name): "is the weights file itself",
        weights.name: "is the weights file itself",  # relative, from the weights' folder
        str(tmp_path / "link.onnx"): "(the same file by a link or another name)",
        str(tmp_path / "sub" / "rel-link.onnx"): "(the same file by a link or another name)",
        str(tmp_path / "hard.onnx"): "(the same file by a link or another name)",
    }
    listing = sorted(p.name for p in tmp_path.rglob("*"))
    for out, needle in outputs.items():
        r = run(bpnet_exe, "export", weights, "-o", out, cwd=tmp_path)
        line = refused(r, 2, needle, "which the model would replace")
        assert line.startswith(f"bpnet: error: {Path(out)}: "), line
        assert weights.read_bytes() == before
        assert sorted(p.name for p in tmp_path.rglob("*")) == listing  # nothing written
    r = run(bpnet_exe, "export", weights, "-o", tmp_path / "copy.onnx")
    assert r.code == 0 and weights.read_bytes() == before, r.err


def test_without_o_the_model_goes_beside_the_weights(tmp_path, bpnet_exe, good_weights):
    run_dir = tmp_path / "runs" / "mnist"
    run_dir.mkdir(parents=True)
    for name, written in (
        ("weights.npz", "weights.onnx"),
        ("best.NPZ", "best.onnx"),
        ("model", "model.onnx"),
        ("net.v2", "net.v2.onnx"),
    ):
        shutil.copyfile(good_weights, run_dir / name)
        r = run(bpnet_exe, "export", Path("runs", "mnist", name), cwd=tmp_path)
        assert r.code == 0, r.err
        assert (
            r.out
            == f"wrote {Path('runs', 'mnist', written)}: 784-16-10 relu network, ONNX opset 21\n"
        )
        onnx.checker.check_model(str(run_dir / written), full_check=True)
    r = run(bpnet_exe, "export", run_dir / "weights.npz")  # an old model there is replaced
    assert r.code == 0 and r.out.startswith(f"wrote {run_dir / 'weights.onnx'}: "), r.err
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_a_missing_output_folder_is_one_line(tmp_path, bpnet_exe, good_weights):
    out = tmp_path / "missing" / "model.onnx"
    r = run(bpnet_exe, "export", good_weights, "-o", out)
    refused(r, 2, f"{out}: folder {out.parent} does not exist")


def big_weights(path, hidden):
    from bpnet.nn.network import param_shapes
    from bpnet.training.weights import save_weights

    rng = np.random.default_rng(0)
    sizes = [784, hidden, 10]
    params = {k: rng.standard_normal(s, dtype=np.float32) for k, s in param_shapes(sizes).items()}
    save_weights(path, params, {"sizes": sizes, "activation": "relu"})
    return sum(a.nbytes for a in params.values()) / 1024**2


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """A 784-30000-10 weights file (90 MB of float32) and its size in MB."""
    path = tmp_path_factory.mktemp("large") / "large.npz"
    return path, big_weights(path, 30000)


def test_export_costs_about_the_weights_once(tmp_path, bpnet_exe, good_weights, large):
    """Building the whole model, checking it and serializing it made copies upon copies
    (7.4x the weights); written piece by piece, the export costs the network rebuilt from
    the file, its weights once, above what a tiny export costs."""
    path, mb = large
    small = run(bpnet_exe, "export", good_weights, "-o", tmp_path / "small.onnx")
    r = run(bpnet_exe, "export", path, "-o", tmp_path / "large.onnx", timeout=300)
    assert small.code == 0 and r.code == 0, (small.err, r.err)
    assert r.peak_mb - small.peak_mb < 1.3 * mb, (r.peak_mb, small.peak_mb, mb)
    model = onnx.load(tmp_path / "large.onnx")
    with np.load(path) as z:
        w1 = onnx.numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "W1"))
        assert np.array_equal(w1, z["W1"])


def test_under_any_memory_limit_export_ends_in_one_line(tmp_path, bpnet_exe, good_weights, large):
    """From the smallest address-space limit a tiny export runs under, up to where the large
    export succeeds: each try writes the whole model or says `out of memory` in one line
    (exit status 1) and leaves the old model as it was."""
    path, mb = large
    out = tmp_path / "model.onnx"
    out.write_bytes(b"old model")
    floor = next(
        limit
        for limit in range(100, 1000, 25)
        if run(
            bpnet_exe, "export", good_weights, "-o", tmp_path / "tiny.onnx", as_limit=limit << 20
        ).code
        == 0
    )
    outcomes = []
    for limit in range(floor, floor + int(4 * mb) + 200, 40):
        r = run(bpnet_exe, "export", path, "-o", out, as_limit=limit << 20, timeout=300)
        if r.code == 0:
            outcomes.append("wrote")
            onnx.checker.check_model(str(out), full_check=True)
            break
        refused(r, 1, "out of memory", peak_mb=10 * mb)
        assert r.err == "bpnet: error: out of memory\n" and out.read_bytes() == b"old model"
        outcomes.append("out of memory")
    assert outcomes[-1] == "wrote" and "out of memory" in outcomes, outcomes
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
