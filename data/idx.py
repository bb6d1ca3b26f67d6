"""MNIST-format datasets: IDX files on disk to NumPy arrays, with a cache of the decoded arrays.

Files live in ``<data_dir>/<dataset>/`` under their published names
(``train-images-idx3-ubyte.gz`` …). What each file must be (IDX header, item count, SHA-256
of the decompressed content) and where it is published is a :class:`DatasetSpec`; the
real datasets' specs are in :data:`SPECS`.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from bpnet.base.files import NotRegularFile, atomic_write
from bpnet.base.text import printable
from bpnet.data.home import dataset_dir, download_command
from bpnet.data.specs import ARRAYS, CHUNK, IMAGE_MAGIC, LABEL_MAGIC, get_spec, idx_size
from bpnet.errors import BpnetError, InputError

GZIP_MAGIC = b"\x1f\x8b"
CACHE_NAME = "cache.npz"
CACHE_VERSION = 1
SPLITS = ("train", "test")
TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")  # files.atomic_write's temporaries


class DataMissing(BpnetError, FileNotFoundError):
    """A dataset file is not in the data directory."""


class DataCorrupt(BpnetError):
    """A dataset file is there but is not the IDX file it should be."""


def _inflate(chunks, name):
    """Yield the content of a file given as byte ``chunks``, gzip (members concatenated) or raw
    IDX, in pieces of at most :data:`CHUNK` bytes. Nothing is inflated before it is asked for,
    so a reader that stops early bounds the work and memory whatever the file claims."""
    chunks, head = iter(chunks), b""
    for chunk in chunks:  # the first 4 bytes tell gzip from IDX
        head += chunk
        if len(head) >= 4:
            break
    if head[:2] != GZIP_MAGIC:
        if int.from_bytes(head[:4], "big") not in (IMAGE_MAGIC, LABEL_MAGIC):
            got = "got HTML?" if head.lstrip()[:1] == b"<" else f"starts with {head[:8]!r}"
            raise DataCorrupt(f"{name}: not gzip/IDX ({got})")
        yield head
        yield from chunks
        return
    d, carry = zlib.decompressobj(31), b""
    try:
        for data in itertools.chain([head], chunks):
            data, carry = carry + data, b""
            while data:
                if d.eof:  # another gzip member follows, or trailing junk
                    if len(data) < 2:
                        carry = data
                        break
                    if data[:2] != GZIP_MAGIC:
                        raise DataCorrupt(
                            f"{name}: corrupt gzip (data after the end of the stream)"
                        )
                    d = zlib.decompressobj(31)
                out = d.decompress(data, CHUNK)
                data = d.unused_data if d.eof else d.unconsumed_tail
                while len(out) == CHUNK and not d.eof and not data:  # output held back by zlib
                    yield out
                    out = d.decompress(b"", CHUNK)
                    data = d.unused_data if d.eof else d.unconsumed_tail
                if out:
                    yield out
    except zlib.error as e:
        raise DataCorrupt(f"{name}: corrupt gzip ({e})") from None
    if not d.eof or carry:
        raise DataCorrupt(
            f"{name}: corrupt gzip (Compressed file ended before the end-of-stream "
            "marker was reached)"
        )


def _check_header(head, name, f):
    """(offset, dims) of an IDX header at the start of ``head``, checked against FileSpec ``f``."""
    if len(head) < 8:
        raise DataCorrupt(f"{name}: {len(head)} bytes, too short for an IDX header")
    magic = int.from_bytes(head[:4], "big")
    if magic != f.magic:
        want = f.magic if magic in (IMAGE_MAGIC, LABEL_MAGIC) else f"{LABEL_MAGIC} or {IMAGE_MAGIC}"
        raise DataCorrupt(f"{name}: IDX magic number {magic}, expected {want}")
    ndim = magic & 0xFF
    if len(head) < 4 + 4 * ndim:
        raise DataCorrupt(f"{name}: {len(head)} bytes, too short for an IDX header")
    dims = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if magic == IMAGE_MAGIC and dims[1:] != [28, 28]:
        raise DataCorrupt(f"{name}: images of {dims[1:]} pixels, expected 28x28")
    if dims[0] != f.count:
        raise DataCorrupt(f"{name}: {dims[0]} items, expected {f.count}")
    return 4 + 4 * ndim, dims


def check_idx(chunks, f, name="IDX data", out=None):
    """Check a file given as byte ``chunks`` (gzip or raw IDX) against FileSpec ``f``: header,
    size and (unless ``f.sha256`` is empty) the content's SHA-256; raises :class:`DataCorrupt`.

    Reading stops as soon as the content outgrows what ``f`` allows (:func:`idx_size`), so a
    decompression bomb costs one chunk of memory. With ``out`` (a uint8 buffer of
    ``idx_size(f)`` bytes) the content is copied into it. Returns (offset, dims) of the header.
    """
    limit, n, digest, header = idx_size(f), 0, hashlib.sha256(), None
    head = bytearray()
    for piece in _inflate(chunks, name):
        if header is None:
            head += piece[: 16 - len(head)]
            if len(head) >= (16 if f.magic == IMAGE_MAGIC else 8):
                header = _check_header(head, name, f)
        if n + len(piece) > limit:
            offset = header[0] if header else 0
            raise DataCorrupt(
                f"{name}: more than {limit - offset} data bytes, expected "
                f"{limit - offset} (not read further)"
            )
        digest.update(piece)
        if out is not None:
            out[n : n + len(piece)] = np.frombuffer(piece, np.uint8)
        n += len(piece)
    offset, dims = header or _check_header(head, name, f)
    if n != limit:
        raise DataCorrupt(f"{name}: {n - offset} data bytes, expected {limit - offset}")
    if f.sha256 and (got := digest.hexdigest()) != f.sha256:
        raise DataCorrupt(
            f"{name}: SHA-256 mismatch (content {got[:16]}…, expected {f.sha256[:16]}…)"
        )
    return offset, dims


def decode_idx(data, f, name="IDX data"):
    """Check file bytes (gzip or raw IDX) against FileSpec ``f`` and decode them into a uint8
    array of shape (count, 28, 28) or (count,); see :func:`check_idx`."""
    out = np.empty(idx_size(f), np.uint8)
    offset, dims = check_idx(
        (data[i : i + CHUNK] for i in range(0, len(data), CHUNK)), f, name, out
    )
    return out[offset:].reshape(dims)


def read_idx(path, f, decode=True):
    """Read the file at ``path`` in chunks and check it against FileSpec ``f``: the decoded array,
    or with ``decode=False`` only the check (constant memory). Missing: :class:`DataMissing`."""
    out = np.empty(idx_size(f), np.uint8) if decode else None
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block, /dev/zero never end
            raise DataCorrupt(f"{printable(path)}: not a regular file")
        with open(path, "rb") as fh:
            offset, dims = check_idx(iter(lambda: fh.read(CHUNK), b""), f, printable(path), out)
    except FileNotFoundError:
        raise DataMissing(f"{printable(path)}: no such file") from None
    except OSError as e:
        raise DataCorrupt(f"{printable(path)}: cannot read ({e.strerror or e})") from None
    return out[offset:].reshape(dims) if decode else None


@contextlib.contextmanager
def dataset_lock(folder, report=None):
    """Hold the lock of a dataset folder while files or the cache in it are written.

    The lock is a ``filelock`` file in the temporary folder named after ``folder``'s absolute
    path, so it exists before the folder does and leaves nothing in it. A second process waits
    (saying so through ``report``); afterwards it finds the first one's verified files.
    Atomic-write temporaries that a killed process left in the folder are removed.
    """
    from filelock import FileLock, Timeout

    key = hashlib.sha256(str(Path(folder).resolve()).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"bpnet-{key}.lock"
    lock = FileLock(path, mode=0o666)
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if report:
                report(f"waiting for another bpnet process writing into {printable(folder)}")
            lock.acquire()
    except OSError as e:
        raise BpnetError(
            f"{printable(path)}: cannot create the lock for {printable(folder)} "
            f"({e.strerror or e}); point TMPDIR at a writable folder"
        ) from None
    try:
        for tmp in Path(folder).glob(".*.tmp"):
            if TEMP_NAME.fullmatch(tmp.name):
                with contextlib.suppress(OSError):  # gone already, or a read-only folder
                    tmp.unlink()
        yield
    finally:
        lock.release()


def split_files(spec, split):
    """The FileSpecs of one split, images first."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}: expected train or test")
    return spec.files[:2] if split == "train" else spec.files[2:]


def _sources(folder, spec, data_dir):
    """The cache key: one line per source file with its size, mtime and expected SHA-256."""
    rows = []
    for f in spec.files:
        try:
            st = (folder / f.name).stat()
        except FileNotFoundError:
            raise DataMissing(
                f"{printable(folder / f.name)}: no such file (run `"
                f"{download_command(spec.name, data_dir)}` to fetch it)"
            ) from None
        rows.append(f"{f.name} {st.st_size} {st.st_mtime_ns} {f.sha256}")
    return np.array(rows)


def _shape(f):
    return (f.count, 28, 28) if f.magic == IMAGE_MAGIC else (f.count,)


def _read_cache(path, sources, spec, keys=ARRAYS):
    """The cached arrays ``keys`` when the cache is intact and was built from exactly
    ``sources``, else None: also when ``path`` is not a regular file, which is never opened
    (a FIFO would block, /dev/zero never end)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION or not np.array_equal(z["sources"], sources):
                return None
            arrays = {k: z[k] for k in keys}  # a damaged member fails its zip CRC here
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    shapes = {k: _shape(f) for k, f in zip(ARRAYS, spec.files)}
    ok = all(a.dtype == np.uint8 and a.shape == shapes[k] for k, a in arrays.items())
    return arrays if ok else None


def _decode(folder, files, spec, data_dir):
    """Decode and verify IDX files of ``folder``; a bad one names the command that refetches it."""
    try:
        return [read_idx(folder / f.name, f) for f in files]
    except DataCorrupt as e:
        raise DataCorrupt(
            f"{e} (run `{download_command(spec.name, data_dir)}` to fetch it again)"
        ) from None


def load_arrays(dataset="mnist", data_dir=None, spec=None, keys=ARRAYS):
    """The raw uint8 arrays ``{x_train, t_train, x_test, t_test}`` of a dataset (or the ``keys``
    asked for).

    The first load decodes and verifies the IDX files and caches the arrays in
    ``<data_dir>/<dataset>/cache.npz``, keyed by the files' sizes, mtimes and SHA-256s;
    later loads read the cache, and a cache that is stale or damaged is rebuilt (by one process
    at a time: see :func:`dataset_lock`). Anything but a regular file at ``cache.npz`` is a
    damaged cache: a FIFO, device, socket or symbolic link there is replaced by the rebuilt
    cache; a folder is left alone, and then, as in a read-only folder, the arrays are decoded
    from the IDX files on every load.
    """
    spec = spec or get_spec(dataset)
    folder = dataset_dir(data_dir, spec.name)
    cache = folder / CACHE_NAME
    arrays = _read_cache(cache, _sources(folder, spec, data_dir), spec, keys)
    if arrays is not None:
        return arrays
    with dataset_lock(folder):
        sources = _sources(folder, spec, data_dir)  # another process may have changed things
        arrays = _read_cache(cache, sources, spec)
        if arrays is None:
            arrays = dict(zip(ARRAYS, _decode(folder, spec.files, spec, data_dir)))
            try:
                with atomic_write(cache, any_entry=True) as fh:
                    np.savez(fh, version=CACHE_VERSION, sources=sources, **arrays)
            except (OSError, NotRegularFile):  # a read-only data dir, a folder: no cache
                pass
    return {k: arrays[k] for k in keys}


def load_split(data_dir=None, dataset="mnist", split="train", spec=None):
    """Raw (images uint8 (N, 28, 28), labels uint8 (N,)) of one split.

    Only the split's two files are needed: when the other split's files are absent, these two
    are decoded directly (no cache, which covers whole datasets).
    """
    spec = spec or get_spec(dataset)
    files = split_files(spec, split)
    folder = dataset_dir(data_dir, spec.name)
    keys = (f"x_{split}", f"t_{split}")
    if all((folder / f.name).exists() for f in spec.files):
        a = load_arrays(spec.name, data_dir, spec, keys)
        return a[keys[0]], a[keys[1]]
    for f in files:
        if not (folder / f.name).exists():
            raise DataMissing(
                f"{printable(folder / f.name)}: no such file (run `"
                f"{download_command(spec.name, data_dir)}` to fetch it)"
            )
    return tuple(_decode(folder, files, spec, data_dir))


def prepare(x, t, normalize=True, dtype=np.float32, flatten=True, one_hot=False):
    """Scale uint8 pixels to [0, 1] (or keep 0..255), flatten, and encode labels."""
    x = x.reshape(len(x), -1) if flatten else x.reshape(len(x), 1, 28, 28)
    x = x.astype(dtype)
    if normalize:
        x *= np.asarray(1.0 / 255.0, dtype=dtype)
    t = t.astype(np.int64)
    if one_hot:
        t = np.eye(10, dtype=dtype)[t]
    return x, t


def load_dataset(
    dataset="mnist",
    data_dir=None,
    normalize=True,
    dtype=np.float32,
    flatten=True,
    one_hot=False,
    spec=None,
):
    """(x_train, t_train, x_test, t_test) of a dataset in ``data_dir``.

    Images are (N, 784) or, with ``flatten=False``, (N, 1, 28, 28) of ``dtype``, scaled to [0, 1]
    unless ``normalize=False``; labels are int64 class indices, or (N, 10) one-hot rows.
    """
    a = load_arrays(dataset, data_dir, spec)
    return (
        *prepare(a["x_train"], a["t_train"], normalize, dtype, flatten, one_hot),
        *prepare(a["x_test"], a["t_test"], normalize, dtype, flatten, one_hot),
    )
