"""Deprecated: moved to bpnet.errors."""

from bpnet.base.compat import moved

moved(__name__, "bpnet.errors")
