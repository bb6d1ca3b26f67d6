"""Reading an .npz without trusting it: every member's .npy header (shape, dtype) read and
checked before its data, the total bounded, pickles refused, and anything that is not an .npz
named by what it is instead; and writing one atomically."""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from bpnet.base.files import (
    ZIP_MAGIC,
    atomic_write,
    describe,
    head,
    image_kind,
    npy_header,
    regular_file,
)
from bpnet.base.limits import limit
from bpnet.base.text import clip, excerpt, human, printable
from bpnet.errors import InputError

MAX_MEMBERS = 10_000  # arrays in one .npz (a 1000-layer net with batch norm has 6000)
MAX_HEADER = 10_000  # bytes of one .npy header (numpy's own default limit)
# What zipfile and numpy raise for damaged archives: bad CRCs and headers, unsupported
# compression methods (NotImplementedError), encrypted members (RuntimeError).
ZIP_ERRORS = (
    ValueError,
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    RuntimeError,
)
MAX_DEFLATE_RATIO = 1032  # deflate's largest expansion: a member holds at most this x its size
READ_CHUNK = 1024**2  # bytes of an array read, or checked for finiteness, at a time


class WeightsError(InputError):
    """A weights or checkpoint file that cannot be used (exit status 2)."""


def save_npz(path, arrays):
    """np.savez of ``arrays`` (str values become 0-d unicode arrays), atomically."""
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    with atomic_write(path) as fh:
        np.savez(fh, **arrays)


class Npz:
    """An .npz opened for bounded reading: the .npy header (shape, dtype, order) of every
    member is read first, so a caller checks what each array claims before ``read`` allocates it.

    ``headers``: {key: (shape, dtype)}. Anything that is not a readable .npz of plain arrays
    is a WeightsError saying what the file is instead (see ``files.describe``).
    """

    def __init__(self, path, what="weights file"):
        self.path, self.what = Path(path), what
        regular_file(
            self.path,
            lambda m: WeightsError(f"{printable(self.path)}: no such {what}"),
            WeightsError,
        )
        first = head(self.path)
        if not first.startswith(ZIP_MAGIC):
            self.fail(
                f"not a {what}: {describe(first)}{_hint(first)}; expected the .npz "
                f"archive bpnet train writes"
            )
        self.size = self.path.stat().st_size
        try:
            self.zip = zipfile.ZipFile(self.path)
        except ZIP_ERRORS as e:
            self.fail(f"not a readable {what}: a damaged or truncated zip archive ({clip(e)})")
        try:
            self.headers = self._read_headers()
        except BaseException:
            self.zip.close()
            raise

    def fail(self, message):
        raise WeightsError(f"{printable(self.path)}: {message}")

    def _read_headers(self):
        infos = self.zip.infolist()
        if len(infos) > MAX_MEMBERS:
            self.fail(f"a zip archive of {len(infos)} members, more than a {self.what} holds")
        headers = {}
        for info in infos:
            if not info.filename.endswith(".npy"):
                self.fail(
                    f"not a {self.what}: a zip archive that is not an .npz (it holds "
                    f"{excerpt(info.filename, 40)})"
                )
            key = info.filename[: -len(".npy")]
            try:
                with self.zip.open(info) as fp:
                    shape, _, dtype = npy_header(fp, MAX_HEADER)
            except ZIP_ERRORS as e:
                self.fail(f"array {excerpt(key, 40)} has no readable .npy header ({clip(e)})")
            if dtype.hasobject:
                self.fail(f"array {excerpt(key, 40)} holds pickled objects, which are never loaded")
            nbytes = math.prod(shape) * dtype.itemsize
            stored = info.compress_type == zipfile.ZIP_STORED
            room = info.compress_size * (1 if stored else MAX_DEFLATE_RATIO) + MAX_HEADER
            if (
                nbytes > min(info.file_size, room)
                or info.header_offset + info.compress_size > self.size
            ):
                # the member cannot hold what its header claims
                self.fail(
                    f"array {excerpt(key, 40)} is truncated: its header claims "
                    f"{excerpt(shape)} {dtype}, {human(nbytes)}, in a member of "
                    f"{human(min(info.file_size, room))}"
                )
            headers[key] = (shape, dtype)
        return headers

    def check_total(self, keys=None):
        """Refuse arrays whose data would exceed the ``weights_bytes`` limit."""
        total = sum(
            math.prod(s) * d.itemsize
            for k, (s, d) in self.headers.items()
            if keys is None or k in keys
        )
        cap = limit("weights_bytes")
        if total > cap:
            self.fail(
                f"declares {human(total)} of arrays, more than the {human(cap)} a "
                f"{self.what} may hold (BPNET_MAX_WEIGHTS_BYTES)"
            )

    def read(self, key):
        """The array ``key``, reading only the bytes its (checked) header declares."""
        try:
            with self.zip.open(f"{key}.npy") as fp:
                return np.lib.format.read_array(fp, allow_pickle=False)
        except ZIP_ERRORS as e:
            self.fail(f"array {excerpt(key, 40)} is damaged ({clip(e)})")

    def read_into(self, key, out):
        """Read the array ``key`` into ``out``, an array of its (checked) shape: straight into
        ``out``'s memory, a piece at a time, when ``out`` is C-contiguous with the file's dtype
        and the file's array is in C order (what np.savez writes), so no second copy of the
        array is ever made; else through :meth:`read`."""
        shape, dtype = self.headers[key]
        if not (out.flags.c_contiguous and out.dtype == dtype and out.shape == shape):
            out[...] = self.read(key)
            return out
        try:
            with self.zip.open(f"{key}.npy") as fp:
                if npy_header(fp, MAX_HEADER)[1] and out.ndim > 1:  # Fortran order
                    out[...] = self.read(key)
                    return out
                data, done = out.reshape(-1).view(np.uint8), 0
                while done < data.size:
                    n = fp.readinto(data[done : done + READ_CHUNK])
                    if not n:
                        self.fail(f"array {excerpt(key, 40)} is damaged (its data is cut short)")
                    done += n
        except ZIP_ERRORS as e:
            self.fail(f"array {excerpt(key, 40)} is damaged ({clip(e)})")
        return out

    def text(self, key):
        """The string stored as the 0-d unicode array ``key`` (``meta``, ``state``)."""
        shape, dtype = self.headers[key]
        cap = limit("meta_bytes")
        if shape != () or dtype.kind != "U":
            self.fail(f"{key} is a {dtype} array of shape {excerpt(shape)}, expected a JSON string")
        if dtype.itemsize > 4 * cap:
            self.fail(
                f"{key} holds {dtype.itemsize // 4} characters, more than the "
                f"{cap} read (BPNET_MAX_META_BYTES)"
            )
        return str(self.read(key)[()])

    def close(self):
        self.zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _hint(first):
    if image_kind(first):
        return "; this looks like an image: did you mean `bpnet predict WEIGHTS IMAGE`?"
    if first.startswith(b"\x93NUMPY"):
        return " (if it is a digit image: `bpnet predict WEIGHTS IMAGE`)"
    return ""


def load_npz(path, what="weights file", shape_of=None):
    """Every array of an .npz as a dict, each header checked before its data is read, the
    total bounded by the ``weights_bytes`` limit; refuses pickles and anything not an .npz.
    ``shape_of(key)``, if given, is the shape an array must have (None: any)."""
    with Npz(path, what) as z:
        for key, (shape, _) in z.headers.items():
            expected = shape_of(key) if shape_of else None
            if expected is not None and shape != tuple(expected):
                z.fail(f"{excerpt(key, 40)} has shape {excerpt(shape)}, expected {tuple(expected)}")
        z.check_total()
        return {k: z.read(k) for k in z.headers}
