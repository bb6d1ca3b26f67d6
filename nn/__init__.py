"""bpnet.nn: layers, networks and gradient checking in NumPy."""
from .gradient import numerical_gradient, numerical_partials
from .layers import (AddLayer, Affine, MulLayer, Relu, Sigmoid, SoftmaxWithLoss,
                     cross_entropy_error, log_softmax, sigmoid, softmax)
from .network import MultiLayerNet, TwoLayerNet

__all__ = [
    "AddLayer", "Affine", "MulLayer", "Relu", "Sigmoid", "SoftmaxWithLoss",
    "MultiLayerNet", "TwoLayerNet", "cross_entropy_error", "log_softmax",
    "numerical_gradient", "numerical_partials", "sigmoid", "softmax",
]
