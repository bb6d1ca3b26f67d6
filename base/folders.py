"""Replacing a folder whole: a new one is built beside it and swapped in, so that at every
instant one of the two is whole at its path."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
from pathlib import Path

_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>new|old)-(?P<pid>\d+)-[0-9a-f]{8}$")


def staging_dir(target):
    """A new empty sibling folder of ``target`` to build its replacement in (see swap_dirs)."""
    target = Path(target).resolve()  # beside the real folder when target is a symlink
    target.parent.mkdir(parents=True, exist_ok=True)
    path = target.with_name(f".{target.name}.new-{os.getpid()}-{secrets.token_hex(4)}")
    path.mkdir()
    return path


def _exchange(a, b):
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False if the
    system cannot."""
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_dir(path):
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def swap_dirs(new, target):
    """Put the folder ``new`` (from staging_dir) in place of the folder ``target``, then
    delete the old one. At every instant one of the two is whole at ``target``: on Linux they
    swap in one atomic step; elsewhere the old folder is first renamed aside, and a process
    killed between the two renames leaves it there for ``clean_leftovers`` to put back."""
    new, target = Path(new), Path(target).resolve()
    if _exchange(new, target):
        old = new  # now holds the old folder
    else:
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
        os.rename(target, old)
        os.rename(new, target)
    _fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(target):
    """Tidy what killed processes left beside ``target`` (a folder): a half-built
    replacement is deleted; an old folder renamed aside is put back when ``target`` is
    missing, else deleted. Folders of processes still running are left alone."""
    target = Path(target).resolve()
    with contextlib.suppress(OSError):
        for entry in sorted(target.parent.iterdir()):
            m = _LEFTOVER.match(entry.name)
            if not m or m["name"] != target.name or not entry.is_dir():
                continue
            pid = int(m["pid"])
            if pid != os.getpid() and _alive(pid):
                continue
            if m["kind"] == "old" and not target.exists():
                os.rename(entry, target)
            else:
                shutil.rmtree(entry, ignore_errors=True)
