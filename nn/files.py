"""Deprecated: moved to bpnet.base.files, bpnet.base.folders."""

from bpnet.base.compat import moved

moved(__name__, "bpnet.base.files", "bpnet.base.folders")
