"""bpnet.apps: what a trained network becomes: pictures (plots), an ONNX model (export) and a
page to draw digits on (serve)."""

from bpnet.base.compat import exports

__getattr__, __dir__ = exports(
    __name__,
    {
        "plot_metrics": "bpnet.apps.plots",
        "error_grid": "bpnet.apps.plots",
        "digit_grid": "bpnet.apps.plots",
        "export_onnx": "bpnet.apps.export",
        "serve": "bpnet.apps.serve",
        "make_server": "bpnet.apps.serve",
    },
)
__all__ = ["digit_grid", "error_grid", "export_onnx", "make_server", "plot_metrics", "serve"]
