"""Deprecated: moved to bpnet.apps.serve."""

from bpnet.base.compat import moved

moved(__name__, "bpnet.apps.serve")
