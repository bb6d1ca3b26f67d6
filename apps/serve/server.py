"""``bpnet serve``'s HTTP server: waitress, and what bpnet adds around it.

waitress parses requests strictly (a request line, header syntax and a Content-Length of ASCII
digits given once, or it answers 400; a head over MAX_HEAD bytes, 431), buffers each body
(spooled to a temporary file beyond 512 KB) before the application runs, and holds every
connection in one event loop, so idle and slow clients cost no thread; THREADS threads run the
application. Through its extension points (the parser, channel and error task classes, and the
server's accept and maintenance hooks), bpnet adds:

- ``Parser``: the application's ``check_head`` runs as soon as the head is in, so a request
  refused from its head (404, 405, 411, 413, 415, a bad ``?top=``) is answered before any of its
  body is read, and no "100 Continue" invites one;
- ``ErrorTask``: every refusal, waitress's own included, is one line of JSON, and logged;
- ``Channel``: a request that stalls for TIMEOUT seconds, or whose head (body) is not in within
  HEAD_SECONDS (BODY_SECONDS) however it trickles, is answered 408; one whose client ends its
  side early is answered 400 (a truncated body); a reset mid-request is one log line;
- ``Server``: beyond ``max_connections`` open connections a new one is answered 503 at once,
  before anything of it is read, and what it sends on is read and dropped until it ends
  (``Draining``, at most ``max_connections`` of them, each for at most LINGER_SECONDS).
"""

from __future__ import annotations

import json
import socket
import time
from http import HTTPStatus

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask as WaitressErrorTask
from waitress.task import ThreadedTaskDispatcher
from waitress.utilities import Error, RequestEntityTooLarge

import bpnet.apps.serve as serve
from bpnet.apps.serve import RequestError
from bpnet.apps.serve.app import error_response
from bpnet.base.text import clip

LINGER_SECONDS = 2.0  # how long a refused client's remaining bytes are read before closing
# waitress's own refusals, as bpnet words them: its class name -> (status, prefix)
WAITRESS_ERRORS = {
    "BadRequest": (HTTPStatus.BAD_REQUEST, "malformed request: "),
    "RequestHeaderFieldsTooLarge": (
        HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request line and headers too long: ",
    ),
    "RequestEntityTooLarge": (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too long: "),
    "ServerNotImplemented": (
        HTTPStatus.LENGTH_REQUIRED,
        "send a plain body with a Content-Length: ",
    ),
}


class Refusal(Error):
    """A RequestError as waitress carries a request's error."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error, self.code = error, int(error.status)


def refusal(status, message):
    return Refusal(RequestError(message, status))


class Parser(HTTPRequestParser):
    """waitress's parser, with bpnet's words for a bad Content-Length, and the application's
    ``check_head`` as soon as the head is in (before any of the body is read)."""

    def __init__(self, adj):
        super().__init__(adj)
        self.begun, self.headed = time.monotonic(), None

    def parse_header(self, header_plus):
        try:
            super().parse_header(header_plus)
        except ValueError:  # int() of a Content-Length of thousands of digits
            digits = len(self.headers.get("CONTENT_LENGTH", ""))
            raise ParsingError(
                f"Content-Length of {digits} digits: expected a number of bytes"
            ) from None
        except ParsingError as e:
            length = self.headers.get("CONTENT_LENGTH")
            if length is None or "Content-Length" not in str(e):
                raise
            if ", " in length:  # waitress joins the values of a repeated header with ", "
                raise ParsingError(
                    f"Content-Length given more than once ({ascii(clip(length, 60))[1:-1]}): "
                    f"expected one"
                ) from None
            raise ParsingError(
                f"Content-Length {ascii(clip(length, 40))}: expected a number of bytes"
            ) from None

    def received(self, data):
        consumed = super().received(data)
        if self.headers_finished and self.headed is None:
            self.headed = time.monotonic()
            if not self.empty and (self.error is None or type(self.error) is RequestEntityTooLarge):
                try:
                    self.adj.app.check_head(
                        self.command,
                        self.path,
                        self.query,
                        self.headers.get("CONTENT_TYPE", ""),
                        self.headers.get("CONTENT_LENGTH"),
                        self.chunked or "TRANSFER_ENCODING" in self.headers,
                    )
                except RequestError as e:
                    self.error, self.completed = Refusal(e), True
            if self.error is not None:
                self.expect_continue = False
        return consumed

    def lateness(self, now, silent):
        """Why this unfinished request is too late (``silent``: seconds since its client last
        sent anything), or None."""
        if silent > serve.TIMEOUT:
            part = "body" if self.headers_finished else "request line and headers"
            return f"{part} stalled: nothing received for {serve.TIMEOUT:g} s"
        if self.headed is None and now - self.begun > serve.HEAD_SECONDS:
            return f"request line and headers too slow: more than {serve.HEAD_SECONDS:g} s"
        if self.headed is not None and now - self.headed > serve.BODY_SECONDS:
            got, length = self.body_bytes_received, self.content_length
            return f"body too slow: {got} of {length} bytes in {serve.BODY_SECONDS:g} s"
        return None

    def request_line(self):
        first = getattr(self, "first_line", None) or self.header_plus.split(b"\r\n", 1)[0]
        return first.decode("latin-1")


class ErrorTask(WaitressErrorTask):
    """A refusal as one line of JSON ``{"error": ...}``, closing the connection."""

    def execute(self):
        e = self.request.error
        if isinstance(e, Refusal):
            status, headers, body = error_response(e.error)
        else:  # waitress's own
            status, prefix = WAITRESS_ERRORS.get(
                type(e).__name__, (HTTPStatus.INTERNAL_SERVER_ERROR, "")
            )
            prefix = "" if e.body.startswith("Content-Length") else prefix  # Parser's words
            status, headers, body = error_response(RequestError(prefix + e.body, status))
        address = self.channel.addr[0] if self.channel.addr else "-"
        self.channel.server.app.log(address, self.request.request_line(), status, len(body))
        self.channel.refused = True
        self.status = f"{status.value} {status.phrase}"
        self.response_headers.extend(headers)
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(b"" if getattr(self.request, "command", None) == "HEAD" else body)


class Channel(HTTPChannel):
    """One connection. An answer to a request the client has not finished is queued
    (``refuse``) like a request waitress parsed with an error."""

    parser_class = Parser
    error_task_class = ErrorTask
    ended = False  # refused before its request was in: nothing more is read
    refused = False  # a refusal was answered: the client may still be sending its body
    lingering = None  # since when our side is ended and what the client sends is dropped

    def handle_read(self):
        if self.lingering is not None:
            try:
                data = self.socket.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                self.handle_close()
            return
        try:
            data = self.socket.recv(self.adj.recv_bytes)
        except BlockingIOError:
            return
        except OSError:  # reset: nobody to answer
            if self.request is not None:
                line = self.request.request_line()
                self.server.app.log(self.addr[0], line, "-", "(reset by the client mid-request)")
            self.handle_close()
            return
        if data:
            self.last_activity = time.time()
            self.received(data)
        elif self.request is None or self.requests:
            self.handle_close()  # the client is done: a clean end between requests
        else:  # its side ended mid-request: the answer can still reach it
            got = self.request.body_bytes_received
            self.refuse(
                f"body ended after {got} of {self.request.content_length} bytes"
                if self.request.headers_finished
                else "request ended before its headers did (a blank line ends them)"
            )

    def refuse(self, message, status=HTTPStatus.BAD_REQUEST):
        """Answer the unfinished request with ``status`` (and close), reading nothing more."""
        request = self.request
        request.error, request.completed = refusal(status, message), True
        request.expect_continue = False
        self.ended = True
        with self.requests_lock:
            self.request = None
            self.requests.append(request)
        self.server.add_task(self)

    def readable(self):
        if self.lingering is not None:
            return True
        return not self.ended and super().readable()

    def writable(self):
        return self.will_close if self.lingering is not None else super().writable()

    def handle_close(self):
        """Close. After a refusal, first end our side and drop what the client still sends,
        until it ends too or LINGER_SECONDS pass (a lingering close): closing with its bytes
        unread would reset the connection, and a reset can destroy the answer before the
        client reads it."""
        if self.refused and self.lingering is None and not self.total_outbufs_len:
            try:
                self.socket.shutdown(socket.SHUT_WR)
            except (OSError, AttributeError):
                pass
            else:
                self.lingering = time.monotonic()
                self.will_close = self.close_when_flushed = False
                return
        super().handle_close()


class Unlogged:
    """A logger that logs nothing."""

    def warning(self, *args, **kwargs):
        pass


class Dispatcher(ThreadedTaskDispatcher):
    """waitress's threads, without its warning of every request that waits for one."""

    queue_logger = Unlogged()


class Server(TcpWSGIServer):
    """waitress on one address, at most ``max_connections`` connections at once."""

    channel_class = Channel

    def __init__(self, app, family, address, max_connections=serve.MAX_CONNECTIONS):
        adj = Adjustments(
            host=address[0],
            port=address[1],
            threads=serve.THREADS,
            ident="bpnet",
            connection_limit=max_connections + 64,  # refused in handle_accept below instead
            cleanup_interval=1,  # maintenance(): deadlines checked every second
            max_request_header_size=serve.MAX_HEAD,
            max_request_body_size=max(app.most.values()) + 1,
            log_socket_errors=False,
            asyncore_use_poll=True,
            expose_tracebacks=False,
        )
        adj.app = app
        dispatcher = Dispatcher()
        dispatcher.set_thread_count(adj.threads)
        self.app, self.max_connections = app, max_connections
        self.draining = []  # refused connections read until they end (Draining)
        self._running = False
        try:
            sockinfo = (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, address)
            super().__init__(app, map={}, dispatcher=dispatcher, adj=adj, sockinfo=sockinfo)
        except BaseException:
            dispatcher.shutdown(timeout=1)
            raise

    @property
    def server_address(self):
        return self.effective_host, int(self.effective_port)

    def handle_accept(self):
        if len(self.active_channels) < self.max_connections:
            return super().handle_accept()
        try:
            conn, _ = self.accept() or (None, None)
        except OSError:
            return
        if conn is not None and busy(conn, self.max_connections):
            if len(self.draining) < self.max_connections:
                self.draining.append(Draining(conn, self._map))
            else:  # a flood: no more sockets kept for it
                conn.close()

    def maintenance(self, now):
        """Every second: close connections idle for TIMEOUT seconds between requests, and
        answer 408 to requests that stall or trickle past their deadlines."""
        clock = time.monotonic()
        for d in self.draining:
            if clock - d.since > LINGER_SECONDS:
                d.close()
        self.draining = [d for d in self.draining if d.connected]
        for channel in list(self.active_channels.values()):
            if channel.lingering is not None:
                channel.will_close = clock - channel.lingering > LINGER_SECONDS
                continue
            if channel.requests or channel.ended or channel.close_when_flushed:
                continue  # answering: the application's time, not the client's
            if channel.request is None:
                if now - channel.last_activity > serve.TIMEOUT:
                    channel.will_close = True
                continue
            late = channel.request.lateness(clock, now - channel.last_activity)
            if late:
                channel.refuse(late, HTTPStatus.REQUEST_TIMEOUT)

    def serve_forever(self):
        """Run the event loop until ``shutdown()`` (or Ctrl-C, which propagates)."""
        self._running = True
        while self._running:
            wasyncore.loop(timeout=1.0, map=self._map, use_poll=True, count=1)

    def shutdown(self):
        self._running = False
        self.pull_trigger()

    def server_close(self):
        self._running = False
        self.task_dispatcher.shutdown(timeout=1)
        wasyncore.close_all(self._map)


def busy(conn, most):
    """Answer a connection beyond the most served at once: 503 and one line of JSON, sent at
    once without waiting on the client, and our side ended. True when the client's side is
    still open: the caller reads what it sends on (``Draining``), as closing with its request
    unread would reset the connection, and a reset can reach the client before the answer."""
    body = json.dumps(
        {"error": f"busy: {most} connections are open, the most served at once; try again"}
    ).encode()
    head = (
        f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    try:
        conn.setblocking(False)  # never wait on a client that does not read
        conn.send(head.encode() + body)
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(1 << 16):  # what has come of its request so far
            pass
    except BlockingIOError:
        return True  # more may come
    except OSError:
        pass
    conn.close()
    return False


class Draining(wasyncore.dispatcher):
    """A refused connection, answered and ended on our side: what the client still sends is
    read and dropped until it ends its side too, or LINGER_SECONDS pass (``maintenance``)."""

    def __init__(self, conn, map):
        super().__init__(conn, map)
        self.since = time.monotonic()

    def writable(self):
        return False

    def handle_read(self):
        try:
            if not self.recv(1 << 16):  # the client's end (recv has closed us then)
                self.close()
        except OSError:
            self.close()

    def handle_close(self):
        self.close()
