"""The thread policy: split products are the same bits on any thread count, the library applies
it, one knob sets it."""

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info
from toy import toy_cfg, toy_data

from bpnet.errors import InputError
from bpnet.nn import threads
from bpnet.nn.evaluate import evaluate
from bpnet.nn.gradcheck import check_network
from bpnet.nn.network import MultiLayerNet
from bpnet.training.trainer import Progress, Trainer
from bpnet.training.weights import load_weights


def blas_threads():
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


# The products of training 784-800-10 and 784-50-10 at batch 100 and 128 (forward, weight
# gradient through a transposed view, hidden-layer input gradient through a transposed view).
PRODUCTS = [
    ((100, 784), (784, 800), False, False),
    ((784, 100), (100, 800), True, False),
    ((100, 800), (800, 784), False, True),
    ((784, 128), (128, 50), True, False),
    ((128, 784), (784, 800), False, False),
    ((1000, 784), (784, 800), False, False),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [2, 3, 4, 5])
@pytest.mark.parametrize("a_shape, b_shape, a_t, b_t", PRODUCTS)
def test_split_products_are_the_same_bits_on_any_thread_count(dtype, n, a_shape, b_shape, a_t, b_t):
    rng = np.random.default_rng(1)
    a = rng.standard_normal(a_shape[::-1] if a_t else a_shape).astype(dtype)
    b = rng.standard_normal(b_shape[::-1] if b_t else b_shape).astype(dtype)
    a, b = (a.T if a_t else a), (b.T if b_t else b)
    with threads.use(1):
        one = threads.matmul(a, b)
    with threads.use(n):
        split = threads.matmul(a, b)
        out = np.full_like(one, np.nan)
        threads.matmul(a, b, out=out)
    assert split.dtype == one.dtype and split.shape == one.shape
    assert np.array_equal(split, one) and np.array_equal(out, one)
    # and the blocks are the product: close to BLAS's own result for the whole
    np.testing.assert_allclose(
        split,
        np.matmul(a, b),
        rtol=1e-4 if dtype == np.float32 else 1e-12,
        atol=1e-3 if dtype == np.float32 else 1e-10,
    )


@pytest.mark.parametrize("n", [1, 2, 4])
@pytest.mark.parametrize("m, hidden", [(100, 800), (200, 800), (100, 50), (2000, 800)])
def test_products_on_some_rows_are_the_same_bits_as_gathering_them_first(n, m, hidden):
    # the first layer on a batch's non-blank columns: forward x @ W[cols], and the weight
    # gradient x.T @ dout written into rows cols of dW (the other rows zero)
    rng = np.random.default_rng(2)
    cols = np.sort(rng.choice(784, 530, replace=False))
    x = rng.standard_normal((m, len(cols))).astype(np.float32)
    W = rng.standard_normal((784, hidden)).astype(np.float32)
    dout = rng.standard_normal((m, hidden)).astype(np.float32)
    with threads.use(1):
        forward = threads.matmul(x, W.take(cols, axis=0))
        rows = threads.matmul(x.T, dout)
    with threads.use(n):
        assert np.array_equal(threads.matmul_rows(x, W, cols), forward)
        dW = np.full_like(W, np.nan)
        assert threads.matmul_into_rows(x.T, dout, dW, cols) is dW
    assert np.array_equal(dW[cols], rows) and not np.delete(dW, cols, axis=0).any()


@pytest.mark.parametrize(
    "a_shape, b_shape, axis",
    [
        ((100, 784), (784, 800), 1),
        ((784, 100), (100, 800), 1),
        ((1000, 784), (784, 800), 0),
        ((100, 800), (800, 784), 1),
    ],
)
def test_a_large_product_is_cut_across_the_cheaper_operand(a_shape, b_shape, axis):
    # as in training: a weight gradient's left operand is the transposed input batch
    a = (
        np.ones(a_shape[::-1], np.float32).T
        if a_shape == (784, 100)
        else np.ones(a_shape, np.float32)
    )
    b = np.ones(b_shape, np.float32)
    got_axis, bounds = threads.plan(a, b)
    size = (a_shape[0], b_shape[1])[axis]
    assert got_axis == axis and bounds[0] == 0 and bounds[-1] == size
    assert len(bounds) == threads.BLOCKS + 1 and all(lo < hi for lo, hi in zip(bounds, bounds[1:]))
    assert all(lo % threads.ALIGN == 0 for lo in bounds[:-1])


def test_small_products_stay_whole():
    # the lesson's 784-50-10 at batch 100: 3.9M multiply-adds, not worth a thread
    assert threads.plan(np.ones((100, 784)), np.ones((784, 50))) is None
    assert threads.plan(np.ones((3,)), np.ones((3, 4))) is None


def test_training_with_any_thread_count_gives_the_same_weights(tmp_path):
    # batch 100 of 784-800-10: the forward product and both weight gradients are cut
    assert threads.plan(np.ones((100, 784)), np.ones((784, 800))) is not None
    data = toy_data()
    weights = []
    for n in (1, 2, 3, 2):
        cfg = toy_cfg(
            tmp_path / str(n),
            **{
                "model.hidden": "[800]",
                "train.threads": n,
                "train.epochs": 1,
                "train.batch_size": 100,
            },
        )
        Trainer(cfg, data, tmp_path / f"{n}-{len(weights)}").run()
        weights.append(load_weights(tmp_path / f"{n}-{len(weights)}" / "weights.npz")[0])
    for w in weights[1:]:
        assert w.keys() == weights[0].keys()
        assert all(np.array_equal(w[k], weights[0][k]) for k in w)


class Spy(Progress):
    """Records the thread count and BLAS threads in force during training steps."""

    def __init__(self):
        self.seen = set()

    def step(self, iteration, loss):
        self.seen.add((threads.current(), tuple(blas_threads())))


@pytest.mark.parametrize(
    "setting, env, expected",
    [(3, None, 3), (None, "2", 2), (None, None, threads.available_cores()), (1, "2", 1)],
)
def test_trainer_applies_the_policy_itself(tmp_path, monkeypatch, setting, env, expected):
    if env is None:
        monkeypatch.delenv(threads.ENV, raising=False)
    else:
        monkeypatch.setenv(threads.ENV, env)
    cfg = toy_cfg(
        tmp_path, **{"train.threads": "null" if setting is None else setting, "train.epochs": 1}
    )
    spy = Spy()
    Trainer(cfg, toy_data(), tmp_path / "run", spy).run()
    assert spy.seen == {(expected, (1,) * len(blas_threads()))}
    assert threads.current() == 1  # restored after the run


class RecordingNet(MultiLayerNet):
    def predict(self, x, train_flg=None, cols=None):
        self.seen = (threads.current(), tuple(blas_threads()))
        return super().predict(x, train_flg, cols=cols)


def test_evaluate_and_gradcheck_apply_the_policy(monkeypatch):
    monkeypatch.setenv(threads.ENV, "3")
    net = RecordingNet(784, [8], 10, dtype=np.float64, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).random((5, 784))
    t = np.arange(5)
    evaluate(net, x, t, 1.0, 10)
    assert net.seen[0] == 3 and set(net.seen[1]) <= {1}
    evaluate(net, x, t, 1.0, 10, threads=2)
    assert net.seen[0] == 2
    results = check_network(net, x, t, max_coords=5, threads=4)
    assert net.seen[0] == 4 and all(r.passed for r in results)


def test_nested_blocks_inherit_and_restore():
    with threads.use(3):
        with threads.use(None) as n:
            assert n == 3 and threads.current() == 3
        with threads.use(2):
            assert threads.current() == 2
        assert threads.current() == 3
    assert threads.current() == 1


@pytest.mark.parametrize("raw", ["0", "-1", "two", "1.5", " "])
def test_bad_environment_value_is_an_input_error(monkeypatch, raw):
    monkeypatch.setenv(threads.ENV, raw)
    if not raw.strip():
        assert threads.resolve() == threads.available_cores()
        return
    with pytest.raises(InputError, match=r"\$BPNET_THREADS: expected an integer >= 1"):
        threads.resolve()


def test_available_cores_follows_the_affinity():
    assert threads.available_cores() == len(os.sched_getaffinity(0))


def test_cli_threads_option_and_environment(tmp_path, bpnet_exe, mnist_data_dir):
    import subprocess

    env = dict(os.environ, BPNET_THREADS="zero")
    bad = subprocess.run(
        [
            bpnet_exe,
            "train",
            "--config",
            "quick",
            "--data-dir",
            str(mnist_data_dir),
            "--out",
            str(tmp_path / "bad"),
            "--offline",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert (
        bad.returncode == 2 and "$BPNET_THREADS: expected an integer >= 1, got 'zero'" in bad.stderr
    )
    assert "Traceback" not in bad.stderr
    ok = subprocess.run(
        [
            bpnet_exe,
            "train",
            "--config",
            "quick",
            "--data-dir",
            str(mnist_data_dir),
            "--out",
            str(tmp_path / "ok"),
            "--offline",
            "--quiet",
            "--threads",
            "2",
            "--iterations",
            "20",
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert "threads: 2" in (tmp_path / "ok" / "config.yaml").read_text()
