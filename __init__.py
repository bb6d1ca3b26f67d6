"""bpnet: neural networks on MNIST with backpropagation written by hand in NumPy."""
try:
    from importlib.metadata import PackageNotFoundError, version as _version
    __version__ = _version("bpnet")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
