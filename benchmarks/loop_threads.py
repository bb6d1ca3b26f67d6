"""The CPU time of each thread of one `bpnet` command, by the thread's name.

    python benchmarks/loop_threads.py train --config mnist.yaml --quiet

Runs the command in this process while a sampler thread reads every thread's user and system
time from /proc/self/task every 0.1 s (a thread's last sample stands for it once it has ended),
then prints the command's wall time and a line per thread: MainThread is the training loop,
bpnet-batches_0 prepares the batches, bpnet-matmul_* share the products, bpnet-save_0 writes
the files. Linux only.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import cpu_ticks  # noqa: E402

seen = {}  # tid -> (name, user ticks, system ticks)
names = {}  # native thread id -> Python thread name
done = threading.Event()


def sample():
    while not done.is_set():
        for t in threading.enumerate():
            if t.native_id:
                names[t.native_id] = t.name
        for tid in os.listdir("/proc/self/task"):
            try:
                user, system = cpu_ticks(f"/proc/self/task/{tid}/stat")
            except OSError:
                continue
            seen[tid] = (names.get(int(tid), "(no Python name)"), user, system)
        done.wait(0.1)


def main():
    threading.Thread(target=sample, daemon=True, name="sampler").start()
    from bpnet.cli.main import main as bpnet

    start = time.perf_counter()
    try:
        bpnet(sys.argv[1:], prog_name="bpnet", standalone_mode=False)
    finally:
        wall = time.perf_counter() - start
        done.set()
        time.sleep(0.05)
        hz = os.sysconf("SC_CLK_TCK")
        print(f"wall {wall:.2f} s", file=sys.stderr)
        for _, (name, user, system) in sorted(seen.items(), key=lambda kv: -kv[1][1]):
            if user + system and name != "sampler":
                print(
                    f"  {name:<18} user {user / hz:5.2f} s  sys {system / hz:5.2f} s",
                    file=sys.stderr,
                )


if __name__ == "__main__":
    main()
