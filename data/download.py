"""Fetch a dataset's files from mirrors, verify them and install them atomically.

Each missing file is tried on every mirror in turn: the caller's mirrors first, then
``$BPNET_MIRROR``, then the spec's built-in list. An HTTP mirror gets several tries, with backoff,
on 429/5xx answers, timeouts and dropped connections, and a partial file is resumed with a Range
request. Whatever arrives must decompress to the spec's IDX header and SHA-256, or it is discarded
and the next mirror tried. Downloads in progress live in ``<name>.part``, never under the final
name.

Every bound comes from the spec, not from the mirror: a body may not outgrow :func:`max_transfer`,
its content not :func:`idx_size` (checked in chunks, so a decompression bomb costs constant memory),
and a mirror gets :meth:`HttpOptions.deadline` seconds per file. One process at a time downloads
into a folder (:func:`dataset_lock`). ``requests`` is imported when a download starts.

Progress is injected: ``progress(desc=..., total=..., initial=...)`` returns a bar with
``update(n)`` and ``close()`` (``tqdm.tqdm`` fits); ``report(message)`` receives notes such as a
mirror that failed.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit
from urllib.request import url2pathname

from bpnet import __version__
from bpnet.base.files import atomic_write, commit_file
from bpnet.data.home import data_dir_note, dataset_dir, download_command
from bpnet.data.idx import (
    GZIP_MAGIC,
    DataCorrupt,
    DataMissing,
    check_idx,
    dataset_lock,
    read_idx,
    split_files,
)
from bpnet.data.mirrors import HttpOptions, mirror_list, retry_wait
from bpnet.data.specs import CHUNK, get_spec, max_transfer
from bpnet.errors import BpnetError


class DownloadFailed(BpnetError):
    """No mirror served a verified copy of a file."""


class MirrorFailed(Exception):
    """One mirror could not serve one file; the message says why."""


class _Retry(Exception):
    """A request failed in a way worth another try: args (what happened, Retry-After or None)."""


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


def _span(response, have):
    """(first byte, file size or None) of a response body to ``Range: bytes=have-``, or None
    when a 206 answer does not continue the partial file."""
    if response.status_code == 206:
        m = re.fullmatch(
            r"bytes (\d+)-\d+/(\d+)", response.headers.get("Content-Range", "").strip()
        )
        return (have, int(m[2])) if m and int(m[1]) == have else None
    length = response.headers.get("Content-Length", "")
    return 0, int(length) if length.isdigit() else None


def _pump(chunks, fh, bar, limit, deadline=None):
    """Write byte chunks to ``fh``, advancing ``bar``; the bar is closed either way. More than
    ``limit`` bytes in ``fh`` fail the mirror; ``deadline()`` is called after each chunk
    (it raises when the transfer has taken too long)."""
    try:
        for chunk in chunks:
            fh.write(chunk)
            bar.update(len(chunk))
            if fh.tell() > limit:
                raise MirrorFailed(f"more than {limit} bytes, the most a good copy can have")
            if deadline:
                deadline()
    finally:
        bar.close()


def _connect_reason(error):
    """'connection failed (Connection refused)' rather than urllib3's nested reprs."""
    m = re.search(r"\[Errno -?\d+\] ([^'\"()]+)|(Remote end closed[^'\"()]*)", str(error))
    return f"connection failed ({(m[1] or m[2]).strip()})" if m else "connection failed"


def _install(part, target, f, url):
    """Verify a downloaded ``part`` against FileSpec ``f`` and move it to ``target`` atomically.

    The check reads in chunks and stops where the content outgrows the spec (a decompression
    bomb is a failed mirror, found in constant memory). An uncompressed IDX with the right content
    is accepted and stored gzip-compressed, so a ``.gz`` name always holds gzip data.
    """
    with open(part, "rb") as fh:
        check_idx(iter(lambda: fh.read(CHUNK), b""), f, url)
        fh.seek(0)
        if fh.read(2) == GZIP_MAGIC:
            gz = True
        else:
            gz = False
            fh.seek(0)
            with atomic_write(target) as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as z:
                shutil.copyfileobj(fh, z, CHUNK)
    if gz:
        commit_file(part, target)
    else:
        part.unlink()


class _Fetcher:
    """One HTTP session fetching files from a list of mirrors."""

    def __init__(self, options=None, progress=None, report=None):
        import requests  # here, not at import: `import bpnet.nn` stays light

        self.options = options or HttpOptions()
        self.progress = progress or _NoBar
        self.report = report or (lambda message: None)
        self.session = requests.Session()
        self.session.max_redirects = self.options.max_redirects
        self.session.headers.update(
            {"User-Agent": f"bpnet/{__version__}", "Accept-Encoding": "identity"}
        )

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
                resumed = self._download(url, part, f)
                try:
                    _install(part, target, f, url)
                except DataCorrupt as e:
                    if not resumed:
                        raise
                    self.report(f"{e} after resuming {part.name}; fetching it whole")
                    part.unlink()
                    self._download(url, part, f)
                    _install(part, target, f, url)
                return url
            except MirrorFailed as e:
                failures.append(f"{url}: {e}")
            except DataCorrupt as e:
                failures.append(str(e))
            part.unlink(missing_ok=True)
            if i + 1 < len(urls):
                self.report(f"{failures[-1]}; trying the next mirror")
        raise DownloadFailed(
            f"no mirror served a verified {f.name} ({len(urls)} tried):\n"
            + "\n".join(f"  {line}" for line in failures)
        )

    def _download(self, url, part, f):
        """Fill ``part`` with the body at ``url`` (at most :func:`max_transfer` bytes of FileSpec
        ``f``); True when it continued an earlier partial file."""
        if urlsplit(url).scheme == "file":
            return self._copy(Path(url2pathname(urlsplit(url).path)), part, f)
        return self._http(url, part, f)

    def _copy(self, src, part, f):
        try:
            with open(src, "rb") as fin, open(part, "wb") as fout:
                bar = self.progress(desc=f.name, total=os.fstat(fin.fileno()).st_size, initial=0)
                _pump(
                    iter(lambda: fin.read(self.options.chunk_size), b""), fout, bar, max_transfer(f)
                )
        except OSError as e:
            raise MirrorFailed(e.strerror or str(e)) from None
        return False

    def _http(self, url, part, f):
        """Fill ``part`` from ``url`` in at most ``tries`` requests, each resuming where the one
        before stopped, all within the mirror's deadline (:meth:`HttpOptions.deadline` of the
        announced size); True when the last request continued bytes already in ``part``."""
        import requests

        opt = self.options
        self._started, self._end = time.monotonic(), None
        for attempt in range(1, opt.tries + 1):
            retry_after = None
            try:
                return self._request(url, part, f) > 0
            except _Retry as e:
                failure, retry_after = e.args
            except requests.TooManyRedirects:
                raise MirrorFailed(f"too many redirects (more than {opt.max_redirects})") from None
            except requests.ConnectTimeout:
                failure = "connection timed out"
            except requests.ReadTimeout:
                failure = self._timed_out
            except requests.RequestException as e:
                failure = _connect_reason(e)
            if attempt < opt.tries:
                wait = retry_wait(attempt, retry_after, opt)
                if self._end is not None and time.monotonic() + wait >= self._end:
                    failure += (
                        f"; the deadline for this file ({self._end - self._started:.1f} "
                        "s) leaves no time for another try"
                    )
                    break
                time.sleep(wait)
        raise MirrorFailed(f"{failure} after {attempt} tries" if attempt > 1 else failure)

    def _check_deadline(self, fh, total):
        """Raise :class:`MirrorFailed` once this mirror's time for the file is up."""
        now = time.monotonic()
        if now > self._end:
            raise MirrorFailed(
                f"too slow: {fh.tell()} of {total or '?'} bytes in {now - self._started:.1f} s "
                f"(the deadline for this file is {self._end - self._started:.1f} s: "
                f"tries × timeout + size / min rate {self.options.min_rate:g} B/s)"
            )

    @property
    def _timed_out(self):
        return f"read timed out (no data for {self.options.read_timeout:g} s)"

    def _request(self, url, part, f):
        """One GET of ``url`` into ``part``, asking for the rest when ``part`` holds a beginning;
        returns where the body started. Failures worth another try raise :class:`_Retry`."""
        import urllib3

        opt, limit = self.options, max_transfer(f)
        have = part.stat().st_size if part.exists() else 0
        if have > limit:
            part.unlink()
            have = 0
        read_timeout = opt.read_timeout
        if self._end is not None:
            read_timeout = max(min(read_timeout, self._end - time.monotonic()), 0.01)
        with self.session.get(
            url,
            stream=True,
            timeout=(opt.connect_timeout, read_timeout),
            headers={"Range": f"bytes={have}-"} if have else {},
        ) as r:
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
            if total is not None and total > limit:
                raise MirrorFailed(
                    f"{total} bytes announced, more than the {limit} a good copy can have"
                )
            if self._end is None:
                self._end = self._started + opt.deadline(total or limit)
            with open(part, "ab" if start else "wb") as fh:
                bar = self.progress(desc=f.name, total=total, initial=start)
                # read1 returns what has arrived, so a stall loses no byte already received
                chunks = iter(lambda: r.raw.read1(opt.chunk_size, decode_content=False), b"")
                try:
                    _pump(chunks, fh, bar, limit, lambda: self._check_deadline(fh, total))
                except urllib3.exceptions.ReadTimeoutError:
                    raise _Retry(self._timed_out, None) from None
                except urllib3.exceptions.HTTPError:
                    raise _Retry(
                        f"connection dropped at {fh.tell()} of {total or '?'} bytes", None
                    ) from None
                if total is not None and fh.tell() != total:  # a 206 body shorter than its range
                    raise _Retry(f"body ended at {fh.tell()} of {total} bytes", None)
        return start


def _fetch(folder, spec, files, urls, progress, report, options, data_dir):
    """Fetch FileSpecs ``files`` of ``spec`` into ``folder`` (the caller holds its lock);
    {name: URL}. The ``.part`` of a file already in place (a killed process's) is removed.

    Folders made here are removed again when the fetch fails, so nothing is left behind."""
    for f in spec.files:
        if f not in files and (folder / f.name).exists():
            (folder / (f.name + ".part")).unlink(missing_ok=True)
    if not files:
        return {}
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with _Fetcher(options, progress, report) as fetcher:
            return {f.name: fetcher.fetch(f, folder / f.name, urls) for f in files}
    except DownloadFailed as e:
        for p in made:
            try:
                p.rmdir()
            except OSError:  # not empty (a partial file kept for resuming) or not ours
                break
        raise DownloadFailed(f"{e}\n{_hint(spec.name, data_dir)}") from None


def _hint(dataset, data_dir):
    """How to go on when no mirror answers: commands that work as typed."""
    cmd = download_command(dataset, data_dir)
    return (
        f"no mirror reachable? copy the files into a folder and run `{cmd} --mirror FOLDER`, "
        f"or use another mirror: `{cmd} --mirror URL` (BPNET_MIRROR=URL for every command)"
        + data_dir_note(data_dir)
    )


def _verified(path, f, report):
    """True when ``path`` holds a verified copy of FileSpec ``f`` (checked in constant memory);
    a corrupt one is reported and will be fetched again."""
    if not path.exists():
        return False
    try:
        read_idx(path, f, decode=False)
        return True
    except DataCorrupt as e:
        if report:
            report(f"{e}; fetching it again")
        return False


def download_dataset(
    dataset="mnist",
    data_dir=None,
    mirrors=(),
    force=False,
    progress=None,
    report=None,
    spec=None,
    options=None,
    builtin_mirrors=True,
):
    """Make every file of a dataset present and verified in ``<data_dir>/<dataset>/``.

    Present files that verify are kept unless ``force``; the others are fetched from ``mirrors``,
    ``$BPNET_MIRROR`` and, unless ``builtin_mirrors`` is false, the spec's mirrors. One process at
    a time works on a folder (:func:`~bpnet.nn.data.dataset_lock`). Returns a
    :class:`FetchResult` per file; raises :class:`DownloadFailed` when a file verifies on no mirror.
    """
    spec = spec or get_spec(dataset)
    folder = dataset_dir(data_dir, spec.name)
    urls = mirror_list(spec, mirrors, builtin_mirrors)
    with dataset_lock(folder, report):
        todo = [f for f in spec.files if force or not _verified(folder / f.name, f, report)]
        fetched = _fetch(folder, spec, todo, urls, progress, report, options, data_dir)
    return [FetchResult(f.name, folder / f.name, fetched.get(f.name)) for f in spec.files]


def ensure_dataset(
    dataset="mnist",
    data_dir=None,
    offline=False,
    mirrors=(),
    progress=None,
    report=None,
    spec=None,
    options=None,
    builtin_mirrors=True,
    splits=("train", "test"),
):
    """Download whichever files of a dataset's ``splits`` are missing; returns the dataset's folder.

    Present files are left to the loader to check. Before downloading, ``report`` is told which
    files; with ``offline``, a missing file raises :class:`DataMissing` instead.
    """
    spec = spec or get_spec(dataset)
    folder = dataset_dir(data_dir, spec.name)
    files = [f for s in splits for f in split_files(spec, s)]
    urls = mirror_list(spec, mirrors, builtin_mirrors)
    if all((folder / f.name).exists() for f in files):
        return folder
    if offline:
        names = ", ".join(f.name for f in files if not (folder / f.name).exists())
        raise DataMissing(
            f"{folder}: missing {names}; run "
            f"`{download_command(spec.name, data_dir)}` to fetch them" + data_dir_note(data_dir)
        )
    with dataset_lock(folder, report):
        missing = [f for f in files if not (folder / f.name).exists()]
        if missing and report:
            report(f"downloading {', '.join(f.name for f in missing)} into {folder}")
        _fetch(folder, spec, missing, urls, progress, report, options, data_dir)
    return folder
