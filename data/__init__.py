"""bpnet.data: the datasets: what each one is (specs), where it lives (home), its IDX files
read, verified and cached (idx), fetched from mirrors (download), distorted for training
(augment), and digits of the user's own read as MNIST-style inputs (images)."""
