"""Give a real ``bpnet`` process a hostile input and check how it refuses it: ``run`` measures the
process (exit status, output, own peak memory, time), ``refused`` checks its one error line and
its cost. Also the weights files several test modules start from: a good one, and files that are
not weights at all."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest
from peak import run_measured

from bpnet.nn.network import param_shapes
from bpnet.training.weights import save_weights

AS_LIMIT = 2 * 1024**3  # address space a child may map: far above a good input's needs
PEAK_MB = 150  # resident memory a refused input may cost (a good predict of one digit: ~100)


def run(exe, *args, cwd=None, env=None, timeout=120, as_limit=AS_LIMIT):
    """``bpnet ARGS`` under an address-space limit: exit status, output, own peak memory."""
    return run_measured([exe, *args], cwd=cwd, env=env, timeout=timeout, as_limit=as_limit)


def refused(r, code=2, *needles, seconds=60, peak_mb=PEAK_MB):
    """One error line containing every needle, exit ``code``, no traceback, bounded cost."""
    lines = r.err.strip().splitlines()
    assert r.code == code, (r.code, r.err)
    assert len(lines) == 1 and lines[0].startswith("bpnet: error: "), r.err
    assert "Traceback" not in r.err and "Warning" not in r.err, r.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert len(lines[0]) < 400, lines[0]
    assert r.peak_mb < peak_mb, f"peak {r.peak_mb:.0f} MB: {lines[0]}"
    assert r.seconds < seconds, r.seconds
    return lines[0]


def write_good_weights(path):
    """A valid 784-16-10 weights file with random float32 parameters at ``path``."""
    rng = np.random.default_rng(0)
    sizes = [784, 16, 10]
    params = {k: rng.normal(0, 0.1, s).astype(np.float32) for k, s in param_shapes(sizes).items()}
    save_weights(
        path,
        params,
        {
            "sizes": sizes,
            "activation": "relu",
            "dataset": "mnist",
            "normalize": True,
            "dtype": "float32",
        },
    )
    return path


def write_not_weights(folder, good_weights):
    """Files in ``folder`` that are not weights files, each with the phrases bpnet's refusal of
    it must contain: {path: needles} (skips without Pillow)."""
    Image = pytest.importorskip("PIL.Image")
    made = {}
    np.save(folder / "four.npy", np.zeros((28, 28), np.uint8))
    made["four.npy"] = ["not a weights file: a .npy array", "bpnet predict WEIGHTS IMAGE"]
    (folder / "metrics.csv").write_text("epoch,iteration,lr,train_loss\n1,600,0.1,0.3\n")
    made["metrics.csv"] = ["not a weights file: a text file (CSV)"]
    (folder / "config.yaml").write_text("model:\n  hidden: [50]\n")
    made["config.yaml"] = ["not a weights file: a text file (YAML)"]
    (folder / "README.md").write_text("# bpnet\n\nA tool.\n")
    made["README.md"] = ["not a weights file: a text file"]
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(folder / "seven.png")
    made["seven.png"] = ["this looks like an image", "did you mean `bpnet predict WEIGHTS IMAGE`?"]
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(folder / "seven.jpg")
    made["seven.jpg"] = ["not a weights file: an image (JPEG)", "this looks like an image"]
    (folder / "truncated.npz").write_bytes(good_weights.read_bytes()[:3000])
    made["truncated.npz"] = ["truncated zip archive"]
    (folder / "empty.npz").write_bytes(b"")
    made["empty.npz"] = ["not a weights file: an empty file"]
    with zipfile.ZipFile(folder / "docs.zip", "w") as z:
        z.writestr("notes.txt", "hello")
    made["docs.zip"] = ["a zip archive that is not an .npz", "notes.txt"]
    (folder / "random.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    made["random.bin"] = ["binary data"]
    shutil.copyfile(good_weights, folder / "weights.npz")
    return {folder / name: needles for name, needles in made.items()}
