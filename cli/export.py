"""``bpnet export``: a weights file as an ONNX model."""

from __future__ import annotations

import json

import click

from bpnet.cli.common import debug_option, handle_errors


@click.command("export", short_help="Write a weights file as an ONNX model.")
@click.argument("weights", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="The .onnx file to write (replaced atomically) [default: beside WEIGHTS, named "
    "after it: runs/mnist/weights.onnx for runs/mnist/weights.npz].",
)
@click.option(
    "--images", is_flag=True, help="Input images (N, 1, 28, 28) instead of rows (N, 784)."
)
@debug_option
@handle_errors
def export(weights, output, images):
    """Write the network in WEIGHTS.npz as a standard ONNX model (needs the onnx package:
    pip install 'bpnet[onnx]'), to -o FILE or else beside the weights (WEIGHTS.onnx).

    The model takes `pixels`, float32 0..255 of shape (N, 784) (images as rows, as bpnet
    reads them; with --images, (N, 1, 28, 28)), and returns `scores` and `probabilities`
    (N, 10); the input scaling is inside it.
    """
    from bpnet.apps.export import default_output, export_onnx
    from bpnet.base.text import printable

    output = default_output(weights) if output is None else output
    model = export_onnx(weights, output, images)
    props = {p.key: p.value for p in model.metadata_props}
    if "layers" in props:
        what = f"{len(json.loads(props['layers']))}-layer convolutional network"
    else:
        sizes = "-".join(map(str, json.loads(props["sizes"])))
        what = f"{sizes} {props['activation']} network"
    click.echo(f"wrote {printable(output)}: {what}, ONNX opset {model.opset_import[0].version}")
