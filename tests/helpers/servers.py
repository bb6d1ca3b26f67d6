"""`bpnet serve` as a real process on a free loopback port, and raw HTTP requests to it."""

from __future__ import annotations

import re
import socket
import subprocess


class Server:
    """`bpnet serve WEIGHTS --port 0` in a process of its own; ``url`` once it listens."""

    def __init__(self, exe, weights, *args, env=None):
        self.proc = subprocess.Popen(
            [exe, "serve", str(weights), "--port", "0", "--quiet", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        line = self.proc.stderr.readline()
        m = re.match(r"serving .* at (http://([\d.]+):(\d+)/) \(Ctrl-C to stop\)$", line.strip())
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
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        return int(lines[0].split()[1]), headers, body

    def post(self, body, content_type, path="/predict", extra=b""):
        head = (
            (
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n"
            ).encode()
            + extra
            + b"\r\n"
        )
        return self.request(head + body)

    def get(self, path):
        return self.request(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=30)
