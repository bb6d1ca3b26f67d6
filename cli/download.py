"""``bpnet download``: fetch and verify a dataset's IDX files."""

from __future__ import annotations

import click

from bpnet.base.text import printable
from bpnet.cli.common import (
    data_dir_option,
    debug_option,
    handle_errors,
    progress_bar_factory,
    report,
)
from bpnet.data.mirrors import HttpOptions
from bpnet.data.specs import DATASETS

DEFAULTS = HttpOptions()


@click.command(short_help="Fetch and verify a dataset into the data dir.")
@click.option(
    "--dataset",
    default="mnist",
    show_default=True,
    metavar="NAME",
    help=f"Dataset to fetch: {' or '.join(DATASETS)}.",
)
@data_dir_option
@click.option(
    "--mirror",
    "mirrors",
    multiple=True,
    metavar="URL|FOLDER",
    help="Base URL (http://, https:// or file://) or local folder tried before the "
    "built-in mirrors; repeatable. BPNET_MIRROR adds more (separated by spaces or "
    "commas).",
)
@click.option(
    "--mirrors-only",
    is_flag=True,
    help="Try only --mirror and BPNET_MIRROR URLs, not the built-in mirrors.",
)
@click.option("--force", is_flag=True, help="Fetch every file again, even present verified ones.")
@click.option("--quiet", "-q", is_flag=True, help="Print errors only: no progress bars or summary.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULTS.read_timeout,
    show_default=True,
    help=f"Seconds without data, or under --min-rate on average, before a request is given "
    f"up (connecting: at most {DEFAULTS.connect_timeout:g}).",
)
@click.option(
    "--tries",
    type=click.IntRange(min=1),
    default=DEFAULTS.tries,
    show_default=True,
    help="Requests per file and HTTP mirror before the next mirror is tried.",
)
@click.option(
    "--min-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULTS.min_rate / 1000,
    show_default=True,
    metavar="KB/S",
    help="Slowest transfer accepted: a mirror slower than this over the last --timeout "
    "seconds is given up and the next one tried (as curl's --speed-limit and --speed-time).",
)
@debug_option
@handle_errors
def download(dataset, data_dir, mirrors, mirrors_only, force, quiet, timeout, tries, min_rate):
    """Fetch and verify a dataset's four IDX files into DATA_DIR/DATASET/.

    Each file must decompress to its pinned SHA-256 and IDX header, and to no more bytes than
    that header allows; a file that does not is discarded and the next mirror tried. Present
    verified files are not fetched again. Two runs into one folder take turns. Exit status 1
    when some file verifies on no mirror, 2 for bad options.
    """
    from bpnet.data.download import download_dataset
    from bpnet.data.home import dataset_dir

    folder = dataset_dir(data_dir, dataset)
    bar = progress_bar_factory(quiet)
    options = HttpOptions(
        connect_timeout=min(DEFAULTS.connect_timeout, timeout),
        read_timeout=timeout,
        tries=tries,
        min_rate=min_rate * 1000,
    )
    results = download_dataset(
        dataset,
        data_dir,
        mirrors,
        force,
        progress=bar,
        report=None if quiet else report,
        options=options,
        builtin_mirrors=not mirrors_only,
    )
    if not quiet:
        width = max(len(r.name) for r in results)
        for r in results:
            click.echo(
                f"{r.name:<{width}}  " + (f"fetched from {r.source}" if r.source else "present")
            )
        fetched = sum(r.source is not None for r in results)
        where = printable(folder)
        click.echo(f"{dataset}: {len(results)} files verified in {where}, {fetched} fetched")
