"""bpnet.nn: the book's maths in NumPy: layers, networks, optimizers, numerical gradients, the
gradient check, evaluation on arrays, and the thread policy for matrix products."""
from bpnet.base.compat import moved_names
from bpnet.nn.gradient import numerical_gradient, numerical_partials
from bpnet.nn.layers import (AddLayer, Affine, BatchNormalization, Dropout, MulLayer, Relu,
                             Sigmoid, SoftmaxWithLoss, cross_entropy_error, log_softmax, sigmoid,
                             softmax)
from bpnet.nn.network import MultiLayerNet, TwoLayerNet

__all__ = [
    "AddLayer", "Affine", "BatchNormalization", "Dropout", "MulLayer", "Relu", "Sigmoid",
    "SoftmaxWithLoss", "MultiLayerNet", "TwoLayerNet", "cross_entropy_error", "log_softmax",
    "numerical_gradient", "numerical_partials", "sigmoid", "softmax",
]

# Names that lived here before the datasets got a wing of their own (bpnet.data).
__getattr__ = moved_names(__name__, {
    "DatasetSpec": "bpnet.data.specs", "FileSpec": "bpnet.data.specs",
    "load_dataset": "bpnet.data.idx", "HttpOptions": "bpnet.data.download",
    "download_dataset": "bpnet.data.download", "ensure_dataset": "bpnet.data.download",
})
