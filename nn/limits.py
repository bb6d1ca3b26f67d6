"""Deprecated: moved to bpnet.base.limits, bpnet.base.text."""

from bpnet.base.compat import moved

moved(__name__, "bpnet.base.limits", "bpnet.base.text")
