"""The convolution layers' speed: the book's SimpleConvNet (chapter 7) and DeepConvNet (chapter 8)
on bpnet.nn, on the book's own code and on PyTorch, all measured in the same run.

    python benchmarks/conv_speed.py --book DIR --torch-python PATH [--iters 40] [--data-dir D]
                                    [--layers] [--nets simple deep]

DIR is a checkout of oreilly-japan/deep-learning-from-scratch (its ch07/, ch08/ and common/ are
imported, unchanged, in a subprocess); PATH a Python that has torch (never the project's). Each
implementation runs in its own process, on real MNIST (float32 images; the book's code keeps its
float64 weights), batch 100, Adam lr 0.001, the book's weight initialisation. Printed for each:
the median time of one training iteration (a random batch gathered, forward, backward, Adam
step), the median time of inference over the 10,000 test images (batches of 100), and the
process's peak memory (VmHWM). bpnet and PyTorch run on 2 threads (bpnet.nn.threads's policy,
``torch.set_num_threads``) and on 1; the book's code on NumPy's defaults. With --layers,
bpnet's iteration is also timed layer by layer (forward and backward of each, the loss and
Adam's update) on 1 and 2 threads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import data_dir_default, load_mnist  # noqa: E402

NETS = ("simple", "deep")
# (filters, size, pad) of DeepConvNet's six convolutions (the book's deep_convnet.py)
DEEP_CONV = [(16, 3, 1), (16, 3, 1), (32, 3, 1), (32, 3, 2), (64, 3, 1), (64, 3, 1)]

# The loop every worker runs: ``step(x, t)`` is one training step on a batch, ``infer(x)`` the
# scores of a batch; prints one JSON line of medians (seconds) and VmHWM (kB).
LOOP = r"""
def vmhwm():
    with open("/proc/self/status") as fh:
        return int(next(l for l in fh if l.startswith("VmHWM")).split()[1])


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(step, infer, iters, infer_repeats, warmup=3):
    a = np.load(DATA)
    x, t, xt = a["x_train"], a["t_train"], a["x_test"]
    rng = np.random.default_rng(0)
    batches = [rng.choice(len(x), 100) for _ in range(warmup + iters)]
    it = iter(batches)
    def one():
        idx = next(it)
        step(x[idx], t[idx])
    for _ in range(warmup):
        one()
    train = timed(one, iters)
    def all_test():
        for i in range(0, len(xt), 100):
            infer(xt[i : i + 100])
    all_test()
    test = timed(all_test, infer_repeats)
    print(json.dumps({"train": train, "infer": test, "vmhwm": vmhwm()}))
"""
HEADER = "import json, statistics, sys, time\nimport numpy as np\n"

BOOK = r"""
BOOK, NET, DATA = sys.argv[1:4]
ITERS, REPS = int(sys.argv[4]), int(sys.argv[5])
sys.path[:0] = [BOOK, BOOK + "/ch07", BOOK + "/ch08"]
from common.optimizer import Adam
np.random.seed(0)
if NET == "simple":
    from simple_convnet import SimpleConvNet
    net = SimpleConvNet(input_dim=(1, 28, 28), hidden_size=100, output_size=10,
                        weight_init_std=0.01)
    predict = net.predict
else:
    from deep_convnet import DeepConvNet
    net = DeepConvNet()
    predict = lambda x: net.predict(x, train_flg=False)
opt = Adam(lr=0.001)
def step(x, t):
    opt.update(net.params, net.gradient(x, t))
run(step, predict, ITERS, REPS)
"""

TORCH = r"""
import torch
NET, DATA, ITERS, REPS, THREADS = (sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                                   int(sys.argv[5]))
torch.set_num_threads(THREADS)
torch.manual_seed(0)
nn = torch.nn
if NET == "simple":
    layers = [nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
              nn.Linear(4320, 100), nn.ReLU(), nn.Linear(100, 10)]
    scales = [0.01] * 3
else:
    layers, c = [], 1
    for i, (f, k, p) in enumerate(DEEP_CONV):
        layers += [nn.Conv2d(c, f, k, padding=p), nn.ReLU()]
        c = f
        if i % 2:
            layers.append(nn.MaxPool2d(2, 2))
    layers += [nn.Flatten(), nn.Linear(1024, 50), nn.ReLU(), nn.Dropout(0.5), nn.Linear(50, 10),
               nn.Dropout(0.5)]
    fan_in = [1 * 9, 16 * 9, 16 * 9, 32 * 9, 32 * 9, 64 * 9, 64 * 16, 50]
    scales = [(2.0 / f) ** 0.5 for f in fan_in]
net = nn.Sequential(*layers)
with torch.no_grad():
    for m, s in zip([m for m in net if isinstance(m, (nn.Conv2d, nn.Linear))], scales):
        m.weight.normal_(0.0, s)
        m.bias.zero_()
opt = torch.optim.Adam(net.parameters(), lr=0.001)
loss_fn = nn.CrossEntropyLoss()
def step(x, t):
    net.train()
    opt.zero_grad()
    loss_fn(net(torch.from_numpy(x)), torch.from_numpy(t)).backward()
    opt.step()
def infer(x):
    net.eval()
    with torch.no_grad():
        return net(torch.from_numpy(x))
run(step, infer, ITERS, REPS)
"""


def bpnet_net(name, rng):
    """(layers, params, grads) of the book's SimpleConvNet or DeepConvNet on bpnet.nn, float32,
    with the book's initial weights; grads maps each parameter's name to its gradient buffer."""
    from bpnet.nn.conv import Convolution, Pooling
    from bpnet.nn.layers import Affine, Dropout, Relu

    params, layers, weighted = {}, [], []

    def param(key, shape, scale):
        w = (scale * rng.standard_normal(shape)).astype(np.float32)
        params[f"W{key}"], params[f"b{key}"] = (
            w,
            np.zeros(shape[0 if len(shape) == 4 else 1], w.dtype),
        )
        return params[f"W{key}"], params[f"b{key}"]

    def add(layer):
        layers.append(layer)
        if hasattr(layer, "dW"):
            layer.dW, layer.db = np.empty_like(layer.W), np.empty_like(layer.b)
            weighted.append(layer)

    if name == "simple":
        add(Convolution(*param(1, (30, 1, 5, 5), 0.01)))
        add(Relu())
        add(Pooling(2, 2, stride=2))
        add(Affine(*param(2, (4320, 100), 0.01)))
        add(Relu())
        add(Affine(*param(3, (100, 10), 0.01)))
    else:
        fan_in = [1 * 9, 16 * 9, 16 * 9, 32 * 9, 32 * 9, 64 * 9, 64 * 16, 50]
        c = 1
        for i, (f, k, p) in enumerate(DEEP_CONV):
            add(Convolution(*param(i + 1, (f, c, k, k), (2.0 / fan_in[i]) ** 0.5), pad=p))
            add(Relu())
            c = f
            if i % 2:
                add(Pooling(2, 2, stride=2))
        add(Affine(*param(7, (1024, 50), (2.0 / fan_in[6]) ** 0.5)))
        add(Relu())
        add(Dropout(0.5, rng=np.random.default_rng(1)))
        add(Affine(*param(8, (50, 10), (2.0 / fan_in[7]) ** 0.5)))
        add(Dropout(0.5, rng=np.random.default_rng(2)))
    grads = {}
    for i, layer in enumerate(weighted, 1):
        grads[f"W{i}"], grads[f"b{i}"] = layer.dW, layer.db
    return layers, params, grads


def bpnet_worker(net_name, data, iters, reps, n_threads):
    """The worker of bpnet's side: runs LOOP in this process."""
    from bpnet.nn import threads
    from bpnet.nn.layers import SoftmaxWithLoss
    from bpnet.nn.optim import Adam

    layers, params, grads = bpnet_net(net_name, np.random.default_rng(0))
    loss, opt = SoftmaxWithLoss(), Adam(lr=0.001)

    def step(x, t):
        for layer in layers:
            x = layer.forward(x, train_flg=True)
        loss.forward(x, t)
        d = loss.backward()
        for i, layer in enumerate(reversed(layers)):
            first = i == len(layers) - 1
            d = layer.backward(d, need_dx=False) if first else layer.backward(d)
        opt.update(params, grads)

    def infer(x):
        for layer in layers:
            x = layer.forward(x, train_flg=False)
        return x

    scope = {"np": np, "json": json, "statistics": statistics, "time": time, "DATA": data}
    exec(LOOP, scope)
    with threads.use(n_threads):
        scope["run"](step, infer, iters, reps)


def layer_worker(net_name, data, iters, n_threads):
    """Prints one JSON line: {layer: [forward, backward] median seconds} of bpnet's training
    iteration, layer by layer, plus the loss and Adam's update."""
    from bpnet.nn import threads
    from bpnet.nn.layers import SoftmaxWithLoss
    from bpnet.nn.optim import Adam

    layers, params, grads = bpnet_net(net_name, np.random.default_rng(0))
    loss, opt = SoftmaxWithLoss(), Adam(lr=0.001)
    names = [f"{i + 1:2d} {type(layer).__name__}" for i, layer in enumerate(layers)]
    a = np.load(data)
    x_all, t_all = a["x_train"], a["t_train"]
    rng = np.random.default_rng(0)
    times = {name: ([], []) for name in [*names, "loss", "Adam update"]}
    with threads.use(n_threads):
        for it in range(3 + iters):
            idx = rng.choice(len(x_all), 100)
            x, t, marks = x_all[idx], t_all[idx], []
            for layer in layers:
                start = time.perf_counter()
                x = layer.forward(x, train_flg=True)
                marks.append(time.perf_counter() - start)
            start = time.perf_counter()
            loss.forward(x, t)
            d = loss.backward()
            marks.append(time.perf_counter() - start)
            back = []
            for i, layer in enumerate(reversed(layers)):
                start = time.perf_counter()
                first = i == len(layers) - 1
                d = layer.backward(d, need_dx=False) if first else layer.backward(d)
                back.append(time.perf_counter() - start)
            start = time.perf_counter()
            opt.update(params, grads)
            marks.append(time.perf_counter() - start)
            if it < 3:
                continue
            for name, f, b in zip(names, marks, back[::-1]):
                times[name][0].append(f)
                times[name][1].append(b)
            times["loss"][0].append(marks[-2])
            times["Adam update"][0].append(marks[-1])
    print(
        json.dumps({k: [statistics.median(v) if v else 0.0 for v in fb] for k, fb in times.items()})
    )


def report_layers(net, n, result):
    if "error" in result:
        print(f"layers: failed: {result['error']}")
        return
    total = sum(f + b for f, b in result.values())
    print(
        f"\nbpnet's {net} iteration by layer, {n} thread{'s' * (n > 1)} (medians; share of the sum)"
    )
    for name, (f, b) in result.items():
        print(f"  {name:<22}{f * 1e3:8.2f} ms fwd{b * 1e3:8.2f} ms bwd{(f + b) / total:7.1%}")
    print(f"  {'sum':<22}{total * 1e3:8.2f} ms")


def report_products():
    """What float32 products reach on one thread here: a large square one, and one as thin as
    DeepConvNet's second convolution's (16 filters by 145 patch values, 16 images' columns)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    print("\nfloat32 products on 1 thread (best of repeats):")
    for label, (m, k, n), reps in (
        ("2048 x 2048 by 2048 x 2048", (2048, 2048, 2048), 5),
        ("16 x 145 by 145 x 12544 (conv 2 of DeepConvNet)", (16, 145, 12544), 50),
    ):
        a, b = rng.random((m, k), np.float32), rng.random((k, n), np.float32)
        out = np.empty((m, n), np.float32)
        with threadpool_limits(1, user_api="blas"):
            np.matmul(a, b, out=out)
            best = min(timed_once(np.matmul, a, b, out) for _ in range(reps))
        print(f"  {label:<48}{2 * m * k * n / best / 1e9:6.0f} GFLOP/s")


def timed_once(matmul, a, b, out):
    start = time.perf_counter()
    matmul(a, b, out=out)
    return time.perf_counter() - start


def worker(cmd, timeout=3600):
    """The JSON line a worker printed, or {"error": its last line of stderr}."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(args, data):
    """{(net, implementation): figures} for every implementation asked for."""
    me = [sys.executable, str(Path(__file__).resolve())]
    results = {}
    for net in args.nets:
        runs = [(f"bpnet, {n} thread{'s' * (n > 1)}", n) for n in (2, 1)]
        for label, n in runs:
            cmd = [*me, "--worker", net, str(data), str(args.iters), str(args.reps), str(n)]
            results[net, label] = worker(cmd)
        if args.book:
            book_iters = max(3, args.iters // 4)
            script = HEADER + LOOP + BOOK
            cmd = [sys.executable, "-c", script, str(args.book), net, str(data)]
            results[net, "book's code"] = worker(cmd + [str(book_iters), str(args.book_reps)])
        if args.torch_python:
            script = HEADER + f"DEEP_CONV = {DEEP_CONV!r}\n" + LOOP + TORCH
            for n in (2, 1):
                cmd = [args.torch_python, "-c", script, net, str(data), str(args.iters)]
                label = f"PyTorch, {n} thread{'s' * (n > 1)}"
                results[net, label] = worker(cmd + [str(args.reps), str(n)])
    return results


def report(results, args):
    titles = {"simple": "SimpleConvNet (ch. 7)", "deep": "DeepConvNet (ch. 8)"}
    for net in args.nets:
        rows = {label: r for (n, label), r in results.items() if n == net}
        print(f"\n{titles[net]}: medians of one training iteration (batch 100, Adam) and of")
        print("inference over the 10,000 test images; ratios: that time / bpnet's (2 t, 1 t)")
        print(
            f"{'':<19}{'train':>9}{'/2 t':>7}{'/1 t':>7}{'10k infer':>11}{'/2 t':>7}{'/1 t':>7}"
            f"{'VmHWM':>8}"
        )
        base = [rows.get(f"bpnet, {k}") for k in ("2 threads", "1 thread")]
        base = [b if b and "error" not in b else None for b in base]
        for label, r in rows.items():
            if "error" in r:
                print(f"{label:<19}failed: {r['error']}")
                continue
            cells = []
            for key, scale, unit in (("train", 1e3, "ms"), ("infer", 1, "s")):
                cells.append(f"{r[key] * scale:7.{1 if unit == 'ms' else 3}f} {unit:<2}")
                cells += [f"{r[key] / b[key]:6.2f}x" if b else "      -" for b in base]
            print(
                f"{label:<19}{cells[0]}{cells[1]}{cells[2]}  {cells[3]}{cells[4]}{cells[5]}"
                f"{r['vmhwm'] / 1024:6.0f} MB"
            )
        goals(net, rows)


def goals(net, rows):
    """The ratios the speed goals name (printed, not judged)."""

    def t(label):
        r = rows.get(label)
        return r["train"] if r and "error" not in r else None

    b2, b1, book = t("bpnet, 2 threads"), t("bpnet, 1 thread"), t("book's code")
    p2, p1 = t("PyTorch, 2 threads"), t("PyTorch, 1 thread")
    limit = "1.00" if net == "simple" else "1.50"
    parts = []
    if book and b2:
        parts.append(f"book / bpnet (2 t) {book / b2:.1f} [goal >= 10]")
    if p2 and b2:
        parts.append(f"bpnet / PyTorch, 2 t: {b2 / p2:.2f} [goal <= {limit}]")
    if p1 and b1:
        parts.append(f"1 t: {b1 / p1:.2f} [goal <= {limit}]")
    if parts:
        print("training: " + "; ".join(parts))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        net, data, iters, reps, n = sys.argv[2:7]
        return bpnet_worker(net, data, int(iters), int(reps), int(n))
    if len(sys.argv) > 1 and sys.argv[1] == "--layer-worker":
        net, data, iters, n = sys.argv[2:6]
        return layer_worker(net, data, int(iters), int(n))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--book", metavar="DIR", help="a checkout of the book's repository")
    ap.add_argument("--torch-python", metavar="PATH", help="a Python that has torch")
    ap.add_argument("--data-dir", default=str(data_dir_default()), help="folder holding mnist/")
    ap.add_argument("--iters", type=int, default=40, help="timed training iterations [40]")
    ap.add_argument("--reps", type=int, default=3, help="timed 10k-image inferences [3]")
    ap.add_argument("--book-reps", type=int, default=1, help="the book's 10k inferences [1]")
    ap.add_argument("--nets", nargs="+", choices=NETS, default=list(NETS))
    ap.add_argument(
        "--layers", action="store_true", help="also time bpnet's iteration layer by layer"
    )
    args = ap.parse_args()
    x, t, xt, tt = load_mnist(args.data_dir)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores; "
        f"load average {os.getloadavg()[0]:.2f} at the start"
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "mnist.npz"
        np.savez(
            data, x_train=x.reshape(-1, 1, 28, 28), t_train=t, x_test=xt.reshape(-1, 1, 28, 28)
        )
        results = measure(args, data)
        layers = {}
        if args.layers:
            me = [sys.executable, str(Path(__file__).resolve()), "--layer-worker"]
            for net in args.nets:
                for n in (1, 2):
                    layers[net, n] = worker([*me, net, str(data), str(args.iters), str(n)])
    report(results, args)
    for (net, n), result in layers.items():
        report_layers(net, n, result)
    if args.layers:
        report_products()
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
