"""`bpnet serve` as a real process on a free loopback port (``Server``) or in this process
(``InProcess``), raw HTTP requests to it, hostile uploads and the server's own peak memory."""

from __future__ import annotations

import re
import resource
import socket
import struct
import subprocess
import threading
import time
import zlib


class Server:
    """`bpnet serve WEIGHTS --port 0` in a process of its own; ``url`` once it listens
    (``as_limit``: an address-space limit in bytes for it)."""

    def __init__(self, exe, weights, *args, env=None, as_limit=None, host=None, quiet=True):
        def limit():
            resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))

        self.proc = subprocess.Popen(
            [exe, "serve", str(weights), "--port", "0", *args]
            + (["--quiet"] if quiet else [])
            + (["--host", host] if host else []),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=limit if as_limit else None,
        )
        line = self.proc.stderr.readline()
        m = re.match(
            r"serving .* at (http://\[?([\d.a-f:]+)\]?:(\d+)/) \(Ctrl-C to stop\)$", line.strip()
        )
        assert m, (line, self.proc.poll())
        self.url, self.host, self.port = m.group(1), m.group(2), int(m.group(3))

    @property
    def address(self):
        return self.host, self.port

    def request(self, raw, timeout=20):
        """Send raw bytes of a request on a new connection; (status, headers, body)."""
        return parse_response(exchange(self.address, raw, timeout))

    def post(self, body, content_type, path="/predict", extra=b"", timeout=20):
        head = (
            (
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n"
            ).encode()
            + extra
            + b"\r\n"
        )
        return self.request(head + body, timeout)

    def get(self, path):
        return self.request(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())

    def stop(self):
        """Kill it; what it wrote to stderr after its first line."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        rest = self.proc.stderr.read()  # through the buffer its first line was read with
        self.proc.stderr.close()
        self.proc.stdout.close()
        return rest


class InProcess:
    """``make_server`` on a free loopback port, served by a thread of this process."""

    def __init__(self, weights, **kwargs):
        import bpnet.apps.serve as serve

        self.server = serve.make_server(weights, port=0, quiet=True, **kwargs)
        self.address = self.server.server_address
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.thread.join(10)
        self.server.server_close()


def exchange(address, raw, timeout=20, shut=True):
    """Send ``raw`` on a new connection (then end our side, unless not ``shut``) and read
    until the server closes; what it sent."""
    with socket.create_connection(address, timeout=timeout) as s:
        s.sendall(raw)
        if shut:
            s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def trickle_until_answered(s, byte, seconds=10):
    """Send ``byte`` every 0.25 s (each well within the read timeout) until the server
    answers or closes; what it sent."""
    reply, end = b"", time.monotonic() + seconds
    while time.monotonic() < end and not reply:
        try:
            s.sendall(byte)
        except OSError:
            break
        time.sleep(0.25)
        s.setblocking(False)
        try:
            reply += s.recv(65536) or b"<closed>"
        except BlockingIOError:
            pass
        except OSError:
            break
        s.setblocking(True)
    s.setblocking(True)
    return reply


def parse_response(data):
    """(status, headers, body) of the bytes of one HTTP response."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def hostile_png(side=4096):
    """A greyscale PNG of side x side pixels, a bar of ink on black, deflated to about 20 KB
    (4096: 16.8 million pixels, inside bpnet's default pixel limit, so it is decoded)."""

    def chunk(kind, data):
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    blank = b"\0" * (side + 1)  # filter byte 0, then the row
    ink = b"\0" + b"\0" * (side // 2 - 8) + b"\xff" * 16 + b"\0" * (side - side // 2 - 8)
    rows = blank * (side // 4) + ink * (side // 2) + blank * (side - side // 4 - side // 2)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def peak_rss_mb(pid):
    """Peak resident memory of the live process ``pid`` so far, in MB (VmHWM: its own
    high-water mark, which starts afresh at exec, unlike a child's ru_maxrss)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")
