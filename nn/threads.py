"""How many cores the matrix products use: one policy for the command line and the library.

BLAS always runs on one thread here. Its own worker threads spin while they wait for work, and
on a machine where another process holds a core, a spinning thread that has lost its core stalls
every product (runs 10x slower and worse). Instead, ``matmul`` computes a large product as a
few blocks of its output's columns or rows, which a small pool of Python threads take in turn,
each calling single-threaded BLAS (NumPy releases the GIL during a product). Those threads block
rather than spin: when a core is taken, its blocks simply run on the other, so a busy machine
costs little, and a quiet one gets both cores. The blocks depend only on the product's shapes,
never on the thread count, so results are bit for bit the same on 1 thread or 4.

The thread count is ``threads`` given to ``use``: an integer, or None for automatic, which is
``$BPNET_THREADS`` when set, else the number of cores this process may run on
(``os.sched_getaffinity``): with the blocks above, every core is safe to use on a busy
machine. ``Trainer.run``, ``evaluate`` and ``check_network`` enter ``use`` themselves, so
Python callers get the command line's behaviour.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext

import numpy as np

from bpnet.errors import InputError

ENV = "BPNET_THREADS"
# Products with fewer multiply-adds than this run whole on one thread: below it, handing blocks
# to threads costs more than it saves on a quiet machine and loses over 10% on a busy one
# (measured with 784-H-10 at batch 100: H=200, 16M, 1.5x quiet and 0.87x busy; H=400, 31M,
# 1.7x and 0.93x; the lesson's 784-50-10, 3.9M, nothing quiet and 0.7x busy).
MIN_SPLIT = 25_000_000

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
            _pool["n"], _pool["executor"] = (
                n,
                ThreadPoolExecutor(max_workers=n - 1, thread_name_prefix="bpnet-matmul"),
            )
        return _pool["executor"]


@contextmanager
def use(threads=None):
    """Within this block, BLAS runs on one thread and ``matmul`` splits large products
    over ``threads`` threads (None: the enclosing block's count, else ``resolve(None)``).
    Yields the count; on exit the enclosing block's count is back in force."""
    previous = getattr(_state, "n", None)
    n = previous if threads is None and previous is not None else resolve(threads)
    if previous is None:  # the outermost block pins BLAS (threadpoolctl takes ~1 ms to do it)
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=1, user_api="blas")
    else:
        limits = nullcontext()
    with limits:
        _state.n = n
        try:
            yield n
        finally:
            _state.n = previous


def current():
    """The split count in force on this thread (1 outside ``use``)."""
    return getattr(_state, "n", None) or 1


BLOCKS = 4  # a large product is always computed as this many blocks: up to 4 threads share it
ALIGN = 8  # block bounds are multiples of this many rows or columns (BLAS kernels' unrolling)


def plan(a, b):
    """(axis, bounds) cutting ``a @ b`` into BLOCKS blocks of the result's rows (axis 0) or
    columns (axis 1), or None to keep it whole (fewer than MIN_SPLIT multiply-adds).

    Each block is its own BLAS call, which packs its share of one operand and all of the other:
    the cut runs across the result's columns when ``a`` is the smaller operand (so only ``a``
    is packed again per block), else across its rows. A cut changes the last bits of some
    elements (the kernels round a block's edges their own way), so the cut depends only on the
    shapes, never on the thread count: the same product gives the same bits on 1 thread or 4.
    """
    return _plan(a.shape, b.shape) if a.ndim == 2 and b.ndim == 2 else None


def _plan(a_shape, b_shape):
    (m, k), n = a_shape, b_shape[1]
    if m * k * n < MIN_SPLIT:
        return None
    axis = 1 if m * k <= k * n else 0
    m = (m, n)[axis]
    if m < BLOCKS * ALIGN:
        return None
    return axis, [m * i // BLOCKS // ALIGN * ALIGN for i in range(BLOCKS)] + [m]


def _block(a, b, axis, lo, hi):
    """The operands of block [lo, hi) of the result's rows (axis 0) or columns (axis 1)."""
    return (a[lo:hi], b) if axis == 0 else (a, b[:, lo:hi])


def matmul(a, b, out=None):
    """``a @ b`` for 2-D ``a`` (M, K) and ``b`` (K, N), written into ``out`` when given.

    A product of at least MIN_SPLIT multiply-adds is computed as the BLOCKS blocks of ``plan``,
    which this thread and, within ``use(n)`` with n > 1, up to n - 1 pool threads take in turn
    (a thread whose core is busy elsewhere simply takes fewer). The blocks, and so the bits,
    are the same whatever the thread count.
    """
    cut = plan(a, b)
    if cut is None:
        return np.matmul(a, b, out=out)
    axis, bounds = cut
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))

    def block(lo, hi):
        np.matmul(*_block(a, b, axis, lo, hi), out=out[lo:hi] if axis == 0 else out[:, lo:hi])

    _share(bounds, block)
    return out


def matmul_rows(a, b, rows):
    """``a @ b[rows]`` (``rows``: indices into b's rows), as ``matmul`` computes it, each
    block gathering its own share of ``b[rows]`` when the product is cut across its columns."""
    cut = _plan((a.shape[0], len(rows)), (len(rows), b.shape[1]))
    if cut is None or cut[0] == 0:
        return matmul(a, b.take(rows, axis=0))
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))

    def block(lo, hi):
        np.matmul(a, b[:, lo:hi].take(rows, axis=0), out=out[:, lo:hi])

    _share(cut[1], block)
    return out


def matmul_into_rows(a, b, out, rows):
    """``out[rows] = a @ b`` and every other row of ``out`` zero, as ``matmul`` computes the
    product, each block writing its own share when it is cut across the result's columns."""
    cut = _plan(a.shape, b.shape)
    if cut is None or cut[0] == 0:
        product = matmul(a, b)
        out.fill(0)
        out[rows] = product
        return out

    def block(lo, hi):
        product = np.matmul(a, b[:, lo:hi])
        part = out[:, lo:hi]
        part.fill(0)
        part[rows] = product

    _share(cut[1], block)
    return out


# Elementwise work on fewer elements than this stays on one thread (a handoff costs ~20 us).
MIN_ELEMENTWISE = 200_000


def blocks(size, fn):
    """Call ``fn(lo, hi)`` over BLOCKS consecutive blocks of ``range(size)``, shared by the
    threads of ``use`` when ``size`` is at least MIN_ELEMENTWISE, else ``fn(0, size)``: for
    elementwise work, whose bits do not depend on the blocks (an optimizer's update)."""
    if not shared(size):
        fn(0, size)
        return
    _share([size * i // BLOCKS // 16 * 16 for i in range(BLOCKS)] + [size], fn)


def shared(size):
    """Whether ``blocks`` would share elementwise work on ``size`` elements between threads."""
    return size >= MIN_ELEMENTWISE and current() > 1


def _share(bounds, fn):
    """``fn(lo, hi)`` for each block between ``bounds``: this thread and up to
    ``current() - 1`` pool threads take the next block in turn until none is left."""
    todo = iter(list(zip(bounds, bounds[1:])))  # next() on it is atomic under the GIL

    def work():
        for lo, hi in todo:
            fn(lo, hi)

    n = min(current(), len(bounds) - 1)
    helpers = [_executor(n).submit(work) for _ in range(n - 1)] if n > 1 else []
    work()
    for f in helpers:
        f.result()
