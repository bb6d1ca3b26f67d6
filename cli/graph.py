"""``bpnet graph``: computational graphs drawn with the numbers of their own forward and
backward pass (PNG or SVG, and the numbers as JSON beside the picture)."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import click

from bpnet.cli.common import data_dir_option, debug_option, echo_json, handle_errors


def _finite(_ctx, param, value):
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number", param=param)
    return value


def _drawing(subject):
    """Options every drawing takes (-o, --json) and what it does with them: check the output
    name first, draw, then print what was written (or the numbers, with --json)."""

    def decorate(fn):
        @click.option(
            "-o",
            "--output",
            type=click.Path(dir_okay=False, path_type=Path),
            default=Path(f"graph-{subject}.png"),
            show_default=True,
            help="Picture to write, PNG or SVG by its suffix; the numbers it shows go to the "
            "same name with .json.",
        )
        @click.option(
            "--json",
            "as_json",
            is_flag=True,
            help="Print the numbers (what the .json beside the picture holds) instead of a "
            "summary.",
        )
        @debug_option
        @handle_errors
        @functools.wraps(fn)
        def command(output, as_json, **options):
            from bpnet.apps.graph.draw import check_output

            check_output(output)
            summary, numbers, written = fn(output, **options)
            if as_json:
                echo_json(numbers)
                return
            from bpnet.base.text import printable

            click.echo(summary)
            click.echo(f"wrote {printable(written[0])} and {printable(written[1])}")

        return command

    return decorate


class InOrder(click.Group):
    """Subcommands listed in the order they are defined: the lesson's order."""

    def list_commands(self, ctx):
        return list(self.commands)


@click.group(
    cls=InOrder, short_help="Computational graphs drawn with their own numbers (PNG or SVG)."
)
def graph():
    """Draw a computational graph with the numbers of a real forward and backward pass through
    bpnet's layers: each edge's value going forward above it, the derivative coming back below
    it in red. The picture is a PNG or an SVG (by the suffix of -o; an SVG keeps its numbers as
    text), and the numbers it was drawn from are written beside it as JSON.

    \b
      bpnet graph apples                      the lesson's apple, orange and tax graph
      bpnet graph relu --x 1.0,-0.5           one node: relu, sigmoid, affine, softmax-loss
      bpnet graph net WEIGHTS.npz --index 0   a trained network, one MNIST test image

    Needs matplotlib: pip install 'bpnet[plot]'.
    """


def _finite_option(name, default, what):
    """A number option of the apple graph: any finite float."""
    return click.option(
        name, type=float, default=default, show_default=True, callback=_finite, help=what
    )


@graph.command(short_help="The lesson's apple, orange and tax graph.")
@_finite_option("--apple", 100.0, "Price of one apple.")
@_finite_option("--apples", 2.0, "Number of apples.")
@_finite_option("--orange", 150.0, "Price of one orange.")
@_finite_option("--oranges", 3.0, "Number of oranges.")
@_finite_option("--tax", 1.1, "Tax factor.")
@_drawing("apples")
def apples(output, apple, apples, orange, oranges, tax):
    """price = (apple x apples + orange x oranges) x tax, through MulLayer and AddLayer nodes
    forward, then backward from d price / d price = 1."""
    from bpnet.apps.graph.draw import draw, number
    from bpnet.apps.graph.small import apple_graph

    g = apple_graph(apple, apples, orange, oranges, tax)
    e = {edge["name"]: edge for edge in g["edges"]}
    names = ("apple", "apple_num", "orange", "orange_num", "tax")
    summary = f"price {number(e['price']['forward'], 6)}; d price / d " + ", ".join(
        f"{n} {number(e[n]['backward'], 6)}" for n in names
    )
    return summary, g, draw(g, output)


def _array_option(name, default, what):
    return click.option(
        name, default=default, show_default=default is not None, metavar="NUMBERS", help=what
    )


DOUT_HELP = "dL/dy arriving at the output, its shape [default: all ones: L = the sum of y]."


def _elementwise(kind):
    title = {"relu": "ReLU", "sigmoid": "Sigmoid"}[kind]

    def command(output, x, dout):
        from bpnet.apps.graph.draw import draw
        from bpnet.apps.graph.small import elementwise_graph, parse_array

        g = elementwise_graph(
            kind, parse_array(x, "--x"), None if dout is None else parse_array(dout, "--dout")
        )
        return _node_summary(g), g, draw(g, output)

    command.__name__ = kind
    command.__doc__ = (
        f"One {title} node on the numbers of --x: forward through bpnet.nn's own layer, then "
        f"backward from --dout."
    )
    x_help = "Input: numbers by commas, rows by ';' (a vector or a matrix of up to 4 rows of 10)."
    command = _drawing(kind)(command)
    command = _array_option("--dout", None, DOUT_HELP)(command)
    command = _array_option("--x", "1.0,-0.5", x_help)(command)
    return graph.command(kind, short_help=f"One {title} node, forward and backward.")(command)


relu = _elementwise("relu")
sigmoid = _elementwise("sigmoid")


def _node_summary(g):
    from bpnet.apps.graph.draw import value_lines

    parts = []
    for e in g["edges"]:
        if e["backward"] is not None:
            for prefix, key in (("", "forward"), ("d", "backward")):
                rows = "; ".join(" ".join(row.split()) for row in value_lines(e[key]))
                parts.append(f"{prefix}{e['name']} [{rows}]")
    return "  ".join(parts)


@graph.command(short_help="One Affine node, Y = X·W + b, forward and backward.")
@_array_option("--x", None, "X (N, D) [default: drawn with --seed].")
@_array_option("--w", None, "W (D, M) [default: drawn with --seed].")
@_array_option("--b", None, "b (M,) [default: drawn with --seed].")
@_array_option("--dout", None, "dL/dY (N, M) [default: all ones: L = the sum of Y].")
@click.option(
    "--shape",
    default="2,3,2",
    show_default=True,
    metavar="N,D,M",
    help="Sizes of the arrays drawn at random (a given array sets its own).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the arrays not given (uniform in [-1, 1], one decimal).",
)
@_drawing("affine")
def affine(output, x, w, b, dout, shape, seed):
    """One Affine node: Y = X·W + b forward, then dX = dY·Wᵀ, dW = Xᵀ·dY and db = Σ dY back
    from --dout; numbers by commas, rows by ';' (at most 4 rows of 10)."""
    from bpnet.apps.graph.draw import draw
    from bpnet.apps.graph.small import affine_graph, parse_array
    from bpnet.errors import InputError

    try:
        sizes = tuple(int(s) for s in shape.split(","))
    except ValueError:
        sizes = ()
    if len(sizes) != 3 or min(sizes) < 1:
        raise InputError(f"--shape {shape!r}: expected three sizes N,D,M such as 2,3,2")
    arrays = {
        name: None if text is None else parse_array(text, option)
        for name, option, text in (
            ("x", "--x", x),
            ("W", "--w", w),
            ("b", "--b", b),
            ("dout", "--dout", dout),
        )
    }
    g = affine_graph(arrays["x"], arrays["W"], arrays["b"], arrays["dout"], sizes, seed)
    return _node_summary(g), g, draw(g, output)


@graph.command("softmax-loss", short_help="One Softmax-with-Loss node, forward and backward.")
@_array_option("--scores", "0.3,2.9,4.0", "Scores a, one row per example.")
@click.option(
    "--label",
    default="2",
    show_default=True,
    metavar="CLASS[,CLASS...]",
    help="True class of each row of scores.",
)
@_drawing("softmax-loss")
def softmax_loss(output, scores, label):
    """One Softmax-with-Loss node: the scores' softmax y and the mean cross-entropy L against
    the labels forward, then da = (y - t) / N back from dL/dL = 1."""
    from bpnet.apps.graph.draw import draw
    from bpnet.apps.graph.small import softmax_loss_graph

    g = softmax_loss_graph(scores, label)
    return _node_summary(g), g, draw(g, output)


@graph.command(short_help="A trained network's chain of layers, one image forward and back.")
@click.argument("weights", type=click.Path())
@click.option(
    "--index",
    type=click.IntRange(min=0),
    metavar="N",
    default=None,
    help="Trace this image of the dataset's test split.",
)
@click.option(
    "--image",
    type=click.Path(dir_okay=False),
    default=None,
    help="Trace this digit image instead (PNG, JPEG, PGM or NPY, read as bpnet predict reads it).",
)
@click.option(
    "--target",
    type=click.IntRange(min=0),
    metavar="CLASS",
    default=None,
    help="Class the loss is taken against [default: the image's label with --index, "
    "the predicted class with --image].",
)
@click.option("--offline", is_flag=True, help="Never download missing data.")
@data_dir_option
@_drawing("net")
def net(output, weights, index, image, target, offline, data_dir):
    """Trace one image through the network in WEIGHTS.npz (a run directory's weights.npz will
    do) and draw its chain X -> layers -> Softmax-with-Loss <- t: what each node computed above
    it, the gradient of the loss that reached it below it, each edge's shape and gradient norm,
    each parameter's gradient size, and the gradient on the input for the target class."""
    from bpnet.apps.graph.draw_net import draw_net
    from bpnet.apps.graph.trace import network_trace
    from bpnet.base.files import same_file
    from bpnet.base.text import printable
    from bpnet.errors import InputError
    from bpnet.nn.evaluate import input_scale
    from bpnet.training.rundir import weights_path
    from bpnet.training.weights import network_from_weights

    if index is None and image is None:
        raise InputError("expected one of --index N (a test image) or --image FILE")
    if index is not None and image is not None:
        raise InputError("--index and --image: expected one of them, not both")
    weights = weights_path(weights)
    for given in (weights, image):
        for written in (output, output.with_suffix(".json")):
            if given is not None and same_file(written, given):
                raise InputError(
                    f"-o {printable(output)}: would replace the input {printable(given)}; "
                    f"draw into another file"
                )
    network, meta = network_from_weights(weights)
    scale = input_scale(meta["normalize"])
    if image is not None:
        from bpnet.data.images import load_digit
        from bpnet.nn.evaluate import check_digit_input

        check_digit_input(network, printable(weights))
        x, label, source = load_digit(image) * scale, None, f"image {printable(image)}"
    else:
        from bpnet.cli.common import image_of_test_split

        dataset = meta["dataset"]
        pixels, label = image_of_test_split(dataset, data_dir, offline, index)  # notes on stderr
        x = pixels * scale
        source = f"{dataset} test image {index} (label {label})"
        target = label if target is None else target
    trace = network_trace(network, x, target)
    about = {
        "weights": str(weights),
        "network": network.describe(),
        "image": source,
        "label": label,
        "title": f"{network.describe()}: {source}",
    }
    written = draw_net(trace, output, about)
    summary = (
        f"{source}: predicted {trace['predicted']} "
        f"(p = {trace['probabilities'][trace['predicted']]:.4g}), target {trace['target']}, "
        f"loss {trace['loss']:.4g}, |dL/dX| {trace['input']['grad_norm']:.4g}"
    )
    return summary, {**about, **trace}, written
