"""bpnet.training: from a config to a run directory: the config's models (config) and
sources (sources), the memory a config needs (memory), the batches (batches), the loop
(trainer), its checkpoints (checkpoint), the run directory's policy (rundir), the weights files
(weights) and the gradient check of a config's model (check).

    from bpnet.training import Trainer, load_config, load_data
"""

from bpnet.base.compat import exports

__getattr__, __dir__ = exports(
    __name__,
    {
        "Config": "bpnet.training.config",
        "FIELDS": "bpnet.training.config",
        "defaults": "bpnet.training.config",
        "dump_config": "bpnet.training.config",
        "network_kwargs": "bpnet.training.config",
        "load_config": "bpnet.training.sources",
        "list_configs": "bpnet.training.sources",
        "load_data": "bpnet.training.batches",
        "Trainer": "bpnet.training.trainer",
        "RunExists": "bpnet.training.rundir",
        "Progress": "bpnet.training.trainer",
        "StopFlag": "bpnet.training.trainer",
        "load_weights": "bpnet.training.weights",
        "save_weights": "bpnet.training.weights",
        "network_from_weights": "bpnet.training.weights",
    },
)
__all__ = [
    "Config",
    "FIELDS",
    "Progress",
    "RunExists",
    "StopFlag",
    "Trainer",
    "defaults",
    "dump_config",
    "list_configs",
    "load_config",
    "load_data",
    "load_weights",
    "network_from_weights",
    "network_kwargs",
    "save_weights",
]
