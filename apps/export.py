"""A weights file as a standard ONNX model (the optional extra ``bpnet[onnx]``).

The graph takes raw pixels as the training data was read: ``pixels``, float32 0..255 of
shape (N, 784) with N free, or with ``images=True`` (N, 1, 28, 28) (flattened inside), scaled
inside the graph as the weights file says (``meta.normalize``: ×1/255).
Each hidden layer i is Gemm(W_i, b_i) → BatchNormalization (inference: running statistics
and the eps of the network's layer, when ``meta.batchnorm``) → Relu or Sigmoid → Mul by
1 − ratio (Dropout at inference, when ``meta.dropout`` > 0); the last Gemm gives ``scores``
(N, C) and a Softmax ``probabilities`` (N, C), both float32. Arithmetic runs in the weights
file's dtype, except a convolutional network's (``meta.layers``, see :mod:`.onnx_layers`),
which runs in float32: onnxruntime's CPU provider has no float64 convolution.

A large network is exported without its model ever being held whole: the model is built and
checked (``onnx.checker``, full check) with references in place of its weight tensors, then
written piece by piece, each tensor's bytes straight from the network's arrays, so an export
costs about the memory of the weights themselves. The file is byte for byte what
``onnx_model(...).SerializeToString()`` gives.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from bpnet.base.extras import ExtraMissing, require
from bpnet.base.files import atomic_write, replaceable, same_file
from bpnet.base.text import human, printable
from bpnet.errors import BpnetError, InputError
from bpnet.nn.evaluate import input_scale
from bpnet.nn.layers import BatchNormalization
from bpnet.training.weights import check_meta, network_from_weights

OPSET = 21  # ONNX 1.16's operator set, run by every onnxruntime since 1.18
IR_VERSION = 10
MAX_MODEL_BYTES = 2**31 - 1  # protobuf's limit: no ONNX reader parses a larger single file
CHUNK = 16 * 1024**2  # bytes of a tensor written at a time


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


def model_outline(arrays, meta, version=None, images=False, eps=None):
    """(model, tensors): the ModelProto of :func:`onnx_model` with the initializers named in
    ``tensors`` ({name: array}) holding no data, only their name, type and shape; whatever
    the network's size, the model is small enough to check and copy."""
    _onnx()
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
    if meta.get("layers") is not None:  # onnxruntime's CPU provider has no float64 Conv
        dtype = np.dtype(np.float32)
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    batchnorm, dropout = meta["batchnorm"], meta["dropout"]
    act = {"relu": "Relu", "sigmoid": "Sigmoid"}[meta["activation"]]
    if eps is None and meta.get("layers") is None:
        eps = [BatchNormalization.EPS] * (depth - 1)
    inits, nodes, tensors = [], [], {}

    def const(name, value, exact=False):
        if exact:  # an integer operand (shapes, pads): kept as it is
            inits.append(numpy_helper.from_array(np.asarray(value), name))
            return name
        value = np.asarray(value, dtype=dtype)
        if value.ndim:  # a weight tensor: its bytes come from the array when written
            tensors[name] = value
            inits.append(TensorProto(name=name, data_type=elem, dims=value.shape))
        else:
            inits.append(numpy_helper.from_array(value, name))
        return name

    def node(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    x = "pixels"
    conv = meta.get("layers") is not None
    if images and not conv:
        x = node("Flatten", [x], "rows", axis=1)
    elif conv and not images:
        maps = np.array([-1, *meta["input_shape"]], dtype=np.int64)
        x = node("Reshape", [x, const("input_maps", maps, exact=True)], "maps")
    if dtype != np.float32:
        x = node("Cast", [x], "pixels_cast", to=elem)
    scale = input_scale(meta["normalize"])
    if scale != 1:
        x = node("Mul", [x, const("input_scale", scale)], "x0")
    for i in range(1, 0 if conv else depth + 1):
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
    if conv:
        from bpnet.apps.onnx_layers import layer_nodes

        x = layer_nodes(node, const, x, meta, arrays, eps)
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
    what = (
        f"{len(meta['layers'])}-layer convolutional"
        if conv
        else f"{'-'.join(map(str, sizes))} {meta['activation']}"
    )
    model.doc_string = f"bpnet {what} network trained on {meta['dataset']}"
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
            **({"layers": json.dumps(meta["layers"])} if conv else {}),
        },
    )
    return model, tensors


def onnx_model(arrays, meta, version=None, images=False, eps=None):
    """The ONNX ModelProto of a network given its arrays (W1, b1 … Wn, bn and, per hidden
    layer i when ``meta["batchnorm"]``, gamma{i}, beta{i}, running_mean{i}, running_var{i})
    and its ``meta`` (sizes and activation; normalize, dataset, batchnorm and dropout default as
    in a weights file, :class:`~bpnet.training.weights.WeightsMeta`). ``images``:
    the input is (N, 1, S, S) images (S² = the input size) instead of (N, S²) rows.
    ``eps``: batch normalization's eps, one per hidden layer (None: the layer's default).

    The model holds a copy of every array (and checking it makes more): :func:`export_onnx`
    writes the same file without building it."""
    onnx = _onnx()
    model, tensors = model_outline(arrays, meta, version, images, eps)
    for tensor in model.graph.initializer:
        if tensor.name in tensors:
            tensor.raw_data = _little_endian(tensors[tensor.name]).tobytes()
    onnx.checker.check_model(model, full_check=True)
    return model


def check_outline(model):
    """``onnx.checker.check_model(..., full_check=True)`` of a model from :func:`model_outline`:
    its data-less initializers are checked as external data (an empty file in a temporary
    folder stands for it), everything else as it is: graph, operators, attributes, types, and
    every shape through shape inference. Only the tensors' bytes are not there to check, and
    :func:`write_model` writes exactly as many as each tensor's shape and type need."""
    onnx = _onnx()
    from onnx import TensorProto

    probe = type(model)()
    probe.CopyFrom(model)
    for tensor in probe.graph.initializer:
        if not tensor.HasField("raw_data"):
            tensor.data_location = TensorProto.EXTERNAL
            entry = tensor.external_data.add()
            entry.key, entry.value = "location", "tensors.bin"
    try:
        with tempfile.TemporaryDirectory(prefix="bpnet-onnx-") as folder:
            open(os.path.join(folder, "tensors.bin"), "wb").close()
            path = os.path.join(folder, "model.onnx")
            with open(path, "wb") as fh:
                fh.write(probe.SerializeToString())
            onnx.checker.check_model(path, full_check=True)
    except OSError as e:
        raise BpnetError(
            f"cannot check the model in a temporary folder ({e.strerror or e}); point TMPDIR "
            f"at a writable folder"
        ) from None


def _little_endian(a):
    """``a`` C-contiguous in little-endian byte order, as ONNX stores tensors (``a`` itself
    when it already is)."""
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))


def _varint(n):
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _key(number, size):
    """The bytes that open a length-delimited protobuf field ``number`` of ``size`` bytes."""
    return _varint(number << 3 | 2) + _varint(size)


def _around(message, number):
    """(the fields of ``message`` numbered below ``number``, those above), serialized: what
    ``SerializeToString`` writes before and after field ``number``."""
    before, after = type(message)(), type(message)()
    before.CopyFrom(message)
    after.CopyFrom(message)
    for field, _ in message.ListFields():
        if field.number >= number:
            before.ClearField(field.name)
        if field.number <= number:
            after.ClearField(field.name)
    return before.SerializeToString(), after.SerializeToString()


def write_model(fh, model, tensors):
    """Write a model of :func:`model_outline` to the binary file ``fh``, each data-less
    initializer holding the bytes of its array in ``tensors`` as ``raw_data``: the bytes of
    the whole model's ``SerializeToString()``, each array written from its own memory, a piece
    at a time. A model over protobuf's 2 GB limit is an InputError before anything is
    written. Returns the number of bytes written."""
    from onnx import GraphProto, ModelProto, TensorProto

    inits = []  # (the bytes before the data, the array or None, the bytes after)
    for tensor in model.graph.initializer:
        if tensor.name in tensors:
            a = _little_endian(tensors[tensor.name])
            head, tail = _around(tensor, TensorProto.RAW_DATA_FIELD_NUMBER)
            head += _key(TensorProto.RAW_DATA_FIELD_NUMBER, a.nbytes)
        else:
            a, head, tail = None, tensor.SerializeToString(), b""
        size = len(head) + (0 if a is None else a.nbytes) + len(tail)
        inits.append((_key(GraphProto.INITIALIZER_FIELD_NUMBER, size) + head, a, tail))
    graph_head, graph_tail = _around(model.graph, GraphProto.INITIALIZER_FIELD_NUMBER)
    graph_size = len(graph_head) + len(graph_tail)
    graph_size += sum(len(h) + len(t) + (0 if a is None else a.nbytes) for h, a, t in inits)
    model_head, model_tail = _around(model, ModelProto.GRAPH_FIELD_NUMBER)
    model_head += _key(ModelProto.GRAPH_FIELD_NUMBER, graph_size)
    total = len(model_head) + graph_size + len(model_tail)
    if total > MAX_MODEL_BYTES:
        raise InputError(
            f"the model would be {human(total)}, more than the 2 GB a single ONNX file can "
            f"hold (protobuf's limit)"
        )
    fh.write(model_head + graph_head)
    for head, a, tail in inits:
        fh.write(head)
        if a is not None:
            data = a.reshape(-1).view(np.uint8)
            for i in range(0, data.size, CHUNK):
                fh.write(data[i : i + CHUNK])
        fh.write(tail)
    fh.write(graph_tail + model_tail)
    return total


def default_output(weights):
    """Where ``bpnet export WEIGHTS`` writes without ``-o``: beside the weights and named
    after them, ``runs/mnist/weights.npz`` -> ``runs/mnist/weights.onnx``."""
    weights = Path(weights)
    if weights.suffix.lower() == ".npz":
        return weights.with_suffix(".onnx")
    return weights.with_name(weights.name + ".onnx")


def export_onnx(weights, out=None, images=False):
    """Write the network of the weights file ``weights`` to ``out`` (None: beside the weights,
    :func:`default_output`) as ONNX, atomically; the file is read and refused exactly as
    ``bpnet eval`` reads it. ``out`` may be neither the weights file (by any name or link) nor
    anything but a regular file. Returns the model as :func:`model_outline` gives it: the
    tensors' data is in the file (``onnx.load(out)`` reads the whole model)."""
    _onnx()  # the install hint before any other complaint
    out = Path(default_output(weights) if out is None else out)
    if same_file(out, weights):
        what = (
            "itself"
            if os.path.abspath(out) == os.path.abspath(weights)
            else f"{printable(weights)} (the same file by a link or another name)"
        )
        raise InputError(
            f"{printable(out)}: is the weights file {what}, which the model would replace; "
            f"write the model to another file"
        )
    replaceable(out)
    if not out.parent.is_dir():
        raise InputError(f"{printable(out)}: folder {printable(out.parent)} does not exist")
    net, meta = network_from_weights(weights)
    model, tensors = model_outline(
        net.state_arrays(),
        meta,
        images=images,
        eps=[layer.eps for layer in net.batchnorm_layers] or None,
    )
    check_outline(model)
    try:
        with atomic_write(out) as fh:
            write_model(fh, model, tensors)
    except OSError as e:
        raise BpnetError(f"{printable(out)}: cannot write the model ({e.strerror or e})") from None
    return model
