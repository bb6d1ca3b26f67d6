"""bpnet.nn: the book's maths in NumPy: layers, networks, optimizers, numerical gradients, the
gradient check, evaluation on arrays, and the thread policy for matrix products.

    from bpnet.nn import MulLayer, AddLayer, TwoLayerNet

Names are loaded from their modules on first use, so ``import bpnet.nn.defaults`` (what the
command line's help shows) loads no NumPy.
"""

from bpnet.base.compat import exports, moved_names

_EXPORTS = {
    **dict.fromkeys(
        [
            "AddLayer",
            "Affine",
            "BatchNormalization",
            "Dropout",
            "MulLayer",
            "Relu",
            "Sigmoid",
            "SoftmaxWithLoss",
            "cross_entropy_error",
            "log_softmax",
            "sigmoid",
            "softmax",
        ],
        "bpnet.nn.layers",
    ),
    **dict.fromkeys(["MultiLayerNet", "TwoLayerNet"], "bpnet.nn.network"),
    **dict.fromkeys(["numerical_gradient", "numerical_partials"], "bpnet.nn.gradient"),
}
# Names that lived here before the datasets got a wing of their own (bpnet.data).
_MOVED = {
    "DatasetSpec": "bpnet.data.specs",
    "FileSpec": "bpnet.data.specs",
    "load_dataset": "bpnet.data.idx",
    "HttpOptions": "bpnet.data.mirrors",
    "download_dataset": "bpnet.data.download",
    "ensure_dataset": "bpnet.data.download",
}
_exported, __dir__ = exports(__name__, _EXPORTS)
_moved = moved_names(__name__, _MOVED)
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    return (_exported if name in _EXPORTS else _moved)(name)
