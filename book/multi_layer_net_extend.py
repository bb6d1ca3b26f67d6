"""The book's ``common.multi_layer_net_extend``: MultiLayerNet with dropout and batch norm."""

from bpnet.book.multi_layer_net import MultiLayerNet


class MultiLayerNetExtend(MultiLayerNet):
    """Affine → [BatchNormalization] → activation → [Dropout] per hidden layer.

    use_dropout / dropout_ration (the book's spelling): dropout in every hidden layer, masks
    from NumPy's global generator; use_batchnorm: gamma1, beta1 … in ``params``.
    ``gradient`` and ``numerical_gradient`` use the training mode (the latter with the
    dropout masks held fixed, so it is a gradient of one function). ``layers`` is keyed as
    the book's: Affine1, [BatchNorm1], Activation_function1, [Dropout1], Affine2, ….
    """

    def __init__(
        self,
        input_size,
        hidden_size_list,
        output_size,
        activation="relu",
        weight_init_std="relu",
        weight_decay_lambda=0,
        use_dropout=False,
        dropout_ration=0.5,
        use_batchnorm=False,
    ):
        super().__init__(
            input_size,
            hidden_size_list,
            output_size,
            activation,
            weight_init_std,
            weight_decay_lambda,
            batchnorm=use_batchnorm,
            dropout=dropout_ration if use_dropout else 0.0,
        )
        self.use_dropout, self.use_batchnorm = use_dropout, use_batchnorm
