"""`bpnet serve` as a real process on a free loopback port, raw HTTP requests to it, hostile
uploads and the server's own peak memory."""

from __future__ import annotations

import re
import resource
import socket
import struct
import subprocess
import zlib


class Server:
    """`bpnet serve WEIGHTS --port 0` in a process of its own; ``url`` once it listens
    (``as_limit``: an address-space limit in bytes for it)."""

    def __init__(self, exe, weights, *args, env=None, as_limit=None, host=None):
        def limit():
            resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))

        self.proc = subprocess.Popen(
            [exe, "serve", str(weights), "--port", "0", "--quiet", *args]
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

    def request(self, raw, timeout=20):
        """Send raw bytes of a request on a new connection; (status, headers, body)."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return parse_response(data)

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
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=30)


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
