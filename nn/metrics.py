"""Deprecated: moved to bpnet.nn.evaluate."""

from bpnet.base.compat import moved

moved(__name__, "bpnet.nn.evaluate")
