"""`bpnet plot RUN --filters` and `--feature-maps` on real runs of a small convolutional network
(real `bpnet train` processes on real MNIST): the initial filters rebuilt from a weights file
are the trainer's own first state, bit for bit; the filters and maps drawn are the weights
file's and a forward pass done here; and the pixels of each picture show those numbers."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from pngs import png_size

from bpnet.cli.main import main

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image", reason="pip install 'bpnet[image]'")

LAYERS = "[{conv: {filters: 6, size: 5}}, relu, {pool: 2}, {affine: 40}, relu, {affine: 10}]"
SETS = [
    f"model.layers={LAYERS}",
    "model.weight_init=he",
    "train.optimizer=adam",
    "train.lr=0.002",
    "data.validation=0",
]
INDEX = 3  # an MNIST test image


def train(bpnet_exe, data_dir, out, *extra):
    """A real `bpnet train` of the small network into ``out`` (``extra``: more options)."""
    args = [bpnet_exe, "train", "--config", "mnist", "--out", str(out), "-q", "--offline"]
    args += ["--data-dir", str(data_dir)]
    for s in SETS:
        args += ["--set", s]
    env = {**os.environ, "BPNET_THREADS": "1"}
    r = subprocess.run([*args, *extra], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def conv_run(bpnet_exe, mnist_session_dir, tmp_path_factory):
    """A run of 300 Adam steps (about 95% on the test set)."""
    return train(bpnet_exe, mnist_session_dir, tmp_path_factory.mktemp("conv") / "run",
                 "--iterations", "300")  # fmt: skip


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def w1(weights):
    """The first layer's filters (FN, FH, FW), read straight from the .npz."""
    with np.load(weights, allow_pickle=False) as z:
        return z["W1"].reshape(-1, *z["W1"].shape[-2:])


def shown(png, box, shape):
    """The grey level (0..255) at the centre of each of the ``shape`` cells of ``box``."""
    grey = np.asarray(Image.open(png).convert("L")).astype(float)
    left, top, right, bottom = box
    ys = (top + (np.arange(shape[0]) + 0.5) * (bottom - top) / shape[0]).astype(int)
    xs = (left + (np.arange(shape[1]) + 0.5) * (right - left) / shape[1]).astype(int)
    return grey[np.ix_(ys, xs)]


def assert_drawn(png, boxes, tiles, lo=None, hi=None):
    """Each tile is drawn in its box as the book draws it: grey, dark for high values (gray_r),
    on [lo, hi], or on the tile's own range when not given."""
    assert len(boxes) == len(tiles)
    for box, a in zip(boxes, tiles):
        a = a.astype(np.float64)
        low, high = (a.min(), a.max()) if lo is None else (lo, hi)
        expected = 255 * (1 - (a - low) / (high - low))
        assert np.abs(shown(png, box, a.shape) - expected).max() <= 3


# --- before training: the trainer's first state --------------------------------------------


@pytest.mark.parametrize("dtype,seed", [("float32", 0), ("float64", 7)])
def test_rebuilt_initial_network_is_the_trainers_first_state(
    mnist_session_dir, tmp_path, dtype, seed
):
    """Captured from a real Trainer.run as it starts (before its first step), every parameter
    equals, bit for bit, what initial_network rebuilds from the weights file written after."""
    from bpnet.apps.filters import filter_arrays, initial_network
    from bpnet.training.batches import load_data
    from bpnet.training.sources import load_config
    from bpnet.training.trainer import Progress, Trainer
    from bpnet.training.weights import read_meta

    sets = [*SETS, "train.iterations=5", f"train.dtype={dtype}", f"train.seed={seed}"]
    cfg = load_config("mnist", sets, {"data_dir": str(mnist_session_dir)})

    class First(Progress):
        def start(self, total, done, iters_per_epoch):
            self.params = {k: v.copy() for k, v in trainer.net.params.items()}

    first = First()
    trainer = Trainer(cfg, load_data(cfg), tmp_path / "run", progress=first)
    trainer.run()
    weights = tmp_path / "run" / "weights.npz"
    rebuilt = initial_network(read_meta(weights), "weights.npz")
    assert set(rebuilt.params) == set(first.params)
    for key, value in first.params.items():
        assert rebuilt.params[key].dtype == value.dtype == np.dtype(dtype)
        assert np.array_equal(rebuilt.params[key], value), key
    f = filter_arrays(weights)
    assert np.array_equal(f.before, first.params["W1"].reshape(6, 5, 5))
    assert np.array_equal(f.after, w1(weights)) and not np.array_equal(f.after, f.before)


def test_a_run_whose_steps_cannot_move_the_weights_ends_on_the_rebuilt_filters(
    bpnet_exe, mnist_session_dir, conv_run, tmp_path
):
    """train.lr must be > 0 and a run at least one step long: one step at lr 1e-30 moves a
    float32 weight of about 0.1 by less than a millionth of its last bit, so this real run's
    weights.npz holds its initial W1, which is the one rebuilt for the trained run (same seed,
    same model)."""
    from bpnet.apps.filters import filter_arrays

    frozen = train(bpnet_exe, mnist_session_dir, tmp_path / "frozen",
                   "--set", "train.lr=1e-30", "--iterations", "1")  # fmt: skip
    trained = filter_arrays(conv_run / "weights.npz")
    still = filter_arrays(frozen / "weights.npz")
    assert np.array_equal(w1(frozen / "weights.npz"), trained.before)
    assert np.array_equal(still.after, still.before) and np.array_equal(
        still.before, trained.before
    )
    assert np.abs(trained.after - trained.before).max() > 0.01  # 300 steps did move them


# --- the filters picture -----------------------------------------------------------------------


def test_plot_filters_draws_the_files_filters_before_and_after(bpnet_exe, conv_run, tmp_path):
    from bpnet.apps.filters import draw_filters

    r = subprocess.run(
        [bpnet_exe, "plot", str(conv_run), "--filters"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    png = conv_run / "filters.png"
    assert r.stdout == f"wrote {png} (Conv1: 6 filters 5x5, before and after training)\n"
    width, height = png_size(png)
    f = draw_filters(conv_run / "weights.npz", tmp_path / "again.png")
    assert np.array_equal(f.after, w1(conv_run / "weights.npz"))
    assert png_size(f.path) == (width, height) and width > 2 * height
    for picture in (png, f.path):  # the command's picture and the library's show these numbers
        assert_drawn(picture, f.boxes["before"], f.before)
        assert_drawn(picture, f.boxes["after"], f.after)
    right_of_before = max(box[2] for box in f.boxes["before"])
    assert right_of_before < min(box[0] for box in f.boxes["after"]) < width


# --- the feature-maps picture ------------------------------------------------------------------


def forward(weights, image):
    """The first convolution's and the pooling's maps of ``image`` (28, 28) 0..255, by hand:
    every 5x5 window times every filter, plus its bias; ReLU; the max of each 2x2 block."""
    with np.load(weights, allow_pickle=False) as z:
        W, b = z["W1"], z["b1"]
    x = (np.asarray(image, np.float64) / 255).astype(W.dtype)
    windows = np.lib.stride_tricks.sliding_window_view(x, (5, 5))  # (24, 24, 5, 5)
    conv = np.einsum("yxij,fij->fyx", windows, W[:, 0]) + b[:, None, None]
    pool = np.maximum(conv, 0).reshape(len(W), 12, 2, 12, 2).max(axis=(2, 4))
    return conv, pool


def test_plot_feature_maps_of_a_test_image_are_a_forward_pass(
    bpnet_exe, conv_run, mnist_session_dir, tmp_path
):
    from bpnet.apps.filters import draw_feature_maps
    from bpnet.data.idx import load_split
    from bpnet.training.weights import network_from_weights

    images, labels = load_split(mnist_session_dir, "mnist", "test")
    weights = conv_run / "weights.npz"
    net, meta = network_from_weights(weights)
    fm = draw_feature_maps(net, images[INDEX], 1 / 255, tmp_path / "maps.png", "a test image")
    conv, pool = forward(weights, images[INDEX])
    assert list(fm.maps) == ["Conv1", "Pool1"]
    assert np.allclose(fm.maps["Conv1"], conv, rtol=1e-5, atol=1e-6)
    assert np.allclose(fm.maps["Pool1"], pool, rtol=1e-5, atol=1e-6)
    assert fm.image.shape == (28, 28) and np.allclose(fm.image, images[INDEX] / 255, rtol=1e-6)
    r = subprocess.run(
        [bpnet_exe, "plot", str(conv_run), "--feature-maps", "--index", str(INDEX),
         "--data-dir", str(mnist_session_dir), "--offline"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    png = conv_run / "feature-maps.png"
    assert r.stdout == f"wrote {png} (Conv1: 6 maps, Pool1: 6 maps)\n"
    assert png_size(png) == png_size(fm.path)
    for picture in (png, fm.path):
        assert_drawn(picture, fm.boxes["input"], [fm.image])
        for layer, maps in fm.maps.items():
            assert_drawn(picture, fm.boxes[layer], maps, maps.min(), maps.max())
    assert int(labels[INDEX]) in range(10)


def test_plot_feature_maps_of_an_image_file(conv_run, mnist_session_dir, tmp_path):
    """--image: the file prepared as bpnet predict prepares it (here an MNIST digit as NPY),
    then the same forward pass."""
    from bpnet.data.idx import load_split
    from bpnet.data.images import load_digit

    images, _ = load_split(mnist_session_dir, "mnist", "test")
    np.save(tmp_path / "digit.npy", images[INDEX])
    out = tmp_path / "maps.png"
    r = run("plot", conv_run, "--feature-maps", "--image", tmp_path / "digit.npy", "-o", out)
    assert r.exit_code == 0, r.output
    assert r.output == f"wrote {out} (Conv1: 6 maps, Pool1: 6 maps)\n"
    conv, pool = forward(conv_run / "weights.npz", load_digit(tmp_path / "digit.npy"))
    from bpnet.apps.filters import feature_maps
    from bpnet.training.weights import network_from_weights

    net, _ = network_from_weights(conv_run / "weights.npz")
    fm = feature_maps(net, load_digit(tmp_path / "digit.npy"), 1 / 255)
    assert np.allclose(fm.maps["Conv1"], conv, rtol=1e-5, atol=1e-6)
    assert np.allclose(fm.maps["Pool1"], pool, rtol=1e-5, atol=1e-6)
    png_size(out)


# --- what is refused ---------------------------------------------------------------------------


def test_a_network_without_a_convolution_is_one_line_exit_2(good_weights, tmp_path):
    for flag in ("--filters", "--feature-maps"):
        r = run("plot", good_weights, flag, "-o", tmp_path / "p.png")
        assert r.exit_code == 2, r.output
        assert r.output.startswith(f"bpnet: error: {good_weights}: the network has no convolution")
        assert r.output.count("\n") == 1 and not (tmp_path / "p.png").exists()


def test_bad_choices_of_image_are_refused_with_exit_2(conv_run, mnist_session_dir, tmp_path):
    r = run("plot", conv_run, "--feature-maps", "--index", 10000, "--data-dir", mnist_session_dir)
    assert r.exit_code == 2
    assert r.output == (
        "bpnet: error: --index 10000: the mnist test split has 10000 images, expected 0 to 9999\n"
    )
    np.save(tmp_path / "d.npy", np.zeros((28, 28), np.uint8))
    for args, needle in [
        (["--feature-maps", "--index", "-1"], "-1 is not in the range x>=0"),
        (["--filters", "--feature-maps"], "--filters and --feature-maps draw two pictures"),
        (["--index", "3"], "--index and --image choose the image --feature-maps draws"),
        (["--filters", "--image", tmp_path / "d.npy"], "--index and --image choose the image"),
        (
            ["--feature-maps", "--index", "1", "--image", tmp_path / "d.npy"],
            "--index and --image cannot be combined",
        ),
    ]:
        r = run("plot", conv_run, *args)
        assert r.exit_code == 2 and needle in r.output, (args, r.output)
    before = (tmp_path / "d.npy").read_bytes()
    png = tmp_path / "d.png"
    png.write_bytes(b"not yet")
    r = run("plot", conv_run, "--feature-maps", "--image", png, "-o", png)
    assert r.exit_code == 2 and "the same file" in r.output and png.read_bytes() == b"not yet"
    r = run("plot", conv_run, "--feature-maps", "--image", tmp_path / "d.npy")
    assert r.exit_code == 2 and "d.npy" in r.output, r.output  # a blank picture is no digit
    assert (tmp_path / "d.npy").read_bytes() == before
    r = run("plot", tmp_path / "nowhere", "--filters")
    assert r.exit_code == 2 and r.output.count("\n") == 1


def _rewrite(weights, out, change):
    """``weights`` saved again to ``out`` with its meta changed by ``change(meta)``."""
    from bpnet.training.weights import load_weights, save_weights

    params, meta = load_weights(weights)
    change(meta)
    save_weights(out, params, meta)
    return out


def test_a_file_without_its_config_gets_the_trained_filters_and_a_warning(conv_run, tmp_path):
    weights = _rewrite(conv_run / "weights.npz", tmp_path / "w.npz", lambda m: m.pop("config"))
    r = run("plot", weights, "--filters")
    assert r.exit_code == 0, r.output
    assert f"warning: {weights} keeps no meta.config to rebuild the initial filters from" in (
        r.output
    )
    assert f"wrote {tmp_path / 'filters.png'} (Conv1: 6 filters 5x5, after training)" in r.output
    from bpnet.apps.filters import draw_filters

    f = draw_filters(weights, tmp_path / "f.png")
    assert f.before is None and list(f.boxes) == ["after"]
    assert_drawn(f.path, f.boxes["after"], w1(conv_run / "weights.npz"))


def test_a_config_that_does_not_fit_the_file_is_refused(conv_run, tmp_path):
    def fewer_filters(meta):
        meta["config"]["model"]["layers"][0]["conv"]["filters"] = 4

    def bad_seed(meta):
        meta["config"]["train"]["seed"] = -1

    for change, needle in [
        (fewer_filters, "meta.config describes another network (1x28x28 > conv4 5x5"),
        (bad_seed, "meta.config: train.seed: "),
    ]:
        weights = _rewrite(conv_run / "weights.npz", tmp_path / "w.npz", change)
        r = run("plot", weights, "--filters")
        assert r.exit_code == 2 and needle in r.output and r.output.count("\n") == 1, r.output


def test_without_matplotlib_one_line_exit_1(conv_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    np.save(tmp_path / "x.npy", np.eye(28, dtype=np.uint8) * 255)
    for args in (["--filters"], ["--feature-maps", "--image", tmp_path / "x.npy"]):
        r = run("plot", conv_run, *args, "-o", tmp_path / "p.png")
        assert r.exit_code == 1, r.output
        assert r.output == (
            "bpnet: error: drawing needs matplotlib, which is not installed: "
            "pip install 'bpnet[plot]'\n"
        )
        assert not (tmp_path / "p.png").exists()
