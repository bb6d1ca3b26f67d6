"""A weights file as a standard ONNX model (the optional extra ``bpnet[onnx]``).

The graph takes raw pixels as the training data was read: ``pixels``, float32 0..255 of
shape (N, 784) with N free, or with ``images=True`` (N, 1, 28, 28) (flattened inside), scaled
inside the graph as the weights file says (``meta.normalize``: ×1/255).
Each hidden layer i is Gemm(W_i, b_i) → BatchNormalization (inference: running statistics
and the eps of the network's layer, when ``meta.batchnorm``) → Relu or Sigmoid → Mul by
1 − ratio (Dropout at inference, when ``meta.dropout`` > 0); the last Gemm gives ``scores``
(N, C) and a Softmax ``probabilities`` (N, C), both float32. Arithmetic runs in the weights
file's dtype.
"""

from __future__ import annotations

import json
import math

import numpy as np

from bpnet.base.extras import ExtraMissing, require
from bpnet.base.files import atomic_write
from bpnet.errors import InputError
from bpnet.nn.evaluate import input_scale
from bpnet.nn.layers import BatchNormalization
from bpnet.training.weights import check_meta, network_from_weights

OPSET = 21  # ONNX 1.16's operator set, run by every onnxruntime since 1.18
IR_VERSION = 10


class OnnxSupportMissing(ExtraMissing):
    """The onnx package is needed for export and is not installed (exit status 1)."""


def _onnx():
    return require("onnx", "onnx", "exporting to ONNX", "the onnx package", OnnxSupportMissing)


def class_labels(meta):
    """The class names of a weights file: ``meta.labels`` when present, else 0 … C-1."""
    labels = meta.get("labels")
    if isinstance(labels, list) and len(labels) == meta["sizes"][-1]:
        return [str(c) for c in labels]
    return [str(c) for c in range(meta["sizes"][-1])]


def onnx_model(arrays, meta, version=None, images=False, eps=None):
    """The ONNX ModelProto of a network given its arrays (W1, b1 … Wn, bn and, per hidden
    layer i when ``meta["batchnorm"]``, gamma{i}, beta{i}, running_mean{i}, running_var{i})
    and its ``meta`` (sizes and activation; normalize, dataset, batchnorm and dropout default as
    in a weights file, :class:`~bpnet.training.weights.WeightsMeta`). ``images``:
    the input is (N, 1, S, S) images (S² = the input size) instead of (N, S²) rows.
    ``eps``: batch normalization's eps, one per hidden layer (None: the layer's default)."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    if version is None:
        from bpnet import __version__ as version
    meta = check_meta("meta", meta)
    sizes, depth = meta["sizes"], len(meta["sizes"]) - 1
    side = math.isqrt(sizes[0])
    if images and side * side != sizes[0]:
        raise InputError(
            f"an input of {sizes[0]} values is not a square image: export it as "
            f"rows (N, {sizes[0]})"
        )
    dtype = np.dtype(arrays["W1"].dtype)
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    batchnorm, dropout = meta["batchnorm"], meta["dropout"]
    act = {"relu": "Relu", "sigmoid": "Sigmoid"}[meta["activation"]]
    if eps is None:
        eps = [BatchNormalization.EPS] * (depth - 1)
    inits, nodes = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    x = "pixels"
    if images:
        x = node("Flatten", [x], "rows", axis=1)
    if dtype != np.float32:
        x = node("Cast", [x], "pixels_cast", to=elem)
    scale = input_scale(meta["normalize"])
    if scale != 1:
        x = node("Mul", [x, const("input_scale", scale)], "x0")
    for i in range(1, depth + 1):
        x = node(
            "Gemm",
            [x, const(f"W{i}", arrays[f"W{i}"]), const(f"b{i}", arrays[f"b{i}"])],
            f"affine{i}" if i < depth else "scores_raw",
        )
        if i == depth:
            break
        if batchnorm:
            x = node(
                "BatchNormalization",
                [
                    x,
                    *(
                        const(f"{k}{i}", arrays[f"{k}{i}"])
                        for k in ("gamma", "beta", "running_mean", "running_var")
                    ),
                ],
                f"batchnorm{i}",
                epsilon=float(eps[i - 1]),
            )
        x = node(act, [x], f"{act.lower()}{i}")
        if dropout > 0:
            x = node("Mul", [x, const(f"keep{i}", 1.0 - dropout)], f"dropout{i}")
    probs = node("Softmax", [x], "probs_raw", axis=1)
    if dtype != np.float32:
        x, probs = (node("Cast", [v], f"{v}_f32", to=TensorProto.FLOAT) for v in (x, probs))
    nodes.append(helper.make_node("Identity", [x], ["scores"], name="scores"))
    nodes.append(helper.make_node("Identity", [probs], ["probabilities"], name="probabilities"))
    classes = sizes[-1]
    shape = ["N", 1, side, side] if images else ["N", sizes[0]]
    graph = helper.make_graph(
        nodes,
        "bpnet",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, shape)],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", classes]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes]),
        ],
        inits,
        doc_string=f"pixels: float32 0..255 of shape ({', '.join(map(str, shape))}); scores "
        f"and probabilities: (N, {classes})",
    )
    model = helper.make_model(
        graph,
        producer_name="bpnet",
        producer_version=str(version),
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = IR_VERSION
    model.doc_string = (
        f"bpnet {'-'.join(map(str, sizes))} {meta['activation']} network "
        f"trained on {meta['dataset']}"
    )
    helper.set_model_props(
        model,
        {
            "bpnet_version": str(version),
            "sizes": json.dumps(sizes),
            "activation": meta["activation"],
            "dataset": str(meta["dataset"]),
            "class_labels": json.dumps(class_labels(meta)),
            "normalize": json.dumps(scale != 1),
            "batchnorm": json.dumps(batchnorm),
            "dropout": json.dumps(dropout),
        },
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def export_onnx(weights, out, images=False):
    """Write the network of the weights file ``weights`` to ``out`` as ONNX, atomically;
    the file is read and refused exactly as ``bpnet eval`` reads it. Returns the model."""
    _onnx()  # the install hint before any other complaint
    net, meta = network_from_weights(weights)
    model = onnx_model(
        net.state_arrays(),
        meta,
        images=images,
        eps=[layer.eps for layer in net.batchnorm_layers] or None,
    )
    with atomic_write(out) as fh:
        fh.write(model.SerializeToString())
    return model
