"""The YAML configs and sweeps shipped with bpnet, and their JSON Schemas; found by name with
``bpnet.training.sources.resolve_config_path``."""
