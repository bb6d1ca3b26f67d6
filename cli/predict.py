"""``bpnet predict``: classify digit images with a trained network."""

from __future__ import annotations

from pathlib import Path

import click

from bpnet.cli.common import debug_option, echo_json, handle_errors


def _caption(result):
    """Two short lines under a drawn input: its file name and its top class."""
    from bpnet.base.text import printable

    name, best = printable(Path(result["file"]).name), result["top"][0]
    name = name if len(name) <= 16 else name[:15] + "…"
    return f"{name}\n{best['label']} ({best['probability']:.1%})"


@click.command(short_help="Classify digit images (PNG, JPEG, PGM, NPY).")
@click.argument("weights", type=click.Path(dir_okay=False))
@click.argument(
    "images", nargs=-1, required=True, metavar="IMAGE...", type=click.Path(dir_okay=False)
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="How many of the most probable classes to show per image.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON list of {file, top: [{label, probability}, ...]}.",
)
@click.option(
    "--grid",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also draw the 28x28 inputs the network saw, each titled with its file and "
    "top class, into this PNG (needs matplotlib).",
)
@debug_option
@handle_errors
def predict(weights, images, top, as_json, grid):
    """Classify each IMAGE (PNG, JPEG, PGM or NPY) with the network in WEIGHTS.npz.

    Each image is made to look like MNIST: grey levels, inverted when its border is light,
    cropped to the digit, scaled into a 20x20 box, centred by centre of mass in 28x28, then
    scaled like the training data. Every image is read before any is classified: the first
    bad one stops the command (exit status 2). PNG and JPEG need Pillow:
    pip install 'bpnet[image]'.

    File names are printed with control characters (newlines, ESC, ...) escaped, so each
    image keeps one line; --json gives them as they are.
    """
    import numpy as np

    from bpnet.apps.plots import digit_grid
    from bpnet.base.files import same_file
    from bpnet.base.text import display_width, printable
    from bpnet.data.images import load_digit
    from bpnet.errors import InputError
    from bpnet.nn.evaluate import check_digit_input, input_scale, top_classes
    from bpnet.training.weights import network_from_weights

    for given in (weights, *images) if grid else ():
        if same_file(grid, given):
            raise InputError(
                f"--grid {printable(grid)}: is the input {printable(given)} (the same file), "
                f"which the drawing would replace; draw it into another file"
            )
    net, meta = network_from_weights(weights)
    check_digit_input(net, printable(weights))
    digits = np.stack([load_digit(path) for path in images])
    ranked = top_classes(net, digits, input_scale(meta["normalize"]), top)
    results = [{"file": path, "top": best} for path, best in zip(images, ranked)]
    if grid:
        digit_grid(digits, [_caption(r) for r in results], grid)
    if as_json:
        echo_json(results)
        return
    names = [printable(path) for path in images]  # one line each, whatever a name holds
    width = max(map(display_width, names))
    for name, r in zip(names, results):
        ranks = "   ".join(f"{t['label']} {100 * t['probability']:6.2f}%" for t in r["top"])
        click.echo(f"{name}{' ' * (width - display_width(name))}  {ranks}")
