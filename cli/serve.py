"""``bpnet serve``: a local page to draw digits on, classified as you draw."""

from __future__ import annotations

import click

from bpnet.apps.serve import MAX_CONNECTIONS
from bpnet.base.text import printable
from bpnet.cli.common import debug_option, handle_errors, warn


def memory_size(ctx, param, value):
    """``--decode-memory`` in bytes: ``512M``, ``2G`` or a plain number."""
    from bpnet.base.limits import parse_size

    try:
        size = parse_size(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected a size such as 512M or 2G") from None
    if size < 1024**2:
        raise click.BadParameter(f"{value!r}: expected at least 1M")
    return size


@click.command(short_help="A local page to draw digits on, classified as you draw.")
@click.argument("weights", type=click.Path(dir_okay=False))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on, IPv4 or IPv6. The default is this machine only; 0.0.0.0 "
    "(or ::) is every network it is on, with a warning.",
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
    help="Connections open at once; more are answered 503 at once.",
)
@click.option(
    "--decode-memory",
    default="1G",
    show_default=True,
    callback=memory_size,
    help="Memory the uploads in hand may take at once, bodies and decoding; beyond it a "
    "request waits briefly, then is answered 503.",
)
@click.option("--quiet", is_flag=True, help="Do not log each request.")
@debug_option
@handle_errors
def serve(weights, host, port, max_connections, decode_memory, quiet):
    """Serve a page to draw digits on, classified by the network in WEIGHTS.npz.

    The page shows the most probable classes as you draw and the 28x28 image the network
    sees (the preprocessing of `bpnet predict`). Scripts can POST a digit to /predict: image
    bytes (PNG, JPEG, PGM or NPY), a form (curl -F file=@digit.png) or JSON {"pixels": 28x28
    grey levels}. Ctrl-C stops it.
    """
    from urllib.parse import urlsplit

    from bpnet.apps.serve import exposed
    from bpnet.apps.serve import serve as serve_page

    def ready(url):
        click.echo(f"serving {printable(weights)} at {url} (Ctrl-C to stop)", err=True)
        if exposed(urlsplit(url).hostname):
            warn(
                f"listening on {urlsplit(url).hostname}: the page and POST /predict are open to "
                f"every machine that can reach this one (--host 127.0.0.1 keeps them on this one)"
            )

    serve_page(weights, host, port, quiet, ready, max_connections, decode_memory)
