"""The book's ``common.multi_layer_net``: ``MultiLayerNet`` with its signature and defaults."""

import numpy as np

from bpnet.book.gradient import STEP
from bpnet.book.layers import Relu, Sigmoid
from bpnet.nn.network import MultiLayerNet as _MultiLayerNet

INITS = {"relu": "he", "he": "he", "sigmoid": "xavier", "xavier": "xavier"}


class MultiLayerNet(_MultiLayerNet):
    """Affine → activation → … → Affine → SoftmaxWithLoss in float64.

    weight_init_std: a number, or 'relu'/'he' (He, √(2/fan_in), the default) or
    'sigmoid'/'xavier' (Xavier, √(1/fan_in)); weights drawn from NumPy's global generator.
    weight_decay_lambda: L2 strength λ (½·λ·ΣW² in the loss). numerical_gradient uses the
    book's step 1e-4. ``predict``/``loss`` run in inference mode unless ``train_flg=True``.
    ``layers`` is keyed as the book's: Affine1, Activation_function1, …, Affine{n}.
    """

    activations = {"relu": Relu, "sigmoid": Sigmoid}  # the book's Relu, with its mask
    activation_key = "Activation_function"

    def __init__(
        self,
        input_size,
        hidden_size_list,
        output_size,
        activation="relu",
        weight_init_std="relu",
        weight_decay_lambda=0,
        **net,
    ):
        init = INITS.get(str(weight_init_std).lower(), weight_init_std)
        super().__init__(
            input_size,
            hidden_size_list,
            output_size,
            activation,
            init,
            weight_decay_lambda,
            np.float64,
            rng=np.random,
            **net,
        )
        self.input_size, self.output_size = input_size, output_size
        self.hidden_size_list, self.hidden_layer_num = list(hidden_size_list), len(hidden_size_list)
        self.weight_decay_lambda = weight_decay_lambda
        self.training = False

    def numerical_gradient(self, x, t):
        return super().numerical_gradient(x, t, h=STEP)
