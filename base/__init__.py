"""bpnet.base: the domain-free ground floor every wing stands on: durable files, limits on what
an input may claim, one-line text helpers, the safe YAML loader and the validation vocabulary."""
