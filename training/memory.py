"""What training a config needs in memory, estimated from the config alone, and the refusal of a
config that cannot fit before anything is downloaded or allocated."""

from __future__ import annotations

import copy
import math

import numpy as np

from bpnet.base.limits import limit
from bpnet.base.text import human
from bpnet.base.yamlsafe import show
from bpnet.errors import ConfigError
from bpnet.nn.defaults import EVAL_MEMORY
from bpnet.nn.optim import OPTIMIZERS
from bpnet.training.config import (
    INPUT_SHAPE,
    INPUT_SIZE,
    OUTPUT_SIZE,
    TEST_SIZE,
    TRAIN_SIZE,
    defaults,
    get,
    put,
    split_layers,
)

INTERPRETER = 200 * 1024**2  # Python, NumPy and the loaded modules, before any array


def memory_needs(cfg):
    """{part: (bytes, the config key that drives it)}: an upper estimate of what training
    with ``cfg`` allocates, each part computed from the config alone.

    parameters: weights, gradients, optimizer state and the copies a save snapshots;
    activations: each layer's forward output, mask and gradient for one mini-batch, and a
    convolution's or pooling's im2col rows (kept for backward, and their gradient);
    batches: the two chunks of input batches prepared ahead; evaluation: validation and test
    inputs converted once plus one evaluation batch through the net; augmentation: the
    float64 coordinate arrays of one batch and the elastic field's Gaussian kernel
    (8·elastic_sigma + 57 entries); data: the uint8 dataset.
    """
    tr, model, aug = cfg["train"], cfg["model"], cfg["augment"]
    item = np.dtype(tr["dtype"]).itemsize
    slots = len(OPTIMIZERS[tr["optimizer"]].slots)  # arrays the update rule carries per parameter
    if model.get("layers") is None:
        sizes = [INPUT_SIZE, *model["hidden"], OUTPUT_SIZE]
        weights = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        width, cols, model_key = sum(sizes), 0, "model.hidden"
    else:
        weights, width, cols = _layer_counts(model["layers"])
        model_key = "model.layers"
    bs = tr["batch_size"]
    n_eval = TEST_SIZE + cfg["data"]["validation"]
    chunk = min(50 * bs, TRAIN_SIZE)
    eval_bs = min(cfg["eval"]["batch_size"], n_eval)
    if cols:  # a convolutional network evaluates in batches bounded in memory (ConvNet.eval_batch)
        eval_bs = max(1, min(eval_bs, EVAL_MEMORY // ((2 * width + cols) * item)))
    needs = {
        "parameters": (weights * item * 2 * (2 + slots), model_key),
        "activations": (bs * (width * 4 + cols * 2) * item, "train.batch_size"),
        "batches": (2 * chunk * INPUT_SIZE * (1 + item), "train.batch_size"),
        "evaluation": (
            n_eval * INPUT_SIZE * item + eval_bs * (width * 3 + cols) * item,
            "eval.batch_size",
        ),
        "data": ((TRAIN_SIZE + TEST_SIZE) * (INPUT_SIZE + 8), "dataset"),
    }
    if any(aug[k] for k in ("shift", "rotate", "scale", "shear", "elastic_alpha")):
        kernel = (8 * math.ceil(aug["elastic_sigma"]) + 57) * 8 * 3 if aug["elastic_alpha"] else 0
        needs["augmentation"] = (
            bs * INPUT_SIZE * 8 * 12 + kernel,
            "augment.elastic_sigma" if kernel > bs * INPUT_SIZE * 96 else "train.batch_size",
        )
    return needs


def _layer_counts(layers):
    """(parameters, values one image makes through the layers, its im2col values)."""
    from bpnet.nn.convnet import image_values, param_shapes

    net = split_layers(layers)
    weights = sum(math.prod(s) for s in param_shapes(INPUT_SHAPE, net.body, net.classes).values())
    values, cols = image_values(INPUT_SHAPE, net.body)
    return weights, values + net.classes, cols


MEMORY_KEYS = (
    "model.layers",
    "model.hidden",
    "train.batch_size",
    "eval.batch_size",
    "augment.elastic_sigma",
    "train.optimizer",
    "train.dtype",
    "data.validation",
)


def _costliest_key(cfg, total):
    """The key of MEMORY_KEYS whose default would save the most memory (None: none saves)."""
    saved = {}
    for key in MEMORY_KEYS:
        trial = copy.deepcopy(cfg)
        put(trial, key, get(defaults(), key))
        saved[key] = total - INTERPRETER - sum(b for b, _ in memory_needs(trial).values())
    key = max(saved, key=saved.get)
    return key if saved[key] > 0 else None


def check_memory(cfg, origin=None):
    """ConfigError when ``memory_needs(cfg)`` exceeds ``limit("memory")``, naming the key
    behind the largest part and the estimate; nothing is allocated before this passes."""
    needs = memory_needs(cfg)
    total = INTERPRETER + sum(b for b, _ in needs.values())
    available = limit("memory")
    if total <= available:
        return total
    key = _costliest_key(cfg, total) or needs[max(needs, key=lambda p: needs[p][0])][1]
    parts = ", ".join(
        f"{p} {human(b)}" for p, (b, _) in sorted(needs.items(), key=lambda kv: -kv[1][0])[:3]
    )
    raise ConfigError(
        (origin or {}).get(key, "defaults"),
        key,
        f"{show(get(cfg, key))} needs about {human(total)} of memory to train "
        f"({parts}), more than the {human(available)} available "
        f"(BPNET_MAX_MEMORY)",
    )
