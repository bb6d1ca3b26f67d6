"""The YAML configs shipped with bpnet, found by name with ``bpnet.nn.config.resolve_config_path``."""
