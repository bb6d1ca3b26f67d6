"""Deprecated: moved to bpnet.training.trainer, batches, checkpoint, rundir and metrics."""

from bpnet.base.compat import moved

moved(
    __name__,
    "bpnet.training.trainer",
    "bpnet.training.batches",
    "bpnet.training.checkpoint",
    "bpnet.training.rundir",
    "bpnet.training.metrics",
)
