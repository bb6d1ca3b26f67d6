"""bpnet.nn: layers, networks, gradient checking and MNIST data in NumPy."""
from .data import DatasetSpec, FileSpec, load_dataset
from .download import HttpOptions, download_dataset, ensure_dataset
from .gradient import numerical_gradient, numerical_partials
from .layers import (AddLayer, Affine, BatchNormalization, Dropout, MulLayer, Relu, Sigmoid,
                     SoftmaxWithLoss, cross_entropy_error, log_softmax, sigmoid, softmax)
from .network import MultiLayerNet, TwoLayerNet

__all__ = [
    "AddLayer", "Affine", "BatchNormalization", "Dropout", "MulLayer", "Relu", "Sigmoid", "SoftmaxWithLoss",
    "MultiLayerNet", "TwoLayerNet", "cross_entropy_error", "log_softmax",
    "DatasetSpec", "FileSpec", "HttpOptions", "download_dataset", "ensure_dataset", "load_dataset",
    "numerical_gradient", "numerical_partials", "sigmoid", "softmax",
]
