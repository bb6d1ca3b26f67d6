"""``bpnet serve``: a local page to draw digits on, and ``POST /predict`` for scripts.

Built on the standard library's ``http.server`` (one thread per request); the page and its
script are package data in ``static/``, so nothing is fetched from the internet. A digit
arrives as a PNG (``Content-Type: image/png``) or as JSON ``{"pixels": 28×28 grey levels
0..255}`` and goes through the same reading and MNIST preprocessing as ``bpnet predict``
(``bpnet.data.images``, which changes no process-wide state, so requests read at once; the
network itself answers one request at a time, ``Classifier``); the answer is
``{"top": [{"label", "probability"}, …], "input":
28×28 grey levels the network saw}``, ``top`` being what ``predict --json`` prints.
Every refused request is a 4xx with ``{"error": "one line"}``, and the server goes on.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from bpnet.base.limits import limit
from bpnet.errors import BpnetError, InputError

MAX_JSON = 256 * 1024  # bytes of a JSON body: 784 numbers need under 16 KB
TIMEOUT = 10.0  # seconds a client may take to send its request (each read)
BODY_SECONDS = 30.0  # seconds a client may take to send a whole body, however it trickles
HEAD_SECONDS = 30.0  # seconds it may take to send its request line and headers, likewise
MAX_CONNECTIONS = 32  # connections served at once (a thread each); more are answered 503
PAGES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}


class RequestError(InputError):
    """A request the server refuses; ``status`` is its HTTP status."""

    def __init__(self, message, status=HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    """GET: the page and its assets; POST /predict: a digit's classes. HTTP/1.0, one
    request per connection, so a refused body never has to be read."""

    server_version = "bpnet"
    timeout = TIMEOUT

    def setup(self):
        super().setup()
        self._headed = self._expired = False  # request line and headers: read / too slow
        self._answered = False  # a response has been sent
        self._deadline = threading.Timer(HEAD_SECONDS, self._expire)
        self._deadline.daemon = True
        self._deadline.start()

    def _expire(self):
        """HEAD_SECONDS after the connection: a request still sending its head (however
        slowly each part comes) reads end-of-file from then on."""
        if not self._headed:
            self._expired = True
            try:
                self.connection.shutdown(socket.SHUT_RD)
            except OSError:
                pass

    def parse_request(self):
        if self._expired:  # the request line was cut off: what parse_request would set
            self.command, self.close_connection = None, True
            self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        ok = not self._expired and super().parse_request()  # reads the headers
        self._headed = True
        self._deadline.cancel()
        if self._expired and not self._answered:
            self.send_error(
                HTTPStatus.REQUEST_TIMEOUT,
                f"request line and headers too slow: more than {HEAD_SECONDS:g} s",
            )
            return False
        return ok

    def finish(self):
        self._deadline.cancel()
        super().finish()

    def send_json(self, status, obj):
        self._answered = True
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def send_error(self, code, message=None, explain=None):
        """Every error as one line of JSON (also those http.server raises itself; a method
        other than GET and POST is 405, not http.server's 501)."""
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code, message = (
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"method {self.command!r}: expected GET or POST",
            )
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self.request_version = "HTTP/1.0"  # a status line even for a request line of garbage
        self.close_connection = True
        self.send_json(code, {"error": " ".join(str(message or phrase).split())})

    def do_GET(self):
        page = PAGES.get(urlsplit(self.path).path)
        if page is None:
            return self.send_error(
                HTTPStatus.NOT_FOUND, f"no page {urlsplit(self.path).path}; try / or POST /predict"
            )
        body = resources.files(__package__).joinpath("static", page[0]).read_bytes()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", page[1])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        try:
            self.send_json(HTTPStatus.OK, self.predict())
        except RequestError as e:
            self.send_error(e.status, str(e))
        except InputError as e:
            self.send_error(HTTPStatus.BAD_REQUEST, str(e))
        except BpnetError as e:
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR, str(e))
        except OSError:
            self.close_connection = True  # the client is gone or too slow: nobody to answer
        except Exception as e:  # a bug: still one line, and the server goes on
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(e).__name__}: {e}")

    def predict(self):
        url = urlsplit(self.path)
        if url.path != "/predict":
            raise RequestError(f"no endpoint {url.path}; POST /predict", HTTPStatus.NOT_FOUND)
        classes = self.server.classifier.classes
        top = parse_qs(url.query).get("top", ["3"])[-1]
        if not (top.isdigit() and 1 <= int(top) <= classes):
            raise RequestError(f"top={top!r}: expected a whole number 1..{classes}")
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind not in ("image/png", "application/json"):
            raise RequestError(
                f"Content-Type {kind or 'missing'}: expected image/png or application/json",
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            )
        raw = self.read_body(limit("image_bytes") if kind == "image/png" else MAX_JSON)
        reader = (
            self.server.classifier.from_png
            if kind == "image/png"
            else self.server.classifier.from_json
        )
        return reader(raw, int(top))

    def read_body(self, most):
        """The request body, at most ``most`` bytes (a PNG: predict's image byte limit,
        BPNET_MAX_IMAGE_BYTES; JSON: MAX_JSON), refused from its Content-Length before
        anything is read."""
        if self.headers.get("Transfer-Encoding"):
            raise RequestError(
                "chunked bodies are not accepted: send a Content-Length", HTTPStatus.LENGTH_REQUIRED
            )
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError("no Content-Length", HTTPStatus.LENGTH_REQUIRED)
        if not length.strip().isdigit():
            raise RequestError(f"Content-Length {length[:40]!r}: expected a number of bytes")
        length = int(length)
        if length > most:
            raise RequestError(
                f"body of {length} bytes, more than the {most} accepted",
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            )
        deadline = time.monotonic() + BODY_SECONDS
        parts, got = [], 0
        while got < length:
            part = self.rfile.read1(min(length - got, 1 << 16))
            if not part:
                raise RequestError(f"body ended after {got} of {length} bytes")
            parts.append(part)
            got += len(part)
            if got < length and time.monotonic() > deadline:
                raise RequestError(
                    f"body too slow: {got} of {length} bytes in {BODY_SECONDS:g} s",
                    HTTPStatus.REQUEST_TIMEOUT,
                )
        return b"".join(parts)

    def log_message(self, format, *args):
        if not self.server.quiet:
            super().log_message(format, *args)


class Server(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` at once: a connection beyond
    them is answered 503 with one line of JSON at once and closed, before anything of it is
    read, so a flood of idle or slow clients costs a bounded number of threads."""

    daemon_threads = True

    def __init__(self, address, handler, max_connections=MAX_CONNECTIONS):
        super().__init__(address, handler)
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            return self._refuse(request)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request):
        body = json.dumps(
            {
                "error": f"busy: {self.max_connections} connections are open, the "
                f"most served at once; try again"
            }
        ).encode()
        head = (
            f"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
        )
        try:
            request.setblocking(False)  # never wait on a client that does not read
            request.send(head.encode() + body)
        except OSError:
            pass
        self.shutdown_request(request)


def make_server(weights, host="127.0.0.1", port=8000, quiet=False, max_connections=MAX_CONNECTIONS):
    """A ``Server`` for the weights file ``weights``, bound and ready to ``serve_forever()``
    (port 0: any free port; see ``server.server_address``)."""
    from bpnet.apps.serve.classifier import Classifier

    classifier = Classifier(weights)
    try:
        server = Server((host, port), Handler, max_connections)
    except OSError as e:
        raise BpnetError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    server.classifier, server.quiet = classifier, quiet
    return server


def serve(
    weights, host="127.0.0.1", port=8000, quiet=False, ready=None, max_connections=MAX_CONNECTIONS
):
    """Serve until interrupted (Ctrl-C returns normally); ``ready(url)`` is called once
    the server listens."""
    server = make_server(weights, host, port, quiet, max_connections)
    try:
        host, port = server.server_address[:2]
        if ready:
            ready(f"http://{f'[{host}]' if ':' in host else host}:{port}/")
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
