"""ConvNet: a network described as layers. Shapes inferred (and a layer that does not fit named),
the book's parameter and layer names, backprop through every kind of layer against centered
differences in float64, weight decay on every W, float32 kept float32, kinks left out of a
gradient check and counted."""

from __future__ import annotations

import numpy as np
import pytest

from bpnet.nn.convnet import (
    ConvNet,
    LayerMismatch,
    describe_layers,
    image_values,
    infer_shapes,
    param_shapes,
)
from bpnet.nn.gradcheck import check_gradients, check_network, kink_choices

SIMPLE = [("conv", {"filters": 30, "size": 5}), ("relu", {}), ("pool", {"size": 2})]
SIMPLE += [("affine", {"units": 100}), ("relu", {})]


def test_the_books_simple_convnet_has_the_books_names_and_shapes():
    net = ConvNet((1, 28, 28), SIMPLE, 10, rng=0)
    assert list(net.layers) == ["Conv1", "Relu1", "Pool1", "Affine1", "Relu2", "Affine2"]
    assert {k: v.shape for k, v in net.params.items()} == {
        "W1": (30, 1, 5, 5),
        "b1": (30,),
        "W2": (4320, 100),
        "b2": (100,),
        "W3": (100, 10),
        "b3": (10,),
    }
    assert net.describe() == "1x28x28 > conv30 5x5 > relu > pool 2x2 > affine100 > relu > affine10"
    assert net.input_size == 784 and net.output_size == 10 and net.depth == 3
    # every parameter is a view into the one flat array the optimizer updates
    assert all(np.shares_memory(p, net.flat_params) for p in net.params.values())
    assert net.flat_params.size == sum(p.size for p in net.params.values())


def test_shapes_are_inferred_and_a_layer_that_does_not_fit_is_named():
    layers = [("conv", {"filters": 4, "size": 3, "pad": 1, "stride": 2}), ("pool", {"size": 2})]
    assert infer_shapes((1, 28, 28), layers) == [(4, 14, 14), (4, 7, 7)]
    deep = layers + [("pool", {"size": 2})] * 3
    with pytest.raises(LayerMismatch) as e:
        infer_shapes((1, 28, 28), deep)
    assert (
        e.value.index == 4
        and e.value.reason == "pool 2x2 over 1x1 maps (pad 0): the pool is larger"
    )
    with pytest.raises(LayerMismatch, match=r"layers\[1\]: conv over 10 features: needs maps"):
        infer_shapes((1, 28, 28), [("affine", {"units": 10}), ("conv", {"filters": 1, "size": 1})])


def test_batchnorm_and_weights_after_maps_take_every_value_of_the_maps():
    layers = [("conv", {"filters": 2, "size": 3}), ("batchnorm", {}), ("affine", {"units": 5})]
    shapes = param_shapes((1, 6, 6), layers, 3)
    assert shapes["gamma1"] == (2 * 4 * 4,) and shapes["W2"] == (32, 5) and shapes["W3"] == (5, 3)
    assert image_values((1, 6, 6), layers) == (36 + 32 + 32 + 5, 16 * 9)
    assert (
        describe_layers((1, 6, 6), layers, 3) == "1x6x6 > conv2 3x3 > batchnorm > affine5 > affine3"
    )


EVERY_KIND = [
    ("conv", {"filters": 3, "size": 3, "pad": 1}),
    ("relu", {}),
    ("pool", {"size": 3, "stride": 2, "pad": 1}),
    ("conv", {"filters": 4, "size": 2, "stride": 2}),
    ("batchnorm", {}),
    ("sigmoid", {}),
    ("affine", {"units": 7}),
    ("dropout", {"ratio": 0.3}),
    ("relu", {}),
]


@pytest.mark.parametrize("input_shape", [(2, 9, 9), (1, 7, 11)])
def test_backprop_through_every_kind_of_layer_matches_centered_differences(input_shape):
    rng = np.random.default_rng(3)
    net = ConvNet(
        input_shape,
        EVERY_KIND,
        5,
        weight_init_std="he",
        weight_decay=0.01,
        rng=0,
        dropout_rng=np.random.default_rng(1),
    )
    for key, b in net.params.items():  # biases away from 0: no output sits on ReLU's kink
        if key.startswith("b"):
            b[...] = rng.uniform(0.05, 0.1, b.shape)
    x = rng.standard_normal((6, int(np.prod(input_shape))))
    t = rng.integers(0, 5, 6)
    results = check_network(net, x, t, rng=0)
    assert [r.name for r in results] == [f"net {k}" for k in net.params]
    failed = [(r.name, r.max_rel_err) for r in results if not r.passed]
    assert not failed, failed


def test_a_wrong_backward_fails_the_same_check():
    """The check can fail: a convolution whose db forgets one output position is caught."""
    net = ConvNet((1, 6, 6), [("conv", {"filters": 2, "size": 3}), ("relu", {})], 3, rng=0)
    conv = net.layers["Conv1"]
    right = conv.backward

    def wrong(dout, need_dx=True):
        return right(_drop_first_row(dout), need_dx)

    conv.backward = wrong
    x, t = np.random.default_rng(0).standard_normal((4, 36)), np.array([0, 1, 2, 0])
    net.params["b1"][...] = 0.1
    results = {r.name: r for r in check_network(net, x, t, rng=0)}
    assert not results["net b1"].passed and not results["net W1"].passed
    assert results["net b2"].passed  # the layers after it are still right


def _drop_first_row(dout):
    out = dout.copy()
    out[:, :, 0, :] = 0
    return out


def test_weight_decay_reaches_every_weight_and_the_penalty_counts_them():
    net = ConvNet((1, 8, 8), [("conv", {"filters": 2, "size": 3}), ("relu", {})], 3, rng=0)
    plain = ConvNet((1, 8, 8), [("conv", {"filters": 2, "size": 3}), ("relu", {})], 3, rng=0)
    net.weight_decay = 0.5
    x, t = np.random.default_rng(1).standard_normal((3, 64)), np.array([0, 1, 2])
    g, g0 = net.gradient(x, t), {k: v.copy() for k, v in plain.gradient(x, t).items()}
    for key in ("W1", "W2"):
        np.testing.assert_allclose(g[key], g0[key] + 0.5 * net.params[key], rtol=1e-12)
    np.testing.assert_array_equal(g["b1"], g0["b1"])
    expected = 0.25 * sum(float(np.sum(net.params[k] ** 2)) for k in ("W1", "W2"))
    assert net.penalty() == pytest.approx(expected)


def test_float32_stays_float32_and_inputs_come_flat_or_as_maps():
    net = ConvNet((1, 28, 28), SIMPLE, 10, dtype=np.float32, rng=0)
    x = np.random.default_rng(0).random((5, 784), dtype=np.float32)
    flat, maps = net.predict(x, train_flg=False), net.predict(x.reshape(5, 1, 28, 28), False)
    assert flat.dtype == np.float32 and np.array_equal(flat, maps)
    assert all(g.dtype == np.float32 for g in net.gradient(x, np.arange(5)).values())


def test_evaluation_batches_are_bounded_in_memory():
    net = ConvNet((1, 28, 28), SIMPLE, 10, dtype=np.float32, rng=0)
    batch = net.eval_batch(10_000)
    values, cols = image_values((1, 28, 28), net.layer_specs)
    assert 1 <= batch < 10_000 and batch * (2 * values + cols) * 4 <= 256 * 1024**2
    assert net.eval_batch(10) == 10


def test_a_coordinate_straddling_a_kink_is_left_out_and_counted():
    """f(x) = sum(relu(x)) at x = 0 exactly: a centered difference gives 1/2, backprop 0."""
    from bpnet.nn.layers import Relu

    relu = Relu()
    x = np.array([0.0, 1.0, -1.0])

    class Net:
        layers = {"Relu1": relu}

    f = lambda: float(np.sum(relu.forward(x)))  # noqa: E731
    f()
    analytic = {"dx": relu.backward(np.ones(3))}
    plain = check_gradients("relu", f, {"dx": x}, analytic)[0]
    assert not plain.passed  # the kink fools a plain check
    aware = check_gradients("relu", f, {"dx": x}, analytic, kinks=kink_choices(Net()))[0]
    assert aware.passed and aware.kinks == 1 and aware.checked == 2
