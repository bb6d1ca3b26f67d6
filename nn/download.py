"""Deprecated: moved to bpnet.data.download."""

from bpnet.base.compat import moved

moved(__name__, "bpnet.data.download", "bpnet.data.mirrors")
