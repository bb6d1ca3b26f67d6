"""Optimizers that update a params dict in place, and learning-rate schedules.

Each optimizer's ``update(params, grads)`` may use ``grads`` as scratch space.
``state`` holds every array the optimizer carries between steps, so a
checkpoint of (params, state, step) resumes bit for bit.
"""
from __future__ import annotations

import math

import numpy as np


class SGD:
    """p ← p − lr·g"""

    def __init__(self, lr=0.01):
        self.lr, self.step, self.state = lr, 0, {}

    def update(self, params, grads):
        self.step += 1
        for k, p in params.items():
            g = grads[k]
            np.multiply(g, self.lr, out=g)
            p -= g

    def _slot(self, name, key, like):
        """The carried array ``name`` of parameter ``key`` (zeros like it at first use)."""
        slot = self.state.get(f"{name}.{key}")
        if slot is None:
            slot = self.state[f"{name}.{key}"] = np.zeros_like(like)
        return slot


class Momentum(SGD):
    """v ← m·v − lr·g;  p ← p + v"""

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr)
        self.momentum = momentum

    def update(self, params, grads):
        self.step += 1
        for k, p in params.items():
            v, g = self._slot("v", k, p), grads[k]
            v *= self.momentum
            np.multiply(g, self.lr, out=g)
            v -= g
            p += v


class AdaGrad(SGD):
    """h ← h + g²;  p ← p − lr·g / (√h + eps)"""

    def __init__(self, lr=0.01, eps=1e-8):
        super().__init__(lr)
        self.eps = eps

    def update(self, params, grads):
        self.step += 1
        for k, p in params.items():
            h, g = self._slot("h", k, p), grads[k]
            h += g * g
            denom = np.sqrt(h)
            denom += self.eps
            g *= self.lr
            g /= denom
            p -= g


class Adam(SGD):
    """Adam with bias correction folded into the step size."""

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def update(self, params, grads):
        self.step += 1
        t = self.step
        lr_t = self.lr * math.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t)
        for k, p in params.items():
            m, v, g = self._slot("m", k, p), self._slot("v", k, p), grads[k]
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            g *= g
            v *= self.beta2
            v += (1.0 - self.beta2) * g
            denom = np.sqrt(v)
            denom += self.eps
            np.divide(m, denom, out=g)
            g *= lr_t
            p -= g


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adagrad": AdaGrad, "adam": Adam}


def make_optimizer(name, lr, momentum=0.9, beta1=0.9, beta2=0.999, eps=1e-8):
    """An optimizer by its config name."""
    if name == "sgd":
        return SGD(lr)
    if name == "momentum":
        return Momentum(lr, momentum)
    if name == "adagrad":
        return AdaGrad(lr, eps)
    if name == "adam":
        return Adam(lr, beta1, beta2, eps)
    raise ValueError(f"optimizer: expected one of {sorted(OPTIMIZERS)}, got {name!r}")


def learning_rate(schedule, base_lr, iteration, total_iterations, iters_per_epoch,
                  step_epochs=10, gamma=0.1, min_lr=0.0, warmup=0.0):
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
    raise ValueError(f"schedule: expected none, step, cosine or onecycle, got {schedule!r}")
