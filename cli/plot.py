"""``bpnet plot``: training curves of a run as a PNG."""

from __future__ import annotations

from pathlib import Path

import click

from bpnet.base.text import printable
from bpnet.cli.common import debug_option, handle_errors


@click.command(short_help="Loss and accuracy curves of a run as a PNG.")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PNG to write [default: RUN_DIR/metrics.png].",
)
@debug_option
@handle_errors
def plot(run_dir, output):
    """Draw loss and accuracy against epoch from RUN_DIR/metrics.csv.

    Every split with values (train, validation, test) gets a curve. RUN_DIR may also be the
    CSV file itself. Needs matplotlib: pip install 'bpnet[plot]'.
    """
    from bpnet.apps.plots import plot_metrics
    from bpnet.training.rundir import unfinished

    csv_path = run_dir / "metrics.csv" if run_dir.is_dir() else run_dir
    if csv_path.name == "metrics.csv" and (error := unfinished(csv_path.parent, csv_path.name)):
        raise error
    out = plot_metrics(csv_path, output or csv_path.parent / "metrics.png")
    click.echo(f"wrote {printable(out)}")
