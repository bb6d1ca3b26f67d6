"""Fetch a dataset's files from mirrors, verify them and install them atomically.

Each missing file is tried on every mirror in turn: the caller's mirrors first, then
``$BPNET_MIRROR``, then the spec's built-in list. An HTTP mirror gets several tries, with backoff,
on 429/5xx answers, timeouts and dropped connections, and a partial file is resumed with a Range
request. Whatever arrives must decompress to the spec's IDX header and SHA-256, or it is discarded
and the next mirror tried. Downloads in progress live in ``<name>.part``, never under the final name.

Progress is injected: ``progress(desc=..., total=..., initial=...)`` returns a bar with
``update(n)`` and ``close()`` (``tqdm.tqdm`` fits); ``report(message)`` receives notes such as a
mirror that failed.
"""
from __future__ import annotations

import gzip
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit
from urllib.request import url2pathname

import requests
import urllib3

from bpnet import __version__

from .data import (GZIP_MAGIC, DataCorrupt, DataMissing, decode_idx, dataset_dir, get_spec,
                   read_idx)
from .errors import BpnetError, InputError
from .files import atomic_write, commit_file

SCHEMES = ("http", "https", "file")


class DownloadFailed(BpnetError):
    """No mirror served a verified copy of a file."""


class MirrorFailed(Exception):
    """One mirror could not serve one file; the message says why."""


class _Retry(Exception):
    """A request failed in a way worth another try: args (what happened, Retry-After or None)."""


@dataclass(frozen=True)
class HttpOptions:
    """How hard to try one HTTP mirror. Times in seconds."""
    connect_timeout: float = 10.0
    read_timeout: float = 30.0   # longest silence while waiting for data
    tries: int = 3               # requests per file and mirror
    backoff: float = 0.5         # wait before try k+1: backoff * 2**(k-1), or Retry-After
    max_wait: float = 30.0       # cap on any wait, Retry-After included
    chunk_size: int = 1 << 16


@dataclass(frozen=True)
class FetchResult:
    """A verified file of a dataset and the URL it was fetched from (None: it was present)."""
    name: str
    path: Path
    source: Optional[str]


class _NoBar:
    """The progress bar used when none is injected."""

    def __init__(self, **_):
        pass

    def update(self, n):
        pass

    def close(self):
        pass


def mirror_list(spec, extra=(), builtin=True):
    """Mirror base URLs in the order tried: ``extra``, then ``$BPNET_MIRROR`` (separated by
    whitespace or commas), then (if ``builtin``) the spec's own; duplicates dropped."""
    env = re.split(r"[\s,]+", os.environ.get("BPNET_MIRROR", "").strip())
    urls = []
    for url in (*extra, *env, *(spec.mirrors if builtin else ())):
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or (parts.scheme != "file" and not parts.netloc):
            raise InputError(f"mirror {url!r}: expected an http://, https:// or file:// URL")
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
                wait = (parsedate_to_datetime(retry_after)
                        - datetime.now(timezone.utc)).total_seconds()
            except (TypeError, ValueError):
                pass
    return min(max(wait, 0.0), options.max_wait)


def _span(response, have):
    """(first byte, file size or None) of a response body to ``Range: bytes=have-``, or None
    when a 206 answer does not continue the partial file."""
    if response.status_code == 206:
        m = re.fullmatch(r"bytes (\d+)-\d+/(\d+)", response.headers.get("Content-Range", "").strip())
        return (have, int(m[2])) if m and int(m[1]) == have else None
    length = response.headers.get("Content-Length", "")
    return 0, int(length) if length.isdigit() else None


def _pump(chunks, fh, bar):
    """Write byte chunks to ``fh``, advancing ``bar``; the bar is closed either way."""
    try:
        for chunk in chunks:
            fh.write(chunk)
            bar.update(len(chunk))
    finally:
        bar.close()


def _connect_reason(error):
    """'connection failed (Connection refused)' rather than urllib3's nested reprs."""
    m = re.search(r"\[Errno -?\d+\] ([^'\"()]+)|(Remote end closed[^'\"()]*)", str(error))
    return f"connection failed ({(m[1] or m[2]).strip()})" if m else "connection failed"


def _install(part, target, f, url):
    """Verify a downloaded ``part`` against FileSpec ``f`` and move it to ``target`` atomically.

    An uncompressed IDX with the right content is accepted and stored gzip-compressed, so a
    ``.gz`` name always holds gzip data.
    """
    data = part.read_bytes()
    decode_idx(data, url, f.magic, f.count, f.sha256)
    if data[:2] == GZIP_MAGIC:
        commit_file(part, target)
    else:
        with atomic_write(target) as fh:
            fh.write(gzip.compress(data, mtime=0))
        part.unlink()


class _Fetcher:
    """One HTTP session fetching files from a list of mirrors."""

    def __init__(self, options=None, progress=None, report=None):
        self.options = options or HttpOptions()
        self.progress = progress or _NoBar
        self.report = report or (lambda message: None)
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": f"bpnet/{__version__}",
                                     "Accept-Encoding": "identity"})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.session.close()

    def fetch(self, f, target, urls):
        """Install a verified copy of FileSpec ``f`` at ``target``; the URL it came from."""
        part = target.with_name(target.name + ".part")
        failures = []
        for i, base in enumerate(urls):
            url = base + f.name
            try:
                resumed = self._download(url, part, f.name)
                try:
                    _install(part, target, f, url)
                except DataCorrupt as e:
                    if not resumed:
                        raise
                    self.report(f"{e} after resuming {part.name}; fetching it whole")
                    part.unlink()
                    self._download(url, part, f.name)
                    _install(part, target, f, url)
                return url
            except MirrorFailed as e:
                failures.append(f"{url}: {e}")
            except DataCorrupt as e:
                failures.append(str(e))
            part.unlink(missing_ok=True)
            if i + 1 < len(urls):
                self.report(f"{failures[-1]}; trying the next mirror")
        raise DownloadFailed(f"no mirror served a verified {f.name} ({len(urls)} tried):\n"
                             + "\n".join(f"  {line}" for line in failures))

    def _download(self, url, part, desc):
        """Fill ``part`` with the body at ``url``; True when it continued an earlier partial file."""
        if urlsplit(url).scheme == "file":
            return self._copy(Path(url2pathname(urlsplit(url).path)), part, desc)
        return self._http(url, part, desc)

    def _copy(self, src, part, desc):
        try:
            with open(src, "rb") as fin, open(part, "wb") as fout:
                bar = self.progress(desc=desc, total=os.fstat(fin.fileno()).st_size, initial=0)
                _pump(iter(lambda: fin.read(self.options.chunk_size), b""), fout, bar)
        except OSError as e:
            raise MirrorFailed(e.strerror or str(e)) from None
        return False

    def _http(self, url, part, desc):
        """Fill ``part`` from ``url`` in at most ``tries`` requests, each resuming where the one
        before stopped; True when the last request continued bytes already in ``part``."""
        opt = self.options
        for attempt in range(1, opt.tries + 1):
            retry_after = None
            try:
                return self._request(url, part, desc) > 0
            except _Retry as e:
                failure, retry_after = e.args
            except requests.ConnectTimeout:
                failure = "connection timed out"
            except requests.ReadTimeout:
                failure = self._timed_out
            except requests.RequestException as e:
                failure = _connect_reason(e)
            if attempt < opt.tries:
                time.sleep(retry_wait(attempt, retry_after, opt))
        raise MirrorFailed(f"{failure} after {opt.tries} tries" if opt.tries > 1 else failure)

    @property
    def _timed_out(self):
        return f"read timed out (no data for {self.options.read_timeout:g} s)"

    def _request(self, url, part, desc):
        """One GET of ``url`` into ``part``, asking for the rest when ``part`` holds a beginning;
        returns where the body started. Failures worth another try raise :class:`_Retry`."""
        opt = self.options
        have = part.stat().st_size if part.exists() else 0
        with self.session.get(url, stream=True, timeout=(opt.connect_timeout, opt.read_timeout),
                              headers={"Range": f"bytes={have}-"} if have else {}) as r:
            code = r.status_code
            if code == 429 or code >= 500:
                raise _Retry(f"HTTP {code}", r.headers.get("Retry-After"))
            span = _span(r, have) if code in (200, 206) else None
            if span is None and have and code in (206, 416):  # part is no beginning of this file
                part.unlink()
                raise _Retry(f"HTTP {code} to a Range request", "0")
            if span is None:
                raise MirrorFailed(f"HTTP {code}")
            start, total = span
            with open(part, "ab" if start else "wb") as fh:
                bar = self.progress(desc=desc, total=total, initial=start)
                # read1 returns what has arrived, so a stall loses no byte already received
                chunks = iter(lambda: r.raw.read1(opt.chunk_size, decode_content=False), b"")
                try:
                    _pump(chunks, fh, bar)
                except urllib3.exceptions.ReadTimeoutError:
                    raise _Retry(self._timed_out, None) from None
                except urllib3.exceptions.HTTPError:
                    raise _Retry(f"connection dropped at {fh.tell()} of {total or '?'} bytes",
                                 None) from None
                if total is not None and fh.tell() != total:  # a 206 body shorter than its range
                    raise _Retry(f"body ended at {fh.tell()} of {total} bytes", None)
        return start


def _fetch(folder, files, urls, progress, report, options):
    """Fetch FileSpecs ``files`` into ``folder``; {file name: URL it came from}."""
    if not files:
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    with _Fetcher(options, progress, report) as fetcher:
        return {f.name: fetcher.fetch(f, folder / f.name, urls) for f in files}


def download_dataset(dataset="mnist", data_dir=None, mirrors=(), force=False, progress=None,
                     report=None, spec=None, options=None, builtin_mirrors=True):
    """Make every file of a dataset present and verified in ``<data_dir>/<dataset>/``.

    Present files that verify are kept unless ``force``; the others are fetched from ``mirrors``,
    ``$BPNET_MIRROR`` and, unless ``builtin_mirrors`` is false, the spec's mirrors. Returns a
    :class:`FetchResult` per file; raises :class:`DownloadFailed` when a file verifies on no mirror.
    """
    spec = spec or get_spec(dataset)
    folder = dataset_dir(data_dir, spec.name)
    urls = mirror_list(spec, mirrors, builtin_mirrors)
    todo = []
    for f in spec.files:
        if not force and (folder / f.name).exists():
            try:
                read_idx(folder / f.name, f.magic, f.count, f.sha256)
                continue
            except DataCorrupt as e:
                if report:
                    report(f"{e}; fetching it again")
        todo.append(f)
    fetched = _fetch(folder, todo, urls, progress, report, options)
    return [FetchResult(f.name, folder / f.name, fetched.get(f.name)) for f in spec.files]


def ensure_dataset(dataset="mnist", data_dir=None, offline=False, mirrors=(), progress=None,
                   report=None, spec=None, options=None, builtin_mirrors=True):
    """Download whichever files of a dataset are missing; returns the dataset's folder.

    Present files are left to the loader to check. Before downloading, ``report`` is told which
    files; with ``offline``, a missing file raises :class:`DataMissing` instead.
    """
    spec = spec or get_spec(dataset)
    folder = dataset_dir(data_dir, spec.name)
    urls = mirror_list(spec, mirrors, builtin_mirrors)
    missing = [f for f in spec.files if not (folder / f.name).exists()]
    names = ", ".join(f.name for f in missing)
    if missing and offline:
        raise DataMissing(f"{folder}: missing {names}; run `bpnet download --dataset "
                          f"{spec.name}` to fetch them")
    if missing and report:
        report(f"downloading {names} into {folder}")
    _fetch(folder, missing, urls, progress, report, options)
    return folder
