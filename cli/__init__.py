"""bpnet.cli: the click commands. Parsing, validation and printing only."""
import os


def _limit_blas_threads():
    """One BLAS thread unless told otherwise (BPNET_THREADS, or the BLAS's own variables).

    Set before NumPy loads. The products of a 784-50-10 net with batch 100 are too small
    for two threads to pay off reliably: on a shared 2-core machine a second BLAS thread
    that loses its core stalls every product (runs slowed 10x and more), while one thread
    leaves the other core to the trainer's background shuffling and saving.
    """
    threads = os.environ.get("BPNET_THREADS")
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if threads:
            os.environ[var] = threads
        else:
            os.environ.setdefault(var, "1")


_limit_blas_threads()
