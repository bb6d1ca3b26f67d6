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
import csv
import os
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from bpnet.nn import threads

HERE = Path(__file__).resolve()
DEFAULT_DATA = HERE.parents[2] / "shared"


def gemm_floor(iterations, dtype, with_first_dx):
    """Seconds for just the matrix products of ``iterations`` training steps."""
    rng = np.random.default_rng(0)
    x, W1, W2 = (rng.random(s).astype(dtype) for s in ((100, 784), (784, 50), (50, 10)))
    h, y, dh = np.empty((100, 50), dtype), np.empty((100, 10), dtype), np.empty((100, 50), dtype)
    dW1, dW2, dx = (
        np.empty((784, 50), dtype),
        np.empty((50, 10), dtype),
        np.empty((100, 784), dtype),
    )
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
        self.params = {
            "W1": 0.01 * rng.standard_normal((784, 50)),
            "b1": np.zeros(50),
            "W2": 0.01 * rng.standard_normal((50, 10)),
            "b2": np.zeros(10),
        }
        self.layers = OrderedDict(
            Affine1=Affine(self.params["W1"], self.params["b1"]),
            Relu1=Relu(),
            Affine2=Affine(self.params["W2"], self.params["b2"]),
        )
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
    from bpnet.data.idx import load_dataset

    x_train, t_train, x_test, t_test = load_dataset(
        "mnist", data_dir, dtype=np.float64, one_hot=True
    )
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


def run_child(cmd):
    """(wall seconds, peak RSS in MB, output) of a subprocess, its own peak via wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{output}")
    return seconds, usage.ru_maxrss / 1024, output


def bpnet_in_process(data_dir, iterations, out):
    """bpnet's training loop on mnist.yaml: (total s, evaluation s, test accuracy)."""
    from bpnet.training.batches import load_data
    from bpnet.training.sources import load_config
    from bpnet.training.trainer import Trainer

    cfg = load_config(
        "mnist",
        cli={"data_dir": str(data_dir), "output.dir": str(out), "train.iterations": iterations},
    )
    trainer = Trainer(cfg, load_data(cfg), out)
    start = time.perf_counter()
    result = trainer.run()
    return time.perf_counter() - start, trainer.state.eval_seconds, result["test_acc"]


def main():
    with threads.use():
        _main()


def _main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data-dir",
        default=str(DEFAULT_DATA),
        help="folder holding mnist/ (default: ../shared next to the repository)",
    )
    ap.add_argument("--iterations", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved floor/bpnet rounds")
    ap.add_argument(
        "--with-best",
        action="store_true",
        help="also time `bpnet train --config mnist-best` and its first epoch at 98.0%%",
    )
    ap.add_argument("--baseline-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_only:
        seconds, acc = lesson_baseline(args.data_dir, args.iterations)
        print(f"{seconds:.6f} {acc:.6f}")
        return
    n, rounds = args.iterations, args.rounds
    print(
        f"784-50-10, batch 100, {n} iterations; threads: {threads.resolve()}; "
        f"{os.cpu_count()} cores; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    floors, runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for r in range(rounds):  # interleaved, so that both see the same machine
            floors.append(gemm_floor(n, np.float32, with_first_dx=False))
            (tmp / f"in-process-{r}").mkdir()
            runs.append(bpnet_in_process(args.data_dir, n, tmp / f"in-process-{r}"))
        floor32_dx = gemm_floor(n, np.float32, with_first_dx=True)
        floor64_dx = gemm_floor(n, np.float64, with_first_dx=True)
        exe = Path(sys.executable).with_name("bpnet")
        cmd_s, cmd_mb, _ = run_child(
            [
                exe,
                "train",
                "--config",
                "mnist.yaml",
                "--data-dir",
                args.data_dir,
                "--out",
                tmp / "cmd",
                "--offline",
                "--quiet",
                "--set",
                f"train.iterations={n}",
            ]
        )
        base_s, base_mb, out = run_child(
            [
                sys.executable,
                HERE,
                "--baseline-only",
                "--data-dir",
                args.data_dir,
                "--iterations",
                str(n),
            ]
        )
        base_train_s, base_acc = map(float, out.split()[-2:])
        if args.with_best:
            best_s, best_mb, _ = run_child(
                [
                    exe,
                    "train",
                    "--config",
                    "mnist-best",
                    "--data-dir",
                    args.data_dir,
                    "--out",
                    tmp / "best",
                    "--offline",
                    "--quiet",
                ]
            )
            with open(tmp / "best" / "metrics.csv") as fh:
                best_rows = list(csv.DictReader(fh))
    floor = min(floors)
    iters = min(total - evals for total, evals, _ in runs)
    total = min(total for total, _, _ in runs)
    acc = runs[0][2]
    rows = [
        ("GEMM floor float32 (the 5 products training needs)", floor, ""),
        ("GEMM floor float32 + the unneeded first-layer dX", floor32_dx, ""),
        ("GEMM floor float64 + first-layer dX", floor64_dx, ""),
        (
            "bpnet training iterations (float32)",
            iters,
            f"{iters / floor:.2f}x floor; {iters / floor32_dx:.2f}x the lesson's products",
        ),
        (
            "bpnet iterations + per-epoch evaluation and saving",
            total,
            f"{total / floor:.2f}x floor",
        ),
        ("bpnet train command, whole (start-up to saved run)", cmd_s, f"peak {cmd_mb:.0f} MB"),
        (
            "lesson baseline, NumPy float64 (training loop)",
            base_train_s,
            f"{base_train_s / total:.1f}x bpnet",
        ),
        ("lesson baseline, whole process", base_s, f"peak {base_mb:.0f} MB"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"(best of {rounds} interleaved rounds where marked by the floor ratio)")
    for name, sec, note in rows:
        print(f"{name:<{width}}  {sec:7.2f} s  {note}")
    print(
        f"bpnet: {n * 100 / iters:,.0f} training samples/s in its iterations; test accuracy "
        f"{acc:.4f} (baseline {base_acc:.4f})"
    )
    print(
        "rounds: floor "
        + ", ".join(f"{f:.2f}" for f in floors)
        + " s; bpnet iterations "
        + ", ".join(f"{t - e:.2f}" for t, e, _ in runs)
        + " s; with evaluation "
        + ", ".join(f"{t:.2f}" for t, _, _ in runs)
        + " s"
    )
    if args.with_best:
        first = next((r for r in best_rows if float(r["test_acc"]) >= 0.98), None)
        reached = (
            f"98.0% first reached at epoch {first['epoch']} after {float(first['elapsed']):.1f} s"
            if first
            else "98.0% never reached"
        )
        print(
            f"mnist-best: whole command {best_s:.1f} s, peak {best_mb:.0f} MB, final test "
            f"accuracy {float(best_rows[-1]['test_acc']):.4f}; {reached} of training"
        )


if __name__ == "__main__":
    main()
