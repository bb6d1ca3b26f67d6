"""Digits people draw, scored by trained networks: how many of 24 redrawn digits each gets right.

The 24 MNIST test digits of tests/apps/test_drawings.py (1000 to 1023, every class among them),
thinned to their centre lines and drawn again on its 10 pen/canvas combinations
(tests/helpers/drawings.py; every other digit dark on light), 240 PNG files in a temporary
folder, are classified by one real `bpnet predict --json` per weights file. It prints, per
combination and in all, how many each network got right, then each network's accuracy on the
10,000 MNIST test digits from a real `bpnet eval --json`. Nothing is chosen on these digits.
Needs Pillow. Run:

    python benchmarks/drawn_digits.py WEIGHTS.npz... [--data-dir DIR]

(a run directory stands for its weights.npz, and is named in the table by its folder).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _shared import data_dir_default

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "helpers"))
from drawings import COMBINATIONS, DIGITS, draw_files  # noqa: E402

from bpnet.data.idx import load_split  # noqa: E402


def bpnet():
    """The bpnet command next to this interpreter (else the one on PATH)."""
    exe = Path(sys.executable).with_name("bpnet")
    return str(exe) if exe.exists() else shutil.which("bpnet") or "bpnet"


def run_json(*args):
    p = subprocess.run([bpnet(), *map(str, args)], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"bpnet {args[0]} failed: {p.stderr.strip()}")
    return json.loads(p.stdout)


def name_of(path):
    path = Path(path)
    return path.name if path.is_dir() else f"{path.parent.name}/{path.name}"


def scores(weights, combos, labels):
    """{(kind, canvas, pen): right} of one weights file over every combination's files."""
    files = [f for _, fs in combos for f in fs]
    weights = Path(weights) / "weights.npz" if Path(weights).is_dir() else weights
    found = run_json("predict", "--json", weights, *files)
    top = {doc["file"]: doc["top"][0]["label"] for doc in found}
    return {
        combo: sum(top[str(f)] == t for f, t in zip(fs, labels, strict=True))
        for combo, fs in combos
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+", help="weights files or run directories")
    ap.add_argument("--data-dir", default=str(data_dir_default()), help="folder holding mnist/")
    args = ap.parse_args()
    x, t = load_split(args.data_dir, "mnist", "test")
    digits, labels = x[DIGITS], t[DIGITS].astype(int).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        combos = [
            ((kind, canvas, pen), draw_files(digits, Path(tmp), kind, canvas, pen))
            for kind, canvas, pen in COMBINATIONS
        ]
        table = {w: scores(w, combos, labels) for w in args.weights}
    names = [name_of(w) for w in args.weights]
    n = len(labels)
    print(f"right of {n} redrawn MNIST test digits ({DIGITS.start} to {DIGITS.stop - 1})\n")
    print("| pen | canvas | pen px | " + " | ".join(names) + " |")
    print("|---|---:|---:|" + "---:|" * len(names))
    for kind, canvas, pen in COMBINATIONS:
        row = " | ".join(str(table[w][(kind, canvas, pen)]) for w in args.weights)
        print(f"| {kind} | {canvas} | {pen} | {row} |")
    total = " | ".join(
        f"**{sum(table[w].values())}/{n * len(COMBINATIONS)}**" for w in args.weights
    )
    print(f"| all | | | {total} |")
    accs = []
    for w in args.weights:
        doc = run_json("eval", "--json", "--offline", "--data-dir", args.data_dir, w)
        accs.append(f"{100 * doc['accuracy']:.2f}%")
    print(f"| MNIST test set | | | {' | '.join(accs)} |")


if __name__ == "__main__":
    main()
