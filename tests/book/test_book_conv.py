"""bpnet.book for chapters 7 and 8: Convolution, Pooling, im2col, col2im, conv_output_size."""

import importlib.util
import inspect
import os
import re
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from bpnet.book import layers, util
from bpnet.book.gradient import numerical_gradient
from bpnet.nn import conv

BOOK_REPO = Path(
    os.environ.get("BPNET_BOOK_REPO")
    or Path(__file__).resolve().parents[3] / "deep-learning-from-scratch"
)
NO_BOOK = f"the book's repository is not at {BOOK_REPO} (set BPNET_BOOK_REPO)"

SIGNATURES = {
    layers.Convolution: "(W, b, stride=1, pad=0)",
    layers.Pooling: "(pool_h, pool_w, stride=2, pad=0)",
    layers.SoftmaxWithLoss: "()",
    util.im2col: "(input_data, filter_h, filter_w, stride=1, pad=0)",
    util.col2im: "(col, input_shape, filter_h, filter_w, stride=1, pad=0)",
    util.conv_output_size: "(input_size, filter_size, stride=1, pad=0)",
}


@pytest.mark.parametrize("obj", list(SIGNATURES), ids=lambda o: o.__name__)
def test_signatures_and_defaults_are_the_books(obj):
    assert str(inspect.signature(obj)) == SIGNATURES[obj]


def test_star_imports_bring_the_books_names():
    ns = {}
    exec("from bpnet.book.layers import *", ns)
    assert {"Convolution", "Pooling", "im2col", "col2im", "Relu", "Affine", "np"} <= set(ns)
    ns = {}
    exec("from bpnet.book.util import *", ns)
    want = {"np", "smooth_curve", "shuffle_dataset", "conv_output_size", "im2col", "col2im"}
    assert want <= set(ns) and ns["np"] is np


def test_no_maths_of_its_own():
    """The functions are bpnet.nn.conv's; the layers subclass it for the book's arguments and
    state, and never backward themselves."""
    for name in ("im2col", "col2im", "conv_output_size"):
        assert getattr(util, name) is getattr(conv, name)
        assert getattr(layers, name, getattr(conv, name)) is getattr(conv, name)
    for name in ("Convolution", "Pooling"):
        cls = getattr(layers, name)
        assert issubclass(cls, getattr(conv, name)) and "backward" not in vars(cls)


def test_im2col_layout_by_hand():
    x = np.arange(2 * 2 * 3 * 3, dtype=np.float64).reshape(2, 2, 3, 3)
    col = util.im2col(x, 2, 2)
    assert col.shape == (2 * 2 * 2, 2 * 2 * 2)
    # row (n=1, oy=0, ox=1): channel 0's 2x2 window at (0, 1), then channel 1's
    assert col[4 + 1].tolist() == [19, 20, 22, 23, 28, 29, 31, 32]
    padded = util.im2col(x, 3, 3, stride=2, pad=1)
    assert padded.shape == (2 * 2 * 2, 2 * 9) and padded[0, :4].tolist() == [0, 0, 0, 0]
    assert util.conv_output_size(28, 5) == 24 and util.conv_output_size(28, 3, 2, 1) == 14


def test_col2im_is_the_adjoint_of_im2col():
    rng = np.random.default_rng(0)
    for shape, f, s, p in [
        ((2, 3, 7, 6), 3, 1, 1),
        ((1, 2, 8, 8), 2, 2, 0),
        ((3, 1, 9, 7), 3, 2, 2),
    ]:
        x = rng.standard_normal(shape)
        col = util.im2col(x, f, f, s, p)
        c = rng.standard_normal(col.shape)
        back = util.col2im(c, shape, f, f, s, p)
        assert back.shape == shape
        assert np.sum(col * c) == pytest.approx(np.sum(x * back), rel=1e-12)


def test_layers_keep_the_books_state():
    rng = np.random.default_rng(1)
    W, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    x = rng.standard_normal((2, 3, 6, 6))
    c = layers.Convolution(W, b, pad=1)
    p = layers.Pooling(2, 2)
    declared = (set(vars(c)), set(vars(p)))
    assert c.x is None and c.col is None and c.dW is None and p.arg_max is None
    y = c.forward(x)
    z = p.forward(y)
    assert y.shape == (2, 4, 6, 6) and z.shape == (2, 4, 3, 3)
    assert c.x is x and p.x is y and np.array_equal(c.col, util.im2col(x, 3, 3, 1, 1))
    assert c.col_W.shape == (27, 4) and np.array_equal(c.col_W, W.reshape(4, -1).T)
    assert np.array_equal(y, conv.Convolution(W, b, 1, 1).forward(x))  # forward is bpnet's
    assert p.arg_max.shape == (2 * 4 * 3 * 3,) and p.arg_max.max() <= 3
    dz = rng.standard_normal(z.shape)
    dx = c.backward(p.backward(dz))
    assert dx.shape == x.shape and c.dW.shape == W.shape and c.db.shape == b.shape
    assert (set(vars(c)), set(vars(p))) == declared


def test_softmax_with_loss_reads_a_column_of_labels_as_the_book():
    """Chapter 7's gradient check passes T = [[1]] for one image: an index, not a one-hot row."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 10))
    t = np.array([1, 4, 9])
    a, b = layers.SoftmaxWithLoss(), layers.SoftmaxWithLoss()
    assert a.forward(x, t.reshape(3, 1)) == b.forward(x, t)
    assert np.array_equal(a.backward(), b.backward())
    one_hot = layers.SoftmaxWithLoss().forward(x, np.eye(10)[t])
    assert one_hot == pytest.approx(b.forward(x, t), rel=1e-12)


class _TinyConvNet:
    """conv - relu - pool - affine - softmax from the book's layers, as simple_convnet.py."""

    def __init__(self):
        self.params = {
            "W1": 0.3 * np.random.randn(3, 2, 3, 3),
            "b1": 0.1 * np.random.randn(3),
            "W2": 0.3 * np.random.randn(3 * 3 * 3, 4),
            "b2": 0.1 * np.random.randn(4),
        }
        p = self.params
        self.layers = OrderedDict(
            Conv1=layers.Convolution(p["W1"], p["b1"], 1, 1),
            Relu1=layers.Relu(),
            Pool1=layers.Pooling(2, 2, stride=2),
            Affine1=layers.Affine(p["W2"], p["b2"]),
        )
        self.last_layer = layers.SoftmaxWithLoss()

    def loss(self, x, t):
        for layer in self.layers.values():
            x = layer.forward(x)
        return self.last_layer.forward(x, t)

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.last_layer.backward(1)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        conv1, affine1 = self.layers["Conv1"], self.layers["Affine1"]
        return {"W1": conv1.dW, "b1": conv1.db, "W2": affine1.dW, "b2": affine1.db}


def test_a_convnet_of_the_books_layers_has_the_numerical_gradient():
    np.random.seed(4)
    net = _TinyConvNet()
    x, t = np.random.randn(5, 2, 6, 6), np.random.randint(0, 4, 5)
    grad = {k: v.copy() for k, v in net.gradient(x, t).items()}
    for k, p in net.params.items():
        num = numerical_gradient(lambda _: net.loss(x, t), p)
        np.testing.assert_allclose(grad[k], num, rtol=1e-5, atol=1e-8, err_msg=k)


# ---- against the book's own code (its repository needed) ----------------------------------


def _book_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_im2col_and_col2im_are_the_books_bit_for_bit():
    if not (BOOK_REPO / "common" / "util.py").is_file():
        pytest.skip(NO_BOOK)
    book = _book_module("_book_common_util", BOOK_REPO / "common" / "util.py")
    rng = np.random.default_rng(5)
    cases = [((2, 3, 7, 6), 3, 3, 1, 0), ((2, 3, 7, 6), 3, 2, 1, 1), ((1, 2, 9, 9), 2, 2, 2, 0)]
    cases += [
        ((3, 1, 8, 7), 5, 3, 2, 2),
        ((4, 16, 14, 14), 3, 3, 1, 1),
        ((2, 1, 28, 28), 5, 5, 1, 0),
    ]
    for shape, fh, fw, s, p in cases:
        x = rng.standard_normal(shape)
        ours, theirs = util.im2col(x, fh, fw, s, p), book.im2col(x, fh, fw, s, p)
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), (shape, fh, fw, s, p)
        c = rng.standard_normal(theirs.shape)
        ours, theirs = util.col2im(c, shape, fh, fw, s, p), book.col2im(c, shape, fh, fw, s, p)
        assert ours.shape == theirs.shape and np.array_equal(ours, theirs), (shape, fh, fw, s, p)
    x32 = rng.random((2, 1, 28, 28), dtype=np.float32)  # load_mnist's dtype: the same values
    assert np.array_equal(util.im2col(x32, 5, 5), book.im2col(x32, 5, 5))


def _rule(text):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    try:
        return importlib.import_module("book_scripts").apply_import_rule(text)
    finally:
        sys.path.pop(0)


def _train(trainer_cls, net_cls, data, seed=0):
    (x, t), (xt, tt) = data
    np.random.seed(seed)
    net = net_cls()  # the book's defaults: 30 filters 5x5, hidden 100, std 0.01
    trainer = trainer_cls(
        net, x[:600], t[:600], xt[:200], tt[:200], epochs=2, mini_batch_size=50,
        optimizer="Adam", optimizer_param={"lr": 0.001}, evaluate_sample_num_per_epoch=200,
        verbose=False,
    )  # fmt: skip
    trainer.train()
    return trainer


def test_simple_convnet_trains_as_the_books_code(mnist_session_dir, monkeypatch, tmp_path):
    """The book's simple_convnet.py with the rule applied, on bpnet.book, against the same file
    on the book's common/: 24 Adam updates on real MNIST from the same seed."""
    source = BOOK_REPO / "ch07" / "simple_convnet.py"
    if not source.is_file():
        pytest.skip(NO_BOOK)
    from bpnet.book.mnist import load_mnist
    from bpnet.book.trainer import Trainer

    monkeypatch.setenv("BPNET_DATA_DIR", str(mnist_session_dir))
    data = load_mnist(flatten=False)
    ruled = tmp_path / "simple_convnet.py"
    ruled.write_text(_rule(source.read_text(encoding="utf-8")), encoding="utf-8")
    assert "from bpnet.book.layers import *" in ruled.read_text(encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # its sys.path.append(os.pardir) then sees no common/
    ours = _train(Trainer, _book_module("_bpnet_simple_convnet", ruled).SimpleConvNet, data)
    monkeypatch.syspath_prepend(str(BOOK_REPO))  # the book's common/; sys.path restored after
    before = set(sys.modules)
    try:
        book_net = _book_module("_book_simple_convnet", source).SimpleConvNet
        book_trainer = importlib.import_module("common.trainer").Trainer
        theirs = _train(book_trainer, book_net, data)
    finally:
        for name in set(sys.modules) - before:
            if re.match(r"(common|dataset)\b", name):
                del sys.modules[name]
    assert len(ours.train_loss_list) == len(theirs.train_loss_list) == 24
    np.testing.assert_allclose(ours.train_loss_list, theirs.train_loss_list, rtol=1e-6)
    assert ours.train_loss_list[-1] < ours.train_loss_list[0] - 0.3  # it learns
    assert ours.train_acc_list == theirs.train_acc_list
    assert ours.test_acc_list == theirs.test_acc_list
    for k in ("W1", "b1", "W2", "b3"):
        np.testing.assert_allclose(
            ours.network.params[k], theirs.network.params[k], rtol=1e-5, atol=1e-7
        )  # atol: 1e-4 of one Adam step (lr 0.001); the two sum the products in other orders
