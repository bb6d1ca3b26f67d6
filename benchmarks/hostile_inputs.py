"""What refusing a hostile input costs: peak memory and time of a real ``bpnet`` process.

Builds each input in a temporary folder (a deflated .npz whose W1 inflates to 2 GB, a 50 MB
config, a 9500x9500 PNG of 100 KB, an .npy and a PGM claiming 10^12 pixels, /dev/zero, a config
asking for 10^8 hidden units), runs the command on it and prints the exit status, the child's
own peak resident memory (see tests/helpers/peak.py) and wall time, with their ratio to a good
input measured in the same run (`bpnet predict` of one 28x28 digit). Run:

    python benchmarks/hostile_inputs.py
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "helpers"))
from peak import run_measured  # noqa: E402

from bpnet.nn.network import param_shapes
from bpnet.training.weights import save_weights

BPNET = shutil.which("bpnet", path=str(Path(sys.executable).parent)) or "bpnet"


def measure(*args):
    """(exit status, peak MB, seconds) of ``bpnet ARGS``, measured by the tests' launcher."""
    r = run_measured([BPNET, *args])
    return r.code, r.peak_mb, r.seconds


def build(d):
    sizes = [784, 50, 10]
    meta = {
        "sizes": sizes,
        "activation": "relu",
        "dataset": "mnist",
        "normalize": True,
        "dtype": "float32",
    }
    params = {k: np.zeros(s, np.float32) for k, s in param_shapes(sizes).items()}
    save_weights(d / "good.npz", params, meta)
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    np.save(d / "digit.npy", digit)

    with zipfile.ZipFile(d / "bomb.npz", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("meta.npy", _npy(np.array(json.dumps(meta))))
        for k, a in params.items():
            if k != "W1":
                z.writestr(f"{k}.npy", _npy(a))
        with z.open("W1.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "<f4", "fortran_order": False, "shape": (784, 640000)}
            )
            chunk = bytes(64 * 1024**2)
            for _ in range(784 * 640000 * 4 // len(chunk)):
                f.write(chunk)
            f.write(bytes(784 * 640000 * 4 % len(chunk)))
    line = "# " + "x" * 98 + "\n"
    (d / "big.yaml").write_text(line * (50 * 1024**2 // len(line)))
    from PIL import Image

    Image.new("L", (9500, 9500)).save(d / "bomb.png", optimize=True)
    with open(d / "huge.npy", "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "|u1", "fortran_order": False, "shape": (10**6, 10**6)}
        )
        fh.write(bytes(1000))
    (d / "huge.pgm").write_bytes(b"P5 1000000 1000000 255\n" + bytes(100))


def _npy(a):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=False)
    return buf.getvalue()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        build(d)
        cases = {
            "good: predict one digit": ["predict", d / "good.npz", d / "digit.npy"],
            "eval bomb.npz (W1 2 GB inflated)": ["eval", d / "bomb.npz", "--offline"],
            "train --config 50 MB file": ["train", "--config", d / "big.yaml"],
            "train --set model.hidden=[1e8]": ["train", "--set", "model.hidden=[100000000]"],
            "predict 9500x9500 PNG": ["predict", d / "good.npz", d / "bomb.png"],
            "predict .npy claiming 10^12 px": ["predict", d / "good.npz", d / "huge.npy"],
            "predict PGM claiming 10^12 px": ["predict", d / "good.npz", d / "huge.pgm"],
            "predict /dev/zero": ["predict", d / "good.npz", "/dev/zero"],
        }
        print(f"{'input':36s} {'exit':>4s} {'peak MB':>8s} {'x good':>7s} {'seconds':>8s}")
        base = None
        for name, args in cases.items():
            code, peak, seconds = measure(*args)
            base = base or peak
            print(f"{name:36s} {code:4d} {peak:8.0f} {peak / base:7.2f} {seconds:8.2f}")


if __name__ == "__main__":
    main()
