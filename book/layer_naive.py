"""Chapter 5's ``layer_naive``: the multiply and add nodes."""

from bpnet.nn.layers import AddLayer, MulLayer  # noqa: F401
