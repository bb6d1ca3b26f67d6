"""Cost of augmentation: plain training epochs against augmented ones.

Trains 784-800-10 (ReLU, he init, float32, batch 100, plain SGD) on real MNIST. For each
augmentation setting it runs a plain and an augmented epoch over the same shuffled batches,
alternating blocks of 20 batches between the two so that load from other processes hits both
alike. It prints both epoch times, their ratio, and the ratio of the fastest plain and fastest
augmented block (the figure for an otherwise idle machine), with the load average. BLAS runs
with the threads `bpnet train` gives it (bpnet.nn.threads: BPNET_THREADS, default every core). Run:

    [BPNET_THREADS=2] python benchmarks/augment.py [--data-dir DIR] [--epochs 1] [--hidden 800]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _shared import data_dir_default, load_mnist

from bpnet.data.augment import Augmenter
from bpnet.nn import MultiLayerNet, threads

SETTINGS = {
    "shift 2": dict(shift=2),
    "shift 2 + affine": dict(shift=2, rotate=10, scale=0.1, shear=10),
    "shift 2 + affine + elastic": dict(
        shift=2, rotate=10, scale=0.1, shear=10, elastic_alpha=34, elastic_sigma=4
    ),
}
BATCH, BLOCK = 100, 20


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=data_dir_default(), help="folder holding mnist/")
    ap.add_argument("--epochs", type=int, default=1, help="paired epochs timed per setting")
    ap.add_argument("--hidden", type=int, default=800, help="hidden units")
    args = ap.parse_args()
    x, t, _, _ = load_mnist(args.data_dir)
    net = MultiLayerNet(784, [args.hidden], 10, weight_init_std="he", dtype=np.float32, rng=0)
    lr = np.float32(0.01)

    def step(xb, tb):
        for k, g in net.gradient(xb, tb).items():
            net.params[k] -= lr * g

    def timed_blocks(batches, augment):
        """Seconds of each block of plain steps and of the same steps with augmentation."""
        plain, aug = [], []
        for i in range(0, len(batches), BLOCK):
            block = batches[i : i + BLOCK]
            start = time.perf_counter()
            for idx in block:
                step(x[idx], t[idx])
            middle = time.perf_counter()
            for idx in block:
                step(augment(x[idx]), t[idx])
            plain.append(middle - start)
            aug.append(time.perf_counter() - middle)
        return plain, aug

    rng = np.random.default_rng(1)
    print(
        f"784-{args.hidden}-10 float32, batch {BATCH}, {len(x)} images per epoch, "
        f"{args.epochs} paired epoch(s) per setting"
    )
    print(
        f"threads {threads.resolve()}, load average "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    print(
        f"{'setting':28s} {'plain s':>8s} {'augmented s':>12s} {'ratio':>6s} "
        f"{'fastest blocks':>15s}"
    )
    with threads.use():
        run_settings(args, rng, timed_blocks, x)
    print(f"load average {os.getloadavg()[0]:.2f}")


def run_settings(args, rng, timed_blocks, x):
    for name, kw in SETTINGS.items():
        augment = Augmenter(**kw, rng=0)
        plain, aug = [], []
        for _ in range(args.epochs):
            order = rng.permutation(len(x))
            batches = [order[i : i + BATCH] for i in range(0, len(x) - BATCH + 1, BATCH)]
            p, a = timed_blocks(batches, augment)
            plain, aug = plain + p, aug + a
        epoch_plain, epoch_aug = sum(plain) / args.epochs, sum(aug) / args.epochs
        print(
            f"{name:28s} {epoch_plain:8.2f} {epoch_aug:12.2f} {epoch_aug / epoch_plain:6.2f} "
            f"{min(aug) / min(plain):15.2f}"
        )


if __name__ == "__main__":
    main()
