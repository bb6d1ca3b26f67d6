"""The ``bpnet`` command group."""

from __future__ import annotations

import importlib

import click

from bpnet import __version__
from bpnet.cli.common import _set_debug, interrupted

# name -> "module:command", in the order a user follows; each module is imported only when its
# command runs or shows its help (and each imports no NumPy until its command runs).
COMMANDS = {
    "download": "download:download",
    "train": "train:train",
    "eval": "eval:eval_cmd",
    "gradcheck": "gradcheck:gradcheck",
    "plot": "plot:plot",
    "graph": "graph:graph",
    "predict": "predict:predict",
    "export": "export:export",
    "serve": "serve:serve",
    "sweep": "sweep:sweep",
}


class BpnetGroup(click.Group):
    """Commands loaded lazily from their modules (COMMANDS), in the order of the list.

    click turns Ctrl-C outside a command into "Aborted!" and exit status 1; here it ends as
    inside one: a single line and exit status 130, whether parsing or running."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(f"bpnet.cli.{module}"), attr)

    def make_context(self, *args, **kwargs):
        with interrupted():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with interrupted():
            return super().invoke(ctx)


@click.group(
    cls=BpnetGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", "-V", prog_name="bpnet")
@click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_debug,
    help="Show full tracebacks on errors (also BPNET_DEBUG=1).",
)
def main():
    """Train, check and evaluate MNIST networks with hand-written backpropagation.

    \b
      bpnet download                          fetch and verify MNIST into the data home
      bpnet gradcheck                         backprop against numerical gradients
      bpnet train --config mnist.yaml         train; writes runs/mnist/
      bpnet eval runs/mnist/weights.npz       accuracy, per-class table, confusion matrix
      bpnet plot runs/mnist                   loss and accuracy curves as a PNG
      bpnet graph apples                      a computational graph with its own numbers
      bpnet predict weights.npz digit.png     classify your own digit images
      bpnet export weights.npz -o model.onnx  the network as an ONNX model
      bpnet serve weights.npz                 a page to draw digits on, at 127.0.0.1:8000
      bpnet sweep book-ch6                    hyperparameter search (Optuna) on every core
    """
