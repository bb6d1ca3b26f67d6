"""Deprecated: moved to bpnet.data.augment."""

from bpnet.base.compat import moved

moved(__name__, "bpnet.data.augment")
