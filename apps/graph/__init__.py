"""bpnet.apps.graph: computational graphs drawn with the numbers of a real forward and backward pass."""
