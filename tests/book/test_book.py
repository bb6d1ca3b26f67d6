"""bpnet.book: the book's names, signatures and defaults, on bpnet's maths."""

import importlib
import inspect
import os
import re
from pathlib import Path

import numpy as np
import pytest

from bpnet.book.gradient import numerical_gradient
from bpnet.book.multi_layer_net import MultiLayerNet
from bpnet.book.multi_layer_net_extend import MultiLayerNetExtend
from bpnet.book.optimizer import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop
from bpnet.book.trainer import Trainer
from bpnet.book.util import shuffle_dataset, smooth_curve

# A checkout of oreilly-japan/deep-learning-from-scratch, if one is at hand (never fetched here).
BOOK_REPO = Path(
    os.environ.get("BPNET_BOOK_REPO")
    or Path(__file__).resolve().parents[3] / "deep-learning-from-scratch"
)

SIGNATURES = {
    MultiLayerNet: "(input_size, hidden_size_list, output_size, activation='relu', "
    "weight_init_std='relu', weight_decay_lambda=0, **net)",
    MultiLayerNetExtend: "(input_size, hidden_size_list, output_size, activation='relu', "
    "weight_init_std='relu', weight_decay_lambda=0, use_dropout=False, "
    "dropout_ration=0.5, use_batchnorm=False)",
    Trainer: "(network, x_train, t_train, x_test, t_test, epochs=20, mini_batch_size=100, "
    "optimizer='SGD', optimizer_param={'lr': 0.01}, evaluate_sample_num_per_epoch=None, "
    "verbose=True)",
    SGD: "(lr=0.01)",
    Momentum: "(lr=0.01, momentum=0.9)",
    Nesterov: "(lr=0.01, momentum=0.9)",
    AdaGrad: "(lr=0.01)",
    RMSprop: "(lr=0.01, decay_rate=0.99)",
    Adam: "(lr=0.001, beta1=0.9, beta2=0.999)",
}


@pytest.mark.parametrize("cls", list(SIGNATURES), ids=lambda c: c.__name__)
def test_signatures_and_defaults_are_the_books(cls):
    assert str(inspect.signature(cls)) == SIGNATURES[cls]


def test_other_signatures():
    from bpnet.book.layers import BatchNormalization, Dropout
    from bpnet.book.mnist import load_mnist
    from bpnet.book.two_layer_net import TwoLayerNet

    assert (
        str(inspect.signature(load_mnist)) == "(normalize=True, flatten=True, one_hot_label=False)"
    )
    assert str(inspect.signature(TwoLayerNet)) == (
        "(input_size, hidden_size, output_size, weight_init_std=0.01)"
    )
    assert str(inspect.signature(Dropout)) == "(dropout_ratio=0.5)"
    assert str(inspect.signature(BatchNormalization)).startswith(
        "(gamma, beta, momentum=0.9, running_mean=None, running_var=None"
    )


STAR_NAMES = {
    "functions": {
        "np",
        "identity_function",
        "step_function",
        "sigmoid",
        "sigmoid_grad",
        "relu",
        "relu_grad",
        "softmax",
        "sum_squared_error",
        "cross_entropy_error",
        "softmax_loss",
    },
    "layers": {
        "np",
        "Relu",
        "Sigmoid",
        "Affine",
        "SoftmaxWithLoss",
        "Dropout",
        "BatchNormalization",
        "Convolution",
        "Pooling",
        "im2col",
        "col2im",
        "softmax",
        "cross_entropy_error",
        "sigmoid",
    },
    "optimizer": {"np", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"},
    "layer_naive": {"MulLayer", "AddLayer"},
}


@pytest.mark.parametrize("module", list(STAR_NAMES))
def test_star_imports_bring_the_books_names_and_np(module):
    ns = {}
    exec(f"from bpnet.book.{module} import *", ns)
    assert STAR_NAMES[module] <= set(ns)
    assert ns.get("np") is np or module == "layer_naive"


def test_book_defaults_numbers():
    # He by default: std √(2/784) for W1 (the lesson's MultiLayerNet keeps 0.01)
    np.random.seed(0)
    net = MultiLayerNet(784, [400], 10)
    assert net.params["W1"].std() == pytest.approx(np.sqrt(2 / 784), rel=0.02)
    np.random.seed(0)
    assert MultiLayerNet(784, [400], 10, weight_init_std="sigmoid").params[
        "W2"
    ].std() == pytest.approx(np.sqrt(1 / 400), rel=0.05)
    np.random.seed(0)
    same = MultiLayerNet(784, [400], 10, weight_init_std="he")
    assert np.array_equal(same.params["W1"], net.params["W1"])  # NumPy's global generator
    np.random.seed(0)
    assert np.array_equal(np.random.randn(784, 400) * np.sqrt(2 / 784), net.params["W1"])
    assert (
        MultiLayerNet(4, [3], 2, weight_init_std=0.5, weight_decay_lambda=0.1).weight_decay == 0.1
    )
    # eps 1e-7: the first AdaGrad step of g is lr·g/(|g| + 1e-7)
    g = np.array([1e-6, -2e-7, 3.0])
    p = {"w": np.zeros(3)}
    AdaGrad(0.1).update(p, {"w": g})
    np.testing.assert_allclose(p["w"], -0.1 * g / (np.abs(g) + 1e-7))
    p = {"w": np.zeros(3)}
    Adam(0.1).update(p, {"w": g})  # m̂ = g, v̂ = g², eps added to √v = √0.001·|g|
    np.testing.assert_allclose(p["w"], -0.1 * g / (np.abs(g) + 1e-7 / np.sqrt(0.001)))
    # step 1e-4: centered differences of x³ are 3x² + h² exactly (up to rounding)
    x = np.array([0.5, 2.0])
    np.testing.assert_allclose(
        numerical_gradient(lambda v: np.sum(v**3), x), 3 * x**2 + 1e-8, rtol=1e-9
    )


def test_util_helpers():
    x = np.arange(50.0)
    s = smooth_curve(x)
    assert s.shape == x.shape
    np.testing.assert_allclose(s[10:-10], x[10:-10])  # a symmetric window keeps a line
    np.testing.assert_allclose(smooth_curve(np.full(30, 2.5)), 2.5)
    assert np.all(np.diff(smooth_curve(np.r_[np.zeros(20), np.ones(20)])) >= -1e-12)
    xs, ts = np.arange(20).reshape(10, 2), np.arange(10)
    np.random.seed(1)
    a, b = shuffle_dataset(xs, ts)
    assert np.array_equal(a[:, 0] // 2, b) and not np.array_equal(b, ts)
    np.random.seed(1)
    assert np.array_equal(shuffle_dataset(xs, ts)[1], b)


@pytest.mark.parametrize("use_bn,use_do", [(True, False), (False, True), (True, True)])
def test_extend_gradients_match_numerical(use_bn, use_do):
    np.random.seed(3)
    net = MultiLayerNetExtend(
        12,
        [7, 5],
        4,
        use_batchnorm=use_bn,
        use_dropout=use_do,
        dropout_ration=0.3,
        weight_decay_lambda=0.05,
    )
    x, t = np.random.randn(6, 12), np.random.randint(0, 4, 6)
    with net.fixed_masks():  # the same masks for both, as in a gradient check
        num = net.numerical_gradient(x, t)
        grad = net.gradient(x, t)
    assert set(grad) == set(num) and ({"gamma1", "beta2"} <= set(grad)) == use_bn
    for k in grad:
        np.testing.assert_allclose(grad[k], num[k], rtol=1e-4, atol=1e-7, err_msg=k)


def test_extend_predicts_in_inference_mode_by_default():
    np.random.seed(0)
    net = MultiLayerNetExtend(6, [8], 3, use_dropout=True, dropout_ration=0.5, use_batchnorm=True)
    x = np.random.randn(5, 6)
    a, b = net.predict(x), net.predict(x)
    assert np.array_equal(a, b)  # no dropout masks, running statistics
    assert not np.array_equal(net.predict(x, train_flg=True), net.predict(x, train_flg=True))


# The keys of common/multi_layer_net_extend.py's layers, and of chapter 5's two_layer_net.py.
BOOK_KEYS = [
    "Affine1",
    "BatchNorm1",
    "Activation_function1",
    "Dropout1",
    "Affine2",
    "BatchNorm2",
    "Activation_function2",
    "Dropout2",
    "Affine3",
]


def test_layers_are_keyed_as_the_books():
    from collections import OrderedDict

    from bpnet.book.two_layer_net import TwoLayerNet

    np.random.seed(0)
    net = MultiLayerNetExtend(6, [5, 4], 3, use_batchnorm=True, use_dropout=True)
    assert isinstance(net.layers, OrderedDict) and list(net.layers) == BOOK_KEYS
    assert list(MultiLayerNet(6, [5], 3, activation="sigmoid").layers) == [
        "Affine1",
        "Activation_function1",
        "Affine2",
    ]
    two = TwoLayerNet(6, 5, 3)
    assert list(two.layers) == ["Affine1", "Relu1", "Affine2"]
    assert two.lastLayer is two.last_layer
    for multi in (MultiLayerNet(6, [5], 3), net):  # chapter 6's nets name it as chapter 5's
        assert type(multi.lastLayer).__name__ == "SoftmaxWithLoss"
        assert multi.lastLayer is multi.last_layer
    x, t = np.random.randn(4, 6), np.array([0, 1, 2, 0])
    assert two.lastLayer.forward(two.predict(x), t) == pytest.approx(two.loss(x, t), rel=1e-12)
    # chapter 5's gradient: the Affine layers' dW and db after a backward pass
    two.gradient(x, t)
    assert np.array_equal(two.layers["Affine1"].dW, two.grads["W1"])


def test_relu_mask_is_the_books():
    from bpnet.book.layers import Relu

    relu = Relu()
    assert relu.mask is None  # declared, as the book's __init__ does
    x = np.array([[-1.0, 0.0, 2.0], [3.0, -0.5, 0.0]])
    y = relu.forward(x)
    assert relu.mask.dtype == bool and np.array_equal(relu.mask, x <= 0)
    assert np.array_equal(y[relu.mask], np.zeros(4))  # the positions forward zeroed
    dout = np.ones_like(x)
    assert np.array_equal(relu.backward(dout), np.where(relu.mask, 0.0, 1.0))
    assert np.all(dout == 1)  # unlike the book's, dout is left as it was
    np.random.seed(1)
    net = MultiLayerNet(6, [5], 3)
    x = np.random.randn(4, 6)
    net.predict(x)
    a1 = net.layers["Affine1"].forward(x)
    assert np.array_equal(net.layers["Activation_function1"].mask, a1 <= 0)


def test_book_layers_declare_their_state():
    from bpnet.book.layers import Dropout, Relu

    for layer, args in ((Relu(), ()), (Dropout(0.4), (True,)), (Dropout(0.4), (False,))):
        declared = set(vars(layer))
        layer.forward(np.random.randn(3, 4), *args)
        if args != (False,):  # no backward through inference
            layer.backward(np.ones((3, 4)))
        assert set(vars(layer)) == declared


def test_trainer_trains_and_prints_the_books_lines(capsys):
    rng = np.random.default_rng(0)
    t = rng.integers(0, 3, 300)
    x = rng.standard_normal((300, 6)) + 3 * np.eye(3)[t] @ rng.standard_normal((3, 6))
    np.random.seed(0)
    net = MultiLayerNetExtend(6, [10], 3, use_batchnorm=True)
    tr = Trainer(
        net,
        x[:200],
        t[:200],
        x[200:],
        t[200:],
        epochs=4,
        mini_batch_size=50,
        optimizer="Adam",
        optimizer_param={"lr": 0.01},
    )
    tr.train()
    out = capsys.readouterr().out
    assert len(tr.train_acc_list) == len(tr.test_acc_list) == 4 and len(tr.train_loss_list) == 16
    assert tr.test_acc_list[-1] > 0.8
    assert re.search(r"^=== epoch:4, train acc:[0-9.]+, test acc:[0-9.]+ ===$", out, re.M)
    assert out.splitlines()[-2:] == [
        "=============== Final Test Accuracy ===============",
        f"test acc:{net.accuracy(x[200:], t[200:])}",
    ]
    with pytest.raises(KeyError):
        Trainer(net, x, t, x, t, optimizer="lbfgs")


def test_load_mnist_returns_the_books_tuples(mnist_session_dir, monkeypatch):
    from bpnet.book.mnist import load_mnist

    monkeypatch.setenv("BPNET_DATA_DIR", str(mnist_session_dir))
    (x, t), (xt, tt) = load_mnist()
    assert x.shape == (60000, 784) and x.dtype == np.float32 and x.min() >= 0 and x.max() == 1
    assert t.shape == (60000,) and xt.shape == (10000, 784) and tt[:3].tolist() == [7, 2, 1]
    (x, t), _ = load_mnist(normalize=False, flatten=False, one_hot_label=True)
    assert x.shape == (60000, 1, 28, 28) and x.dtype == np.uint8 and x.max() == 255
    assert t.shape == (60000, 10) and np.all(t.sum(axis=1) == 1)


def test_load_mnist_says_what_it_downloads_into_the_data_home(shared_mnist):
    """A reader's script, run twice: the first run says on stderr which files it fetches and
    where (the per-user data home, as every bpnet command uses), the second says nothing."""
    import subprocess
    import sys

    from bpnet.data.home import data_home

    script = "from bpnet.book.mnist import load_mnist; (x, t), _ = load_mnist(); print(x.shape)"
    env = {**os.environ, "BPNET_MIRROR": str(shared_mnist)}
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
        )
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert [r.stdout for r in runs] == ["(60000, 784)\n"] * 2
    files = "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    assert runs[0].stderr == (
        f"load_mnist: downloading {files}t10k-labels-idx1-ubyte.gz into {data_home() / 'mnist'}\n"
    )
    assert runs[1].stderr == ""


def test_load_mnist_downloads_when_missing(tmp_path, monkeypatch):
    """Nothing in the data dir: the download is attempted (and here fails: no network)."""
    from bpnet.book.mnist import load_mnist
    from bpnet.errors import BpnetError

    monkeypatch.setenv("BPNET_DATA_DIR", str(tmp_path))
    with pytest.raises(BpnetError, match="mirror"):
        load_mnist()


def test_no_maths_of_its_own():
    """The book layer's classes are bpnet.nn's (subclasses only rename arguments or state)."""
    from bpnet.book import layers, optimizer
    from bpnet.nn import layers as nn_layers
    from bpnet.nn import optim

    for name in ("Sigmoid", "Affine", "BatchNormalization"):
        assert getattr(layers, name) is getattr(nn_layers, name)
    for name in ("Relu", "Dropout", "SoftmaxWithLoss"):
        cls = getattr(layers, name)
        assert issubclass(cls, getattr(nn_layers, name))
        assert "backward" not in vars(cls)
        # SoftmaxWithLoss.forward only reads a column of labels as indices (test_book_conv)
        assert "forward" not in vars(cls) or name == "SoftmaxWithLoss"
    for name in ("SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"):
        cls = getattr(optimizer, name)
        assert cls is getattr(optim, name) or "update" not in vars(cls)


# Every import line of the book's chapter 5 to 8 scripts, with the rule applied.
BOOK_IMPORTS = [
    "from common.gradient import numerical_gradient",
    "from common.layers import *",
    "from common.layers import Convolution",
    "from common.multi_layer_net import MultiLayerNet",
    "from common.multi_layer_net_extend import MultiLayerNetExtend",
    "from common.optimizer import *",
    "from common.optimizer import SGD",
    "from common.optimizer import SGD, Adam",
    "from common.trainer import Trainer",
    "from common.util import shuffle_dataset",
    "from common.util import smooth_curve",
    "from dataset.mnist import load_mnist",
    "from layer_naive import *",
    "from two_layer_net import TwoLayerNet",
]


def _rule(line):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    try:
        return importlib.import_module("book_scripts").apply_import_rule(line)
    finally:
        sys.path.pop(0)


@pytest.mark.parametrize("line", BOOK_IMPORTS)
def test_each_import_line_of_the_books_scripts_resolves(line):
    ns = {}
    exec(_rule(line), ns)
    names = re.search(r"import (.*)", line)[1]
    if names.strip() != "*":
        assert all(n.strip() in ns for n in names.split(","))
    else:
        assert len([n for n in ns if not n.startswith("_")]) >= 2


def test_the_fetched_books_scripts_import_lines_resolve():
    """With the book's repository at hand, every import of its ch05 to ch08 scripts (and of
    their local modules simple_convnet.py and deep_convnet.py), rewritten."""
    scripts = sorted(BOOK_REPO.glob("ch0[5-8]/*.py"))
    if not scripts:
        pytest.skip(f"the book's repository is not at {BOOK_REPO} (set BPNET_BOOK_REPO)")
    seen = set()
    for script in scripts:
        if script.name in ("layer_naive.py", "two_layer_net.py"):
            continue  # chapter 5's modules themselves: bpnet.book has them
        for line in script.read_text(encoding="utf-8").splitlines():
            if re.match(r"\s*from (common|dataset|layer_naive|two_layer_net)\b", line):
                seen.add(line.strip())
                new = _rule(line.strip())
                assert new.startswith("from bpnet.book."), line
                exec(new, {})
    assert seen <= set(BOOK_IMPORTS), sorted(seen - set(BOOK_IMPORTS))
