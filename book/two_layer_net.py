"""Chapter 5's ``two_layer_net``: ``TwoLayerNet(input_size, hidden_size, output_size,
weight_init_std=0.01)``, weights from NumPy's global generator, numerical gradient step 1e-4."""
from bpnet.book.multi_layer_net import MultiLayerNet


class TwoLayerNet(MultiLayerNet):
    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01):
        super().__init__(input_size, [hidden_size], output_size, weight_init_std=weight_init_std)
