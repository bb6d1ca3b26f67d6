"""bpnet.apps.graph: the computational graph of the lesson with its own numbers. ``trace``
runs one image forward and backward through a real network and gives what every node computed
and the gradient that reached it (the numbers ``bpnet serve``'s page and the drawings show)."""
