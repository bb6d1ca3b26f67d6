"""Deprecated: moved to bpnet.sweep.spec, study, workers and results."""

from bpnet.base.compat import moved

moved(
    __name__, "bpnet.sweep.spec", "bpnet.sweep.study", "bpnet.sweep.workers", "bpnet.sweep.results"
)
