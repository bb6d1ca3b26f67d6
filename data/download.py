"""Fetch a dataset's files from mirrors, verify them and install them atomically.

Each missing file is tried on every mirror in turn: the caller's mirrors first, then
``$BPNET_MIRROR``, then the spec's built-in list. An HTTP mirror gets several tries, with backoff,
on 429/5xx answers, timeouts and dropped connections, and a partial file is resumed with a Range
request; a host name that does not resolve fails its mirror at once, for every file, and a
resolver that does not answer fails every mirror that needs it. Whatever arrives must decompress
to the spec's IDX header and SHA-256, or it is discarded and the next mirror tried (a file of
another known dataset is named as such). Downloads in progress live in ``<name>.part``, never
under the final name.

Every bound comes from the spec, not from the mirror: a body may not outgrow :func:`max_transfer`,
its content not :func:`idx_size` (checked in chunks, so a decompression bomb costs constant memory),
and a body slower than ``HttpOptions.min_rate`` over ``HttpOptions.read_timeout`` seconds fails
the mirror. One process at a time downloads into a folder (:func:`dataset_lock`). ``requests`` is
imported when a download starts.

Progress is injected: ``progress(desc=..., total=..., initial=...)`` returns a bar with
``update(n)`` and ``close()`` (``tqdm.tqdm`` fits); ``report(message)`` receives notes such as a
mirror that failed; those that are information, not a warning (the files about to be
downloaded), are :class:`Info` strings.
"""

from __future__ import annotations

import gzip
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit
from urllib.request import url2pathname

from bpnet import __version__
from bpnet.base.files import atomic_write, commit_file
from bpnet.data.home import dataset_dir, missing_files, no_mirror_hint, old_data_note
from bpnet.data.idx import (
    GZIP_MAGIC,
    DataCorrupt,
    DataMissing,
    check_idx,
    dataset_lock,
    read_idx,
    split_files,
)
from bpnet.data.mirrors import (
    HttpOptions,
    MirrorFailed,
    Rate,
    Unresolved,
    connect_reason,
    lookup_error,
    mirror_list,
    needs_resolver,
    response_span,
    retry_wait,
)
from bpnet.data.specs import CHUNK, SPECS, get_spec, max_transfer
from bpnet.errors import BpnetError


class DownloadFailed(BpnetError):
    """No mirror served a verified copy of a file."""


class Info(str):
    """A note for ``report`` that is information (what is about to happen), not a warning."""


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


def _pump(chunks, fh, bar, limit, check=None):
    """Write byte chunks to ``fh``, advancing ``bar``; the bar is closed either way. More than
    ``limit`` bytes in ``fh`` fail the mirror; ``check(size so far)`` is called after each chunk
    (it raises when the transfer is too slow)."""
    try:
        for chunk in chunks:
            fh.write(chunk)
            bar.update(len(chunk))
            if fh.tell() > limit:
                raise MirrorFailed(f"more than {limit} bytes, the most a good copy can have")
            if check:
                check(fh.tell())
    finally:
        bar.close()


def _check(path, f, name):
    """check_idx of the file at ``path`` against FileSpec ``f``."""
    with open(path, "rb") as fh:
        return check_idx(iter(lambda: fh.read(CHUNK), b""), f, name)


def _named(error, path, f, dataset):
    """DataCorrupt ``error`` of the file at ``path`` (FileSpec ``f`` of ``dataset``), saying
    whose file it is when it is another known dataset's: MNIST offered as Fashion-MNIST."""
    for other in SPECS.values():
        g = next((g for g in other.files if g.name == f.name), None)
        if other.name == dataset or g is None or g.sha256 == f.sha256:
            continue
        try:
            _check(path, g, str(path))
        except (DataCorrupt, OSError):
            continue
        return DataCorrupt(f"{error}: the content of {other.name}'s {f.name}, not {dataset}'s")
    return error


def _install(part, target, f, url, dataset=None):
    """Verify a downloaded ``part`` against FileSpec ``f`` (of ``dataset``) and move it to
    ``target`` atomically.

    The check reads in chunks and stops where the content outgrows the spec (a decompression
    bomb is a failed mirror, found in constant memory). An uncompressed IDX with the right content
    is accepted and stored gzip-compressed, so a ``.gz`` name always holds gzip data.
    """
    try:
        _check(part, f, url)
    except DataCorrupt as e:
        raise _named(e, part, f, dataset) from None
    with open(part, "rb") as fh:
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

    def __init__(self, options=None, progress=None, report=None, dataset=None):
        import requests  # here, not at import: `import bpnet.nn` stays light

        self.options = options or HttpOptions()
        self.progress = progress or _NoBar
        self.report = report or (lambda message: None)
        self.dataset = dataset
        self.unresolved = {}  # host -> why its name did not resolve: not tried again
        self.resolver_down = None  # why no name resolves: names are not tried any more
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
            skip = self._skip(url)
            if skip:
                failures.append(f"{url}: {skip}")
                continue
            try:
                resumed = self._download(url, part, f)
                try:
                    _install(part, target, f, url, self.dataset)
                except DataCorrupt as e:
                    if not resumed:
                        raise
                    self.report(f"{e} after resuming {part.name}; fetching it whole")
                    part.unlink()
                    self._download(url, part, f)
                    _install(part, target, f, url, self.dataset)
                return url
            except Unresolved as e:
                host = urlsplit(url).hostname
                self.unresolved[host] = str(e)
                if e.resolver_down and needs_resolver(host):
                    self.resolver_down = str(e)
                failures.append(f"{url}: {e}")
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

    def _skip(self, url):
        """Why ``url`` is not tried (its host did not resolve before, or the resolver does not
        answer), or None."""
        parts = urlsplit(url)
        if parts.scheme == "file":
            return None
        if parts.hostname in self.unresolved:
            return f"{self.unresolved[parts.hostname]}; not tried again"
        if self.resolver_down and needs_resolver(parts.hostname):
            return f"not tried: the name resolver does not answer ({self.resolver_down})"
        return None

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
        before stopped; True when the last request continued bytes already in ``part``. A host
        name that does not resolve is not tried again (:class:`Unresolved`)."""
        import requests

        opt = self.options
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
                lookup = lookup_error(e)
                if lookup is not None:
                    raise Unresolved(lookup) from None
                failure = connect_reason(e)
            if attempt < opt.tries:
                time.sleep(retry_wait(attempt, retry_after, opt))
        raise MirrorFailed(f"{failure} after {attempt} tries" if attempt > 1 else failure)

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
        with self.session.get(
            url,
            stream=True,
            timeout=(opt.connect_timeout, opt.read_timeout),
            headers={"Range": f"bytes={have}-"} if have else {},
        ) as r:
            code = r.status_code
            if code == 429 or code >= 500:
                raise _Retry(f"HTTP {code}", r.headers.get("Retry-After"))
            span = response_span(r, have) if code in (200, 206) else None
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
            with open(part, "ab" if start else "wb") as fh:
                bar = self.progress(desc=f.name, total=total, initial=start)
                # read1 returns what has arrived, so a stall loses no byte already received
                chunks = iter(lambda: r.raw.read1(opt.chunk_size, decode_content=False), b"")
                rate = Rate(opt.read_timeout, opt.min_rate, start, total)
                try:
                    _pump(chunks, fh, bar, limit, rate)
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
        with _Fetcher(options, progress, report, spec.name) as fetcher:
            return {f.name: fetcher.fetch(f, folder / f.name, urls) for f in files}
    except DownloadFailed as e:
        for p in made:
            try:
                p.rmdir()
            except OSError:  # not empty (a partial file kept for resuming) or not ours
                break
        raise DownloadFailed(f"{e}\n{no_mirror_hint(spec.name, data_dir)}") from None


def _note_old_data_dir(dataset, data_dir, report):
    """Point out, once, the ./data/<dataset> an earlier version left (see home.old_data_note)."""
    note = report and old_data_note(dataset, data_dir)
    if note:
        report(Info(f"{note}, instead of this download (Ctrl-C stops it)"))


def _verified(path, f, report, dataset=None):
    """True when ``path`` holds a verified copy of FileSpec ``f`` of ``dataset`` (checked in
    constant memory); a corrupt one is reported and will be fetched again."""
    if not path.exists():
        return False
    try:
        read_idx(path, f, decode=False)
        return True
    except DataCorrupt as e:
        if report:
            report(f"{_named(e, path, f, dataset)}; fetching it again")
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
    _note_old_data_dir(spec.name, data_dir, report)
    with dataset_lock(folder, report):
        todo = [
            f for f in spec.files if force or not _verified(folder / f.name, f, report, spec.name)
        ]
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
        raise DataMissing(missing_files(folder, names, spec.name, data_dir))
    _note_old_data_dir(spec.name, data_dir, report)
    with dataset_lock(folder, report):
        missing = [f for f in files if not (folder / f.name).exists()]
        if missing and report:
            report(Info(f"downloading {', '.join(f.name for f in missing)} into {folder}"))
        _fetch(folder, spec, missing, urls, progress, report, options, data_dir)
    return folder
