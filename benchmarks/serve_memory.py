"""What hostile uploads at once cost ``bpnet serve``: its peak resident memory.

Starts ``bpnet serve`` on a free loopback port, sends N uploads at once, each a PNG of about 20 KB
whose header declares 4096x4096 pixels (inside the default pixel limit, so each is decoded:
about 535 MB when decoded alone), waits for every answer and prints the statuses, the server's
peak resident memory (VmHWM of /proc/PID/status: the process's own high-water mark) and the
wall time. Extra arguments go to ``bpnet serve`` (e.g. ``--decode-memory 512M``). Run:

    python benchmarks/serve_memory.py --uploads 32
    python benchmarks/serve_memory.py --uploads 32 --cap 12G   # an address-space cap (ulimit -v)

The cap keeps a server without a decode budget from taking the machine down: it then answers
500 (out of memory) to what does not fit, and the peak is the cap.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "helpers"))
from hostile import write_good_weights  # noqa: E402
from servers import Server, hostile_png, peak_rss_mb  # noqa: E402

from bpnet.base.limits import parse_size  # noqa: E402

BPNET = shutil.which("bpnet", path=str(Path(sys.executable).parent)) or "bpnet"


def upload(srv, body):
    """(status, headers, body) of one upload; status is the error's name when the connection
    failed instead."""
    try:
        return srv.post(body, "image/png", timeout=600)
    except OSError as e:
        return type(e).__name__, {}, b""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=32, help="uploads sent at once")
    parser.add_argument("--side", type=int, default=4096, help="declared width and height")
    parser.add_argument("--cap", help="address-space cap of the server, e.g. 12G")
    args, serve_args = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        weights = write_good_weights(Path(tmp) / "weights.npz")
        body = hostile_png(args.side)
        cap = parse_size(args.cap) if args.cap else None
        srv = Server(BPNET, weights, "--max-connections", "64", *serve_args, as_limit=cap)
        try:
            idle = peak_rss_mb(srv.proc.pid)
            started = time.monotonic()
            with ThreadPoolExecutor(args.uploads) as pool:
                answers = list(pool.map(lambda _: upload(srv, body), range(args.uploads)))
            seconds = time.monotonic() - started
            peak = peak_rss_mb(srv.proc.pid)
        finally:
            srv.stop()
    statuses = Counter(str(status) for status, _, _ in answers)
    print(
        f"{args.uploads} uploads of a {len(body) / 1024:.0f} KB PNG declaring "
        f"{args.side}x{args.side} pixels, at once"
        + (f" (server capped at {args.cap} of address space)" if cap else "")
    )
    print(f"answers: {dict(sorted(statuses.items()))}")
    for status, _, text in answers:
        if status not in (200, 400) and text:
            print(f"  e.g. {status}: {text[:200].decode(errors='replace')}")
            break
    print(f"server peak resident memory: {peak:.0f} MB (idle: {idle:.0f} MB)")
    print(f"wall time: {seconds:.1f} s")


if __name__ == "__main__":
    main()
