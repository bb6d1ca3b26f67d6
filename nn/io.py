"""Weights and checkpoints as .npz, written atomically and read without pickle.

A weights file holds W1, b1 … Wn, bn and ``meta``, a JSON string with at least
``sizes``, ``activation``, ``dataset``, ``normalize`` and ``dtype``. With
``meta.batchnorm`` it also holds gamma{i}, beta{i}, running_mean{i}, running_var{i} for
every hidden layer i; ``meta.dropout`` is the training dropout ratio (inference scales by
1 − dropout). Files without these keys mean false / 0.0.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from .errors import InputError
from .files import atomic_write
from .network import ACTIVATIONS, MultiLayerNet, buffer_shapes, param_shapes

FORMAT = "bpnet-weights"


class WeightsError(InputError):
    """A weights or checkpoint file that cannot be used (exit status 2)."""


def atomic_write_text(path, text):
    with atomic_write(path) as fh:
        fh.write(text.encode("utf-8"))


def save_npz(path, arrays):
    """np.savez of ``arrays`` (str values become 0-d unicode arrays), atomically."""
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    with atomic_write(path) as fh:
        np.savez(fh, **arrays)


def load_npz(path, what="weights file"):
    """Every array of an .npz as a dict; refuses pickled objects and unreadable files."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such {what}")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise WeightsError(f"{path}: holds pickled object arrays, which are never loaded") from None
        raise WeightsError(f"{path}: not a readable .npz {what} ({e})") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as e:
        raise WeightsError(f"{path}: not a readable .npz {what} ({type(e).__name__}: {e})") from None


def save_weights(path, params, meta):
    """Write parameters and ``meta`` (a dict, stored as JSON) to ``path``."""
    meta = {"format": FORMAT, **meta}
    save_npz(path, {**params, "meta": json.dumps(meta, sort_keys=True)})


def _meta(path, arrays):
    if "meta" not in arrays:
        raise WeightsError(f"{path}: no 'meta' entry; expected a bpnet weights file")
    try:
        meta = json.loads(str(arrays["meta"][()]))
    except (ValueError, TypeError) as e:
        raise WeightsError(f"{path}: 'meta' is not valid JSON ({e})") from None
    sizes = meta.get("sizes") if isinstance(meta, dict) else None
    if not (isinstance(sizes, list) and len(sizes) >= 2
            and all(isinstance(s, int) and s > 0 for s in sizes)):
        raise WeightsError(f"{path}: meta.sizes must be a list of at least 2 positive integers")
    if meta.get("activation") not in ACTIVATIONS:
        raise WeightsError(f"{path}: meta.activation must be one of {sorted(ACTIVATIONS)}, "
                           f"got {meta.get('activation')!r}")
    meta.setdefault("batchnorm", False)
    meta.setdefault("dropout", 0.0)
    if not isinstance(meta["batchnorm"], bool):
        raise WeightsError(f"{path}: meta.batchnorm must be true or false, got {meta['batchnorm']!r}")
    dropout = meta["dropout"]
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise WeightsError(f"{path}: meta.dropout must be a number in [0, 1), got {dropout!r}")
    return meta


def load_weights(path):
    """(params, meta) from a weights file, checking keys, shapes, dtypes and finiteness."""
    arrays = load_npz(path)
    meta = _meta(path, arrays)
    sizes = meta["sizes"]
    expected = {**param_shapes(sizes, meta["batchnorm"]), **buffer_shapes(sizes, meta["batchnorm"])}
    keys = set(arrays) - {"meta"}
    if keys != set(expected):
        missing, extra = sorted(set(expected) - keys), sorted(keys - set(expected))
        raise WeightsError(f"{path}: arrays {sorted(keys)} do not match layer sizes {sizes} "
                           f"(missing {missing}, unexpected {extra})")
    dtypes = {arrays[k].dtype for k in expected}
    for key, shape in expected.items():
        a = arrays[key]
        if a.shape != shape:
            raise WeightsError(f"{path}: {key} has shape {a.shape}, expected {shape}")
        if a.dtype not in (np.float32, np.float64):
            raise WeightsError(f"{path}: {key} has dtype {a.dtype}, expected float32 or float64")
        if not np.all(np.isfinite(a)):
            raise WeightsError(f"{path}: {key} contains NaN or infinite values")
    if len(dtypes) != 1:
        raise WeightsError(f"{path}: arrays mix dtypes {sorted(map(str, dtypes))}")
    return {k: arrays[k] for k in expected}, meta


def network_from_weights(path, dtype=None):
    """(MultiLayerNet in inference mode, meta) rebuilt from a weights file; dtype defaults
    to the file's."""
    params, meta = load_weights(path)
    sizes = meta["sizes"]
    net = MultiLayerNet(sizes[0], sizes[1:-1], sizes[-1], activation=meta["activation"],
                        dtype=dtype or params["W1"].dtype, batchnorm=meta["batchnorm"],
                        dropout=meta["dropout"])
    net.set_params(params)
    net.training = False
    return net, meta
