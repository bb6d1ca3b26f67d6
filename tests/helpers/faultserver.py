"""A loopback HTTP server that serves files with injected faults, for the download tests."""

from __future__ import annotations

import http.server
import re
import socket
import struct
import threading
import zlib

HTML = b"<!DOCTYPE html><html><body><h1>503 Service Unavailable</h1></body></html>\n"


class Stream:
    """A body too large to hold in memory: ``size`` bytes that ``chunks()`` makes on demand."""

    def __init__(self, size, chunks):
        self.size, self.chunks = size, chunks

    def __len__(self):
        return self.size


def gzip_bomb(head, inflated):
    """A gzip stream of ``head`` followed by zeros, ``inflated`` bytes in all (whole MiB), built
    from one compressed MiB of zeros repeated: about 1 KB on the wire per MiB inflated, and only
    a few KB in memory whatever the size."""
    mib = 1 << 20
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = z.compress(head + bytes(mib - len(head))) + z.flush(zlib.Z_FULL_FLUSH)
    block = z.compress(bytes(mib)) + z.flush(zlib.Z_FULL_FLUSH)  # decodes alone: window reset
    end = z.flush()
    n = inflated // mib - 1
    return Stream(
        len(first) + n * len(block) + len(end),
        lambda: iter([first, *(block for _ in range(n)), end]),
    )


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread
    block_on_close = True


class FaultServer:
    """Serve ``files`` ({name: bytes}) on 127.0.0.1, one fault plan per file name.

    ``plan[name]`` lists one action per request for that file, the last one repeating
    (default ``["ok"]``):

    - ``"ok"``: the file, or with a Range request ``bytes=N-`` the rest of it (206)
    - ``"norange"``: the whole file with 200, whatever the Range header
    - an int: that HTTP status (429 and 503 come with ``Retry-After: 1``)
    - ``"html"``: status 200 with an HTML error page
    - ``"truncate"``: half the body under the full Content-Length, then a clean close
    - ``"short"``: half the body with a matching Content-Length (a 206 then ends before its range)
    - ``"reset"``: half the body, then a TCP reset
    - ``"stall"``: half the body, then silence until the server stops (at most ``stall`` s)
    - ``"silent"``: no answer at all until the server stops (at most ``stall`` s)
    - ``"drip"``: the file under its full Content-Length, one byte every ``drip`` s (a tarpit)
    - ``"halfdrip"``: as ``"drip"`` after the first half of the file, sent at once
    - ``"loop"``: a redirect (302) to the same URL, forever

    A file may be a :class:`Stream` (served whole with 200, whatever the Range header).

    ``requests`` records each request as a dict: name, range (header or None), sent (body bytes
    written), agent (User-Agent). Use as a context manager; leaving it stops every thread.
    """

    def __init__(self, files, plan=None, stall=10.0, drip=1.0):
        self.files, self.plan, self.stall, self.drip = files, plan or {}, stall, drip
        self.requests, self.release = [], threading.Event()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def hits(self, name):
        """The recorded requests for one file name, in the order they arrived."""
        return [r for r in self.requests if r["name"] == name]

    def _arrived(self, record):
        """Record a request as it arrives; the action planned for it."""
        with self._lock:
            actions = self.plan.get(record["name"], ["ok"])
            action = actions[min(len(self.hits(record["name"])), len(actions) - 1)]
            self.requests.append(record)
        return action


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = 10  # a client that never sends its request cannot hold a thread for long

    def log_message(self, *args):
        pass

    def do_GET(self):
        owner = self.server.owner
        name = self.path.lstrip("/")
        record = {
            "name": name,
            "range": self.headers.get("Range"),
            "sent": 0,
            "agent": self.headers.get("User-Agent"),
        }
        action = owner._arrived(record)
        try:
            record["sent"] = self._respond(owner, action, owner.files.get(name), record["range"])
        except ConnectionError:  # the client gave up first
            pass

    def _head(self, code, length, extra=()):
        self.send_response(code)
        self.send_header("Content-Length", str(length))
        for key, value in extra:
            self.send_header(key, value)
        self.end_headers()

    def _respond(self, owner, action, data, range_header):
        """Send the response for one action; returns the number of body bytes written."""
        if action == "silent":
            owner.release.wait(owner.stall)
            return 0
        if data is None or isinstance(action, int):
            code = 404 if data is None else action
            self._head(code, 0, [("Retry-After", "1")] if code in (429, 503) else [])
            return 0
        if action == "loop":
            self._head(302, 0, [("Location", self.path)])
            return 0
        if isinstance(data, Stream):
            self._head(200, len(data))
            sent = 0
            for chunk in data.chunks():
                self.wfile.write(chunk)
                sent += len(chunk)
            return sent
        if action in ("drip", "halfdrip"):
            self._head(200, len(data))
            first = len(data) // 2 if action == "halfdrip" else 0
            self.wfile.write(data[:first])
            for i in range(first, len(data)):
                if owner.release.wait(owner.drip):
                    return i
                self.wfile.write(data[i : i + 1])
            return len(data)
        if action == "html":
            self._head(200, len(HTML), [("Content-Type", "text/html")])
            self.wfile.write(HTML)
            return len(HTML)
        m = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        start = int(m[1]) if m and action != "norange" else 0
        if start >= len(data) > 0:
            self._head(416, 0, [("Content-Range", f"bytes */{len(data)}")])
            return 0
        body = data[start:]
        extra = (
            [("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")] if m and start else []
        )
        if action in ("truncate", "reset", "stall", "short"):
            body, length = (
                body[: len(body) // 2],
                len(body) if action != "short" else len(body) // 2,
            )
        else:
            length = len(body)
        self._head(206 if extra else 200, length, extra + [("Accept-Ranges", "bytes")])
        self.wfile.write(body)
        if action == "stall":
            owner.release.wait(owner.stall)
        elif action == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        self.close_connection = True
        return len(body)
