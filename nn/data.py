"""Deprecated: moved to bpnet.data.idx, bpnet.data.specs, bpnet.data.home."""

from bpnet.base.compat import moved

moved(__name__, "bpnet.data.idx", "bpnet.data.specs", "bpnet.data.home")
