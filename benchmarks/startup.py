"""How long `bpnet --help` and `bpnet COMMAND --help` take to answer, against bare Python.

Each command line runs as a whole process, the lines in turn (so a slow moment of the machine
hits every line alike), and the median of ``--runs`` is printed with its ratio to ``python -c
pass`` and whether the process loaded NumPy. ``--other EXE`` times another ``bpnet`` console
script in the same run (an older version, installed in its own virtual environment) beside this
one. Usage:
  python benchmarks/startup.py [--runs 20] [--other /path/to/old/.venv/bin/bpnet]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

LINES = (
    ["--help"],
    ["train", "--help"],
    ["eval", "--help"],
    ["gradcheck", "--help"],
    ["--version"],
)
PROBE = (
    "import runpy, sys; sys.argv = {argv!r}\n"
    "try:\n    runpy.run_path({exe!r}, run_name='__main__')\n"
    "except SystemExit:\n    pass\n"
    "sys.stderr.write('numpy' if 'numpy' in sys.modules else '-')"
)


def bpnet_exe():
    return str(Path(sys.executable).with_name("bpnet"))


def once(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def loads_numpy(python, exe, args):
    """Whether ``exe ARGS`` (a console script run by ``python``) loads NumPy."""
    code = PROBE.format(argv=["bpnet", *args], exe=exe)
    p = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return p.stderr.endswith("numpy")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--other", help="another bpnet console script to time beside this one")
    args = ap.parse_args()
    exes = {"this": (sys.executable, bpnet_exe())}
    if args.other:
        other = Path(args.other)
        exes["other"] = (str(other.with_name("python")), str(other))
    cases = {("python -c pass", "-"): [sys.executable, "-c", "pass"]}
    for label, (_, exe) in exes.items():
        for line in LINES:
            cases[(f"bpnet {' '.join(line)}", label)] = [exe, *line]
    for cmd in cases.values():  # warm the file cache
        once(cmd)
    times = {key: [] for key in cases}
    for _ in range(args.runs):
        for key, cmd in cases.items():
            times[key].append(once(cmd))
    floor = statistics.median(times[("python -c pass", "-")])
    print(
        f"median of {args.runs} runs, each line a whole process; floor: python -c pass "
        f"{floor * 1000:.0f} ms"
    )
    print(f"{'command':26} {'bpnet':6} {'median ms':>9} {'x floor':>8}  numpy")
    for (line, label), t in times.items():
        med = statistics.median(t)
        numpy = (
            "-"
            if label == "-"
            else (
                "loaded" if loads_numpy(exes[label][0], exes[label][1], line.split()[1:]) else "no"
            )
        )
        print(f"{line:26} {label:6} {med * 1000:9.0f} {med / floor:8.1f}  {numpy}")
    if args.other:
        print("this / other, per line:")
        for line in LINES:
            name = f"bpnet {' '.join(line)}"
            ratio = statistics.median(times[(name, "this")]) / statistics.median(
                times[(name, "other")]
            )
            print(f"  {name:26} {ratio:.2f}")


if __name__ == "__main__":
    main()
