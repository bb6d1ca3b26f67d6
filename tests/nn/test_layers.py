"""Each layer's forward/backward, against hand values and numerical gradients; the one call
every chained layer answers and the state each declares."""

import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpnet.nn import (
    AddLayer,
    Affine,
    BatchNormalization,
    Dropout,
    MulLayer,
    Relu,
    Sigmoid,
    SoftmaxWithLoss,
    cross_entropy_error,
    numerical_gradient,
    sigmoid,
    softmax,
)


def test_apple_orange_graph():
    apple, apple_num, orange, orange_num, tax = 100, 2, 150, 3, 1.1
    mul_apple, mul_orange, add, mul_tax = MulLayer(), MulLayer(), AddLayer(), MulLayer()
    apple_price = mul_apple.forward(apple, apple_num)
    orange_price = mul_orange.forward(orange, orange_num)
    all_price = add.forward(apple_price, orange_price)
    price = mul_tax.forward(all_price, tax)
    d_all, d_tax = mul_tax.backward(1)
    d_apple_price, d_orange_price = add.backward(d_all)
    d_orange, d_orange_num = mul_orange.backward(d_orange_price)
    d_apple, d_apple_num = mul_apple.backward(d_apple_price)
    assert price == pytest.approx(715)
    assert d_apple == pytest.approx(2.2)
    assert d_apple_num == pytest.approx(110)
    assert d_orange == pytest.approx(3.3)
    assert d_orange_num == pytest.approx(165)
    assert d_tax == pytest.approx(650)


def _check(f, x, analytic, rtol=1e-6, atol=1e-8):
    num = numerical_gradient(lambda _: f(), x)
    np.testing.assert_allclose(analytic, num, rtol=rtol, atol=atol)


shapes = st.tuples(st.integers(1, 6), st.integers(1, 7))


@settings(max_examples=25, deadline=None)
@given(shapes, st.integers(0, 2**32 - 1))
def test_relu_and_sigmoid_backward_match_numerical(shape, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape)
    x = np.sign(z) * (0.1 + np.abs(z))  # away from the kink
    r = rng.standard_normal(shape)
    for cls in (Relu, Sigmoid):
        layer = cls()
        layer.forward(x)
        dx = layer.backward(r)
        _check(lambda layer=cls(): np.sum(layer.forward(x) * r), x, dx)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(1, 8), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_affine_backward_matches_numerical(n, d, m, seed):
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal((n, d)), rng.standard_normal((d, m)), rng.standard_normal(m)
    r = rng.standard_normal((n, m))
    layer = Affine(W, b)
    layer.forward(x)
    dx = layer.backward(r)
    f = lambda layer=Affine(W, b): np.sum(layer.forward(x) * r)  # noqa: E731
    _check(f, x, dx)
    _check(f, W, layer.dW)
    _check(f, b, layer.db)
    np.testing.assert_allclose(dx, r @ W.T)
    np.testing.assert_allclose(layer.dW, x.T @ r)
    np.testing.assert_allclose(layer.db, r.sum(axis=0))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(2, 12), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_affine_on_the_non_blank_columns_equals_the_full_input(n, d, m, seed):
    rng = np.random.default_rng(seed)
    cols = np.flatnonzero(rng.random(d) < 0.5)
    x = np.zeros((n, d))
    x[:, cols] = rng.standard_normal((n, len(cols)))
    W, b, r = rng.standard_normal((d, m)), rng.standard_normal(m), rng.standard_normal((n, m))
    full, part = Affine(W, b), Affine(W, b)
    np.testing.assert_allclose(part.forward(x[:, cols], cols=cols), full.forward(x), atol=1e-12)
    dx_full, dx_part = full.backward(r), part.backward(r)
    np.testing.assert_allclose(part.dW, full.dW, atol=1e-12)
    assert not np.delete(part.dW, cols, axis=0).any()  # no gradient where the input is blank
    np.testing.assert_allclose(part.db, full.db, atol=1e-12)
    np.testing.assert_allclose(dx_part, dx_full[:, cols], atol=1e-12)
    part.forward(x)  # a forward without cols is the full product again
    part.backward(r)
    np.testing.assert_allclose(part.dW, full.dW, atol=1e-12)


def test_affine_flattens_images_and_returns_dx_in_input_shape():
    rng = np.random.default_rng(0)
    x = rng.random((4, 1, 28, 28))
    layer = Affine(rng.standard_normal((784, 3)), np.zeros(3))
    y = layer.forward(x)
    assert y.shape == (4, 3)
    np.testing.assert_allclose(y, x.reshape(4, -1) @ layer.W)
    dx = layer.backward(np.ones((4, 3)))
    assert dx.shape == x.shape


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(2, 10), st.integers(0, 2**32 - 1), st.booleans())
def test_softmax_with_loss_backward_matches_numerical(n, c, seed, one_hot):
    rng = np.random.default_rng(seed)
    x = 3 * rng.standard_normal((n, c))
    labels = rng.integers(0, c, size=n)
    t = np.eye(c)[labels] if one_hot else labels
    layer = SoftmaxWithLoss()
    loss = layer.forward(x, t)
    dx = layer.backward(1.0)
    np.testing.assert_allclose(dx, (softmax(x) - np.eye(c)[labels]) / n, atol=1e-15)
    assert loss == pytest.approx(cross_entropy_error(softmax(x), labels), rel=1e-12)
    _check(lambda layer=SoftmaxWithLoss(): layer.forward(x, t), x, dx)


def test_softmax_with_loss_index_and_one_hot_agree():
    rng = np.random.default_rng(1)
    x, labels = rng.standard_normal((5, 10)), rng.integers(0, 10, 5)
    a, b = SoftmaxWithLoss(), SoftmaxWithLoss()
    assert a.forward(x, labels) == pytest.approx(b.forward(x, np.eye(10)[labels]), rel=1e-14)
    np.testing.assert_allclose(a.backward(), b.backward(), atol=1e-16)


@pytest.mark.parametrize("scale", [1e4, -1e4, 1e300])
def test_softmax_with_loss_is_stable_for_huge_logits(scale):
    x = np.array([[scale, 0.0, -scale], [0.0, scale, 1.0], [-scale, -scale, -scale]])
    t = np.array([0, 2, 1])
    layer = SoftmaxWithLoss()
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        loss = layer.forward(x, t)
        dx = layer.backward(1.0)
    assert np.isfinite(loss) and np.all(np.isfinite(dx))
    # The row that is right by a huge margin costs nothing, the others cost the margin.
    expected = [
        0.0 if scale > 0 else 2 * abs(scale),
        scale - 1.0 if scale > 0 else np.log1p(np.exp(-1.0)),
        np.log(3),
    ]
    per_row = [SoftmaxWithLoss().forward(x[i : i + 1], t[i : i + 1]) for i in range(3)]
    np.testing.assert_allclose(per_row, expected, rtol=1e-12)
    assert loss == pytest.approx(np.mean(expected), rel=1e-12)


def test_sigmoid_is_stable_for_huge_inputs():
    x = np.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = Sigmoid().forward(x)
    np.testing.assert_allclose(y, [0.0, 1 / (1 + np.exp(50)), 0.5, 1 / (1 + np.exp(-50)), 1.0])


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: (Relu(), (rng.standard_normal((3, 4)),)),
        lambda rng: (Sigmoid(), (rng.standard_normal((3, 4)),)),
        lambda rng: (
            Affine(rng.standard_normal((4, 4)), rng.standard_normal(4)),
            (rng.standard_normal((3, 4)),),
        ),
        lambda rng: (MulLayer(), (rng.standard_normal((3, 4)), rng.standard_normal((3, 4)))),
        lambda rng: (AddLayer(), (rng.standard_normal((3, 4)), rng.standard_normal((3, 4)))),
        lambda rng: (Dropout(0.5, rng), (rng.standard_normal((3, 4)),)),
        lambda rng: (
            BatchNormalization(rng.standard_normal(4), rng.standard_normal(4)),
            (rng.standard_normal((3, 4)),),
        ),
    ],
)
def test_backward_never_mutates_its_inputs(make):
    rng = np.random.default_rng(2)
    layer, inputs = make(rng)
    saved_inputs = [a.copy() for a in inputs]
    layer.forward(*inputs)
    dout = rng.standard_normal((3, 4))
    saved = dout.copy()
    grads = layer.backward(dout)
    np.testing.assert_array_equal(dout, saved)
    for a, s in zip(inputs, saved_inputs):
        np.testing.assert_array_equal(a, s)
    for g in grads if isinstance(grads, tuple) else (grads,):
        assert not np.shares_memory(g, dout)


def test_softmax_loss_backward_keeps_labels_and_scores():
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((4, 10)), np.eye(10)[rng.integers(0, 10, 4)]
    xs, ts = x.copy(), t.copy()
    layer = SoftmaxWithLoss()
    layer.forward(x, t)
    layer.backward(1.0)
    np.testing.assert_array_equal(x, xs)
    np.testing.assert_array_equal(t, ts)


def test_numerical_gradient_restores_x_exactly():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 5))
    saved = x.copy()
    g = numerical_gradient(lambda v: float(np.sum(v**3)), x)
    assert np.array_equal(x, saved)  # bit for bit, not approximately
    np.testing.assert_allclose(g, 3 * x**2, rtol=1e-7, atol=1e-8)


# --- Dropout and BatchNormalization ---------------------------------------------------------


def test_dropout_masks_in_training_and_scales_in_inference():
    x = np.arange(1.0, 2001.0).reshape(40, 50)
    keep = x.copy()
    d = Dropout(0.3, rng=np.random.default_rng(0))
    y = d.forward(x, train_flg=True)
    assert np.array_equal(x, keep)  # input untouched
    assert np.array_equal(y, x * d.mask) and 0.25 < 1 - d.mask.mean() < 0.35
    dout = np.ones_like(x)
    assert np.array_equal(d.backward(dout), d.mask.astype(float)) and np.all(dout == 1)
    np.testing.assert_allclose(d.forward(x, train_flg=False), 0.7 * x)
    d.fixed = True
    mask = d.mask
    d.forward(x, train_flg=True)
    assert d.mask is mask
    a = Dropout(0.5, rng=np.random.default_rng(7)).forward(x)
    b = Dropout(0.5, rng=np.random.default_rng(7)).forward(x)
    assert np.array_equal(a, b)


def test_batchnorm_normalizes_updates_running_stats_and_matches_numerical():
    rng = np.random.default_rng(1)
    x = 3 + 2 * rng.standard_normal((8, 5))
    keep = x.copy()
    gamma, beta = 1 + rng.standard_normal(5), rng.standard_normal(5)
    bn = BatchNormalization(gamma.copy(), beta.copy())
    y = bn.forward(x, train_flg=True)
    assert np.array_equal(x, keep)
    np.testing.assert_allclose(((y - bn.beta) / bn.gamma).mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(((y - bn.beta) / bn.gamma).var(axis=0), x.var(0) / (x.var(0) + 1e-6))
    np.testing.assert_allclose(bn.running_mean, 0.1 * x.mean(axis=0))
    np.testing.assert_allclose(bn.running_var, 0.1 * x.var(axis=0))
    inf = bn.forward(x, train_flg=False)
    np.testing.assert_allclose(
        inf, bn.gamma * (x - bn.running_mean) / np.sqrt(bn.running_var + 1e-6) + bn.beta
    )
    r = rng.standard_normal(x.shape)
    bn.forward(x)
    dout = r.copy()
    dx = bn.backward(dout)
    assert np.array_equal(dout, r)
    ref = BatchNormalization(bn.gamma, bn.beta)
    _check(lambda: float(np.sum(ref.forward(x) * r)), x, dx)
    _check(lambda: float(np.sum(ref.forward(x) * r)), bn.gamma, bn.dgamma)
    _check(lambda: float(np.sum(ref.forward(x) * r)), bn.beta, bn.dbeta)


# --- one protocol: the chain's forward(x, train_flg), state declared in __init__ -------------


CHAINED = [Affine, Relu, Sigmoid, Dropout, BatchNormalization]


@pytest.mark.parametrize("cls", CHAINED, ids=lambda c: c.__name__)
def test_every_chained_layer_takes_the_books_train_flg(cls):
    params = list(inspect.signature(cls.forward).parameters.values())
    assert [p.name for p in params[:3]] == ["self", "x", "train_flg"]
    assert params[2].default is True
    extra = [(p.name, p.default, p.kind) for p in params[3:]]
    assert extra == (
        [("cols", None, inspect.Parameter.POSITIONAL_OR_KEYWORD)] if cls is Affine else []
    )


@pytest.mark.parametrize(
    "cls, names",
    [(MulLayer, ["x", "y"]), (AddLayer, ["x", "y"]), (SoftmaxWithLoss, ["x", "t"])],
    ids=lambda c: str(c),
)
def test_nodes_and_the_loss_keep_their_operands(cls, names):
    assert list(inspect.signature(cls.forward).parameters)[1:] == names


def _runs(rng):
    """(name, fresh layer, forward arguments, dout shape) covering every path of every layer."""
    x, y = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    W, b = rng.standard_normal((6, 3)), rng.standard_normal(3)
    g, be = 1 + rng.standard_normal(6), rng.standard_normal(6)
    return [
        ("MulLayer", lambda: MulLayer(), (x, y), {}, (4, 6)),
        ("AddLayer", lambda: AddLayer(), (x, y), {}, (4, 6)),
        ("Relu", lambda: Relu(), (x,), {}, (4, 6)),
        ("Sigmoid", lambda: Sigmoid(), (x,), {}, (4, 6)),
        ("Affine", lambda: Affine(W, b), (x,), {}, (4, 3)),
        ("Affine images", lambda: Affine(W, b), (x.reshape(4, 1, 2, 3),), {}, (4, 3)),
        ("Affine cols", lambda: Affine(W, b), (x[:, [1, 4]],), {"cols": np.array([1, 4])}, (4, 3)),
        ("Affine inference", lambda: Affine(W, b), (x, False), {}, (4, 3)),
        ("Dropout", lambda: Dropout(0.3, np.random.default_rng(0)), (x,), {}, (4, 6)),
        ("Dropout global", lambda: Dropout(0.3), (x, True), {}, (4, 6)),
        ("Dropout inference", lambda: Dropout(0.3), (x, False), {}, None),
        ("BatchNormalization", lambda: BatchNormalization(g, be), (x,), {}, (4, 6)),
        ("BatchNormalization inference", lambda: BatchNormalization(g, be), (x, False), {}, None),
        ("SoftmaxWithLoss", lambda: SoftmaxWithLoss(), (x, rng.integers(0, 6, 4)), {}, ()),
        (
            "SoftmaxWithLoss one-hot",
            lambda: SoftmaxWithLoss(),
            (x, np.eye(6)[[0, 1, 2, 3]]),
            {},
            (),
        ),
    ]


@pytest.mark.parametrize(
    "case",
    range(len(_runs(np.random.default_rng(0)))),
    ids=[r[0] for r in _runs(np.random.default_rng(0))],
)
def test_init_declares_everything_forward_and_backward_keep(case):
    _, make, args, kwargs, dout_shape = _runs(np.random.default_rng(9))[case]
    layer = make()
    declared = dict(vars(layer))
    assert all(
        v is None or k in ("W", "b", "gamma", "beta", "momentum", "eps", "ratio", "rng", "fixed")
        for k, v in declared.items()
    ), declared  # caches start empty
    saved = [np.array(a, copy=True) for a in args]
    layer.forward(*args, **kwargs)
    if dout_shape is not None:
        dout = np.ones(dout_shape) if dout_shape else 1.0
        layer.backward(dout)
    assert set(vars(layer)) == set(declared)
    for a, s in zip(args, saved):  # and its inputs are as they were
        np.testing.assert_array_equal(a, s)


def test_relu_keeps_where_its_input_is_positive():
    x = np.array([[-1.0, 0.0, 2.0], [3.0, -0.5, 0.0]])
    r = Relu()
    np.testing.assert_array_equal(r.forward(x), [[0, 0, 2], [3, 0, 0]])
    np.testing.assert_array_equal(r.positive, x > 0)
    np.testing.assert_array_equal(r.backward(np.full_like(x, 7.0)), 7.0 * (x > 0))


def test_layers_without_a_mode_ignore_train_flg():
    rng = np.random.default_rng(3)
    x, W, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)
    for make in (Relu, Sigmoid, lambda: Affine(W, b)):
        assert np.array_equal(make().forward(x, True), make().forward(x, False))
    np.testing.assert_array_equal(Sigmoid().forward(x, train_flg=False), sigmoid(x))


def test_a_network_takes_batch_norms_momentum_and_eps_from_the_layer():
    from bpnet.nn.network import MultiLayerNet

    net = MultiLayerNet(6, [5, 4], 3, batchnorm=True, rng=0)
    assert len(net.batchnorm_layers) == 2
    for layer in net.batchnorm_layers:
        assert (layer.momentum, layer.eps) == (BatchNormalization.MOMENTUM, BatchNormalization.EPS)
    defaults = inspect.signature(BatchNormalization).parameters
    assert defaults["momentum"].default == BatchNormalization.MOMENTUM
    assert defaults["eps"].default == BatchNormalization.EPS
