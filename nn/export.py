"""Deprecated: moved to bpnet.apps.export."""

from bpnet.base.compat import moved

moved(__name__, "bpnet.apps.export")
