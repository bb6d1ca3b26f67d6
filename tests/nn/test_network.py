"""The network: backprop equals numerical gradients for any depth and activation; its layers
as the book keeps them."""

from collections import OrderedDict

import numpy as np
import pytest

from bpnet.nn import MultiLayerNet, Relu, SoftmaxWithLoss, TwoLayerNet


def _data(rng, n=4, d=12, c=5):
    return rng.random((n, d)), rng.integers(0, c, size=n)


def test_two_layer_net_has_the_lessons_interface():
    net = TwoLayerNet(input_size=784, hidden_size=50, output_size=10, rng=0)
    assert set(net.params) == {"W1", "b1", "W2", "b2"}
    assert net.params["W1"].shape == (784, 50) and net.params["b2"].shape == (10,)
    assert abs(net.params["W1"].std() - 0.01) < 0.001
    assert isinstance(net, MultiLayerNet)
    x = np.random.default_rng(0).random((3, 784))
    t = np.array([1, 2, 3])
    assert net.predict(x).shape == (3, 10)
    assert net.loss(x, t) == pytest.approx(np.log(10), abs=0.05)
    assert set(net.gradient(x, t)) == set(net.params)


@pytest.mark.parametrize(
    "hidden,activation,decay",
    [
        ([7], "relu", 0.0),
        ([7], "sigmoid", 0.0),
        ([6, 5], "relu", 0.1),
        ([6, 5, 4], "sigmoid", 0.01),
    ],
)
def test_gradient_matches_numerical_gradient(hidden, activation, decay):
    rng = np.random.default_rng(5)
    net = MultiLayerNet(
        12, hidden, 5, activation=activation, weight_init_std=0.5, weight_decay=decay, rng=rng
    )
    x, t = _data(rng)
    grads = net.gradient(x, t)
    num = net.numerical_gradient(x, t)
    keys = [f"{p}{i}" for i in range(1, len(hidden) + 2) for p in "Wb"]
    assert list(grads) == keys and list(num) == keys
    for k in keys:
        np.testing.assert_allclose(grads[k], num[k], rtol=1e-5, atol=1e-8, err_msg=k)


def test_one_hot_and_index_labels_give_the_same_gradient():
    rng = np.random.default_rng(6)
    net = MultiLayerNet(12, [8], 5, weight_init_std=0.5, rng=rng)
    x, t = _data(rng)
    g1 = {k: v.copy() for k, v in net.gradient(x, t).items()}
    g2 = net.gradient(x, np.eye(5)[t])
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], atol=1e-15)


def test_accuracy_counts_argmax_hits():
    net = MultiLayerNet(2, [2], 2, rng=0)
    net.set_params({"W1": np.eye(2), "b1": np.zeros(2), "W2": np.eye(2), "b2": np.zeros(2)})
    x = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    assert net.accuracy(x, np.array([0, 1, 1, 1])) == 0.75
    assert net.accuracy(x, np.eye(2)[[0, 1, 0, 1]]) == 1.0


def test_init_schemes_and_dtype():
    he = MultiLayerNet(800, [400], 10, weight_init_std="he", rng=1, dtype=np.float32)
    xa = MultiLayerNet(800, [400], 10, weight_init_std="xavier", rng=1)
    assert he.params["W1"].dtype == np.float32
    assert he.params["W1"].std() == pytest.approx(np.sqrt(2 / 800), rel=0.02)
    assert xa.params["W2"].std() == pytest.approx(np.sqrt(1 / 400), rel=0.05)
    with pytest.raises(ValueError, match="weight_init"):
        MultiLayerNet(4, [3], 2, weight_init_std="bogus")
    with pytest.raises(ValueError, match="activation"):
        MultiLayerNet(4, [3], 2, activation="tanh")


def test_same_seed_same_weights():
    a, b = MultiLayerNet(20, [10], 3, rng=7), MultiLayerNet(20, [10], 3, rng=7)
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k])


def test_parameters_and_gradients_are_views_of_two_flat_arrays():
    rng = np.random.default_rng(8)
    net = MultiLayerNet(12, [8], 5, weight_init_std=0.5, weight_decay=0.1, rng=rng)
    x, t = _data(rng)
    grads = net.gradient(x, t)
    assert net.flat_params.size == net.flat_grads.size == 12 * 8 + 8 + 8 * 5 + 5
    for k in net.params:
        assert np.shares_memory(net.params[k], net.flat_params)
        assert np.shares_memory(grads[k], net.flat_grads)
    before, w1 = net.loss(x, t), net.params["W1"].copy()
    net.flat_params[:] -= 0.1 * net.flat_grads  # one update moves every parameter...
    assert not np.array_equal(net.layers["Affine1"].W, w1)  # ...including what the layers see
    assert net.loss(x, t) < before


def test_layers_are_the_books_ordered_dict():
    net = MultiLayerNet(12, [7, 6], 5, batchnorm=True, dropout=0.3, rng=0)
    assert isinstance(net.layers, OrderedDict)
    assert list(net.layers) == [
        "Affine1",
        "BatchNorm1",
        "Relu1",
        "Dropout1",
        "Affine2",
        "BatchNorm2",
        "Relu2",
        "Dropout2",
        "Affine3",
    ]
    assert [type(layer).__name__ for layer in net.layers.values()] == [
        "Affine",
        "BatchNormalization",
        "Relu",
        "Dropout",
    ] * 2 + ["Affine"]
    assert list(MultiLayerNet(12, [7], 5, activation="sigmoid", rng=0).layers) == [
        "Affine1",
        "Sigmoid1",
        "Affine2",
    ]
    assert net.affine_layers == [net.layers[f"Affine{i}"] for i in (1, 2, 3)]
    assert net.batchnorm_layers == [net.layers["BatchNorm1"], net.layers["BatchNorm2"]]
    assert net.dropout_layers == [net.layers["Dropout1"], net.layers["Dropout2"]]
    assert net.layers["Affine2"].W is net.params["W2"]
    assert net.layers["BatchNorm1"].running_var is net.buffers["running_var1"]
    assert isinstance(net.last_layer, SoftmaxWithLoss) and net.lastLayer is net.last_layer
    other = SoftmaxWithLoss()
    net.lastLayer = other
    assert net.last_layer is other


def test_predict_calls_every_layer_the_same_way():
    """Whatever stands under a key of ``layers`` is called forward(x, train_flg)."""

    class Spy(Relu):
        def forward(self, x, train_flg=True):
            calls.append(train_flg)
            return super().forward(x, train_flg)

    calls = []
    rng = np.random.default_rng(3)
    net = MultiLayerNet(12, [7], 5, rng=rng)
    x, t = _data(rng)
    before = net.predict(x)
    net.layers["Relu1"] = Spy()
    np.testing.assert_array_equal(net.predict(x), before)
    net.predict(x, train_flg=False)
    with net.inference():
        net.loss(x, t)
    assert calls == [True, False, False]
    net.gradient(x, t)
    assert calls[-1] is True


def test_a_subclass_predict_sees_the_columns_loss_was_given():
    class Recording(MultiLayerNet):
        def predict(self, x, train_flg=None, cols=None):
            self.seen = cols
            return super().predict(x, train_flg, cols=cols)

    rng = np.random.default_rng(4)
    net = Recording(12, [7], 5, weight_init_std=0.5, rng=rng)
    x, t = _data(rng)
    x[:, [0, 5]] = 0
    cols = np.setdiff1d(np.arange(12), [0, 5])
    full = net.loss(x, t, train_flg=True)
    assert net.seen is None
    part = net.loss(x[:, cols], t, train_flg=True, cols=cols)
    assert net.seen is cols and part == pytest.approx(full, rel=1e-12)
