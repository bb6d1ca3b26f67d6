"""Deprecated: moved to bpnet.training.weights, bpnet.base.files."""

from bpnet.base.compat import moved

moved(__name__, "bpnet.training.weights", "bpnet.base.files")
