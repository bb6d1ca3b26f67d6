"""`bpnet train` and `bpnet eval` end to end on real MNIST, and every way their input can be bad."""

import gzip
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from click.testing import CliRunner

from bpnet.cli.main import main
from bpnet.training.weights import load_weights, save_weights


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result, code):
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines[-1].startswith("bpnet: error:") or "Error:" in lines[-1], result.output
    assert "Traceback" not in result.output


SMALL = ["--config", "quick", "--set", "model.hidden=[20]", "--set", "data.validation=1000"]


@pytest.fixture(scope="module")
def quick_run(mnist_session_dir, tmp_path_factory):
    """One real-data run of quick.yaml, shared by the eval tests."""
    out = tmp_path_factory.mktemp("runs") / "quick"
    r = cli(
        "train", "--config", "quick", "--data-dir", mnist_session_dir, "--out", out, "--offline"
    )
    assert r.exit_code == 0, r.output
    return out, r.output


def test_quick_config_trains_on_real_mnist(quick_run):
    out, output = quick_run
    assert "epoch 1/1" in output and "done in" in output
    for f in ("weights.npz", "best.npz", "checkpoint.npz", "metrics.csv", "config.yaml"):
        assert (out / f).is_file(), f
    _, meta = load_weights(out / "weights.npz")
    assert meta["metrics"]["test_acc"] > 0.9


def _independent_accuracy(weights, mnist_dir):
    """Accuracy computed here from the raw files and arrays, without bpnet's code."""
    with gzip.open(mnist_dir / "mnist" / "t10k-images-idx3-ubyte.gz") as fh:
        x = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 784) / 255.0
    with gzip.open(mnist_dir / "mnist" / "t10k-labels-idx1-ubyte.gz") as fh:
        t = np.frombuffer(fh.read(), np.uint8, offset=8)
    with np.load(weights, allow_pickle=False) as z:
        h = np.maximum(x @ z["W1"].astype(np.float64) + z["b1"], 0)
        y = h @ z["W2"].astype(np.float64) + z["b2"]
    return float(np.mean(y.argmax(axis=1) == t))


def test_eval_accuracy_equals_an_independent_computation(quick_run, mnist_session_dir):
    out, _ = quick_run
    r = cli("eval", out / "weights.npz", "--data-dir", mnist_session_dir, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["accuracy"] == pytest.approx(
        _independent_accuracy(out / "weights.npz", mnist_session_dir), abs=1e-4
    )
    cm = np.array(doc["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 10000
    assert doc["correct"] == np.trace(cm)
    assert set(doc["per_class_accuracy"]) == {str(c) for c in range(10)}
    table = cli("eval", out / "weights.npz", "--data-dir", mnist_session_dir)
    assert table.exit_code == 0 and "confusion matrix" in table.output
    assert f"accuracy {doc['accuracy']:.4f}" in table.output
    train = json.loads(
        cli(
            "eval",
            out / "weights.npz",
            "--split",
            "train",
            "--json",
            "--data-dir",
            mnist_session_dir,
        ).output
    )
    assert train["images"] == 60000


def test_run_dir_is_never_overwritten_without_force(quick_run, mnist_session_dir):
    out, _ = quick_run
    before = (out / "weights.npz").read_bytes()
    r = cli(
        "train", "--config", "quick", "--set", "train.lr=0.05", "--data-dir", mnist_session_dir,
        "--out", out,
    )  # fmt: skip
    one_line_error(r, 2)
    assert "of another config (train.lr: 0.1 there, 0.05 here)" in r.output
    assert "--force" in r.output
    same = cli("train", "--config", "quick", "--data-dir", mnist_session_dir, "--out", out)
    assert same.exit_code == 0 and "already holds this run" in same.output, same.output
    assert (out / "weights.npz").read_bytes() == before


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--set", "train.lr=-1"], "train.lr"),
        (["--set", "train.lerning_rate=0.1"], "did you mean train.lr"),
        (["--set", "nonsense"], "KEY=VALUE"),
        (["--config", "no-such-config"], "no-such-config"),
        (["--epochs", "0"], "--epochs"),
        (["--set", "train.dtype=float16"], "train.dtype"),
    ],
)
def test_bad_config_or_override_is_one_line_exit_2(tmp_path, args, needle):
    r = cli("train", *args, "--out", tmp_path / "r", "--data-dir", tmp_path)
    one_line_error(r, 2)
    assert needle in r.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "args", [["--set", "train.lr=0.5"], ["--seed", "1"], ["--config", "quick"], ["--force"]]
)
def test_resume_cannot_change_the_config(quick_run, args):
    """Only its length (--epochs, --iterations) may change; see tests/cli/test_cli_runs.py."""
    out, _ = quick_run
    r = cli("train", "--resume", out, *args)
    one_line_error(r, 2)
    assert "--resume continues a run as it was configured (--epochs or --iterations" in r.output
    assert f"cannot be combined with {args[0]}" in r.output


def test_missing_data_offline_says_how_to_fetch_it(tmp_path):
    r = cli(
        "train",
        "--config",
        "quick",
        "--data-dir",
        tmp_path / "empty",
        "--out",
        tmp_path / "r",
        "--offline",
    )
    one_line_error(r, 1)
    assert "bpnet download" in r.output


def test_list_configs():
    r = cli("train", "--list-configs")
    assert r.exit_code == 0
    for name in ("mnist", "mnist-best", "quick", "fashion-mnist"):
        assert name in r.output


def _bad_files(tmp_path, good):
    params, meta = load_weights(good)
    files = {}
    p = tmp_path / "pickled.npz"
    np.savez(p, W1=np.array([{"evil": 1}], dtype=object), meta=np.array("{}"))
    files["pickled"] = (p, "pickled")
    p = tmp_path / "truncated.npz"
    p.write_bytes(good.read_bytes()[:500])
    files["truncated"] = (p, "truncated zip archive")
    p = tmp_path / "nometa.npz"
    np.savez(p, **params)
    files["no meta"] = (p, "no 'meta'")
    p = tmp_path / "shape.npz"
    save_weights(p, {**params, "W2": params["W2"][:, :5]}, meta)
    files["shape"] = (p, "W2 has shape")
    p = tmp_path / "nan.npz"
    save_weights(p, {**params, "b1": params["b1"] * np.nan}, meta)
    files["nan"] = (p, "NaN")
    p = tmp_path / "missing.npz"
    save_weights(p, {k: v for k, v in params.items() if k != "b2"}, meta)
    files["missing key"] = (p, "missing ['b2']")
    p = tmp_path / "int.npz"
    save_weights(p, {**params, "W1": params["W1"].astype(np.int32)}, meta)
    files["int dtype"] = (p, "dtype int32")
    p = tmp_path / "badmeta.npz"
    np.savez(p, **params, meta=np.array("{not json"))
    files["bad meta"] = (p, "not valid JSON")
    files["absent"] = (tmp_path / "absent.npz", "no such")
    return files


def test_eval_refuses_every_bad_weights_file(quick_run, tmp_path, mnist_session_dir):
    out, _ = quick_run
    for name, (path, needle) in _bad_files(tmp_path, out / "weights.npz").items():
        r = cli("eval", path, "--data-dir", mnist_session_dir)
        one_line_error(r, 2)
        assert needle in r.output, (name, r.output)


def _wait_for_training(run_dir, proc, timeout=120):
    """Return once the loop runs: its handlers are installed before the first checkpoint."""
    deadline = time.time() + timeout
    while not (run_dir / "checkpoint.npz").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "training did not start"
        time.sleep(0.01)


def _train_cmd(exe, data_dir, out, *extra):
    return [
        exe,
        "train",
        *SMALL,
        "--epochs",
        "3",
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        "--offline",
        *extra,
    ]


def test_sigint_saves_a_checkpoint_and_resume_matches_an_uninterrupted_run(
    bpnet_exe, mnist_session_dir, tmp_path
):
    full = subprocess.run(
        _train_cmd(bpnet_exe, mnist_session_dir, tmp_path / "full"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert full.returncode == 0, full.stderr
    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        _train_cmd(bpnet_exe, mnist_session_dir, cut),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_training(cut, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert "checkpoint saved" in stderr and f"bpnet train --resume {cut}" in stderr
    assert "Traceback" not in stderr
    assert not (cut / "weights.npz").exists()
    resumed = subprocess.run(
        [
            bpnet_exe,
            "train",
            "--resume",
            str(cut),
            "--offline",
            "--data-dir",
            str(mnist_session_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    a, _ = load_weights(tmp_path / "full" / "weights.npz")
    b, _ = load_weights(cut / "weights.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_sigterm_also_checkpoints(bpnet_exe, mnist_session_dir, tmp_path):
    out = tmp_path / "term"
    proc = subprocess.Popen(
        _train_cmd(bpnet_exe, mnist_session_dir, out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    _wait_for_training(out, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "interrupted by SIGTERM" in stderr and (out / "checkpoint.npz").exists()


def test_eval_draws_the_most_confident_errors(quick_run, mnist_session_dir, tmp_path):
    from pngs import png_size

    from bpnet.apps.plots import CELL_SIZE, DPI

    out, _ = quick_run
    png = tmp_path / "errors.png"
    r = cli(
        "eval",
        out / "weights.npz",
        "--data-dir",
        mnist_session_dir,
        "--errors",
        png,
        "--errors-count",
        "12",
    )
    assert r.exit_code == 0, r.output
    assert f"wrote the 12 most confident errors to {png}" in r.output
    width, height = png_size(png)
    assert (width, height) == (round(8 * CELL_SIZE[0] * DPI), round(2 * CELL_SIZE[1] * DPI))
    bad = cli(
        "eval",
        out / "weights.npz",
        "--data-dir",
        mnist_session_dir,
        "--errors",
        tmp_path / "errors.jpg",
    )
    one_line_error(bad, 2)


def test_missing_data_leaves_no_run_directory_behind(tmp_path):
    r = cli(
        "train",
        "--config",
        "quick",
        "--data-dir",
        tmp_path / "empty",
        "--out",
        tmp_path / "r",
        "--offline",
    )
    one_line_error(r, 1)
    assert not (tmp_path / "r").exists()


def test_batchnorm_dropout_config_trains_evaluates_and_predicts(
    mnist_session_dir, tmp_path, bpnet_exe
):
    """Real MNIST through the installed command: train, eval and predict a BN + dropout net."""
    out = tmp_path / "bn"
    env = {**os.environ, "BPNET_DATA_DIR": str(mnist_session_dir)}
    r = subprocess.run(
        [
            bpnet_exe,
            "train",
            "--config",
            "mnist-bn",
            "--set",
            "model.hidden=[64,32]",
            "--set",
            "train.iterations=300",
            "--set",
            "data.validation=1000",
            "--out",
            str(out),
            "--offline",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert "784-64-32-10 relu, batchnorm, dropout 0.2" in r.stdout
    params, meta = load_weights(out / "weights.npz")
    assert meta["batchnorm"] is True and meta["dropout"] == 0.2
    assert params["running_var2"].shape == (32,) and np.all(params["running_var2"] > 0)
    r = subprocess.run(
        [bpnet_exe, "eval", str(out / "weights.npz"), "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["accuracy"] == meta["metrics"]["test_acc"] > 0.9  # eval in inference mode
    # predict: an MNIST test digit saved as .npy gets its label
    from bpnet.data.idx import load_split

    images, labels = load_split(mnist_session_dir, "mnist", "test")
    np.save(tmp_path / "digit.npy", images[0])
    r = subprocess.run(
        [bpnet_exe, "predict", str(out / "weights.npz"), str(tmp_path / "digit.npy"), "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["top"][0]["label"] == int(labels[0])
    # a file whose BN arrays are missing is refused with one line
    save_weights(tmp_path / "cut.npz", {k: v for k, v in params.items() if k != "gamma1"}, meta)
    bad = cli("eval", tmp_path / "cut.npz")
    one_line_error(bad, 2)
    assert "gamma1" in bad.output
