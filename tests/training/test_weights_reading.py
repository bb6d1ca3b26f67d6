"""A network rebuilt from a weights file reads each array straight into its own memory: the same
network ``load_weights`` gives, whatever the file's dtype, layer kinds or array order, the same
verdict on any damaged file, and a real process costs the weights once, not four times."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from hostile import write_good_weights
from peak import run_measured

from bpnet.nn.network import MultiLayerNet, param_shapes
from bpnet.training.weights import (
    WeightsError,
    load_weights,
    network_from_weights,
    save_weights,
)

META = {"activation": "relu", "dataset": "mnist", "normalize": True}


def saved(path, sizes, dtype=np.float32, batchnorm=False, dropout=0.0, activation="relu"):
    net = MultiLayerNet(
        sizes[0], sizes[1:-1], sizes[-1], dtype=dtype, rng=3, batchnorm=batchnorm, dropout=dropout
    )
    rng = np.random.default_rng(4)
    for key, a in net.state_arrays().items():  # every array distinct, variances positive
        a[...] = rng.random(a.shape) + (0.5 if key.startswith("running_var") else -0.5)
    meta = {**META, "sizes": sizes, "activation": activation, "batchnorm": batchnorm}
    save_weights(path, net.state_arrays(), {**meta, "dropout": dropout})
    return net


@pytest.mark.parametrize(
    "sizes, dtype, batchnorm, dropout",
    [
        ([784, 16, 10], np.float32, False, 0.0),
        ([784, 16, 10], np.float64, False, 0.0),
        ([30, 7, 5, 3], np.float32, True, 0.2),
        ([30, 7, 5, 3], np.float64, True, 0.0),
        ([5, 2], np.float32, False, 0.0),
    ],
)
def test_the_network_holds_exactly_the_files_arrays(tmp_path, sizes, dtype, batchnorm, dropout):
    path = tmp_path / "w.npz"
    original = saved(path, sizes, dtype, batchnorm, dropout)
    net, meta = network_from_weights(path)
    params, meta2 = load_weights(path)
    assert meta == meta2 and net.dtype == dtype and not net.training
    for key, a in net.state_arrays().items():
        assert a.dtype == dtype and np.array_equal(a, params[key]), key
        assert np.array_equal(a, original.state_arrays()[key]), key
    x = np.random.default_rng(5).random((4, sizes[0])).astype(dtype)
    np.testing.assert_array_equal(
        net.predict(x, train_flg=False), original.predict(x, train_flg=False)
    )
    as64, _ = network_from_weights(path, dtype=np.float64)  # another dtype: a cast copy
    for key, a in as64.state_arrays().items():
        assert a.dtype == np.float64 and np.array_equal(a, params[key].astype(np.float64))


def test_fortran_ordered_and_big_endian_arrays(tmp_path):
    rng = np.random.default_rng(0)
    params = {k: rng.random(s).astype(np.float32) for k, s in param_shapes([6, 4, 3]).items()}
    fortran = {k: np.asfortranarray(v) for k, v in params.items()}
    path = tmp_path / "f.npz"
    np.savez(path, **fortran, meta=np.array(json.dumps({**META, "sizes": [6, 4, 3]})))
    with np.load(path) as z:
        assert z["W1"].flags.f_contiguous and not z["W1"].flags.c_contiguous
    net, _ = network_from_weights(path)
    for key, a in params.items():
        assert np.array_equal(net.params[key], a), key
    swapped = {k: v.astype(">f4") for k, v in params.items()}
    np.savez(path, **swapped, meta=np.array(json.dumps({**META, "sizes": [6, 4, 3]})))
    with pytest.raises(WeightsError, match="dtype >f4"):  # as load_weights refuses it
        network_from_weights(path)


def test_a_damaged_file_gets_the_same_verdict_as_load_weights(tmp_path):
    good = write_good_weights(tmp_path / "good.npz")
    raw = good.read_bytes()
    rng = np.random.default_rng(7)
    path = tmp_path / "damaged.npz"
    verdicts = {"refused": 0, "loaded": 0}
    cuts = np.linspace(0, len(raw) - 1, 60).astype(int)
    variants = [raw] + [raw[:c] for c in cuts]
    for _ in range(240):
        b = bytearray(raw)
        for pos in rng.integers(0, len(b), rng.integers(1, 6)):
            b[pos] = rng.integers(0, 256)
        variants.append(bytes(b))
    for data in variants:
        path.write_bytes(data)
        try:
            expected = load_weights(path)
        except WeightsError as e:
            with pytest.raises(WeightsError) as got:
                network_from_weights(path)
            assert str(got.value) == str(e)
            verdicts["refused"] += 1
            continue
        net, meta = network_from_weights(path)
        assert meta == expected[1]
        for key, a in expected[0].items():
            assert np.array_equal(net.state_arrays()[key], a, equal_nan=True)
        verdicts["loaded"] += 1
    assert verdicts["refused"] > 250 and verdicts["loaded"] >= 1, verdicts  # CRCs catch flips


def test_nan_and_infinity_are_refused_wherever_they_are(tmp_path):
    path = tmp_path / "w.npz"
    for key, where, value in (
        ("W1", (0, 0), np.nan),
        ("W1", (783, 15), np.inf),
        ("b2", 9, -np.inf),
    ):
        rng = np.random.default_rng(0)
        shapes = param_shapes([784, 16, 10])
        params = {k: rng.random(s).astype(np.float32) for k, s in shapes.items()}
        params[key][where] = value
        save_weights(path, params, {**META, "sizes": [784, 16, 10]})
        with pytest.raises(WeightsError, match=f"{key} contains NaN or infinite values"):
            network_from_weights(path)


def test_a_large_network_costs_its_weights_once(tmp_path):
    """784-20000-10 float32: 63 MB of weights. Rebuilding the network used to draw random
    weights in float64 first (4x the weights) and copy the file's over them; now the arrays
    are read into the network's own."""
    sizes = [784, 20000, 10]
    shapes = param_shapes(sizes)
    rng = np.random.default_rng(0)
    params = {k: rng.standard_normal(s, dtype=np.float32) for k, s in shapes.items()}
    path = tmp_path / "big.npz"
    save_weights(path, params, {**META, "sizes": sizes})
    mb = sum(a.nbytes for a in params.values()) / 1024**2
    del params
    base = run_measured([sys.executable, "-c", "import bpnet.training.weights"])
    code = (
        "import sys\n"
        "from bpnet.training.weights import network_from_weights\n"
        "net, meta = network_from_weights(sys.argv[1])\n"
        "print(float(net.params['W1'][7, 11]))\n"
    )
    r = run_measured([sys.executable, "-c", code, path])
    assert r.code == 0, r.err
    with np.load(path) as z:
        assert float(r.out) == float(z["W1"][7, 11])
    assert r.peak_mb - base.peak_mb < 1.4 * mb, (r.peak_mb, base.peak_mb, mb)
