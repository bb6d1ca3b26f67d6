"""What a hostile sweep file and an unanswering database cost ``bpnet sweep``.

1. Checking a sweep file whose one choice holds 40,000 values (about 240 KB): the wall time of
   ``load_sweep`` in a fresh process (NumPy imported first, so the figure is the check alone).
   ``--other-root DIR`` times an older checkout's ``load_sweep`` beside this one in the same run
   (DIR is the checkout's root, which is the package ``bpnet``); a check is stopped after
   ``--limit`` seconds.
2. A database server that accepts connections and never answers: the wall time of ``bpnet sweep``
   until it gives up, with its one line, for PostgreSQL, MySQL (PyMySQL) and Redis URLs pointing at
   a silent TCP server on 127.0.0.1.
3. A budget of a billion trials: ``bpnet sweep`` is started, given Ctrl-C (SIGINT to its process
   group) once its journal holds a running trial, and the time from the signal to its exit, its
   exit status and the journal's size are printed.

Run (needs ``bpnet[sweep,postgres,mysql,redis]``, which the test extra installs, and real MNIST):

    python benchmarks/sweep_edges.py
    python benchmarks/sweep_edges.py --other-root /path/to/old/checkout
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _shared import data_dir_default

BPNET = shutil.which("bpnet", path=str(Path(sys.executable).parent)) or "bpnet"
CHECK = (
    "import sys, time\n"
    "import numpy\n"
    "try:\n"
    "    from bpnet.sweep.spec import load_sweep\n"
    "except ImportError:  # before bpnet.sweep (0.1.0)\n"
    "    from bpnet.nn.sweep import load_sweep\n"
    "start = time.perf_counter()\n"
    "sweep = load_sweep(sys.argv[1])\n"
    "print(time.perf_counter() - start, len(sweep.space[0].values))\n"
)
TINY = """config: quick.yaml
set: {{data.subset: 2000, data.validation: 500, train.epochs: 1}}
space:
  {key}
n_trials: 2
"""


def big_choice_file(folder):
    values = ",".join(str(i + 1) for i in range(40_000))
    path = folder / "big.yaml"
    path.write_text(TINY.format(key=f"model.hidden: {{choice: [{values}]}}"))
    return path


def time_check(path, root=None, limit=120.0):
    """(seconds, values) of load_sweep(path) in a fresh process; root: another checkout."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as shadow:
        if root:
            (Path(shadow) / "bpnet").symlink_to(Path(root).resolve())
            env["PYTHONPATH"] = shadow
        try:
            p = subprocess.run(
                [sys.executable, "-c", CHECK, str(path)],
                capture_output=True,
                text=True,
                env=env,
                timeout=limit,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None, f"still checking after {limit:.0f} s (stopped)"
    if p.returncode:
        return None, p.stderr.strip().splitlines()[-1]
    seconds, values = p.stdout.split()
    return float(seconds), f"{int(values):,} values"


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts every connection and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.held, self.stop = [], threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                continue

    def close(self):
        self.stop.set()
        self.thread.join()
        for conn in self.held:
            conn.close()
        self.sock.close()


def time_refusal(url, folder, data_dir, limit=300.0):
    path = folder / "tiny.yaml"
    path.write_text(TINY.format(key="train.lr: {log_uniform: [0.01, 0.1]}"))
    cmd = [BPNET, "sweep", str(path), "--storage", url, "--data-dir", str(data_dir), "--offline"]
    start = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return None, None, f"no answer after {limit:.0f} s (stopped)"
    seconds = time.perf_counter() - start
    lines = p.stderr.strip().splitlines()
    return seconds, p.returncode, lines[-1] if lines else "(nothing on stderr)"


def time_interrupt(folder, data_dir, wait=60.0):
    """(seconds from SIGINT to exit, exit status, journal bytes) of a billion-trial sweep."""
    path = folder / "billion.yaml"
    path.write_text(
        TINY.format(key="train.lr: {log_uniform: [0.01, 0.1]}").replace(
            "n_trials: 2", "n_trials: 1000000000"
        )
    )
    out = folder / "billion"
    cmd = [BPNET, "sweep", str(path), "--out", str(out), "--jobs", "2", "--quiet"]
    cmd += ["--data-dir", str(data_dir), "--offline"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    p = subprocess.Popen(cmd, cwd=folder, start_new_session=True, **quiet)
    journal, deadline = out / "journal.log", time.monotonic() + wait
    while time.monotonic() < deadline and p.poll() is None:
        if journal.is_file() and b"heartbeat" in journal.read_bytes():  # a trial is running
            break
        time.sleep(0.05)
    start = time.perf_counter()
    os.killpg(p.pid, signal.SIGINT)
    try:
        p.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        return None, None, journal.stat().st_size
    return time.perf_counter() - start, p.returncode, journal.stat().st_size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--other-root", help="an older checkout's root, timed beside this one")
    ap.add_argument("--limit", type=float, default=120.0, help="seconds before a check is stopped")
    ap.add_argument("--data-dir", type=Path, default=None)
    args = ap.parse_args()
    data_dir = args.data_dir or data_dir_default()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = big_choice_file(folder)
        size = path.stat().st_size
        print(f"1. checking a sweep file with a 40,000-value choice ({size:,} bytes)")
        rows = [("this", None)] + ([("other", args.other_root)] if args.other_root else [])
        for name, root in rows:
            seconds, what = time_check(path, root, args.limit)
            shown = f"{seconds:8.3f} s" if seconds is not None else "       —  "
            print(f"   {name:<6} {shown}  {what}")
        print("2. a database that accepts connections and never answers: time to give up")
        server = SilentServer()
        try:
            for scheme, tail in (("postgresql", "db"), ("mysql+pymysql", "db"), ("redis", "0")):
                user = "" if scheme == "redis" else "bpnet:pw@"
                url = f"{scheme}://{user}127.0.0.1:{server.port}/{tail}"
                seconds, status, line = time_refusal(url, folder, data_dir)
                shown = f"{seconds:6.1f} s" if seconds is not None else "     — "
                print(f"   {scheme:<14} {shown}  exit {status}  {line}")
        finally:
            server.close()
        print("3. n_trials: 1000000000, Ctrl-C once a trial runs")
        seconds, status, size = time_interrupt(folder, data_dir)
        shown = f"{seconds:6.2f} s" if seconds is not None else "no exit after 120 s"
        print(f"   exit {shown} after the signal, status {status}, journal {size:,} bytes")


if __name__ == "__main__":
    main()
