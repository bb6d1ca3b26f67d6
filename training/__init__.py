"""bpnet.training: from a config to a run directory: the config's vocabulary and sources
(config), the memory a config needs (memory), the batches (batches), the loop (trainer), the
run directory's policy (rundir) and the weights and checkpoint files (weights)."""
