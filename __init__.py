"""bpnet: neural networks on MNIST with backpropagation written by hand in NumPy."""


def __getattr__(name):
    """``bpnet.__version__``, looked up on first use, so that ``import bpnet`` loads nothing
    (the ``bpnet`` command catches Ctrl-C only once this package is imported)."""
    if name != "__version__":
        raise AttributeError(f"module 'bpnet' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("bpnet")
    except PackageNotFoundError:  # running from a source tree that is not installed
        value = "0+unknown"
    globals()["__version__"] = value
    return value
