"""``bpnet serve``: a local page to draw digits on, and ``POST /predict`` for scripts.

Served by waitress (``server.py``), a pure-Python HTTP server: its parser turns away malformed
requests (request lines, header syntax, a repeated or non-numeric Content-Length, request
smuggling, oversized heads), its one event loop holds idle and slow connections without a thread
each, and a few threads run the application; around it bpnet adds what the tool promises: every
refusal one line of JSON, ``--max-connections`` answered 503 beyond, 408 for a request that
stalls or trickles, and bodies refused from their head before they are read. The application
(``app.py``) serves the page and its script, package data in ``static/`` (nothing is fetched
from the internet), and answers ``POST /predict``: a digit as image bytes (PNG, JPEG, PGM or
NPY, told by their first bytes as ``bpnet predict`` tells a file's format; with an image type,
``application/octet-stream`` or no Content-Type), as the file of a ``multipart/form-data`` form
(``curl -F file=@digit.png``), or as JSON ``{"pixels": 28×28 grey levels 0..255}``, read and
preprocessed as ``bpnet predict`` reads a file (``bpnet.data.images``, which changes no
process-wide state). The answer is ``{"top": [{"label", "probability"}, …], "input": 28×28
grey levels the network saw}``, ``top`` being what ``predict --json`` prints; ``POST
/predict?trace=1`` adds ``"trace"``, the digit's forward and backward pass through the network
(``bpnet.apps.graph.trace``; ``&target=C``: the loss against class C instead of the predicted
one), which the page draws beside the pad. The memory the uploads in hand may take at once,
traces included, is bounded (``budget.py``). Every refused request is a 4xx
(503 when busy) with ``{"error": "one line"}``, and the server goes on.
"""

from __future__ import annotations

import ipaddress
import socket
from http import HTTPStatus

from bpnet.errors import BpnetError, InputError

MAX_JSON = 256 * 1024  # bytes of a JSON body: 784 numbers need under 16 KB
FORM_EXTRA = 64 * 1024  # bytes a multipart form may add to its file (boundaries, part headers)
TIMEOUT = 10.0  # seconds a client may stay silent in the middle of its request
BODY_SECONDS = 30.0  # seconds a client may take to send a whole body, however it trickles
HEAD_SECONDS = 30.0  # seconds it may take to send its request line and headers, likewise
MAX_HEAD = 64 * 1024  # bytes of a request line and headers
MAX_CONNECTIONS = 32  # connections open at once; more are answered 503
THREADS = 4  # threads that answer requests (reading and decoding digits)


class RequestError(InputError):
    """A request the server refuses; ``status`` is its HTTP status, ``headers`` extra response
    headers (``Allow``, ``Retry-After``)."""

    def __init__(self, message, status=HTTPStatus.BAD_REQUEST, headers=None):
        super().__init__(message)
        self.status, self.headers = HTTPStatus(status), dict(headers or {})


def make_server(
    weights,
    host="127.0.0.1",
    port=8000,
    quiet=False,
    max_connections=MAX_CONNECTIONS,
    decode_memory=None,
):
    """A server for the weights file ``weights``, bound and ready to ``serve_forever()``
    (port 0: any free port; see ``server.server_address``; ``shutdown()`` from another thread
    stops it, ``server_close()`` frees it). ``decode_memory``: bytes the uploads in hand may
    take at once (default ``budget.DECODE_MEMORY``)."""
    from bpnet.apps.serve.app import App
    from bpnet.apps.serve.budget import DECODE_MEMORY, Budget
    from bpnet.apps.serve.classifier import Classifier
    from bpnet.apps.serve.server import Server
    from bpnet.base.limits import limit

    limit("image_bytes"), limit("image_pixels")  # a bad BPNET_MAX_IMAGE_* fails here, at start
    app = App(Classifier(weights), Budget(decode_memory or DECODE_MEMORY), quiet)
    try:
        family, address = resolve(host, port)
        return Server(app, family, address, max_connections)
    except OSError as e:
        raise BpnetError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None


def resolve(host, port):
    """(address family, socket address) to listen on for ``host`` (a name, IPv4 or IPv6
    address) and ``port``: the first that getaddrinfo gives."""
    try:
        infos = socket.getaddrinfo(
            host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, socket.IPPROTO_TCP, socket.AI_PASSIVE
        )
    except socket.gaierror as e:
        raise OSError(e.strerror) from None
    family, _, _, _, address = infos[0]
    return family, address


def url_of(host, port):
    """``http://HOST:PORT/``, an IPv6 address in brackets."""
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def exposed(host):
    """Whether a server listening on the address ``host`` is reachable from other machines
    (any address but a loopback one: 0.0.0.0 and :: are every address the machine has)."""
    try:
        return not ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return True


def serve(
    weights,
    host="127.0.0.1",
    port=8000,
    quiet=False,
    ready=None,
    max_connections=MAX_CONNECTIONS,
    decode_memory=None,
):
    """Serve until interrupted (Ctrl-C returns normally); ``ready(url)`` is called once the
    server listens (``exposed(urlsplit(url).hostname)``: whether other machines reach it)."""
    server = make_server(weights, host, port, quiet, max_connections, decode_memory)
    try:
        host, port = server.server_address
        if ready:
            ready(url_of(host, port))
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
