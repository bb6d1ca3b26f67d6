"""Gradient check: backpropagation against centered differences, in float64.

A coordinate passes when |a - n| <= tol * max(|a|, |n|, tiny), where a is the
backpropagated and n the numerical partial derivative. ``tiny`` is the scale
below which float64 centered differences cannot resolve a relative error of
``tol``: the rounding error of (f(x+h) - f(x-h)) / 2h is about eps * |f| / h,
so tiny = SAFETY * eps * max(1, |f|) / (h * tol). Above it the check is purely
relative; below it, it is an absolute check at the method's own resolution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .conv import Convolution, Pooling, im2col
from .defaults import GRADCHECK_STEP, GRADCHECK_TOL
from .gradient import numerical_partials
from .layers import (
    AddLayer,
    Affine,
    BatchNormalization,
    Dropout,
    MulLayer,
    Relu,
    Sigmoid,
    SoftmaxWithLoss,
)
from .threads import use as use_threads

EPS = float(np.finfo(np.float64).eps)
SAFETY = 10.0
DEFAULT_TOL, DEFAULT_H = GRADCHECK_TOL, GRADCHECK_STEP  # the names this module had first


@dataclass
class CheckResult:
    """One compared gradient (one parameter or one input of one check)."""

    name: str
    shape: tuple
    checked: int
    max_rel_err: float
    max_abs_diff: float
    mean_abs_diff: float
    tiny: float
    tol: float
    kinks: int = 0  # coordinates left out: their ±h crossed a kink (ReLU at 0, a pooling tie)

    @property
    def passed(self):
        return bool(self.max_rel_err <= self.tol)

    def as_dict(self):
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["passed"] = self.passed
        return d


def relative_errors(a, n, tiny):
    """|a - n| / max(|a|, |n|, tiny), elementwise."""
    return np.abs(a - n) / np.maximum(np.maximum(np.abs(a), np.abs(n)), tiny)


def check_gradients(
    name,
    f,
    arrays,
    analytic,
    tol=GRADCHECK_TOL,
    h=GRADCHECK_STEP,
    max_coords=None,
    rng=None,
    kinks=None,
):
    """Compare ``analytic[k]`` with numerical partials of ``f()`` for each ``arrays[k]``.

    f takes no argument and reads the arrays, which are perturbed in place.
    With ``max_coords`` a seeded sample of that many coordinates per array is
    checked; otherwise all of them. ``kinks``: a function returning the non-smooth choices
    the last ``f()`` made (ReLU masks, pooling arg-maxes); a coordinate whose +h or -h changes
    them straddles a kink, where a centered difference is no derivative: it is left out, and
    counted in ``CheckResult.kinks``.
    """
    rng = np.random.default_rng(rng)
    tiny = SAFETY * EPS * max(1.0, abs(float(f()))) / (h * tol)
    base = kinks() if kinks else None
    results = []
    for key, x in arrays.items():
        if max_coords is None or x.size <= max_coords:
            idx = np.arange(x.size)
        else:
            idx = np.sort(rng.choice(x.size, size=max_coords, replace=False))
        smooth = []

        def g(_, smooth=smooth):
            value = f()
            if kinks:
                smooth.append(all(np.array_equal(a, b) for a, b in zip(kinks(), base)))
            return value

        n = numerical_partials(g, x, idx, h)
        a = np.asarray(analytic[key], dtype=np.float64).reshape(-1)[idx]
        keep = np.logical_and(smooth[0::2], smooth[1::2]) if kinks else np.ones(len(idx), bool)
        if not keep.any():  # every coordinate straddles a kink: nothing to compare
            keep[:] = True
        a, n = a[keep], n[keep]
        diff = np.abs(a - n)
        results.append(
            CheckResult(
                name=f"{name} {key}",
                shape=tuple(x.shape),
                checked=int(keep.sum()),
                max_rel_err=float(relative_errors(a, n, tiny).max()),
                max_abs_diff=float(diff.max()),
                mean_abs_diff=float(diff.mean()),
                tiny=tiny,
                tol=tol,
                kinks=int(len(idx) - keep.sum()),
            )
        )
    return results


def kink_choices(net):
    """What ``check_gradients(kinks=...)`` compares for a network: every ReLU's mask and every
    max pooling's arg-max from its last forward pass."""

    def choices():
        out = []
        for layer in net.layers.values():
            if isinstance(layer, Relu):
                out.append(layer.positive.copy())
            elif isinstance(layer, Pooling):  # which input of each window is the largest
                ph, pw, stride, pad = layer.pool_h, layer.pool_w, layer.stride, layer.pad
                if layer.arg_max is not None and layer.x is None:
                    out.append(layer.arg_max.copy())
                else:
                    col = im2col(layer.x, ph, pw, stride, pad).reshape(-1, ph * pw)
                    out.append(col.argmax(axis=1))
        return out

    return choices


def _away_from_zero(rng, shape, margin=0.1):
    """Random values with |x| >= margin, so that h never crosses ReLU's kink."""
    z = rng.standard_normal(shape)
    return np.sign(z) * (margin + np.abs(z))


def check_layers(tol=GRADCHECK_TOL, h=GRADCHECK_STEP, rng=None):
    """Check every layer type on its own with random float64 inputs.

    For a layer y = L(x) the scalar checked is f = Σ y ⊙ R with a fixed random R,
    whose gradient backprop gives as L.backward(R).
    """
    rng = np.random.default_rng(rng)
    results = []
    kw = dict(tol=tol, h=h, rng=rng)

    x, y = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    r = rng.standard_normal((4, 5))
    for cls in (MulLayer, AddLayer):
        layer = cls()
        layer.forward(x, y)
        dx, dy = layer.backward(r)
        f = lambda layer=cls(): float(np.sum(layer.forward(x, y) * r))  # noqa: E731
        results += check_gradients(cls.__name__, f, {"dx": x, "dy": y}, {"dx": dx, "dy": dy}, **kw)

    for cls, x in (
        (Relu, _away_from_zero(rng, (4, 7))),
        (Sigmoid, 3 * rng.standard_normal((4, 7))),
    ):
        r = rng.standard_normal(x.shape)
        layer = cls()
        layer.forward(x)
        dx = layer.backward(r)
        f = lambda layer=cls(), x=x, r=r: float(np.sum(layer.forward(x) * r))  # noqa: E731
        results += check_gradients(cls.__name__, f, {"dx": x}, {"dx": dx}, **kw)

    # Affine on image-shaped input: (N, 1, 3, 4) is flattened to (N, 12).
    x = rng.standard_normal((4, 1, 3, 4))
    W, b = rng.standard_normal((12, 6)), rng.standard_normal(6)
    r = rng.standard_normal((4, 6))
    layer = Affine(W, b)
    layer.forward(x)
    dx = layer.backward(r)
    f = lambda layer=Affine(W, b): float(np.sum(layer.forward(x) * r))  # noqa: E731
    results += check_gradients(
        "Affine", f, {"dx": x, "dW": W, "db": b}, {"dx": dx, "dW": layer.dW, "db": layer.db}, **kw
    )

    # Dropout in training mode with its mask drawn once and then held fixed.
    x, r = rng.standard_normal((4, 7)), rng.standard_normal((4, 7))
    layer = Dropout(0.5, rng=np.random.default_rng(rng.integers(2**32)))
    layer.forward(x, train_flg=True)
    layer.fixed = True
    dx = layer.backward(r)
    f = lambda: float(np.sum(layer.forward(x, train_flg=True) * r))  # noqa: E731
    results += check_gradients("Dropout", f, {"dx": x}, {"dx": dx}, **kw)

    # BatchNormalization in training mode: dx through the batch mean and variance.
    x = 2 + 3 * rng.standard_normal((6, 5))
    gamma, beta = 1 + rng.standard_normal(5), rng.standard_normal(5)
    r = rng.standard_normal((6, 5))
    layer = BatchNormalization(gamma, beta)
    layer.forward(x, train_flg=True)
    dx = layer.backward(r)
    f = lambda bn=BatchNormalization(gamma, beta): float(  # noqa: E731
        np.sum(bn.forward(x, train_flg=True) * r)
    )
    results += check_gradients(
        "BatchNormalization",
        f,
        {"dx": x, "dgamma": gamma, "dbeta": beta},
        {"dx": dx, "dgamma": layer.dgamma, "dbeta": layer.dbeta},
        **kw,
    )

    # Convolution (odd sizes, a non-square filter, strides and paddings) and max pooling
    # (overlapping windows, padding): random inputs, so no two window entries tie.
    for stride, pad, x_shape, w_shape in (
        (1, 1, (2, 2, 5, 7), (3, 2, 3, 3)),
        (2, 2, (2, 3, 6, 5), (2, 3, 3, 2)),
    ):
        x, W, b = (rng.standard_normal(s) for s in (x_shape, w_shape, w_shape[:1]))
        layer = Convolution(W, b, stride, pad)
        r = rng.standard_normal(layer.forward(x).shape)
        dx = layer.backward(r)
        f = lambda c=Convolution(W, b, stride, pad), x=x, r=r: float(np.sum(c.forward(x) * r))  # noqa: E731
        results += check_gradients(
            f"Convolution(stride {stride}, pad {pad})",
            f,
            {"dx": x, "dW": W, "db": b},
            {"dx": dx, "dW": layer.dW, "db": layer.db},
            **kw,
        )
    for size, stride, pad in ((2, 2, 0), (3, 2, 1)):
        x = rng.standard_normal((2, 3, 5, 7))
        layer = Pooling(size, size, stride, pad)
        r = rng.standard_normal(layer.forward(x).shape)
        dx = layer.backward(r)
        f = lambda p=Pooling(size, size, stride, pad), x=x, r=r: float(np.sum(p.forward(x) * r))  # noqa: E731
        results += check_gradients(
            f"Pooling({size}x{size}, stride {stride}, pad {pad})", f, {"dx": x}, {"dx": dx}, **kw
        )

    s = 2 * rng.standard_normal((5, 10))
    labels = rng.integers(0, 10, size=5)
    for kind, t in (("indices", labels), ("one-hot", np.eye(10)[labels])):
        layer = SoftmaxWithLoss()
        layer.forward(s, t)
        dx = layer.backward(1.0)
        f = lambda layer=SoftmaxWithLoss(), t=t: layer.forward(s, t)  # noqa: E731
        results += check_gradients(f"SoftmaxWithLoss({kind})", f, {"dx": s}, {"dx": dx}, **kw)
    return results


def check_network(
    net,
    x,
    t,
    tol=GRADCHECK_TOL,
    h=GRADCHECK_STEP,
    max_coords=None,
    rng=None,
    name="net",
    threads=None,
):
    """Check every parameter of ``net`` (float64) on the batch (x, t), in training mode
    (batch statistics; dropout masks drawn once and then held fixed); ``threads`` as in
    ``bpnet.nn.threads.use``."""
    with use_threads(threads), net.fixed_masks():
        grads = {k: g.copy() for k, g in net.gradient(x, t).items()}
        return check_gradients(
            name,
            lambda: net.loss(x, t, train_flg=True),
            net.params,
            grads,
            tol=tol,
            h=h,
            max_coords=max_coords,
            rng=rng,
            kinks=kink_choices(net),
        )
