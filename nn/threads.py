"""How many cores the matrix products use: one policy for the command line and the library.

BLAS always runs on one thread here. Its own worker threads spin while they wait for work, and
on a machine where another process holds a core, a spinning thread that has lost its core stalls
every product (runs 10x slower and worse). Instead, ``matmul`` splits a large product by rows of
its output over a small pool of Python threads, each calling single-threaded BLAS (NumPy releases
the GIL during a product). Those threads block rather than spin: when a core is taken, its share
simply runs later on the other, so a busy machine costs little, and a quiet one gets both cores.
Each output element is still one row times one column reduced in the same order, so a split
product is bit for bit the one-thread product, whatever the thread count.

The thread count is ``threads`` given to ``use``: an integer, or None for automatic, which is
``$BPNET_THREADS`` when set, else the number of cores this process may run on
(``os.sched_getaffinity``): with the split above, every core is safe to use on a busy
machine. ``Trainer.run``, ``evaluate`` and ``check_network`` enter ``use`` themselves, so
Python callers get the command line's behaviour.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from .errors import InputError

ENV = "BPNET_THREADS"
# Products with fewer multiply-adds than this run in one piece: below it, handing the halves
# to threads costs more than it saves (measured: 784-50-10 at batch 100, 3.9M, gains nothing).
MIN_SPLIT = 2_000_000
# A share smaller than this many output rows is not worth a thread.
MIN_ROWS = 16

_state = threading.local()  # .n: split count for products made on this thread
_pool = {"n": 0, "executor": None}
_lock = threading.Lock()


def available_cores():
    """The number of cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve(threads=None):
    """The thread count for ``threads``: an integer >= 1 as given; None: ``$BPNET_THREADS``
    when set, else ``available_cores()``."""
    source = "threads"
    if threads is None:
        raw = os.environ.get(ENV, "").strip()
        if not raw:
            return available_cores()
        source, threads = f"${ENV}", raw
    try:
        n = int(threads)
    except (TypeError, ValueError):
        n = 0
    if isinstance(threads, bool) or n < 1 or str(n) != str(threads).strip():
        raise InputError(f"{source}: expected an integer >= 1, got {threads!r}")
    return n


def _executor(n):
    with _lock:
        if _pool["n"] < n:
            if _pool["executor"] is not None:
                _pool["executor"].shutdown(wait=False)
            _pool["n"], _pool["executor"] = n, ThreadPoolExecutor(
                max_workers=n - 1, thread_name_prefix="bpnet-matmul")
        return _pool["executor"]


@contextmanager
def use(threads=None):
    """Within this block, BLAS runs on one thread and ``matmul`` splits large products
    over ``threads`` threads (None: the enclosing block's count, else ``resolve(None)``).
    Yields the count; on exit the enclosing block's count is back in force."""
    from threadpoolctl import threadpool_limits
    previous = getattr(_state, "n", None)
    n = previous if threads is None and previous is not None else resolve(threads)
    with threadpool_limits(limits=1, user_api="blas"):
        _state.n = n
        try:
            yield n
        finally:
            _state.n = previous


def current():
    """The split count in force on this thread (1 outside ``use``)."""
    return getattr(_state, "n", None) or 1


_PLANS = {}  # (shapes, layouts, dtype, threads) -> (axis, bounds of the blocks) or None
ALIGNMENTS = (8, 16, 24, 32, 48, 64)


def _layout(x):
    return "C" if x.flags.c_contiguous else "F" if x.flags.f_contiguous else x.strides


def _block(a, b, axis, lo, hi):
    """The operands of block [lo, hi) of the result's rows (axis 0) or columns (axis 1)."""
    return (a[lo:hi], b) if axis == 0 else (a, b[:, lo:hi])


def plan(a, b, n):
    """(axis, bounds) cutting ``a @ b`` into blocks for ``n`` threads, or None to keep it whole.

    The cut is across the result's rows when it has at least as many rows as columns, else
    across its columns (each block then repacks only the smaller operand), else the other way
    when that one changes the result's bits. BLAS kernels work on
    blocks of rows and columns, and a cut inside one moves them to a kernel that may round
    differently; so the first time a product of this shape, layout and dtype is seen, cuts at
    multiples of each of ALIGNMENTS are tried on random data of that shape, and the first whose
    result has exactly the uncut product's bits is kept (none: no cut).
    """
    dtype = np.result_type(a, b)
    key = (a.shape, b.shape, _layout(a), _layout(b), dtype, n)
    if key not in _PLANS:
        _PLANS[key] = None
        rng = np.random.default_rng(0)
        ra = rng.standard_normal(a.shape).astype(dtype)
        ra = ra if _layout(a) != "F" else np.asfortranarray(ra)
        rb = rng.standard_normal(b.shape).astype(dtype)
        rb = rb if _layout(b) != "F" else np.asfortranarray(rb)
        whole = ra @ rb
        preferred = 0 if a.shape[0] >= b.shape[1] else 1
        for axis, g in ((axis, g) for axis in (preferred, 1 - preferred) for g in ALIGNMENTS):
            m = whole.shape[axis]
            blocks = min(3 * n, m // max(g, MIN_ROWS))
            bounds = [m * i // blocks // g * g for i in range(blocks)] + [m] if blocks > 1 else []
            if bounds and all(np.array_equal(whole[lo:hi] if axis == 0 else whole[:, lo:hi],
                                             np.matmul(*_block(ra, rb, axis, lo, hi)))
                              for lo, hi in zip(bounds, bounds[1:])):
                _PLANS[key] = axis, bounds
                break
    return _PLANS[key]


def matmul(a, b, out=None):
    """``a @ b`` for 2-D ``a`` (M, K) and ``b`` (K, N), written into ``out`` when given.

    Within ``use(n)`` with n > 1, a product of at least MIN_SPLIT multiply-adds is cut into
    blocks of rows or columns of the result (``plan``: about 3 per thread) that this thread
    and the pool's take in turn, so a thread whose core is busy elsewhere simply takes fewer.
    The result is bit for bit the uncut product's.
    """
    n = current()
    if n <= 1 or a.ndim != 2 or b.ndim != 2 or a.shape[0] * a.shape[1] * b.shape[1] < MIN_SPLIT:
        return np.matmul(a, b, out=out)
    cut = plan(a, b, n)
    if cut is None:
        return np.matmul(a, b, out=out)
    axis, bounds = cut
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    todo = iter(range(len(bounds) - 1))  # next() on it is atomic under the GIL

    def work():
        for i in todo:
            lo, hi = bounds[i], bounds[i + 1]
            np.matmul(*_block(a, b, axis, lo, hi), out=out[lo:hi] if axis == 0 else out[:, lo:hi])

    pool = _executor(n)
    helpers = [pool.submit(work) for _ in range(min(n, len(bounds) - 1) - 1)]
    work()
    for f in helpers:
        f.result()
    return out
