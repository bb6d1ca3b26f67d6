"""bpnet.cli: the click commands. Parsing, validation and printing only."""
