"""Run the book's chapter 5 to 8 scripts on bpnet.book and on the book's own code; print figures.

    python benchmarks/book_scripts.py BOOK_REPO [--seeds 0,1,2] [--only NAME ...] [--epochs E]

BOOK_REPO is a checkout of oreilly-japan/deep-learning-from-scratch. Two copies are made in a
temporary folder: one as published (its dataset/mnist.pkl built from the MNIST files, since
the book's own loader would download them), and one with only the import rule of
``bpnet.book`` applied and the book's ``common/``, ``dataset/`` and chapter 5 modules
deleted (``dataset/``'s images stay: ``ch07/apply_filter.py`` reads one), so that nothing of
the book's own code can be imported. Each script runs once per
seed on both (``numpy.random.seed(seed)`` put before its first line; the scripts themselves
are unseeded), with matplotlib's Agg backend and one BLAS thread; the figures each prints are
collected into one table. Outputs are kept in the work folder (``--work``).

``--epochs E`` (a number, fractions allowed) sets the epochs of chapters 7 and 8's training
scripts (``max_epochs = 20`` in ``train_convnet.py``, ``epochs=20`` in ``train_deepnet.py``,
rewritten in both copies alike) and prints seconds per epoch: a run's wall time (loading MNIST,
the per-epoch accuracies on 1,000 images and the final one on 10,000 included) divided by E.
The scripts that load the book's pickled weights (``params.pkl``, ``deep_convnet_params.pkl``)
run before the training scripts, which overwrite those files in the copies.
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
    "ch07/gradient_check.py",
    "ch07/visualize_filter.py",  # the book's params.pkl
    "ch07/apply_filter.py",  # the book's params.pkl and dataset/lena_gray.png
    "ch08/deep_convnet.py",  # the module itself: defines DeepConvNet, prints nothing
    "ch08/half_float_network.py",  # the book's deep_convnet_params.pkl
    "ch08/misclassified_mnist.py",  # the book's deep_convnet_params.pkl
    "ch07/train_convnet.py",  # writes params.pkl
    "ch08/train_deepnet.py",  # writes deep_convnet_params.pkl
]
LOCAL_MODULES = ["ch07/simple_convnet.py", "ch08/deep_convnet.py"]  # the rule applies to them too
BOOK_ONLY = ["common", "dataset/__init__.py", "dataset/mnist.py"]
BOOK_ONLY += ["ch05/layer_naive.py", "ch05/two_layer_net.py"]
# Where chapters 7 and 8's training scripts set their number of epochs.
EPOCHS = {
    "ch07/train_convnet.py": re.compile(r"^max_epochs = 20$", re.M),
    "ch08/train_deepnet.py": re.compile(r"(?<=\bepochs=)20(?=,)"),
}


def apply_import_rule(text):
    for pattern, repl in IMPORT_RULE:
        text = pattern.sub(repl, text)
    return text


def set_epochs(script, text, epochs):
    """A training script's text with its number of epochs set to ``epochs``."""
    text, n = EPOCHS[script].subn(lambda m: m[0].replace("20", repr(epochs)), text)
    if n != 1:
        raise SystemExit(f"{script}: its epochs (20) not found where expected")
    return text


def prepare(book_repo, work, data_dir, epochs=None):
    """work/book (as published, with mnist.pkl), work/bpnet (import rule applied), work/data;
    the training scripts of chapters 7 and 8 set to ``epochs`` in both, when given."""
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
    for script in dict.fromkeys(SCRIPTS + LOCAL_MODULES):
        path = ours / script
        path.write_text(apply_import_rule(path.read_text(encoding="utf-8")), encoding="utf-8")
    for script in EPOCHS if epochs is not None else ():
        for root in (book, ours):
            path = root / script
            text = set_epochs(script, path.read_text(encoding="utf-8"), epochs)
            path.write_text(text, encoding="utf-8")
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
    if script == "ch07/gradient_check.py":
        return {
            f"mean abs(backprop - numerical) {k}": float(v)
            for k, v in re.findall(r"^(\w+) " + FLOAT + "$", out, re.M)
        }
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
    if name in ("train_convnet", "train_deepnet"):
        losses = [float(v) for v in re.findall(r"^train loss:" + FLOAT + "$", out, re.M)]
        epochs = re.findall(
            r"^=== epoch:(\d+), train acc:" + FLOAT + ", test acc:" + FLOAT, out, re.M
        )
        figs = {"updates": len(losses), "train loss, first update": losses[0]}
        figs["train loss, last update"] = losses[-1]
        for n, train, test in epochs[:3]:
            figs[f"epoch {n} train acc (1000 images)"] = float(train)
            figs[f"epoch {n} test acc (1000 images)"] = float(test)
        figs["final test acc (10000 images)"] = float(
            re.findall(r"^test acc:" + FLOAT, out, re.M)[-1]
        )
        return figs
    if name == "half_float_network":
        accs = re.findall(r"^" + FLOAT + "$", out, re.M)
        return {"test acc, float64": float(accs[0]), "test acc, float16": float(accs[1])}
    if name == "misclassified_mnist":
        return {"test acc": float(re.search(r"^test accuracy:" + FLOAT, out, re.M)[1])}
    return {}


def loss_agreement(out_a, out_b):
    """(number of train-loss lines, largest relative difference between the two runs')."""
    a, b = (
        [float(v) for v in re.findall(r"^train loss:" + FLOAT + "$", out, re.M)]
        for out in (out_a, out_b)
    )
    if not a or len(a) != len(b):
        return len(a), float("nan")
    return len(a), max(abs(x - y) / abs(y) for x, y in zip(a, b))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("book_repo", type=Path)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--only", nargs="*", help="script names (stems) to run; default all")
    ap.add_argument("--data-dir", type=Path, default=None, help="folder holding mnist/")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a temp dir)")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument(
        "--epochs", type=float, default=None, help="epochs of ch07/ch08's training (book: 20)"
    )
    args = ap.parse_args()
    epochs = (
        args.epochs if args.epochs is None or not args.epochs.is_integer() else int(args.epochs)
    )
    work = args.work or Path(tempfile.mkdtemp(prefix="bpnet-book-"))
    prepare(args.book_repo, work, args.data_dir or data_dir_default(), epochs)
    seeds = [int(s) for s in args.seeds.split(",")]
    only = set(args.only or ())
    scripts = [s for s in SCRIPTS if not only or {Path(s).stem, s[: -len(".py")]} & only]
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    print(f"work folder {work}; seeds {seeds}")
    for script in scripts:
        got = {}
        for side in ("bpnet", "book"):
            for seed in seeds:
                code, out, secs = run(work / side, script, seed, work, args.timeout)
                log = script[: -len(".py")].replace("/", "_")
                (logs / f"{log}.{side}.{seed}.txt").write_text(out)
                figs = figures(script, out) if code == 0 else {}
                got[side, seed] = (code, secs, figs, out)
        print(f"\n## {script}")
        for side in ("bpnet", "book"):
            runs = ", ".join(
                f"seed {s}: {'ok' if got[side, s][0] == 0 else 'FAILED ' + str(got[side, s][0])}"
                f" {got[side, s][1]:.0f} s"
                for s in seeds
            )
            print(f"{side:6} {runs}")
            if script in EPOCHS:
                per = " / ".join(f"{got[side, s][1] / (epochs or 20):.0f}" for s in seeds)
                print(f"{side:6} seconds per epoch ({epochs or 20} epochs run): {per}")
        if script in EPOCHS:
            for s in seeds:
                n, worst = loss_agreement(got["bpnet", s][3], got["book", s][3])
                print(f"seed {s}: {n} train losses, largest relative difference {worst:.2g}")
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
