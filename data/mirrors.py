"""Where a dataset's files are fetched from and how hard each mirror is tried: the mirror list
(the caller's, ``$BPNET_MIRROR``, the spec's own) and the HTTP options. No NumPy and no requests:
the command line's help reads the defaults from here."""

from __future__ import annotations

import os
import re
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
    read_timeout: float = 30.0  # longest silence while waiting for data
    tries: int = 3  # requests per file and mirror
    backoff: float = 0.5  # wait before try k+1: backoff * 2**(k-1), or Retry-After
    max_wait: float = 30.0  # cap on any wait, Retry-After included
    chunk_size: int = CHUNK
    min_rate: float = 20_000.0  # bytes/s: see deadline()
    max_redirects: int = 10

    def deadline(self, size):
        """Seconds one mirror gets to deliver a file of ``size`` bytes, every try included: each
        try's longest silence plus the time the size takes at ``min_rate``."""
        return self.tries * self.read_timeout + size / self.min_rate


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
