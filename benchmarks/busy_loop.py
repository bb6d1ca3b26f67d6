"""The training loop on a quiet machine and with one core kept busy, and the fast configs side by
side: every figure from one run.

    python benchmarks/busy_loop.py [--repeats 3] [--data-dir D] [--configs ...]

Each run is a whole ``bpnet train --config C`` command in its own process, first on the machine as
it is ("quiet"), then with one core kept busy by a spinning process ("busy"), repeats interleaved.
Printed for each config, quiet and busy: the whole command's wall time (the best of the repeats),
the CPU time of the training thread and of every other thread of the process (the batch-preparing
thread, the file writer, the product threads), the peak memory (VmHWM), the final test accuracy,
and busy / quiet. Work done off the training thread runs on the second core when the machine is
quiet and competes with the training thread for the one free core when it is busy: the CPU
columns show how much of it each run has. The configs (default): the lesson (mnist.yaml), one
epoch of mnist-cnn, each also on 1 thread (``--threads 1``), then mnist-cnn-fast and
mnist-augment-fast.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _shared import data_dir_default, train_command  # noqa: E402

# Runs `bpnet train ...` in this process, then writes one JSON object to $BUSY_LOOP_OUT: the CPU
# seconds of the whole process and of its main (training) thread, and VmHWM in kB.
WRAPPER = r"""
import json, os, sys
sys.path.insert(0, os.environ["BUSY_LOOP_BENCHMARKS"])
from _shared import cpu_ticks
from bpnet.cli.main import main

def report():
    hz = os.sysconf("SC_CLK_TCK")
    with open("/proc/self/status") as fh:
        hwm = int(next(l for l in fh if l.startswith("VmHWM")).split()[1])
    with open(os.environ["BUSY_LOOP_OUT"], "w") as fh:
        json.dump({"process": sum(cpu_ticks("/proc/self/stat")) / hz,
                   "main": sum(cpu_ticks(f"/proc/self/task/{os.getpid()}/stat")) / hz,
                   "vmhwm": hwm}, fh)

try:
    main(sys.argv[1:], prog_name="bpnet")
except SystemExit as e:
    report()
    raise
report()
"""

DEFAULT_CONFIGS = [
    "mnist.yaml",
    "mnist.yaml@1",
    "mnist-cnn:600",
    "mnist-cnn:600@1",
    "mnist-cnn-fast",
    "mnist-augment-fast",
]


def run(config, data_dir, out):
    """(wall s, {process, main, vmhwm}, final test accuracy) of one whole command. ``config``
    may end in ``:N``, N training iterations, and then in ``@T``, T threads."""
    config, _, threads = config.partition("@")
    name, _, iterations = config.partition(":")
    cmd = [sys.executable, "-c", WRAPPER, "train", "--config", name, "--data-dir", str(data_dir)]
    cmd += ["--out", str(out), "--offline", "--quiet", "--force"]
    if iterations:
        cmd += ["--iterations", iterations]
    if threads:
        cmd += ["--threads", threads]
    stats = Path(out).with_suffix(".json")
    env = {**os.environ, "BUSY_LOOP_OUT": str(stats), "BUSY_LOOP_BENCHMARKS": str(HERE)}
    wall, acc = train_command(cmd, out, env, label=" ".join(cmd[3:]))
    return wall, json.loads(stats.read_text()), acc


def measure(configs, data_dir, repeats, tmp):
    """{config: (wall, stats, accuracy) of the fastest repeat}, repeats interleaved."""
    best = {}
    for _ in range(repeats):
        for config in configs:
            result = run(config, data_dir, tmp / config.replace(":", "-").replace("@", "-t"))
            if config not in best or result[0] < best[config][0]:
                best[config] = result
    return best


def report(label, results, quiet=None):
    print(f"-- {label}: load average {os.getloadavg()[0]:.2f} at the end")
    head = f"{'bpnet train --config':<36}{'wall':>9}{'train thr':>11}{'others':>9}{'VmHWM':>9}"
    print(head + f"{'test acc':>10}" + ("   busy / quiet" if quiet else ""))
    for config, (wall, s, acc) in results.items():
        spec, _, threads = config.partition("@")
        name, _, iters = spec.partition(":")
        label = name + "".join(
            f", {v} {unit}" for v, unit in ((iters, "iterations"), (threads, "thread")) if v
        )
        others = s["process"] - s["main"]
        line = f"{label:<36}{wall:8.2f}s{s['main']:10.2f}s{others:8.2f}s"
        line += f"{s['vmhwm'] / 1024:6.0f} MB{acc:10.4f}"
        if quiet:
            line += f"   {wall / quiet[config][0]:.2f}  [goal <= 1.10]"
        print(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(data_dir_default()), help="folder holding mnist/")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats [3]")
    ap.add_argument(
        "--configs",
        nargs="+",
        default=DEFAULT_CONFIGS,
        help="shipped configs or files, each optionally :N for N iterations, then @T threads",
    )
    args = ap.parse_args()
    print(
        f"{os.cpu_count()} cores; best of {args.repeats} interleaved repeats; load average "
        f"{os.getloadavg()[0]:.2f} at the start"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        quiet = measure(args.configs, args.data_dir, args.repeats, tmp)
        report("quiet", quiet)
        fast, slow = "mnist-cnn-fast", "mnist-augment-fast"
        if fast in quiet and slow in quiet:
            print(
                f"{fast} / {slow}, whole command: {quiet[fast][0] / quiet[slow][0]:.2f}  "
                f"[goal < 1.00, at >= 0.99: {quiet[fast][2]:.4f}]"
            )
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            busy = measure(args.configs, args.data_dir, args.repeats, tmp)
        finally:
            spinner.kill()
            spinner.wait()
        report("one core kept busy by a spinning process", busy, quiet)


if __name__ == "__main__":
    main()
