"""Weights and checkpoints as .npz, written atomically and read without pickle.

A weights file holds W1, b1 … Wn, bn and ``meta``, a JSON string with at least
``sizes``, ``activation``, ``dataset``, ``normalize`` and ``dtype``. With
``meta.batchnorm`` it also holds gamma{i}, beta{i}, running_mean{i}, running_var{i} for
every hidden layer i; ``meta.dropout`` is the training dropout ratio (inference scales by
1 − dropout). Files without these keys mean false / 0.0.
"""

from __future__ import annotations

import json
import math
import zipfile
import zlib
from pathlib import Path
from typing import Annotated, Literal, Optional

import annotated_types as at
import numpy as np
from pydantic import ConfigDict, ValidationError

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
from bpnet.base.schema import Expected, Flag, Integer, Model, Number, first_error
from bpnet.base.text import clip, excerpt, human, printable
from bpnet.data.specs import DATASETS
from bpnet.errors import InputError
from bpnet.nn.network import ACTIVATIONS, MultiLayerNet, buffer_shapes, param_shapes

FORMAT = "bpnet-weights"
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
MAX_LAYERS, MAX_UNITS = 1000, 10**8  # layers and units per layer in meta.sizes
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


def save_weights(path, params, meta):
    """Write parameters and ``meta`` (a dict, stored as JSON) to ``path``."""
    meta = {"format": FORMAT, **meta}
    save_npz(path, {**params, "meta": json.dumps(meta, sort_keys=True)})


Sizes = Annotated[
    list[Annotated[Integer, at.Gt(0), at.Le(MAX_UNITS)]],
    at.Len(2, MAX_LAYERS + 1),
    Expected(f"a list of 2 to {MAX_LAYERS + 1} integers in 1..{MAX_UNITS}"),
]
Text = Annotated[str, Expected("a string")]


class WeightsMeta(Model):
    """A weights file's ``meta``: what network it holds and how its inputs are scaled. Fields
    absent from older files take these defaults; fields bpnet does not know are kept as they
    are (``labels``, later versions' additions)."""

    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False)

    sizes: Sizes
    activation: Literal[tuple(ACTIVATIONS)]
    dataset: Literal[DATASETS] = "mnist"
    normalize: Flag = True
    dtype: Optional[Annotated[Literal["float32", "float64"], Expected("float32 or float64")]] = None
    batchnorm: Flag = False
    dropout: Annotated[Number, at.Ge(0), at.Lt(1)] = 0.0
    iteration: Optional[Annotated[Integer, at.Ge(0)]] = None
    format: Optional[Text] = None
    kind: Optional[Text] = None
    selected_on: Optional[Text] = None
    bpnet_version: Optional[Text] = None
    metrics: Optional[Annotated[dict, Expected("a mapping")]] = None
    config: Optional[Annotated[dict, Expected("a mapping")]] = None


def parse_json(path, text, what):
    """A JSON document from an untrusted file: too deep a nesting is a WeightsError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise WeightsError(
            f"{printable(path)}: {what} is nested too deeply to be bpnet's"
        ) from None
    except ValueError as e:
        raise WeightsError(f"{printable(path)}: {what} is not valid JSON ({clip(e)})") from None


def check_meta(path, meta):
    """``meta`` (parsed JSON) with every field :class:`WeightsMeta` declares (defaults filled
    in) if it describes a network bpnet can build, else WeightsError naming the field, what was
    expected and a short excerpt of what was found."""
    if not isinstance(meta, dict):
        raise WeightsError(f"{printable(path)}: meta: expected a JSON object, got {excerpt(meta)}")
    for key, info in WeightsMeta.model_fields.items():
        if info.is_required() and key not in meta:
            raise WeightsError(
                f"{printable(path)}: meta has no {key!r}; expected a bpnet weights file"
            )
    try:
        checked = WeightsMeta.model_validate(meta)
    except ValidationError as e:
        key, reason = first_error(WeightsMeta, e, meta, shown=excerpt)
        raise WeightsError(f"{printable(path)}: meta.{key}: {reason}") from None
    return {**meta, **checked.model_dump(exclude_none=True, exclude=set(checked.model_extra))}


def expected_arrays(meta):
    """{name: shape} of the arrays a weights file with this (checked) meta holds: W1, b1 …
    Wn, bn, and gamma{i}, beta{i}, running_mean{i}, running_var{i} of each hidden layer i
    when ``meta.batchnorm``."""
    sizes, batchnorm = meta["sizes"], meta["batchnorm"]
    return {**param_shapes(sizes, batchnorm), **buffer_shapes(sizes, batchnorm)}


def read_meta(path):
    """The checked ``meta`` of a weights file, without reading its arrays."""
    with Npz(path) as z:
        if "meta" not in z.headers:
            z.fail("no 'meta' entry; expected a bpnet weights file")
        return check_meta(path, parse_json(path, z.text("meta"), "meta"))


def _check_arrays(z, path):
    """(meta, {name: shape}) of the open weights file ``z`` once its meta, keys, shapes,
    dtypes and total size, all read from headers, are what a weights file holds."""
    if "meta" not in z.headers and "state" in z.headers:
        z.fail(_checkpoint_hint(Path(path)))
    if "meta" not in z.headers:
        z.fail(
            f"no 'meta' entry; expected a bpnet weights file (it holds "
            f"{excerpt(sorted(z.headers))})"
        )
    meta = check_meta(path, parse_json(path, z.text("meta"), "meta"))
    expected = expected_arrays(meta)
    keys = set(z.headers) - {"meta"}
    if keys != set(expected):
        missing, extra = sorted(set(expected) - keys), sorted(keys - set(expected))
        z.fail(
            f"arrays do not match layer sizes {excerpt(meta['sizes'])} (missing "
            f"{excerpt(missing)}, unexpected {excerpt(extra)})"
        )
    for key, shape in expected.items():
        found, dtype = z.headers[key]
        if found != shape:
            z.fail(f"{key} has shape {excerpt(found)}, expected {shape}")
        if dtype not in (np.float32, np.float64):
            z.fail(f"{key} has dtype {dtype}, expected float32 or float64")
    dtypes = {z.headers[k][1] for k in expected}
    if len(dtypes) != 1:
        z.fail(f"arrays mix dtypes {sorted(map(str, dtypes))}")
    z.check_total(expected)
    return meta, expected


def _check_finite(z, key, a):
    flat = a.reshape(-1)
    step = max(1, READ_CHUNK // a.itemsize)
    if not all(np.isfinite(flat[i : i + step]).all() for i in range(0, flat.size, step)):
        z.fail(f"{key} contains NaN or infinite values")


def load_weights(path):
    """(params, meta) from a weights file, checking keys, shapes, dtypes and sizes from the
    arrays' headers before reading their data, then finiteness."""
    with Npz(path) as z:
        meta, expected = _check_arrays(z, path)
        params = {}
        for key in expected:
            params[key] = z.read(key)
            _check_finite(z, key, params[key])
    return params, meta


def _checkpoint_hint(path):
    """What to read instead of a training checkpoint: the weights files beside it."""
    found = [
        f"{path.with_name(name)} ({what})"
        for name, what in (
            ("weights.npz", "the final weights"),
            ("best.npz", "the best on validation"),
        )
        if path.with_name(name).is_file()
    ]
    instead = (
        f": use {' or '.join(found)}"
        if found
        else f"; there is no weights.npz or best.npz beside it yet: `bpnet train --resume "
        f"{path.parent}` finishes the run"
    )
    return (
        "a training checkpoint (what bpnet train --resume continues from), not a weights "
        f"file{instead}"
    )


class _Unused:
    """The random generator of a network whose parameters are read from a file next: it draws
    nothing, so no random array the size of the weights is ever made."""

    @staticmethod
    def standard_normal(shape=None):
        return 0.0


def network_from_weights(path, dtype=None):
    """(MultiLayerNet in inference mode, meta) rebuilt from a weights file, checked as
    :func:`load_weights` checks it; dtype defaults to the file's. Each array is read straight
    into the network's own, so the network costs the memory of its weights once."""
    with Npz(path) as z:
        meta, expected = _check_arrays(z, path)
        sizes = meta["sizes"]
        net = MultiLayerNet(
            sizes[0],
            sizes[1:-1],
            sizes[-1],
            activation=meta["activation"],
            dtype=dtype or z.headers["W1"][1],
            rng=_Unused(),
            batchnorm=meta["batchnorm"],
            dropout=meta["dropout"],
        )
        arrays = net.state_arrays()
        for key in expected:
            if arrays[key].dtype == z.headers[key][1]:
                _check_finite(z, key, z.read_into(key, arrays[key]))
            else:  # another dtype: the file's values are checked before the cast
                a = z.read(key)
                _check_finite(z, key, a)
                arrays[key][...] = a
    net.training = False
    return net, meta
