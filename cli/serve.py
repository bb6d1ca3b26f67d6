"""``bpnet serve``: a local page to draw digits on, classified as you draw."""

from __future__ import annotations

import click

from bpnet.apps.serve import MAX_CONNECTIONS
from bpnet.apps.serve import serve as serve_page
from bpnet.base.text import printable
from bpnet.cli.common import debug_option, handle_errors


@click.command(short_help="A local page to draw digits on, classified as you draw.")
@click.argument("weights", type=click.Path(dir_okay=False))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (the default is this machine only; 0.0.0.0: every "
    "network it is on).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1, 10_000),
    default=MAX_CONNECTIONS,
    show_default=True,
    help="Connections served at once (a thread each); more are answered 503 at once.",
)
@click.option("--quiet", is_flag=True, help="Do not log each request.")
@debug_option
@handle_errors
def serve(weights, host, port, max_connections, quiet):
    """Serve a page to draw digits on, classified by the network in WEIGHTS.npz.

    The page shows the most probable classes as you draw and the 28x28 image the network
    sees (the preprocessing of `bpnet predict`). Scripts can POST a PNG (Content-Type:
    image/png) or JSON {"pixels": 28x28 grey levels} to /predict. Ctrl-C stops it.
    """

    def ready(url):
        click.echo(f"serving {printable(weights)} at {url} (Ctrl-C to stop)", err=True)

    serve_page(weights, host, port, quiet, ready, max_connections)
