"""The book's chapter 6.5 hyperparameter search: `bpnet sweep book-ch6` against the book's own
ch06/hyperparameter_optimization.py, both run here in one session, one after the other.

    python benchmarks/sweep_book.py --book PATH/TO/deep-learning-from-scratch [--jobs 2]

The book's script is run from a temporary copy of that checkout (with MPLBACKEND=Agg so its
final plt.show() returns, and one BLAS thread, as bpnet's workers use), its dataset/mnist.pkl
built there from bpnet's MNIST arrays. Prints wall times, best validation accuracies, the ratio.
Figures, not a pass/fail test.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bpnet.data.idx import load_arrays


def run_book(book, data_dir, tmp):
    copy = Path(tmp) / "book"
    shutil.copytree(book, copy, ignore=shutil.ignore_patterns(".git", "*.pkl"))
    a = load_arrays("mnist", data_dir)
    with open(copy / "dataset" / "mnist.pkl", "wb") as fh:
        pickle.dump(
            {
                "train_img": a["x_train"].reshape(60000, -1),
                "train_label": a["t_train"],
                "test_img": a["x_test"].reshape(10000, -1),
                "test_label": a["t_test"],
            },
            fh,
        )
    env = dict(
        os.environ,
        MPLBACKEND="Agg",
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "hyperparameter_optimization.py"],
        cwd=copy / "ch06",
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    seconds = time.perf_counter() - started
    best = max(float(v) for v in re.findall(r"^val acc:([0-9.]+)", out, re.M))
    return seconds, best


def run_bpnet(sweep, data_dir, jobs, tmp):
    exe = Path(sys.executable).with_name("bpnet")
    started = time.perf_counter()
    out = subprocess.run(
        [
            str(exe),
            "sweep",
            sweep,
            "--jobs",
            str(jobs),
            "--data-dir",
            str(data_dir),
            "--offline",
            "--quiet",
            "--out",
            str(Path(tmp) / sweep),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    seconds = time.perf_counter() - started
    best = float(out.splitlines()[2].split()[1])  # first row of the table of best trials
    return seconds, best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--book", required=True, help="a checkout of deep-learning-from-scratch")
    ap.add_argument("--data-dir", default=os.environ.get("BPNET_DATA_DIR", "data"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--sweeps", default="book-ch6,book-ch6-tpe")
    args = ap.parse_args()
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            (f"bpnet sweep {s} --jobs {args.jobs}", *run_bpnet(s, args.data_dir, args.jobs, tmp))
            for s in args.sweeps.split(",")
        ]
        book = run_book(args.book, args.data_dir, tmp)
    print(f"{'run':40s} {'seconds':>8s} {'best val acc':>13s} {'speed-up':>9s}")
    print(f"{'book ch06/hyperparameter_optimization.py':40s} {book[0]:8.1f} {book[1]:13.4f}")
    for name, seconds, best in rows:
        print(f"{name:40s} {seconds:8.1f} {best:13.4f} {book[0] / seconds:8.1f}x")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
