"""Durable file writes: a reader sees the old file or the whole new one, never half of it."""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def commit_file(tmp, path):
    """fsync ``tmp``, rename it onto ``path`` (same folder) and fsync the folder."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # not every platform lets a folder be opened
        fd = os.open(Path(path).parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(path):
    """Yield a binary file in ``path``'s folder that replaces ``path`` when the block succeeds.

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)  # the umask applies, as for any new file
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        commit_file(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_bytes(path, missing, unreadable):
    """The bytes of ``path``; a missing file raises ``missing``, any other failure
    ``unreadable`` (exception classes), each with a one-line message naming the path."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise missing(f"{path}: no such file") from None
    except OSError as e:
        raise unreadable(f"{path}: cannot read ({e.strerror or e})") from None
