"""Deprecated: moved to bpnet.training.trainer, bpnet.training.batches."""
from bpnet.base.compat import moved

moved(__name__, "bpnet.training.trainer", "bpnet.training.batches", "bpnet.training.checkpoint")
