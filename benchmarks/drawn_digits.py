"""Digits people draw, scored by trained networks: how many of 24 redrawn digits each gets right.

The 24 MNIST test digits of tests/apps/test_drawings.py (1000 to 1023, every class among them),
thinned to their centre lines and drawn again on its 10 pen/canvas combinations
(tests/helpers/drawings.py; every other digit dark on light), 240 PNG files in a temporary
folder, are classified by one real `bpnet predict --json` per weights file. It prints, per
combination and in all, how many each network got right, how many of the 24 digits as MNIST has
them (NPY files), each network's accuracy on the 10,000 MNIST test digits from a real `bpnet eval
--json`, and which digits each network missed. Nothing is chosen on these digits.
Needs Pillow. Run:

    python benchmarks/drawn_digits.py WEIGHTS.npz... [--data-dir DIR] [--digits 1000:1024]

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

import numpy as np
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


def scores(weights, combos, labels, first):
    """({(kind, canvas, pen): right}, {(test index, label): [wrong classes given]}) of one
    weights file over every combination's files; ``first``: the test index of ``labels[0]``."""
    files = [f for _, fs in combos for f in fs]
    weights = Path(weights) / "weights.npz" if Path(weights).is_dir() else weights
    found = run_json("predict", "--json", weights, *files)
    top = {doc["file"]: doc["top"][0]["label"] for doc in found}
    right, missed = {}, {}
    for combo, fs in combos:
        right[combo] = 0
        for i, (f, t) in enumerate(zip(fs, labels, strict=True)):
            right[combo] += top[str(f)] == t
            if top[str(f)] != t:
                missed.setdefault((first + i, t), []).append(top[str(f)])
    return right, missed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+", help="weights files or run directories")
    ap.add_argument("--data-dir", default=str(data_dir_default()), help="folder holding mnist/")
    ap.add_argument(
        "--digits",
        default=f"{DIGITS.start}:{DIGITS.stop}",
        help="the test digits START:STOP to draw [the tests' %(default)s]",
    )
    args = ap.parse_args()
    start, stop = map(int, args.digits.split(":"))
    x, t = load_split(args.data_dir, "mnist", "test")
    digits, labels = x[start:stop], t[start:stop].astype(int).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        combos = [
            ((kind, canvas, pen), draw_files(digits, Path(tmp), kind, canvas, pen))
            for kind, canvas, pen in COMBINATIONS
        ]
        originals = []
        for i, d in enumerate(digits):
            originals.append(Path(tmp) / f"mnist-{i}.npy")
            np.save(originals[-1], d)
        table, missed, plain = {}, {}, {}
        for w in args.weights:
            table[w], missed[w] = scores(w, combos, labels, start)
            plain[w] = scores(w, [("mnist", originals)], labels, start)
    names = [name_of(w) for w in args.weights]
    n = len(labels)
    print(f"right of {n} redrawn MNIST test digits ({start} to {stop - 1})\n")
    print("| pen | canvas | pen px | " + " | ".join(names) + " |")
    print("|---|---:|---:|" + "---:|" * len(names))
    for kind, canvas, pen in COMBINATIONS:
        row = " | ".join(str(table[w][(kind, canvas, pen)]) for w in args.weights)
        print(f"| {kind} | {canvas} | {pen} | {row} |")
    total = " | ".join(
        f"**{sum(table[w].values())}/{n * len(COMBINATIONS)}**" for w in args.weights
    )
    print(f"| all | | | {total} |")
    row = " | ".join(str(plain[w][0]["mnist"]) for w in args.weights)
    print(f"| the {n} as MNIST has them | | | {row} |")
    accs = []
    for w in args.weights:
        doc = run_json("eval", "--json", "--offline", "--data-dir", args.data_dir, w)
        accs.append(f"{100 * doc['accuracy']:.2f}%")
    print(f"| MNIST test set | | | {' | '.join(accs)} |\n")
    for w, name in zip(args.weights, names):
        wrong = "; ".join(
            f"test digit {i} ({t}) in {len(given)} of {len(COMBINATIONS)}, read as "
            + ", ".join(f"{c} ({given.count(c)})" for c in sorted(set(given)))
            for (i, t), given in sorted(missed[w].items())
        )
        print(f"{name} missed: {wrong or 'none'}")
        wrong = ", ".join(f"{i} ({t}) as {given[0]}" for (i, t), given in plain[w][1].items())
        print(f"{name} missed as MNIST has them: {wrong or 'none'}")


if __name__ == "__main__":
    main()
