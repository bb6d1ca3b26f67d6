"""Where a dataset's files are fetched from, how hard each mirror is tried and how it fails: the
mirror list (the caller's, ``$BPNET_MIRROR``, the spec's own), the HTTP options, the waits between
tries, the rate a body must keep, and the words for a connection or name lookup that failed.
No NumPy and no requests: the command line's help reads the defaults from here."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

from bpnet.data.specs import CHUNK
from bpnet.errors import InputError

SCHEMES = ("http", "https", "file")


@dataclass(frozen=True)
class HttpOptions:
    """How hard to try one HTTP mirror. Times in seconds."""

    connect_timeout: float = 10.0
    # The longest silence while waiting for data, and the window over which a body must average
    # ``min_rate``, as curl's --speed-time and --speed-limit: a mirror slower than that over the
    # last ``read_timeout`` seconds is given up (whatever the file's size), and the next tried.
    read_timeout: float = 30.0
    tries: int = 3  # requests per file and mirror
    backoff: float = 0.5  # wait before try k+1: backoff * 2**(k-1), or Retry-After
    max_wait: float = 30.0  # cap on any wait, Retry-After included
    chunk_size: int = CHUNK
    min_rate: float = 20_000.0  # bytes/s, averaged over read_timeout seconds
    max_redirects: int = 10


def mirror_list(spec, extra=(), builtin=True):
    """Mirror base URLs in the order tried: ``extra``, then ``$BPNET_MIRROR`` (separated by
    whitespace or commas), then (if ``builtin``) the spec's own; duplicates dropped."""
    env = re.split(r"[\s,]+", os.environ.get("BPNET_MIRROR", "").strip())
    urls = []
    for url in (*extra, *env, *(spec.mirrors if builtin else ())):
        if not url:
            continue
        if "://" not in url:  # a plain folder path, relative or absolute
            if not Path(url).is_dir():
                raise InputError(
                    f"mirror {url!r}: no such folder (expected a folder holding the "
                    "files, or an http://, https:// or file:// URL)"
                )
            url = Path(url).resolve().as_uri()
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or (parts.scheme != "file" and not parts.netloc):
            raise InputError(
                f"mirror {url!r}: expected an http://, https:// or file:// URL, or a folder"
            )
        url = url.rstrip("/") + "/"
        if url not in urls:
            urls.append(url)
    return urls


def retry_wait(attempt, retry_after, options):
    """Seconds to wait after failed try ``attempt``: the server's Retry-After (seconds or an
    HTTP date) when given, else exponential backoff; never more than ``options.max_wait``."""
    wait = options.backoff * 2 ** (attempt - 1)
    if retry_after:
        try:
            wait = float(retry_after)
        except ValueError:
            try:
                wait = (
                    parsedate_to_datetime(retry_after) - datetime.now(timezone.utc)
                ).total_seconds()
            except (TypeError, ValueError):
                pass
    return min(max(wait, 0.0), options.max_wait)


class MirrorFailed(Exception):
    """One mirror could not serve one file; the message says why."""


class Unresolved(MirrorFailed):
    """The mirror's host name did not resolve; ``resolver_down``: the resolver did not answer
    (EAI_AGAIN), so no other name will resolve either."""

    def __init__(self, error):
        super().__init__(f"name resolution failed ({error.strerror or error})")
        self.resolver_down = error.errno == socket.EAI_AGAIN


class Rate:
    """The rate of a body over its last ``window`` seconds, as curl's --speed-time counts it:
    once a whole window has passed below ``min_rate`` bytes/s, the mirror is too slow."""

    def __init__(self, window, min_rate, size, total):
        self.window, self.min_rate, self.total = window, min_rate, total
        self.samples = deque([(time.monotonic(), size)])  # (time, bytes so far)

    def __call__(self, size):
        now, samples = time.monotonic(), self.samples
        samples.append((now, size))
        while len(samples) > 1 and samples[1][0] <= now - self.window:
            samples.popleft()  # the first sample stays the last one a window or more ago
        start, before = samples[0]
        if now - start >= self.window and size - before < self.min_rate * (now - start):
            raise MirrorFailed(
                f"too slow: {per_second((size - before) / (now - start))} over the last "
                f"{now - start:.1f} s, under the minimum {per_second(self.min_rate)} ({size} of "
                f"{self.total or '?'} bytes)"
            )


def per_second(rate):
    """A transfer rate in words: ``5 B/s``, ``19.5 kB/s``."""
    if rate < 1000:
        return f"{rate:.0f} B/s"
    return f"{rate / 1000:.3g} kB/s" if rate < 1e6 else f"{rate / 1e6:.3g} MB/s"


def lookup_error(error):
    """The failed name lookup (socket.gaierror) behind a requests error, or None."""
    todo, seen = [error], set()
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, socket.gaierror):
            return e
        todo += [getattr(e, "reason", None), e.__cause__, e.__context__]
        todo += [a for a in e.args if isinstance(a, BaseException)]
    return None


def needs_resolver(host):
    """Whether reaching ``host`` takes a DNS lookup (not an IP address, not localhost)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return False
    except ValueError:
        return host.lower() != "localhost"


def connect_reason(error):
    """'connection failed (Connection refused)' rather than urllib3's nested reprs."""
    m = re.search(r"\[Errno -?\d+\] ([^'\"()]+)|(Remote end closed[^'\"()]*)", str(error))
    return f"connection failed ({(m[1] or m[2]).strip()})" if m else "connection failed"


def response_span(response, have):
    """(first byte, file size or None) of a response body to ``Range: bytes=have-``, or None
    when a 206 answer does not continue the partial file."""
    if response.status_code == 206:
        m = re.fullmatch(
            r"bytes (\d+)-\d+/(\d+)", response.headers.get("Content-Range", "").strip()
        )
        return (have, int(m[2])) if m and int(m[1]) == have else None
    length = response.headers.get("Content-Length", "")
    return 0, int(length) if length.isdigit() else None
