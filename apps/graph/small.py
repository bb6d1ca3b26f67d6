"""The lesson's small computational graphs, computed by ``bpnet.nn``'s own layers: the apple,
orange and tax graph of ``MulLayer`` and ``AddLayer`` nodes, and one-node graphs of ``Relu``,
``Sigmoid``, ``Affine`` and ``SoftmaxWithLoss``.

Each function runs its layers forward, then backward from the output, and returns the numbers
on every edge as a JSON-able dict (plain floats and lists, full precision)::

    {"graph": "apples" | "relu" | ..., "nodes": [{"name", "op", "layer", ...}],
     "edges": [{"name", "from", "to", "shape", "forward", "backward"}], ...}

``forward`` is the value that flows along the edge, ``backward`` the derivative of the graph's
output with respect to it (None for a class label, which has none). An edge comes ``from`` a
node or, for an input, from None, and goes ``to`` a node or, for the output, to None. Nothing
here draws: :mod:`bpnet.apps.graph.draw` does, from these dicts.
"""

from __future__ import annotations

import math

import numpy as np

from bpnet.errors import InputError
from bpnet.nn.layers import AddLayer, Affine, MulLayer, Relu, Sigmoid, SoftmaxWithLoss

APPLES = {"apple": 100.0, "apple_num": 2.0, "orange": 150.0, "orange_num": 3.0, "tax": 1.1}
SUBJECTS = ("apples", "relu", "sigmoid", "affine", "softmax-loss")
MAX_ROWS, MAX_COLS = 4, 10  # a one-node graph's arrays: what a drawing shows legibly
AFFINE_SHAPE = (2, 3, 2)  # N, D, M of an Affine node whose arrays are drawn at random
SCORES, LABEL = "0.3,2.9,4.0", 2  # the lesson's softmax example: scores a and the true class


def _number(name, value):
    """``value`` as a finite float, or an InputError naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(v):
        raise InputError(f"{name}: expected a finite number, got {value!r}")
    return v


def apple_graph(apple=100.0, apple_num=2.0, orange=150.0, orange_num=3.0, tax=1.1):
    """The lesson's first graph: price = (apple·apple_num + orange·orange_num)·tax, forward
    through two ``MulLayer``, an ``AddLayer`` and a ``MulLayer``, then backward from
    d price / d price = 1 (the book's buy_apple_orange.py)."""
    given = {"apple": apple, "apple_num": apple_num, "orange": orange}
    given.update(orange_num=orange_num, tax=tax)
    v = {name: _number(name, value) for name, value in given.items()}
    mul_apple, mul_orange, add_fruit, mul_tax = MulLayer(), MulLayer(), AddLayer(), MulLayer()
    f = dict(v)
    f["apple_price"] = mul_apple.forward(v["apple"], v["apple_num"])
    f["orange_price"] = mul_orange.forward(v["orange"], v["orange_num"])
    f["all_price"] = add_fruit.forward(f["apple_price"], f["orange_price"])
    f["price"] = mul_tax.forward(f["all_price"], v["tax"])
    b = {"price": 1.0}
    b["all_price"], b["tax"] = mul_tax.backward(b["price"])
    b["apple_price"], b["orange_price"] = add_fruit.backward(b["all_price"])
    b["apple"], b["apple_num"] = mul_apple.backward(b["apple_price"])
    b["orange"], b["orange_num"] = mul_orange.backward(b["orange_price"])
    wiring = (
        ("apple", None, "mul_apple"),
        ("apple_num", None, "mul_apple"),
        ("orange", None, "mul_orange"),
        ("orange_num", None, "mul_orange"),
        ("apple_price", "mul_apple", "add_fruit"),
        ("orange_price", "mul_orange", "add_fruit"),
        ("all_price", "add_fruit", "mul_tax"),
        ("tax", None, "mul_tax"),
        ("price", "mul_tax", None),
    )
    return {
        "graph": "apples",
        "inputs": v,
        "nodes": [
            {"name": "mul_apple", "op": "×", "layer": "MulLayer"},
            {"name": "mul_orange", "op": "×", "layer": "MulLayer"},
            {"name": "add_fruit", "op": "+", "layer": "AddLayer"},
            {"name": "mul_tax", "op": "×", "layer": "MulLayer"},
        ],
        "edges": [
            {
                "name": name,
                "from": src,
                "to": dst,
                "shape": [],
                "forward": float(f[name]),
                "backward": float(b[name]),
            }
            for name, src, dst in wiring
        ],
        "output": "price",
    }


def parse_array(text, name):
    """Numbers written as text, ``"1.0,-0.5"`` (a vector) or ``"1,2,3;4,5,6"`` (a matrix, rows
    separated by ``;``), as a float64 array; an InputError naming ``name`` when the text is
    not such numbers, not finite, or larger than a one-node graph draws (MAX_ROWS rows of
    MAX_COLS)."""
    rows = [row.strip() for row in str(text).split(";")]
    try:
        values = [[float(cell) for cell in row.split(",")] for row in rows]
    except ValueError:
        raise InputError(
            f"{name} {text!r}: expected numbers separated by commas, rows by ';' "
            f"(e.g. 1.0,-0.5 or 1,2;3,4)"
        ) from None
    widths = {len(row) for row in values}
    if len(widths) != 1:
        raise InputError(f"{name} {text!r}: rows of {sorted(widths)} numbers; expected equal rows")
    a = np.array(values if len(values) > 1 else values[0], dtype=np.float64)
    if not np.isfinite(a).all():
        raise InputError(f"{name} {text!r}: expected finite numbers")
    return _drawable(a, name)


def _drawable(a, name):
    a = np.asarray(a, dtype=np.float64)
    rows, cols = (1, *a.shape) if a.ndim == 1 else a.shape if a.ndim == 2 else (0, 0)
    if a.ndim not in (1, 2) or rows > MAX_ROWS or cols > MAX_COLS or a.size == 0:
        raise InputError(
            f"{name}: shape {tuple(a.shape)}; a one-node graph draws a vector or a matrix of "
            f"at most {MAX_ROWS} rows of {MAX_COLS} numbers"
        )
    if not np.isfinite(a).all():
        raise InputError(f"{name}: expected finite numbers")
    return a


def _gradient(dout, like, name):
    """dL/dy for an output shaped like ``like``: all ones when not given (L = the sum of y)."""
    if dout is None:
        return np.ones_like(like)
    dout = _drawable(dout, name)
    if dout.shape != like.shape:
        raise InputError(
            f"{name}: shape {tuple(dout.shape)}; expected the output's shape {tuple(like.shape)}"
        )
    return dout


def _edge(name, src, dst, forward, backward):
    forward = np.asarray(forward)
    return {
        "name": name,
        "from": src,
        "to": dst,
        "shape": list(forward.shape),
        "forward": forward.tolist(),
        "backward": None if backward is None else np.asarray(backward, np.float64).tolist(),
    }


def elementwise_graph(kind, x, dout=None):
    """A ``relu`` or ``sigmoid`` node on ``x`` (a vector or matrix), forward, then backward
    from ``dout`` = dL/dy (default all ones)."""
    layers = {
        "relu": (Relu, "ReLU", "y = max(x, 0)", "dx = dy where x > 0, else 0"),
        "sigmoid": (Sigmoid, "Sigmoid", "y = 1 / (1 + exp(-x))", "dx = dy · y (1 - y)"),
    }
    cls, title, forward_rule, backward_rule = layers[kind]
    x = _drawable(x, "x")
    layer = cls()
    y = layer.forward(x)
    dy = _gradient(dout, y, "dout")
    dx = layer.backward(dy)
    node = {"name": kind, "op": title, "layer": cls.__name__}
    node.update(forward_rule=forward_rule, backward_rule=backward_rule)
    return {
        "graph": kind,
        "nodes": [node],
        "edges": [_edge("x", None, kind, x, dx), _edge("y", kind, None, y, dy)],
        "output": "y",
    }


def random_values(shape, rng):
    """Numbers for an array not given: uniform in [-1, 1], to one decimal (easy to follow)."""
    return np.round(rng.uniform(-1.0, 1.0, shape), 1) + 0.0


def affine_graph(x=None, W=None, b=None, dout=None, shape=AFFINE_SHAPE, seed=0):
    """An ``Affine`` node, Y = X·W + b. Arrays not given are drawn (``random_values``) with
    ``seed`` in the sizes (N, D, M) of ``shape``, except where a given array fixes them (x:
    N and D, W: D and M, b: M). backward from ``dout`` = dL/dY (default all ones) gives
    dX = dY·Wᵀ, dW = Xᵀ·dY, db = Σₙ dY."""
    rng = np.random.default_rng(seed)
    n, d, m = (int(s) for s in shape)
    if x is not None:
        x = np.atleast_2d(_drawable(x, "x"))
        n, d = x.shape
    if W is not None:
        W = np.atleast_2d(_drawable(W, "W"))
        d = W.shape[0] if x is None else d
        m = W.shape[1]
    if b is not None:
        b = _drawable(b, "b")
        if b.ndim != 1:
            raise InputError(f"b: shape {tuple(b.shape)}; expected a vector")
        m = len(b) if W is None else m
    if not (0 < n <= MAX_ROWS and 0 < d <= min(MAX_ROWS, MAX_COLS) and 0 < m <= MAX_COLS):
        raise InputError(
            f"shape (N, D, M) = ({n}, {d}, {m}); a one-node graph draws N and D up to "
            f"{MAX_ROWS} (the rows of X and of W) and M up to {MAX_COLS}"
        )
    x = random_values((n, d), rng) if x is None else x
    W = random_values((d, m), rng) if W is None else W
    b = random_values((m,), rng) if b is None else b
    for name, a in (("x", x), ("W", W)):
        _drawable(a, name)
    if W.shape != (x.shape[1], len(b)):
        raise InputError(
            f"W: shape {tuple(W.shape)}; expected (D, M) = ({x.shape[1]}, {len(b)}) for "
            f"x of shape {tuple(x.shape)} and b of {len(b)}"
        )
    layer = Affine(W, b)
    y = layer.forward(x)
    dy = _gradient(dout, y, "dout")
    dx = layer.backward(dy)
    node = {"name": "affine", "op": "Affine", "layer": "Affine"}
    node.update(forward_rule="Y = X·W + b", backward_rule="dX = dY·Wᵀ   dW = Xᵀ·dY   db = Σ dY")
    return {
        "graph": "affine",
        "seed": seed,
        "nodes": [node],
        "edges": [
            _edge("X", None, "affine", x, dx),
            _edge("W", None, "affine", W, layer.dW),
            _edge("b", None, "affine", b, layer.db),
            _edge("Y", "affine", None, y, dy),
        ],
        "output": "Y",
    }


def softmax_loss_graph(scores=SCORES, labels=LABEL):
    """A ``SoftmaxWithLoss`` node: scores ``a`` (a vector, or a matrix of one row per example)
    and their true classes ``t`` (an int, or one per row) in, the mean cross-entropy L out;
    backward from dL/dL = 1 gives da = (y - t) / N, y the softmax of a."""
    a = parse_array(scores, "scores") if isinstance(scores, str) else _drawable(scores, "scores")
    a = np.atleast_2d(a)
    try:
        t = np.atleast_1d(
            np.array([int(w) for w in labels.split(",")]) if isinstance(labels, str) else labels
        )
    except ValueError:
        raise InputError(f"label {labels!r}: expected class numbers separated by commas") from None
    if t.ndim != 1 or len(t) != len(a) or not np.issubdtype(t.dtype, np.integer):
        raise InputError(
            f"label {labels!r}: expected {len(a)} class number(s), one per row of scores"
        )
    if (t < 0).any() or (t >= a.shape[1]).any():
        raise InputError(
            f"label {labels!r}: expected classes 0 to {a.shape[1] - 1} ({a.shape[1]} scores)"
        )
    layer = SoftmaxWithLoss()
    loss = layer.forward(a, t)
    da = layer.backward(1.0)
    node = {"name": "softmax-loss", "op": "Softmax-with-Loss", "layer": "SoftmaxWithLoss"}
    node.update(
        forward_rule="y = softmax(a)   L = -mean log y[t]",
        backward_rule="da = (y - t) / N",
        y=layer.y.tolist(),
    )
    return {
        "graph": "softmax-loss",
        "nodes": [node],
        "edges": [
            _edge("a", None, "softmax-loss", a, da),
            _edge("t", None, "softmax-loss", t, None),
            _edge("L", "softmax-loss", None, np.float64(loss), 1.0),
        ],
        "output": "L",
    }
