"""``bpnet plot``: training curves of a run as a PNG; a convolutional network's first filters
before and after training, or the feature maps one image makes through them."""

from __future__ import annotations

from pathlib import Path

import click

from bpnet.base.text import printable
from bpnet.cli.common import (
    data_dir_option,
    debug_option,
    handle_errors,
    image_of_test_split,
)


@click.command(short_help="Loss and accuracy curves of a run (or its filters) as a PNG.")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PNG to write [default: metrics.png, filters.png or feature-maps.png in RUN_DIR].",
)
@click.option(
    "--filters",
    is_flag=True,
    help="Draw the first convolution's filters before and after training instead.",
)
@click.option(
    "--feature-maps",
    is_flag=True,
    help="Draw one image and the maps the first convolution and its pooling make of it.",
)
@click.option(
    "--index",
    type=click.IntRange(min=0),
    default=None,
    help="--feature-maps of this image of the dataset's test split [default: 0].",
)
@click.option(
    "--image",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="--feature-maps of this image file instead (PNG, JPEG, PGM, NPY; prepared as "
    "bpnet predict prepares it).",
)
@click.option("--offline", is_flag=True, help="Never download missing data (--index).")
@data_dir_option
@debug_option
@handle_errors
def plot(run_dir, output, filters, feature_maps, index, image, offline, data_dir):
    """Draw loss and accuracy against epoch from RUN_DIR/metrics.csv.

    Every split with values (train, validation, test) gets a curve. RUN_DIR may also be the
    CSV file itself. Needs matplotlib: pip install 'bpnet[plot]'.

    For a convolutional network (RUN_DIR or a weights file), --filters draws its first
    convolution's filters as trained and as the run first drew them (rebuilt from the config
    and seed the weights file keeps), and --feature-maps draws a test image (--index) or an
    image file (--image) and that convolution's and its pooling's output maps.
    """
    if filters and feature_maps:
        raise click.UsageError("--filters and --feature-maps draw two pictures: give one")
    if (index is not None or image is not None) and not feature_maps:
        raise click.UsageError("--index and --image choose the image --feature-maps draws")
    if index is not None and image is not None:
        raise click.UsageError("--index and --image cannot be combined: give one image")
    if filters or feature_maps:
        draw = _filters if filters else _feature_maps
        out, said = draw(run_dir, output, index, image, offline, data_dir)
        click.echo(f"wrote {printable(out)} ({said})")
        return
    from bpnet.apps.plots import plot_metrics
    from bpnet.training.rundir import unfinished

    csv_path = run_dir / "metrics.csv" if run_dir.is_dir() else run_dir
    if csv_path.name == "metrics.csv" and (error := unfinished(csv_path.parent, csv_path.name)):
        raise error
    out = plot_metrics(csv_path, output or csv_path.parent / "metrics.png")
    click.echo(f"wrote {printable(out)}")


def _filters(run_dir, output, _index, _image, _offline, _data_dir):
    from bpnet.apps.filters import draw_filters
    from bpnet.cli.common import warn
    from bpnet.training.rundir import weights_path

    weights = weights_path(run_dir)
    f = draw_filters(weights, output or weights.parent / "filters.png")
    if f.note:
        warn(f"{f.note}: drew the trained filters only")
    n, side = len(f.after), "x".join(map(str, f.after.shape[1:]))
    return f.path, f"{f.layer}: {n} filters {side}, " + (
        "before and after training" if f.before is not None else "after training"
    )


def _feature_maps(run_dir, output, index, image, offline, data_dir):
    from bpnet.apps.filters import draw_feature_maps, first_convolution
    from bpnet.base.files import same_file
    from bpnet.errors import InputError
    from bpnet.nn.evaluate import check_digit_input, input_scale, top_classes
    from bpnet.training.rundir import weights_path
    from bpnet.training.weights import network_from_weights

    weights = weights_path(run_dir)
    out = output or weights.parent / "feature-maps.png"
    if image is not None and same_file(out, image):
        raise InputError(
            f"-o {printable(out)}: is the image {printable(image)} (the same file), which the "
            f"drawing would replace; draw it into another file"
        )
    name = printable(weights)
    net, meta = network_from_weights(weights)
    first_convolution(net, name)  # before any data is read
    check_digit_input(net, name)
    if image is not None:
        from bpnet.data.images import load_digit

        pixels, title = load_digit(image), f"{printable(image.name)}\n"
    else:
        index, dataset = index or 0, meta["dataset"]
        pixels, label = image_of_test_split(dataset, data_dir, offline, index)
        title = f"{dataset} test image {index}\nlabel {label}, "
    scale = input_scale(meta["normalize"])
    best = top_classes(net, pixels[None], scale, 1)[0][0]
    title += f"predicted {best['label']} ({best['probability']:.1%})"
    fm = draw_feature_maps(net, pixels, scale, out, title, name)
    return fm.path, ", ".join(f"{k}: {len(v)} maps" for k, v in fm.maps.items())
