"""Durable file writes: a reader sees the old file or the whole new one, never half of it."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path

from bpnet.base.text import printable
from bpnet.errors import InputError


class NotRegularFile(InputError):
    """A path bpnet was to write holds something other than a regular file (exit status 2)."""


def file_kind(mode):
    """``"a FIFO (named pipe)"``, ``"a folder"``, … for an ``st_mode`` that is not a regular
    file's."""
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((k for test, k in kinds if test(mode)), "not a regular file")


def replaceable(path, any_entry=False):
    """Refuse to write ``path`` unless it is missing or a regular file (or a symbolic link to
    one; the link is what gets replaced): a folder, FIFO, device or socket there, or a link to
    one, raises :class:`NotRegularFile`. bpnet writes only regular files, so ``-o /dev/null``
    can never replace the system's /dev/null. With ``any_entry`` (a file only bpnet writes,
    such as a cache), whatever is there other than a folder is replaced: only its name goes."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # missing, a dangling link, or unreadable: the write itself will tell
        return
    if stat.S_ISREG(mode) or (any_entry and not stat.S_ISDIR(mode)):
        return
    raise NotRegularFile(
        f"{printable(path)}: {file_kind(mode)}, not a regular file; bpnet writes only "
        f"regular files and will not replace it"
    )


def same_file(a, b):
    """Whether paths ``a`` and ``b`` lead to one file (the same path, a symbolic or hard link,
    or another name for it); False when either is missing."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def commit_file(tmp, path, any_entry=False):
    """fsync ``tmp``, rename it onto ``path`` (same folder; see :func:`replaceable` for what
    may be there) and fsync the folder."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    replaceable(path, any_entry)
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # not every platform lets a folder be opened
        fd = os.open(Path(path).parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(path, any_entry=False):
    """Yield a binary file in ``path``'s folder that replaces ``path`` when the block succeeds.

    On any error the temporary file is removed and ``path`` is left as it was. ``path`` must be
    missing or a regular file, checked before the block runs and again before the rename
    (:func:`replaceable`; ``any_entry`` for a file only bpnet writes).
    """
    path = Path(path)
    replaceable(path, any_entry)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)  # the umask applies, as for any new file
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        commit_file(tmp, path, any_entry)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path) as fh:
        fh.write(text.encode("utf-8"))


def npy_header(fp, max_header_size=10_000):
    """(shape, fortran_order, dtype) of the .npy header at ``fp``'s position, before any data is
    read; a garbled header of any kind is a ValueError."""
    import tokenize

    import numpy as np

    try:
        version = np.lib.format.read_magic(fp)
        read = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        return read(fp, max_header_size=max_header_size)
    except (
        SyntaxError,
        tokenize.TokenError,
        EOFError,
        NotImplementedError,
        TypeError,
        MemoryError,
        RecursionError,
    ) as e:
        raise ValueError(f"garbled .npy header ({type(e).__name__})") from None


def regular_file(path, missing, unreadable):
    """``os.stat`` of ``path`` if it is a regular file; a FIFO, device, socket or folder
    raises ``unreadable`` (without opening it: a FIFO would block, /dev/zero never ends)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise missing(f"{printable(path)}: no such file") from None
    except OSError as e:
        raise unreadable(f"{printable(path)}: cannot read ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise unreadable(f"{printable(path)}: {file_kind(st.st_mode)}, expected a regular file")
    return st


def read_bytes(path, missing, unreadable, limit=None, what="a file"):
    """The bytes of the regular file ``path``, at most ``limit`` of them: a missing file
    raises ``missing``, a larger, non-regular or unreadable one ``unreadable`` (exception
    classes), each with a one-line message naming the path."""
    regular_file(path, missing, unreadable)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size  # the file opened, not a swapped-in one
            if limit is not None and size > limit:
                raise unreadable(
                    f"{printable(path)}: {size} bytes, over the limit of {limit} bytes for {what}"
                )
            data = fh.read(size + 1 if limit is None else min(size, limit) + 1)
    except FileNotFoundError:
        raise missing(f"{printable(path)}: no such file") from None
    except OSError as e:
        raise unreadable(f"{printable(path)}: cannot read ({e.strerror or e})") from None
    if limit is not None and len(data) > limit:  # it grew while being read
        raise unreadable(f"{printable(path)}: over the limit of {limit} bytes for {what}")
    return data


IMAGE_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF8": "GIF",
    b"BM": "BMP",
    b"P2": "PGM",
    b"P5": "PGM",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"RIFF": "WebP",
}
OTHER_MAGIC = {
    b"\x93NUMPY": "a .npy array",
    b"\x1f\x8b": "a gzip file",
    b"\x00\x00\x08\x01": "an IDX label file (MNIST)",
    b"\x00\x00\x08\x03": "an IDX image file (MNIST)",
    b"%PDF": "a PDF document",
    b"\x80\x02": "a Python pickle",
    b"\x80\x03": "a Python pickle",
    b"\x80\x04": "a Python pickle",
    b"\x80\x05": "a Python pickle",
    b"\x89HDF": "an HDF5 file",
    b"BZh": "a bzip2 file",
    b"\xfd7zXZ": "an xz file",
    b"\x7fELF": "an executable",
}
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def head(path, n=512):
    """The first ``n`` bytes of a regular file (b"" for anything else or on error)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return b""
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def image_kind(first):
    """``"PNG"``, ``"JPEG"``, … when ``first`` (a file's first bytes) opens an image; else None."""
    return next((k for magic, k in IMAGE_MAGIC.items() if first.startswith(magic)), None)


def describe(first):
    """What a file whose first bytes are ``first`` holds, in a few words: ``"a .npy array"``,
    ``"an image (PNG)"``, ``"a text file (CSV)"``, ``"a zip archive"``, ``"an empty file"``."""
    if not first:
        return "an empty file"
    if first.startswith(ZIP_MAGIC):
        return "a zip archive"
    kind = image_kind(first)
    if kind:
        return f"an image ({kind})"
    other = next((k for magic, k in OTHER_MAGIC.items() if first.startswith(magic)), None)
    if other:
        return other
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError as e:  # a multi-byte character cut at the end is still text
        text = first[: e.start].decode("utf-8") if e.reason == "unexpected end of data" else None
    if text is None or "\x00" in text:
        return "binary data of no format bpnet knows"
    line = text.lstrip().split("\n", 1)[0]
    flavour = (
        "JSON"
        if line.startswith(("{", "["))
        else "Markdown"
        if line.startswith("#")
        else "CSV"
        if line.count(",") >= 2
        else "YAML"
        if re.match(r"^[\w.-]+\s*:", line)
        else None
    )
    return f"a text file ({flavour})" if flavour else "a text file"
