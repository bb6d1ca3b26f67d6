"""The ONNX nodes of a network described as layers (``meta.layers``, :mod:`bpnet.nn.convnet`):
what :func:`bpnet.apps.export.model_outline` writes between the scaled input and the output
Gemm for a convolutional network.

Each layer becomes the operator that computes exactly what bpnet's layer computes at inference:
a convolution is Conv (its strides, its zero padding); max pooling pads with zeros as bpnet's
im2col does (a Pad node, then MaxPool without padding: MaxPool's own padding never wins a max,
bpnet's zeros can); an Affine flattens maps first; batch normalization normalizes each value of
the flattened maps with the running statistics (Flatten, BatchNormalization, and a Reshape back
to maps when a convolution or pooling follows); dropout at inference multiplies by 1 − ratio.
"""

from __future__ import annotations

import numpy as np

from bpnet.nn.convnet import infer_shapes, normalized


def layer_nodes(node, const, x, meta, arrays, eps):
    """Add the nodes of ``meta["layers"]`` after ``x`` (N, C, H, W) through ``node(op,
    inputs, output, **attrs)`` and ``const(name, value)``; returns the output Gemm's input
    (N, D). ``eps``: one per batch normalization (None: bpnet's default)."""
    from bpnet.nn.layers import BatchNormalization
    from bpnet.training.config import split_layers

    net = split_layers(meta["layers"])
    layers = normalized(net.body)
    shapes = infer_shapes(meta["input_shape"], layers)
    w = bn = 0
    maps = True  # x is (N, C, H, W)
    for i, ((kind, o), shape) in enumerate(zip(layers, shapes), start=1):
        if kind == "conv":
            w += 1
            x = node(
                "Conv",
                [x, const(f"W{w}", arrays[f"W{w}"]), const(f"b{w}", arrays[f"b{w}"])],
                f"conv{i}",
                kernel_shape=[o["size"]] * 2,
                strides=[o["stride"]] * 2,
                pads=[o["pad"]] * 4,
            )
        elif kind == "pool":
            if o["pad"]:
                pads = np.array([0, 0, o["pad"], o["pad"]] * 2, dtype=np.int64)
                x = node("Pad", [x, const(f"pads{i}", pads, exact=True)], f"pad{i}")
            x = node(
                "MaxPool",
                [x],
                f"pool{i}",
                kernel_shape=[o["size"]] * 2,
                strides=[o["stride"]] * 2,
            )
        elif kind == "affine":
            if maps:
                x, maps = node("Flatten", [x], f"flatten{i}", axis=1), False
            w += 1
            x = node(
                "Gemm",
                [x, const(f"W{w}", arrays[f"W{w}"]), const(f"b{w}", arrays[f"b{w}"])],
                f"affine{i}",
            )
        elif kind == "batchnorm":
            bn += 1
            if maps:
                x = node("Flatten", [x], f"flatten{i}", axis=1)
            x = node(
                "BatchNormalization",
                [
                    x,
                    *(
                        const(f"{k}{bn}", arrays[f"{k}{bn}"])
                        for k in ("gamma", "beta", "running_mean", "running_var")
                    ),
                ],
                f"batchnorm{i}",
                epsilon=float(BatchNormalization.EPS if eps is None else eps[bn - 1]),
            )
            if maps:
                back = np.array([-1, *shape], dtype=np.int64)
                x = node("Reshape", [x, const(f"maps_shape{i}", back, exact=True)], f"maps{i}")
        elif kind == "dropout":
            x = node("Mul", [x, const(f"keep{i}", 1.0 - o["ratio"])], f"dropout{i}")
        else:
            op = "Relu" if kind == "relu" else "Sigmoid"
            x = node(op, [x], f"{kind}{i}")
    w += 1
    if maps:
        x = node("Flatten", [x], "flatten_out", axis=1)
    x = node(
        "Gemm",
        [x, const(f"W{w}", arrays[f"W{w}"]), const(f"b{w}", arrays[f"b{w}"])],
        "scores_out" if net.output_dropout else "scores_raw",
    )
    if net.output_dropout:  # the book's DeepConvNet drops output scores too: × (1 − ratio)
        x = node("Mul", [x, const("keep_out", 1.0 - net.output_dropout)], "scores_raw")
    return x
