"""Deprecated: moved to bpnet.data.images."""

from bpnet.base.compat import moved

moved(__name__, "bpnet.data.images")
