"""Test accuracy of a one-hidden-layer network trained with augmentation on real MNIST.

784-H-10 ReLU network (he init, float32) trained on all 60,000 training images with Adam or
momentum SGD (both written here), a cosine-decaying learning rate and bpnet's Augmenter; after
every epoch it prints the learning rate, the mean training loss and the test accuracy. With
--run-dir it also writes metrics.csv and weights.npz there, in bpnet's run-directory formats.
Run (about 40 minutes on two cores at the defaults):

    python benchmarks/augment_accuracy.py [--epochs 40] [--run-dir runs/augment]
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from pathlib import Path

import numpy as np
from _shared import data_dir_default, load_mnist, train_epoch

from bpnet.nn import MultiLayerNet
from bpnet.nn.augment import DEFAULTS, Augmenter

METRICS = ["epoch", "iteration", "lr", "train_loss", "train_acc", "val_loss", "val_acc",
           "test_loss", "test_acc", "elapsed"]


class Adam:
    """Adam (Kingma & Ba) with bias correction; ``lr`` is set from outside each epoch."""

    def __init__(self, params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.params, self.lr, self.b1, self.b2, self.eps, self.t = params, lr, beta1, beta2, eps, 0
        self.m = {k: np.zeros_like(p) for k, p in params.items()}
        self.v = {k: np.zeros_like(p) for k, p in params.items()}

    def __call__(self, grads):
        self.t += 1
        step = self.lr * math.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)
        for k, g in grads.items():
            self.m[k] += (1 - self.b1) * (g - self.m[k])
            self.v[k] += (1 - self.b2) * (g * g - self.v[k])
            self.params[k] -= (step * self.m[k] / (np.sqrt(self.v[k]) + self.eps)).astype(g.dtype)


class Momentum:
    """SGD with momentum: v ← μ·v − lr·g, p ← p + v."""

    def __init__(self, params, lr, momentum=0.9):
        self.params, self.lr, self.mu = params, lr, momentum
        self.v = {k: np.zeros_like(p) for k, p in params.items()}

    def __call__(self, grads):
        for k, g in grads.items():
            self.v[k] *= self.mu
            self.v[k] -= (self.lr * g).astype(g.dtype)
            self.params[k] += self.v[k]


def save_weights(path, net, meta):
    """weights.npz with W1, b1, … and meta (a JSON string), written atomically."""
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **net.params, meta=np.array(json.dumps(meta)))
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=data_dir_default(), help="folder holding mnist/")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--hidden", type=int, default=800)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--optimizer", choices=["adam", "momentum"], default="adam")
    ap.add_argument("--lr", type=float, default=1e-3, help="initial learning rate")
    ap.add_argument("--lr-min", type=float, default=1e-5, help="learning rate of the last epoch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run-dir", type=Path, help="write metrics.csv and weights.npz here")
    for key, value in DEFAULTS.items():
        ap.add_argument("--" + key.replace("_", "-"), type=type(value), default=value,
                        help=f"Augmenter {key} [default: {value}]")
    args = ap.parse_args()
    aug_settings = {k: getattr(args, k) for k in DEFAULTS}
    rng = np.random.default_rng(args.seed)
    x, t, x_test, t_test = load_mnist(args.data_dir)
    net = MultiLayerNet(784, [args.hidden], 10, weight_init_std="he", dtype=np.float32, rng=rng)
    optimizer = (Adam if args.optimizer == "adam" else Momentum)(net.params, args.lr)
    augment = Augmenter(**aug_settings, rng=rng)
    print(f"784-{args.hidden}-10 relu float32, {args.optimizer} lr {args.lr:g} -> {args.lr_min:g} "
          f"(cosine), batch {args.batch}, {augment}", flush=True)
    rows, start = [], time.perf_counter()
    if args.run_dir:
        args.run_dir.mkdir(parents=True, exist_ok=True)
    for epoch in range(1, args.epochs + 1):
        progress = (epoch - 1) / max(1, args.epochs - 1)
        optimizer.lr = args.lr_min + 0.5 * (args.lr - args.lr_min) * (1 + math.cos(math.pi * progress))
        train_loss, train_acc = train_epoch(net, x, t, args.batch, rng, optimizer, augment)
        test_loss, test_acc = net.loss(x_test, t_test), net.accuracy(x_test, t_test)
        elapsed = time.perf_counter() - start
        rows.append([epoch, epoch * (len(x) // args.batch), f"{optimizer.lr:.6g}", f"{train_loss:.6f}",
                     f"{train_acc:.4f}", "", "", f"{test_loss:.6f}", f"{test_acc:.4f}", f"{elapsed:.1f}"])
        print(f"epoch {epoch:3d}  lr {optimizer.lr:.2e}  train loss {train_loss:.4f} acc {100 * train_acc:.2f}%  "
              f"test loss {test_loss:.4f}  test acc {100 * test_acc:.2f}%  {elapsed:6.0f} s", flush=True)
        if args.run_dir:
            with open(args.run_dir / "metrics.csv.tmp", "w", newline="") as fh:
                csv.writer(fh).writerows([METRICS, *rows])
            os.replace(args.run_dir / "metrics.csv.tmp", args.run_dir / "metrics.csv")
            save_weights(args.run_dir / "weights.npz", net, {
                "sizes": net.sizes, "activation": "relu", "dataset": "mnist", "normalize": True,
                "dtype": "float32", "epoch": epoch, "augment": aug_settings})


if __name__ == "__main__":
    main()
