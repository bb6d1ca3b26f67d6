"""The application behind ``bpnet serve``, a WSGI callable: the page and its assets (GET, HEAD)
and ``POST /predict``. ``check_head`` refuses a request from its line and headers alone, so the
server (``server.py``) answers those refusals before reading any body; the application runs the
same checks again, so it stands alone under any WSGI server."""

from __future__ import annotations

import json
import re
import sys
import time
from http import HTTPStatus
from importlib import resources
from urllib.parse import parse_qs

from bpnet.apps.serve import FORM_EXTRA, MAX_JSON, RequestError
from bpnet.apps.serve.budget import JSON_BYTES, decode_bytes
from bpnet.base.limits import limit
from bpnet.base.text import clip
from bpnet.errors import BpnetError, InputError

PAGES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/trace.js": ("trace.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
METHODS = {**dict.fromkeys(PAGES, ("GET", "HEAD")), "/predict": ("POST",)}
# Content types of a digit: image bytes told by their first bytes (an image type, or none, or
# octet-stream, or the form encoding curl gives `--data-binary` by default), a form, or JSON.
BYTES_TYPES = ("", "application/octet-stream", "application/x-www-form-urlencoded")
ACCEPTED = "an image (image/png, ...), multipart/form-data, application/json or none"
JSON_TYPE = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
_PARAM = r';\s*{}\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)'


def body_kind(content_type):
    """``"image"``, ``"form"`` or ``"json"`` for a request's Content-Type; else 415."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        return "json"
    if kind == "multipart/form-data":
        return "form"
    if kind in BYTES_TYPES or kind.startswith("image/"):
        return "image"
    raise RequestError(
        f"Content-Type {clip(kind, 60)}: expected {ACCEPTED}", HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    )


def number(text, label, expected):
    """The whole number ``text`` (ASCII digits only, as HTTP writes numbers), else 400
    ``{label}{text!r}: expected {expected}``."""
    if not (text.isascii() and text.isdigit()):
        raise RequestError(f"{label}{clip(text, 40)!r}: expected {expected}")
    if len(text) > 1000:
        raise RequestError(f"{label.strip(' =')} of {len(text)} digits: expected {expected}")
    return int(text)


def param(value, key):
    """The parameter ``key`` of a header value (``boundary`` of a Content-Type, ``filename``
    of a Content-Disposition), unquoted; None when absent."""
    m = re.search(_PARAM.format(re.escape(key)), value, re.IGNORECASE)
    if not m:
        return None
    found = m.group(1)
    return re.sub(r"\\(.)", r"\1", found[1:-1]) if found.startswith('"') else found


def form_file(body, content_type):
    """(name, bytes) of the file a ``multipart/form-data`` body carries: the first part with
    a filename, else its only part."""
    boundary = param(content_type, "boundary")
    if not boundary or len(boundary) > 200:
        raise RequestError("multipart/form-data without a boundary parameter")
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    parts, start = [], body.find(delimiter)
    while start >= 0 and body[start + len(delimiter) : start + len(delimiter) + 2] != b"--":
        start += len(delimiter)
        end = body.find(b"\r\n" + delimiter, start)
        head_end = body.find(b"\r\n\r\n", start, end)
        if end < 0 or head_end < 0:
            raise RequestError("multipart form: a part without its headers or closing boundary")
        head = body[start:head_end].decode("latin-1")
        disposition = next(
            (h for h in head.split("\r\n") if h.lower().startswith("content-disposition:")), ""
        )
        parts.append((param(disposition, "filename"), head_end + 4, end))
        start = end + 2
    named = [p for p in parts if p[0]] or (parts if len(parts) == 1 else [])
    if not named:
        raise RequestError(
            f"multipart form of {len(parts)} parts and no file: send the digit as a file, "
            f"e.g. curl -F file=@digit.png"
        )
    name, start, end = named[0]
    return clip(name or "form file", 60), body[start:end]


def once(values, key, default):
    """The value of ``key`` given once in parsed query ``values`` (``default`` when absent),
    else 400 ``{key} given N times: expected it once``."""
    found = values.get(key, [default])
    if len(found) > 1:
        raise RequestError(f"{key} given {len(found)} times: expected it once")
    return found[0]


def access_line(address, line, status, size):
    """A log line as http.server writes them, with the request line made printable."""
    line = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in clip(line, 200))
    when = time.strftime("%d/%b/%Y %H:%M:%S")
    status = status if isinstance(status, str) else int(status)
    return f'{address} - - [{when}] "{line}" {status} {size}'


class App:
    """The WSGI application for one Classifier, sharing one memory Budget between requests;
    each answer is logged to stderr unless ``quiet``."""

    def __init__(self, classifier, budget, quiet=False):
        self.classifier, self.budget, self.quiet = classifier, budget, quiet
        static = resources.files(__package__).joinpath("static")
        self.pages = {p: (static.joinpath(f).read_bytes(), kind) for p, (f, kind) in PAGES.items()}
        self.most = {
            "json": MAX_JSON,
            "image": limit("image_bytes"),
            "form": limit("image_bytes") + FORM_EXTRA,
        }

    def log(self, address, line, status, size="-"):
        if not self.quiet:
            sys.stderr.write(access_line(address, line, status, size) + "\n")
            sys.stderr.flush()

    def check_head(self, method, path, query, content_type, length, chunked):
        """Refuse (RequestError) a request from its line and headers alone: another path (404),
        another method (405, with Allow), a bad ``?top=``, ``?trace=`` or ``?target=``, a body
        without a Content-Length or chunked (411), of a type not read (415), or longer than that
        type may be (413)."""
        allowed = METHODS.get(path)
        if allowed is None:
            raise RequestError(
                f"no page {clip(path, 100)}; try / or POST /predict", HTTPStatus.NOT_FOUND
            )
        if method not in allowed:
            raise RequestError(
                f"{clip(method, 20)} {path}: expected {' or '.join(allowed)}"
                + (" with a digit; the page to draw on is /" if path == "/predict" else ""),
                HTTPStatus.METHOD_NOT_ALLOWED,
                {"Allow": ", ".join(allowed)},
            )
        if method != "POST":
            return
        self.options(query)
        if chunked:
            raise RequestError(
                "chunked bodies are not accepted: send a Content-Length", HTTPStatus.LENGTH_REQUIRED
            )
        if length is None:
            raise RequestError("no Content-Length", HTTPStatus.LENGTH_REQUIRED)
        length = number(length, "Content-Length ", "a number of bytes")
        most = self.most[body_kind(content_type)]
        if length > most:
            raise RequestError(
                f"body of {clip(str(length), 40)} bytes, more than the {most} accepted",
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            )

    def options(self, query):
        """(top, trace) that the query asks for: ``?top=K`` classes (default 3), and with
        ``&trace=1`` a trace, ``{"target": C}`` (``&target=C``: the class the loss is taken
        against; without it None, the predicted class), else None."""
        values, classes = parse_qs(query), self.classifier.classes
        top = number(once(values, "top", "3"), "top=", f"a whole number 1..{classes}")
        if not 1 <= top <= classes:
            raise RequestError(f"top={clip(str(top), 40)}: expected a whole number 1..{classes}")
        trace = once(values, "trace", "0")
        if trace not in ("0", "1"):
            raise RequestError(f"trace={clip(trace, 40)!r}: expected 1 (or 0)")
        target = once(values, "target", None)
        if target is None:
            return top, {"target": None} if trace == "1" else None
        if trace != "1":
            raise RequestError(
                f"target={clip(target, 40)!r} without trace=1: the target is the class a "
                f"trace's loss is taken against"
            )
        target = number(target, "target=", f"a class 0..{classes - 1}")
        if not 0 <= target < classes:
            raise RequestError(f"target={clip(str(target), 40)}: expected a class 0..{classes - 1}")
        return top, {"target": target}

    def __call__(self, environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        try:
            self.check_head(
                method,
                path,
                environ.get("QUERY_STRING", ""),
                environ.get("CONTENT_TYPE", ""),
                environ.get("CONTENT_LENGTH"),
                "HTTP_TRANSFER_ENCODING" in environ,
            )
            if method == "POST":
                status, headers, body = HTTPStatus.OK, JSON_TYPE, self.predict(environ)
            else:
                body, kind = self.pages[path]
                status, headers = HTTPStatus.OK, [("Content-Type", kind)]
        except Exception as e:  # every failure is one line of JSON
            status, headers, body = error_response(e)
        query = environ.get("QUERY_STRING")
        line = f"{method} {path}{'?' + query if query else ''} {environ.get('SERVER_PROTOCOL')}"
        self.log(environ.get("REMOTE_ADDR", "-"), line, status, len(body))
        start_response(
            f"{status.value} {status.phrase}",
            [*headers, ("Content-Length", str(len(body)))],
        )
        return [b""] if method == "HEAD" else [body]

    def predict(self, environ):
        """The JSON answer to ``POST /predict``, the body read, decoded and traced within the
        memory budget."""
        kind = body_kind(environ.get("CONTENT_TYPE", ""))
        top, trace = self.options(environ.get("QUERY_STRING", ""))
        length = int(environ["CONTENT_LENGTH"])
        tracing = self.classifier.trace_bytes if trace is not None else 0
        with self.budget.reserve() as held:
            held.need(length * {"json": JSON_BYTES, "form": 2}.get(kind, 1), "the body")
            raw = environ["wsgi.input"].read(length)
            if len(raw) < length:
                raise RequestError(f"body ended after {len(raw)} of {length} bytes")
            if kind == "json":
                held.need(held.held + tracing, "tracing the digit")
                answer = self.classifier.from_json(raw, top, trace)
            else:
                name = "image body"
                if kind == "form":
                    name, raw = form_file(raw, environ["CONTENT_TYPE"])
                held.need(
                    decode_bytes(raw) + tracing,
                    f"reading {name}" + (" and tracing it" if trace else ""),
                )
                answer = self.classifier.from_bytes(raw, top, name, trace)
        return json.dumps(answer, allow_nan=False).encode()


def error_response(e):
    """(status, headers, body) of the one-line JSON answer to the exception ``e``."""
    headers = []
    if isinstance(e, RequestError):
        status, message, headers = e.status, str(e), list(e.headers.items())
    elif isinstance(e, InputError):
        status, message = HTTPStatus.BAD_REQUEST, str(e)
    elif isinstance(e, MemoryError):
        status, message = HTTPStatus.SERVICE_UNAVAILABLE, "out of memory; try again"
        headers = [("Retry-After", "1")]
    elif isinstance(e, BpnetError):
        status, message = HTTPStatus.INTERNAL_SERVER_ERROR, str(e)
    else:  # a bug: still one line, and the server goes on
        status, message = HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(e).__name__}: {e}"
    body = json.dumps({"error": " ".join(message.split()) or status.phrase}).encode()
    return status, [*JSON_TYPE, *headers], body
