"""bpnet.apps.graph: the lesson's computational graphs with their own numbers. ``trace`` runs
one image forward and backward through a real network and gives what every node computed and
the gradient that reached it (the numbers ``bpnet serve``'s page shows and ``bpnet graph net``
draws); ``small`` computes the lesson's small graphs, and the ``draw`` modules draw them."""
