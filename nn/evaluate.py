"""Evaluation in large batches: loss, accuracy, predictions, confusion matrix."""

from __future__ import annotations

import numpy as np

from bpnet.errors import InputError

from .defaults import EVAL_BATCH
from .layers import log_softmax, softmax
from .threads import use as use_threads


def input_scale(normalize):
    """The factor from uint8 pixels to network input: 1/255 when normalizing, else 1."""
    return 1 / 255 if normalize else 1.0


def to_input(pixels, scale, dtype, out=None):
    """uint8 pixels (N, ...) → (N, D) network input in ``dtype``, multiplied by ``scale``."""
    pixels = pixels.reshape(len(pixels), -1)
    if out is None:
        out = np.empty(pixels.shape, dtype=dtype)
    np.copyto(out, pixels, casting="unsafe")  # a plain cast, then one in-place multiply:
    if scale != 1:  # faster than a mixed-type multiply
        out *= np.asarray(scale, dtype=dtype)
    return out


def evaluate(net, pixels, labels, scale=1 / 255, batch_size=EVAL_BATCH, threads=None):
    """(mean loss, accuracy, predicted labels, class probabilities) over a whole split.

    ``pixels`` are uint8 images, converted ``batch_size`` at a time into one reused
    float buffer, or inputs already in the network's dtype (and scaled), used as they are.
    ``threads``: as in ``bpnet.nn.threads.use``.
    """
    with use_threads(threads):
        return _evaluate(net, pixels, labels, scale, batch_size)


def _evaluate(net, pixels, labels, scale, batch_size):
    if hasattr(net, "eval_batch"):  # a convolutional network: batches bounded in memory
        batch_size = net.eval_batch(batch_size)
    n = len(pixels)
    ready = pixels.dtype == net.dtype
    buf = (
        None
        if ready
        else np.empty((min(batch_size, n), int(np.prod(pixels.shape[1:]))), dtype=net.dtype)
    )
    pred = np.empty(n, dtype=np.int64)
    probs = np.empty((n, net.output_size), dtype=net.dtype)
    loss_sum = 0.0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        x = (
            pixels[start:stop]
            if ready
            else to_input(pixels[start:stop], scale, net.dtype, out=buf[: stop - start])
        )
        logp = log_softmax(net.predict(x, train_flg=False))  # inference mode
        loss_sum -= float(
            np.sum(logp[np.arange(stop - start), labels[start:stop]], dtype=np.float64)
        )
        pred[start:stop] = logp.argmax(axis=1)
        np.exp(logp, out=probs[start:stop])
    accuracy = float(np.mean(pred == labels)) if n else float("nan")
    return loss_sum / max(n, 1), accuracy, pred, probs


def confusion_matrix(labels, pred, classes=10):
    """counts[i, j]: images of class i predicted as j."""
    return np.bincount(np.asarray(labels) * classes + pred, minlength=classes * classes).reshape(
        classes, classes
    )


def check_digit_input(net, name):
    """InputError unless ``net`` takes 28×28 = 784 inputs (``name`` names the weights)."""
    if net.input_size != 28 * 28:
        raise InputError(
            f"{name}: the network takes {net.input_size} inputs, expected 784 (28x28 images)"
        )


def top_classes(net, digits, scale, top=3):
    """For each digit (N, 28, 28) 0..255, its ``top`` most probable classes, best first:
    [[{"label": int, "probability": float}, …], …] (what ``bpnet predict --json`` prints)."""
    probs = softmax(net.predict(to_input(digits, scale, net.dtype)).astype(np.float64))
    ranked = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    return [
        [{"label": int(c), "probability": float(p[c])} for c in order]
        for p, order in zip(probs, ranked)
    ]
