"""Test accuracy of a one-hidden-layer network trained with augmentation on real MNIST.

784-H-10 ReLU network (he init, float32) trained on all 60,000 training images with Adam or
momentum SGD, a learning rate decaying by a cosine from epoch to epoch and bpnet's Augmenter; after
every epoch it prints the learning rate, the mean training loss and the test accuracy. With
--run-dir it also writes metrics.csv and weights.npz there, in bpnet's run-directory formats.
The defaults are the settings that reach 99.2-99.3% (see the README's Augmentation section). Run:

    python benchmarks/augment_accuracy.py [--epochs 50] [--run-dir runs/augment]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _shared import data_dir_default, load_mnist, train_epoch

from bpnet.nn import MultiLayerNet
from bpnet.nn.augment import Augmenter
from bpnet.nn.io import atomic_write_text, save_weights
from bpnet.nn.optim import learning_rate, make_optimizer
from bpnet.nn.train import METRIC_COLUMNS

RECIPE = {"shift": 1, "rotate": 5.0, "scale": 0.05, "shear": 5.0, "elastic_alpha": 34.0,
          "elastic_sigma": 4.0}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=data_dir_default(), help="folder holding mnist/")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--hidden", type=int, default=800)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--optimizer", choices=["adam", "momentum"], default="adam")
    ap.add_argument("--lr", type=float, default=1e-3, help="initial learning rate")
    ap.add_argument("--lr-min", type=float, default=1e-5, help="learning rate of the last epoch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run-dir", type=Path, help="write metrics.csv and weights.npz here")
    for key, value in RECIPE.items():
        ap.add_argument("--" + key.replace("_", "-"), type=type(value), default=value,
                        help=f"Augmenter {key} [default: {value}]")
    args = ap.parse_args()
    aug_settings = {k: getattr(args, k) for k in RECIPE}
    rng = np.random.default_rng(args.seed)
    x, t, x_test, t_test = load_mnist(args.data_dir)
    net = MultiLayerNet(784, [args.hidden], 10, weight_init_std="he", dtype=np.float32, rng=rng)
    optimizer = make_optimizer(args.optimizer, args.lr)
    augment = Augmenter(**aug_settings, rng=rng)
    print(f"784-{args.hidden}-10 relu float32, {args.optimizer} lr {args.lr:g} -> {args.lr_min:g} "
          f"(cosine), batch {args.batch}, {augment}", flush=True)
    rows, start = [], time.perf_counter()
    if args.run_dir:
        args.run_dir.mkdir(parents=True, exist_ok=True)
    for epoch in range(1, args.epochs + 1):
        optimizer.lr = learning_rate("cosine", args.lr, epoch - 1, args.epochs - 1, 1,
                                     min_lr=args.lr_min)
        train_loss, train_acc = train_epoch(net, x, t, args.batch, rng,
                                            lambda grads: optimizer.update(net.params, grads),
                                            augment)
        test_loss, test_acc = net.loss(x_test, t_test), net.accuracy(x_test, t_test)
        elapsed = time.perf_counter() - start
        rows.append([epoch, epoch * (len(x) // args.batch), f"{optimizer.lr:.6g}",
                     f"{train_loss:.6f}", f"{train_acc:.4f}", "", "", f"{test_loss:.6f}",
                     f"{test_acc:.4f}", f"{elapsed:.1f}"])
        print(f"epoch {epoch:3d}  lr {optimizer.lr:.2e}  train loss {train_loss:.4f} "
              f"acc {100 * train_acc:.2f}%  test loss {test_loss:.4f}  "
              f"test acc {100 * test_acc:.2f}%  {elapsed:6.0f} s", flush=True)
        if args.run_dir:
            lines = [",".join(map(str, row)) for row in [METRIC_COLUMNS, *rows]]
            atomic_write_text(args.run_dir / "metrics.csv", "\n".join(lines) + "\n")
            save_weights(args.run_dir / "weights.npz", net.params, {
                "sizes": net.sizes, "activation": "relu", "dataset": "mnist", "normalize": True,
                "dtype": "float32", "epoch": epoch, "augment": aug_settings})


if __name__ == "__main__":
    main()
