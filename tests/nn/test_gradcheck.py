"""`bpnet gradcheck` through click's runner and as the installed command."""

import json
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from bpnet.cli.main import main
from bpnet.nn import layers
from bpnet.nn.gradcheck import check_gradients


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env)


def test_all_checks_pass_and_table_lists_every_layer(tmp_path):
    r = run("gradcheck", "--data-dir", str(tmp_path))
    assert r.exit_code == 0, r.output
    for name in (
        "MulLayer dx",
        "AddLayer dy",
        "Relu dx",
        "Sigmoid dx",
        "Affine dW",
        "Affine db",
        "SoftmaxWithLoss(indices) dx",
        "net W1",
        "net b2",
        "Dropout dx",
        "BatchNormalization dx",
        "BatchNormalization dgamma",
        "BatchNormalization dbeta",
    ):
        assert name in r.output
    assert "FAIL" not in r.output
    assert "synthetic" in r.output
    assert "all 27 checks passed" in r.output


def test_json_output_is_machine_readable(tmp_path):
    r = run(
        "gradcheck",
        "--json",
        "--data-dir",
        str(tmp_path),
        "--hidden",
        "8,6",
        "--activation",
        "sigmoid",
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["passed"] is True and doc["network"] == "784-8-6-10 sigmoid"
    names = [c["name"] for c in doc["checks"]]
    assert "net W3" in names and "net b3" in names
    assert all(c["passed"] and c["max_rel_err"] <= doc["tol"] for c in doc["checks"])


def test_full_checks_every_coordinate(tmp_path):
    r = run("gradcheck", "--json", "--full", "--data-dir", str(tmp_path), "--hidden", "20")
    doc = json.loads(r.output)
    w1 = next(c for c in doc["checks"] if c["name"] == "net W1")
    assert w1["checked"] == 784 * 20
    sampled = json.loads(
        run(
            "gradcheck", "--json", "--coords", "100", "--hidden", "20", "--data-dir", str(tmp_path)
        ).output
    )
    assert next(c for c in sampled["checks"] if c["name"] == "net W1")["checked"] == 100


def test_uses_real_mnist_when_present(mnist_data_dir):
    r = run("gradcheck", "--data-dir", str(mnist_data_dir), "--samples", "5")
    assert r.exit_code == 0, r.output
    assert "5 MNIST training images" in r.output


@pytest.mark.parametrize(
    "args",
    [
        ["--samples", "0"],
        ["--tol", "-1"],
        ["--tol", "0"],
        ["--hidden", "10,x"],
        ["--hidden", "0"],
        ["--coords", "0"],
        ["--activation", "tanh"],
    ],
)
def test_bad_options_exit_2(args):
    r = run("gradcheck", *args)
    assert r.exit_code == 2, r.output


def test_wrong_affine_backward_fails(monkeypatch, tmp_path):
    def bad_backward(self, dout, need_dx=True):  # dW off by 0.1%: the slip gradcheck exists for
        self.dW = 1.001 * (self.x.T @ dout)
        self.db = dout.sum(axis=0)
        return (dout @ self.W.T).reshape(self.x_shape)

    monkeypatch.setattr(layers.Affine, "backward", bad_backward)
    r = run("gradcheck", "--data-dir", str(tmp_path))
    assert r.exit_code == 1, r.output
    assert "Affine dW" in r.output and "FAIL" in r.output
    assert "checks FAILED" in r.output


def test_wrong_relu_backward_fails(monkeypatch, tmp_path):
    monkeypatch.setattr(layers.Relu, "backward", lambda self, dout: dout.copy())
    doc = json.loads(run("gradcheck", "--json", "--data-dir", str(tmp_path)).output)
    failed = {c["name"] for c in doc["checks"] if not c["passed"]}
    assert "Relu dx" in failed and doc["passed"] is False


def test_tiny_floor_only_forgives_differences_at_float64_resolution():
    x = np.array([1e-9, 1.0])
    f = lambda: float(x[0] * 2.0 + x[1] ** 2)  # noqa: E731
    ok = check_gradients("f", f, {"x": x}, {"x": np.array([2.0, 2.0])})[0]
    assert ok.passed
    bad = check_gradients("f", f, {"x": x}, {"x": np.array([2.0, 2.0 * (1 + 1e-6)])})[0]
    assert not bad.passed and bad.max_rel_err > 1e-7


def test_installed_command_runs_as_subprocess(bpnet_exe, tmp_path):
    p = subprocess.run(
        [bpnet_exe, "gradcheck", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "all 27 checks passed" in p.stdout
    p = subprocess.run([bpnet_exe, "gradcheck", "--samples", "0"], capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr


def test_version_and_module_entry(bpnet_exe):
    import sys

    from bpnet import __version__

    p = subprocess.run([bpnet_exe, "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and __version__ in p.stdout
    p = subprocess.run([sys.executable, "-m", "bpnet", "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and __version__ in p.stdout


def test_config_with_batchnorm_and_dropout_checks_gamma_and_beta(tmp_path):
    r = run(
        "gradcheck",
        "--json",
        "--config",
        "quick",
        "--data-dir",
        str(tmp_path),
        "--set",
        "model.hidden=[12, 8]",
        "--set",
        "model.batchnorm=true",
        "--set",
        "model.dropout=0.3",
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["passed"] and "batchnorm, dropout 0.3" in doc["network"]
    names = {c["name"] for c in doc["checks"]}
    assert {"net gamma1", "net beta1", "net gamma2", "net beta2", "net W3"} <= names


def test_a_wrong_batchnorm_backward_fails(tmp_path, monkeypatch):
    """Dropping the variance path of BN's dx (a classic slip) must be caught."""

    def wrong(self, dout):
        self.dgamma, self.dbeta = np.sum(self.xn * dout, axis=0), dout.sum(axis=0)
        dxn = self.gamma * dout
        return (dxn - dxn.mean(axis=0)) / self.std

    monkeypatch.setattr(layers.BatchNormalization, "backward", wrong)
    r = run("gradcheck", "--json", "--data-dir", str(tmp_path))
    assert r.exit_code == 1
    failed = {c["name"] for c in json.loads(r.output)["checks"] if not c["passed"]}
    assert failed == {"BatchNormalization dx"}
