"""Chapter 5's ``two_layer_net``: ``TwoLayerNet(input_size, hidden_size, output_size,
weight_init_std=0.01)``, weights from NumPy's global generator, numerical gradient step 1e-4;
``layers`` Affine1, Relu1, Affine2 and ``lastLayer``, as chapter 5 names them."""

from bpnet.book.multi_layer_net import MultiLayerNet


class TwoLayerNet(MultiLayerNet):
    activation_key = None  # Relu1, not the multi-layer nets' Activation_function1

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01):
        super().__init__(input_size, [hidden_size], output_size, weight_init_std=weight_init_std)
