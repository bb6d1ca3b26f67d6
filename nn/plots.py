"""Deprecated: moved to bpnet.apps.plots."""

from bpnet.base.compat import moved

moved(__name__, "bpnet.apps.plots")
