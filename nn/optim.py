"""Optimizers that update a params dict in place, and learning-rate schedules.

``update(params, grads)`` reads ``grads`` and never writes into them: each step is
built in a private scratch array per parameter, then added to the parameter. ``state``
holds every array the optimizer carries between steps, so a checkpoint of
(params, state, step) resumes bit for bit. A parameter that is a plain number rather
than an array (the book's optimizer demo) is replaced by its updated value.
"""

from __future__ import annotations

import math

import numpy as np

from . import threads


class SGD:
    """p ← p − lr·g"""

    slots = ()  # names of the arrays carried between steps, per parameter (in ``state``)
    scratch = ("s",)  # names of the private scratch arrays, per parameter

    def __init__(self, lr=0.01):
        self.lr, self.step, self.state, self._scratch = lr, 0, {}, {}

    def update(self, params, grads):
        """One step of every parameter. The rule is elementwise, so a large parameter (the
        Trainer's one flat array) is updated in blocks that ``threads.blocks`` may hand to
        other threads, with the same bits as in one piece."""
        self.step += 1
        coeffs = self.coefficients()
        for k, p in params.items():
            number = not isinstance(p, np.ndarray)  # a plain number: replaced by its new value
            arrays = [
                np.array(p, dtype=np.result_type(p)) if number else p,
                grads[k],
                *[self._slot(name, k, p) for name in self.slots],
                *[self._tmp(name, k, p) for name in self.scratch],
            ]
            if number:
                self.rule(*arrays, *coeffs)
                params[k] = arrays[0][()]
            elif not threads.shared(p.size):
                self.rule(*arrays, *coeffs)
            else:
                flat = [np.reshape(a, -1) for a in arrays]

                def block(lo, hi, flat=flat):
                    self.rule(*(a[lo:hi] for a in flat), *coeffs)

                threads.blocks(p.size, block)

    def coefficients(self):
        """The step's numbers the rule needs beyond the arrays (after ``step`` is counted)."""
        return (self.lr,)

    @staticmethod
    def rule(p, g, s, lr):
        np.multiply(g, -lr, out=s)
        p += s

    def _slot(self, name, key, like):
        """The carried array ``name`` of parameter ``key`` (zeros like it at first use)."""
        slot = self.state.get(f"{name}.{key}")
        if slot is None:
            slot = self.state[f"{name}.{key}"] = np.zeros_like(like)
        return slot

    def _tmp(self, name, key, like):
        """A scratch array like parameter ``key``, reused between steps (never checkpointed)."""
        s = self._scratch.get((name, key))
        if s is None or s.shape != np.shape(like) or s.dtype != np.result_type(like):
            s = self._scratch[(name, key)] = np.zeros_like(like)
        return s


class Momentum(SGD):
    """v ← m·v − lr·g;  p ← p + v"""

    slots = ("v",)

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr)
        self.momentum = momentum

    def coefficients(self):
        return self.lr, self.momentum

    @staticmethod
    def rule(p, g, v, s, lr, momentum):
        v *= momentum
        np.multiply(g, lr, out=s)
        v -= s
        p += v


class Nesterov(Momentum):
    """Nesterov's accelerated gradient (the book's form, arXiv:1212.0901):
    v ← m·v − lr·g;  p ← p + m·v − lr·g  (= p + m²·v_old − (1 + m)·lr·g)"""

    scratch = ("s", "d")

    @staticmethod
    def rule(p, g, v, s, d, lr, momentum):
        np.multiply(g, lr, out=s)
        v *= momentum
        v -= s
        np.multiply(v, momentum, out=d)
        d -= s
        p += d


class AdaGrad(SGD):
    """h ← h + g²;  p ← p − lr·g / (√h + eps)"""

    slots = ("h",)

    def __init__(self, lr=0.01, eps=1e-8):
        super().__init__(lr)
        self.eps = eps

    def coefficients(self):
        return self.lr, self.eps

    @staticmethod
    def rule(p, g, h, s, lr, eps):
        np.multiply(g, g, out=s)
        h += s
        _scaled_step(p, g, h, s, lr, eps)


class RMSprop(SGD):
    """h ← ρ·h + (1 − ρ)·g²;  p ← p − lr·g / (√h + eps)   (ρ: decay_rate)"""

    slots = ("h",)

    def __init__(self, lr=0.01, decay_rate=0.99, eps=1e-8):
        super().__init__(lr)
        self.decay_rate, self.eps = decay_rate, eps

    def coefficients(self):
        return self.lr, self.decay_rate, self.eps

    @staticmethod
    def rule(p, g, h, s, lr, decay_rate, eps):
        h *= decay_rate
        np.multiply(g, g, out=s)
        s *= 1.0 - decay_rate
        h += s
        _scaled_step(p, g, h, s, lr, eps)


def _scaled_step(p, num, h, s, lr, eps):
    """p ← p − lr·num / (√h + eps), built in the scratch array s."""
    np.sqrt(h, out=s)
    s += eps
    np.divide(num, s, out=s)
    s *= -lr
    p += s


class Adam(SGD):
    """m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²;
    p ← p − lr_t·m / (√v + eps) with the bias correction folded into
    lr_t = lr·√(1 − β₂ᵗ) / (1 − β₁ᵗ)."""

    slots = ("m", "v")

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def coefficients(self):
        t = self.step
        lr_t = self.lr * math.sqrt(1.0 - self.beta2**t) / (1.0 - self.beta1**t)
        return lr_t, self.beta1, self.beta2, self.eps

    @staticmethod
    def rule(p, g, m, v, s, lr_t, beta1, beta2, eps):
        m *= beta1
        np.multiply(g, 1.0 - beta1, out=s)
        m += s
        np.multiply(g, g, out=s)
        s *= 1.0 - beta2
        v *= beta2
        v += s
        _scaled_step(p, m, v, s, lr_t, eps)


SCHEDULES = ("none", "step", "cosine", "onecycle")
OPTIMIZERS = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adagrad": AdaGrad,
    "rmsprop": RMSprop,
    "adam": Adam,
}


def make_optimizer(name, lr, momentum=0.9, beta1=0.9, beta2=0.999, eps=1e-8, decay_rate=0.99):
    """An optimizer by its config name."""
    if name == "sgd":
        return SGD(lr)
    if name in ("momentum", "nesterov"):
        return OPTIMIZERS[name](lr, momentum)
    if name == "adagrad":
        return AdaGrad(lr, eps)
    if name == "rmsprop":
        return RMSprop(lr, decay_rate, eps)
    if name == "adam":
        return Adam(lr, beta1, beta2, eps)
    raise ValueError(f"optimizer: expected one of {sorted(OPTIMIZERS)}, got {name!r}")


def learning_rate(
    schedule,
    base_lr,
    iteration,
    total_iterations,
    iters_per_epoch,
    step_epochs=10,
    gamma=0.1,
    min_lr=0.0,
    warmup=0.0,
):
    """The learning rate for ``iteration`` (0-based) under a schedule none|step|cosine|onecycle.

    ``onecycle``: a linear rise from min_lr to base_lr over the first ``warmup`` fraction of
    the run, then a cosine fall back to min_lr by its end.
    """
    if schedule == "onecycle":
        frac = min(iteration / max(total_iterations, 1), 1.0)
        if frac < warmup:
            return min_lr + (base_lr - min_lr) * frac / warmup
        frac = (frac - warmup) / max(1.0 - warmup, 1e-12)
        return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))
    if schedule == "none":
        return base_lr
    if schedule == "step":
        return base_lr * gamma ** (iteration // (step_epochs * iters_per_epoch))
    if schedule == "cosine":
        frac = min(iteration / max(total_iterations, 1), 1.0)
        return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))
    raise ValueError(f"schedule: expected one of {', '.join(SCHEDULES)}, got {schedule!r}")
