"""Deprecated: moved to bpnet.training.config, sources and memory, bpnet.base.yamlsafe and
bpnet.errors."""

from bpnet.base.compat import moved

moved(
    __name__,
    "bpnet.training.config",
    "bpnet.training.sources",
    "bpnet.training.memory",
    "bpnet.base.yamlsafe",
    "bpnet.errors",
)
