"""Run the book's chapter 5 and 6 scripts on bpnet.book and on the book's own code; print figures.

    python benchmarks/book_scripts.py BOOK_REPO [--seeds 0,1,2] [--only NAME ...]

BOOK_REPO is a checkout of oreilly-japan/deep-learning-from-scratch. Two copies are made in a
temporary folder: one as published (its dataset/mnist.pkl built from the MNIST files, since
the book's own loader would download them), and one with only the import rule of
``bpnet.book`` applied and the book's ``common/``, ``dataset/`` and chapter 5 modules
deleted, so that nothing of the book's own code can be imported. Each script runs once per
seed on both (``numpy.random.seed(seed)`` put before its first line; the scripts themselves
are unseeded), with matplotlib's Agg backend and one BLAS thread; the figures each prints are
collected into one table. Outputs are kept in the work folder (``--work``).
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import data_dir_default  # noqa: E402

from bpnet.data.idx import load_arrays  # noqa: E402

# The one-line rule a reader applies to a script of the book.
IMPORT_RULE = [
    (re.compile(r"^(\s*)from common\.(\w+) import", re.M), r"\1from bpnet.book.\2 import"),
    (re.compile(r"^(\s*)from dataset\.mnist import", re.M), r"\1from bpnet.book.mnist import"),
    (
        re.compile(r"^(\s*)from (layer_naive|two_layer_net) import", re.M),
        r"\1from bpnet.book.\2 import",
    ),
]
SCRIPTS = [
    "ch05/buy_apple.py",
    "ch05/buy_apple_orange.py",
    "ch05/gradient_check.py",
    "ch05/train_neuralnet.py",
    "ch06/batch_norm_gradient_check.py",
    "ch06/batch_norm_test.py",
    "ch06/hyperparameter_optimization.py",
    "ch06/optimizer_compare_mnist.py",
    "ch06/optimizer_compare_naive.py",
    "ch06/overfit_dropout.py",
    "ch06/overfit_weight_decay.py",
    "ch06/weight_init_activation_histogram.py",
    "ch06/weight_init_compare.py",
]
BOOK_ONLY = ["common", "dataset", "ch05/layer_naive.py", "ch05/two_layer_net.py"]


def apply_import_rule(text):
    for pattern, repl in IMPORT_RULE:
        text = pattern.sub(repl, text)
    return text


def prepare(book_repo, work, data_dir):
    """work/book (as published, with mnist.pkl), work/bpnet (import rule applied), work/data."""
    book, ours = work / "book", work / "bpnet"
    for dest in (book, ours):
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(book_repo, dest, ignore=shutil.ignore_patterns(".git"))
    a = load_arrays("mnist", data_dir)
    with open(book / "dataset" / "mnist.pkl", "wb") as fh:  # the book's own cache format
        pickle.dump(
            {
                "train_img": a["x_train"].reshape(60000, 784),
                "train_label": a["t_train"],
                "test_img": a["x_test"].reshape(10000, 784),
                "test_label": a["t_test"],
            },
            fh,
            -1,
        )
    for script in SCRIPTS:
        path = ours / script
        path.write_text(apply_import_rule(path.read_text(encoding="utf-8")), encoding="utf-8")
    for name in BOOK_ONLY:
        target = ours / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    (work / "data" / "mnist").mkdir(parents=True, exist_ok=True)
    for f in (Path(data_dir) / "mnist").glob("*-ubyte.gz"):
        shutil.copy2(f, work / "data" / "mnist" / f.name)


def run(root, script, seed, work, timeout):
    """(exit status, stdout, seconds) of one script run with the seed line prepended."""
    path = root / script
    seeded = path.with_name(f"_seed{seed}_{path.name}")
    seeded.write_text(
        f"import numpy; numpy.random.seed({seed})\n" + path.read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "BPNET_DATA_DIR": str(work / "data"),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": "",
    }
    started = time.perf_counter()
    try:
        p = subprocess.run(
            [sys.executable, seeded.name],
            cwd=seeded.parent,
            env=env,
            text=True,
            capture_output=True,
            timeout=timeout,
        )
        code, out = p.returncode, p.stdout + ("\n" + p.stderr[-2000:] if p.returncode else "")
    except subprocess.TimeoutExpired:
        code, out = "timeout", ""
    return code, out, time.perf_counter() - started


FLOAT = r"([-+0-9.eE]+|nan|inf)"


def figures(script, out):
    """{figure name: value} read from a script's printed output."""
    name = Path(script).stem
    lines = out.splitlines()
    if name.startswith("buy_apple"):
        return {k: float(v) for k, v in re.findall(r"^(\w+): " + FLOAT + "$", out, re.M)}
    if name.endswith("gradient_check"):
        return {
            f"mean abs(backprop - numerical) {k}": float(v)
            for k, v in re.findall(r"^(\w+):" + FLOAT + "$", out, re.M)
        }
    if name == "train_neuralnet":
        last = [ln.split() for ln in lines if re.fullmatch(FLOAT + " " + FLOAT, ln.strip())][-1]
        return {"final train acc": float(last[0]), "final test acc": float(last[1])}
    if name == "batch_norm_test":
        finals = []  # the last epoch line of each weight scale's block (a block follows "i/16")
        for block in re.split(r"^=+ \d+/16 =+$", out, flags=re.M)[1:]:
            ends = re.findall(r"^epoch:\d+ \| " + FLOAT + " - " + FLOAT, block, re.M)
            finals.append((float(ends[-1][0]), float(ends[-1][1])))
        return {
            "mean final train acc over 16 scales, no BN": statistics.mean(a for a, _ in finals),
            "mean final train acc over 16 scales, BN": statistics.mean(b for _, b in finals),
            "scales where BN ends higher (of 16)": sum(b > a for a, b in finals),
        }
    if name == "hyperparameter_optimization":
        vals = [float(v) for v in re.findall(r"^val acc:" + FLOAT, out, re.M)]
        best = re.search(r"Best-1\(val acc:" + FLOAT, out)
        return {
            "best val acc of the trials": float(best[1]),
            "median val acc": statistics.median(vals),
        }
    if name in ("optimizer_compare_mnist", "weight_init_compare"):
        block = out.rsplit("iteration:", 1)[1]
        return {
            f"loss at iteration 1900, {k}": float(v)
            for k, v in re.findall(r"^([\w.=]+):" + FLOAT + "$", block, re.M)
        }
    if name == "overfit_dropout":
        m = re.findall(r"epoch:(\d+), train acc:" + FLOAT + ", test acc:" + FLOAT, out)[-1]
        return {"last epoch train acc": float(m[1]), "last epoch test acc": float(m[2])}
    if name == "overfit_weight_decay":
        m = re.findall(r"epoch:(\d+), train acc:" + FLOAT + ", test acc:" + FLOAT, out)[-1]
        return {"epoch 200 train acc": float(m[1]), "epoch 200 test acc": float(m[2])}
    return {}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("book_repo", type=Path)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--only", nargs="*", help="script names (stems) to run; default all")
    ap.add_argument("--data-dir", type=Path, default=None, help="folder holding mnist/")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a temp dir)")
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bpnet-book-"))
    prepare(args.book_repo, work, args.data_dir or data_dir_default())
    seeds = [int(s) for s in args.seeds.split(",")]
    scripts = [s for s in SCRIPTS if not args.only or Path(s).stem in args.only]
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    print(f"work folder {work}; seeds {seeds}")
    for script in scripts:
        got = {}
        for side in ("bpnet", "book"):
            for seed in seeds:
                code, out, secs = run(work / side, script, seed, work, args.timeout)
                (logs / f"{Path(script).stem}.{side}.{seed}.txt").write_text(out)
                figs = figures(script, out) if code == 0 else {}
                got[side, seed] = (code, secs, figs)
        print(f"\n## {script}")
        for side in ("bpnet", "book"):
            runs = ", ".join(
                f"seed {s}: {'ok' if got[side, s][0] == 0 else 'FAILED ' + str(got[side, s][0])}"
                f" {got[side, s][1]:.0f} s"
                for s in seeds
            )
            print(f"{side:6} {runs}")
        names = list(dict.fromkeys(k for v in got.values() for k in v[2]))
        for n in names:
            cells = [
                " ".join(_fmt(got[side, s][2].get(n)) for s in seeds) for side in ("bpnet", "book")
            ]
            print(f"| {n} | {cells[0]} | {cells[1]} |")
        sys.stdout.flush()


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, int) or float(v).is_integer() and abs(v) >= 1:
        return f"{v:g}"
    return f"{v:.3g}" if abs(v) < 1e-3 else f"{v:.4f}"


if __name__ == "__main__":
    main()
