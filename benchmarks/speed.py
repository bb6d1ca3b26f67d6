"""Both cores without the stall, and the time to 98% and 99%: every figure of the speed goals
from one run, as ratios against baselines measured in the same run.

Prints, first on the machine as it is ("quiet") and then with one core kept busy by a spinning
process ("busy"):
  - floors: the matrix products of 784-800-10 epochs (batch 100) and of the lesson's 784-50-10
    run, at 1 thread, at N threads split by bpnet (bpnet.nn.threads), and at N OpenBLAS threads;
  - bpnet's 784-800-10 training iterations at 1 and N threads;
  - the lesson's run, `bpnet train --config mnist.yaml`, whole command, against the N-thread floor;
  - the fast configs (mnist-fast, mnist-augment-fast): whole command and final test accuracy;
  - PyTorch's whole-process time to 98% test accuracy (784-800-10, Adam 1e-3, batch 128, its
    default threads), when this interpreter has torch or --torch-python names one that has.
Every timing is the best of --repeats interleaved repeats. Usage:
  python benchmarks/speed.py [--quick] [--torch-python PATH] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import data_dir_default, train_command  # noqa: E402

from bpnet.nn import threads  # noqa: E402
from bpnet.training.trainer import Progress  # noqa: E402

HERE = Path(__file__).resolve()
TORCH_SCRIPT = r"""
import sys, time
start = time.perf_counter()
import numpy as np, torch
a = np.load(sys.argv[1])
x, xt = (torch.from_numpy(a[k].astype(np.float32) / 255) for k in ("x_train", "x_test"))
t, tt = (torch.from_numpy(a[k].astype(np.int64)) for k in ("t_train", "t_test"))
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(784, 800), torch.nn.ReLU(), torch.nn.Linear(800, 10))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
loss_fn = torch.nn.CrossEntropyLoss()
for epoch in range(1, 31):
    for idx in torch.randperm(len(t)).split(128):
        opt.zero_grad()
        loss_fn(net(x[idx]), t[idx]).backward()
        opt.step()
    with torch.no_grad():
        acc = (net(xt).argmax(1) == tt).float().mean().item()
    if acc >= 0.98:
        break
print(f"{time.perf_counter() - start:.3f} {epoch} {acc:.4f} {torch.get_num_threads()}")
"""


def product_shapes(hidden, batch=100):
    """(a, b) shapes of the 5 products of one training step of 784-hidden-10: forward,
    hidden-layer input gradient, and both weight gradients (a given transposed where it is)."""
    return [
        ((batch, 784), (784, hidden)),
        ((batch, hidden), (hidden, 10)),
        ((batch, 10), (10, hidden)),
        ((hidden, batch), (batch, 10)),
        ((784, batch), (batch, hidden)),
    ]


def floor(hidden, iterations, mode, n):
    """Seconds for the products of ``iterations`` steps. mode "blas": each product one NumPy
    call on ``n`` OpenBLAS threads; "split": ``threads.matmul`` within ``threads.use(n)``."""
    rng = np.random.default_rng(0)
    pairs = [
        (
            rng.random(a[::-1], np.float32).T if a[0] > a[1] else rng.random(a, np.float32),
            rng.random(b, np.float32),
        )
        for a, b in product_shapes(hidden)
    ]
    outs = [np.empty((a.shape[0], b.shape[1]), np.float32) for a, b in pairs]
    product = threads.matmul if mode == "split" else np.matmul
    with (
        threads.use(n if mode == "split" else 1),
        threadpool_limits(n if mode == "blas" else 1, user_api="blas"),
    ):
        start = time.perf_counter()
        for _ in range(iterations):
            for (a, b), out in zip(pairs, outs):
                product(a, b, out=out)
        return time.perf_counter() - start


class StepClock(Progress):
    """The time from the loop's start to its last training step."""

    def start(self, total, done, iters_per_epoch):
        self.started = self.last = time.perf_counter()

    def step(self, iteration, loss):
        self.last = time.perf_counter()


def train_iterations(data, hidden, iterations, n, tmp):
    """Seconds of bpnet's training iterations (no evaluation) of 784-hidden-10, batch 100."""
    from bpnet.training.sources import load_config
    from bpnet.training.trainer import Trainer

    cfg = load_config(
        "mnist",
        [f"model.hidden=[{hidden}]", "model.weight_init=he"],
        {"train.iterations": iterations, "train.threads": n, "output.dir": str(tmp)},
    )
    clock = StepClock()
    Trainer(cfg, data, tmp, clock).run()
    return clock.last - clock.started


def command(config, data_dir, out, *extra, env=None):
    """(whole-command seconds, final test accuracy) of `bpnet train --config CONFIG`."""
    exe = Path(sys.executable).with_name("bpnet")
    cmd = [str(exe), "train", "--config", config, "--data-dir", str(data_dir), "--out", str(out)]
    return train_command([*cmd, "--offline", "--quiet", "--force", *extra], out, env)


def torch_time(python, arrays):
    """(whole-process seconds to 98%, epochs, accuracy, threads), or the error text.
    ``arrays``: an .npz of MNIST's uint8 images (N, 784) and labels, as bpnet's cache holds."""
    try:
        done = subprocess.run(
            [python, "-c", TORCH_SCRIPT, str(arrays)], capture_output=True, text=True, timeout=300
        )
    except subprocess.TimeoutExpired:
        return "no 98% within 300 s"
    if done.returncode:
        return done.stderr.strip().splitlines()[-1]
    s, epochs, acc, n = done.stdout.split()
    return float(s), int(epochs), float(acc), int(n)


def has_torch(python):
    return subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0


def measure(args, data, tmp, label):
    """One condition's figures, each the best of ``args.repeats`` interleaved repeats."""
    n, reps = args.threads, args.repeats
    ep = 150 if args.quick else 600  # one 784-800-10 epoch at batch 100 is 600 iterations
    lesson = 2500 if args.quick else 10000
    keys = [
        "floor800-1",
        f"floor800-{n}",
        f"blas800-{n}",
        "floor50-1",
        f"floor50-{n}",
        f"blas50-{n}",
        "iter800-1",
        f"iter800-{n}",
        "lesson",
    ]
    t = {k: [] for k in keys}
    acc = {}
    for r in range(reps):
        t["floor800-1"].append(floor(800, ep, "blas", 1))
        t[f"floor800-{n}"].append(floor(800, ep, "split", n))
        t[f"blas800-{n}"].append(floor(800, ep, "blas", n))
        t["floor50-1"].append(floor(50, lesson, "blas", 1))
        t[f"floor50-{n}"].append(floor(50, lesson, "split", n))
        t[f"blas50-{n}"].append(floor(50, lesson, "blas", n))
        t["iter800-1"].append(train_iterations(data, 800, ep, 1, tmp / f"i1-{label}-{r}"))
        t[f"iter800-{n}"].append(train_iterations(data, 800, ep, n, tmp / f"in-{label}-{r}"))
        extra = ["--iterations", str(lesson)]
        t["lesson"].append(command("mnist.yaml", args.data_dir, tmp / "lesson", *extra)[0])
        for config in args.configs:
            seconds, acc[config] = command(config, args.data_dir, tmp / config)
            t.setdefault(config, []).append(seconds)
    best = {k: min(v) for k, v in t.items()}
    if args.torch_python:
        best["torch"] = torch_time(args.torch_python, tmp / "mnist.npz")
    return best, acc


def report(best, acc, args, label, quiet=None):
    n = args.threads
    ep = "1/4 epoch" if args.quick else "1 epoch"
    lesson = "2500 iterations" if args.quick else "10000 iterations"
    rows = [
        (f"floor 784-800-10, {ep}, 1 thread", best["floor800-1"], ""),
        (
            f"floor 784-800-10, {ep}, {n} threads (bpnet split)",
            best[f"floor800-{n}"],
            f"{best['floor800-1'] / best[f'floor800-{n}']:.2f}x faster than 1 thread",
        ),
        (
            f"floor 784-800-10, {ep}, {n} OpenBLAS threads",
            best[f"blas800-{n}"],
            f"{best['floor800-1'] / best[f'blas800-{n}']:.2f}x faster than 1 thread",
        ),
        (f"floor 784-50-10, {lesson}, 1 thread", best["floor50-1"], ""),
        (
            f"floor 784-50-10, {lesson}, {n} threads (bpnet split)",
            best[f"floor50-{n}"],
            f"{best['floor50-1'] / best[f'floor50-{n}']:.2f}x faster than 1 thread",
        ),
        (
            f"floor 784-50-10, {lesson}, {n} OpenBLAS threads",
            best[f"blas50-{n}"],
            f"{best['floor50-1'] / best[f'blas50-{n}']:.2f}x faster than 1 thread",
        ),
        (f"bpnet 784-800-10 iterations, {ep}, 1 thread", best["iter800-1"], ""),
        (
            f"bpnet 784-800-10 iterations, {ep}, {n} threads",
            best[f"iter800-{n}"],
            f"{best['iter800-1'] / best[f'iter800-{n}']:.2f}x faster than 1 thread  [goal 1]",
        ),
        (
            f"bpnet train --config mnist.yaml ({lesson}), whole",
            best["lesson"],
            f"{best['lesson'] / min(best[f'floor50-{n}'], best[f'blas50-{n}']):.2f}x the "
            f"{n}-thread floor  [goal 2]",
        ),
    ]
    for config in args.configs:
        rows.append(
            (
                f"bpnet train --config {config}, whole",
                best[config],
                f"final test accuracy {acc[config]:.4f}",
            )
        )
    torch = best.get("torch")
    if args.torch_python:
        if not isinstance(torch, str):
            rows.append(
                (
                    f"PyTorch 784-800-10 Adam, to 98% ({torch[3]} threads), whole",
                    torch[0],
                    f"epoch {torch[1]}, test accuracy {torch[2]:.4f}",
                )
            )
        else:
            rows.append(("PyTorch", float("nan"), f"failed in {args.torch_python}: {torch}"))
    print(f"-- {label}: load average {os.getloadavg()[0]:.2f} at the end")
    width = max(len(r[0]) for r in rows)
    for name, sec, note in rows:
        print(f"{name:<{width}}  {sec:7.2f} s  {note}")
    if torch and not isinstance(torch, str) and "mnist-fast" in best:
        print(
            f"mnist-fast whole command / PyTorch's time to 98%: "
            f"{best['mnist-fast'] / torch[0]:.2f}  [goal 3: <= 0.50]"
        )
    if "mnist-augment-fast" in best:
        print(
            f"mnist-augment-fast whole command / 67 s (mnist-augment's time to 99%): "
            f"{best['mnist-augment-fast'] / 67:.2f}  [goal 4: <= 0.50]"
        )
    if quiet:
        print(
            "busy / quiet: "
            + ", ".join(
                f"{k} {best[k] / quiet[k]:.2f}" for k in ("iter800-1", f"iter800-{n}", "lesson")
            )
        )
        print(
            f"busy: {n} threads / 1 thread, 784-800-10 iterations: "
            f"{best[f'iter800-{n}'] / best['iter800-1']:.2f}  [goal 1: <= 1.10]; "
            f"lesson busy / quiet {best['lesson'] / quiet['lesson']:.2f}  [goal 2: <= 1.10]"
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data-dir",
        default=str(data_dir_default()),
        help="folder holding mnist/ (default: $BPNET_DATA_DIR, else ../shared)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=threads.available_cores(),
        help="N, the thread count compared with 1 [default: the usable cores]",
    )
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats [default: 3]")
    ap.add_argument(
        "--quick", action="store_true", help="a quarter of the work, one repeat, mnist-fast only"
    )
    ap.add_argument(
        "--torch-python",
        metavar="PATH",
        help="a Python that has torch, for the comparison [default: this one, if it has torch]",
    )
    ap.add_argument("--no-busy", action="store_true", help="skip the busy-core half")
    args = ap.parse_args()
    if args.quick:
        args.repeats = 1
    args.configs = ["mnist-fast"] if args.quick else ["mnist-fast", "mnist-augment-fast"]
    if args.torch_python is None and has_torch(sys.executable):
        args.torch_python = sys.executable
    from bpnet.training.batches import load_data
    from bpnet.training.sources import load_config

    data = load_data(load_config("mnist", cli={"data_dir": args.data_dir}))
    print(
        f"{threads.available_cores()} usable cores, N = {args.threads}; best of {args.repeats} "
        f"interleaved repeats; load average {os.getloadavg()[0]:.2f} at the start"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.torch_python:
            np.savez(
                tmp / "mnist.npz",
                x_train=data.train.x,
                t_train=data.train.t,
                x_test=data.test.x,
                t_test=data.test.t,
            )
        quiet, acc = measure(args, data, tmp, "quiet")
        report(quiet, acc, args, "quiet")
        if args.no_busy:
            return
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            busy, acc = measure(args, data, tmp, "busy")
        finally:
            spinner.kill()
            spinner.wait()
        report(busy, acc, args, "one core kept busy by a spinning process", quiet)


if __name__ == "__main__":
    main()
