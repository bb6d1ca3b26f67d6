"""The data a run trains on: the config's dataset as uint8 splits, the run's seeded random
streams, and network-ready mini-batches prepared a chunk ahead on another thread."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from bpnet.data.idx import load_arrays
from bpnet.nn.evaluate import to_input

# Batches come as their non-blank columns only (BatchStream) when the first layer has at least
# this many units. Gathering the columns costs the batch-preparing thread about 60 us a batch of
# 100; it saves the training thread 10% of its time at 100 units (1 thread, MNIST), 19% at 200,
# 28% at 400, and nothing at the lesson's 50, where it would only add the gathering's CPU time.
# Not with augmentation either: distorting the batches already keeps that thread's core busy
# (mnist-augment-fast: 6.5-7.0 s for 3 epochs with it, 6.4-6.7 s without).
COLUMNS_MIN_WIDTH = 100


@dataclass
class Split:
    """uint8 images (N, 784) and integer labels (N,)."""

    x: np.ndarray
    t: np.ndarray

    def __len__(self):
        return len(self.t)


@dataclass
class Data:
    train: Split
    val: Split | None
    test: Split | None


def as_split(x, t):
    """A Split of images flattened to rows and labels as int64."""
    return Split(x.reshape(len(x), -1), t.astype(np.int64))


def split_validation(x, t, n_val):
    """(train, val): the last ``n_val`` training images are held out for validation."""
    if n_val <= 0:
        return as_split(x, t), None
    return as_split(x[:-n_val], t[:-n_val]), as_split(x[-n_val:], t[-n_val:])


def load_data(cfg, arrays=None):
    """The config's dataset as uint8 splits: train (minus validation), val, test; with
    ``data.subset`` N, only the first N training images, of which the last ``data.validation``
    validate. ``arrays``: the dataset's arrays already loaded (``load_arrays``)."""
    a = arrays if arrays is not None else load_arrays(cfg["dataset"], cfg["data_dir"])
    n = cfg["data"].get("subset") or len(a["t_train"])
    train, val = split_validation(a["x_train"][:n], a["t_train"][:n], cfg["data"]["validation"])
    return Data(train, val, as_split(a["x_test"], a["t_test"]))


# Independent random streams derived from train.seed: weights, each epoch's order, and each
# iteration's distortions and dropout masks (so a resumed run draws exactly what an
# uninterrupted one does).
INIT_STREAM, SHUFFLE_STREAM, AUGMENT_STREAM, DROPOUT_STREAM = 0, 1, 2, 3


def seeded_rng(seed, *stream):
    """A generator for one purpose (stream) of a run: e.g. (SHUFFLE_STREAM, epoch)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=stream))


class Batch(NamedTuple):
    """Network input ``x``, labels ``t``, and ``cols``: None, or the input columns x holds
    (every other column of the batch is zero)."""

    x: np.ndarray
    t: np.ndarray
    cols: np.ndarray | None


class BatchStream:
    """Network-ready mini-batches of each epoch's permutation, prepared a chunk ahead.

    Epoch e's order depends only on (seed, e), so a resumed run sees the same batches. A
    background thread gathers the next chunk of ``chunk_batches`` batches from the uint8
    images and converts it to the input dtype while the current chunk trains; np.take
    and the conversion release the GIL, so this runs on another core. Two chunk buffers
    alternate: chunk k+1 is written while chunk k is read. ``augment(x, iteration)``, when
    given, replaces each batch by its augmented copy there too (its randomness a function of
    the iteration, so the batches are the same whichever thread makes them).

    With ``columns``, a batch whose images leave at least 1/8 of the pixels blank in every
    image comes as only its other columns (``Batch.cols``; see ``Affine.forward``): the first
    layer's products then skip those rows of W. Which columns these are depends only on the
    batch, so results stay the same run to run.
    """

    def __init__(
        self,
        x,
        t,
        seed,
        shuffle,
        batch_size,
        scale,
        dtype,
        pool,
        chunk_batches=50,
        augment=None,
        columns=False,
    ):
        self.x, self.t, self.seed, self.shuffle = x, t, seed, shuffle
        self.bs, self.scale, self.dtype, self.pool = batch_size, scale, dtype, pool
        self.augment, self.columns = augment, columns
        per_epoch = math.ceil(len(t) / batch_size)
        self.per_epoch = per_epoch
        self.cb = min(chunk_batches, per_epoch)  # batches per chunk
        self.chunks = math.ceil(per_epoch / self.cb)
        self.rows = min(self.cb * batch_size, len(t))
        self.buffers = [
            (
                np.empty((self.rows, x.shape[1]), dtype=x.dtype),
                np.empty((self.rows, x.shape[1]), dtype=dtype),
                np.empty(self.rows, dtype=t.dtype),
            )
            for _ in range(2)
        ]
        self.turn = 0
        self.perm = (None, None)  # (epoch, permutation) of the last epoch gathered
        self.current = self.ahead = None  # ((epoch, chunk), (x, t)) / ((epoch, chunk), future)

    def permutation(self, epoch):
        if not self.shuffle:
            return np.arange(len(self.t))
        return seeded_rng(self.seed, SHUFFLE_STREAM, epoch).permutation(len(self.t))

    def _gather(self, epoch, chunk, buffers):
        if self.perm[0] != epoch:
            self.perm = (epoch, self.permutation(epoch))
        start = chunk * self.cb * self.bs
        idx = self.perm[1][start : start + self.rows]
        ubuf, xbuf, tbuf = (b[: len(idx)] for b in buffers)
        np.take(self.t, idx, out=tbuf)
        first = epoch * self.per_epoch + chunk * self.cb  # the iteration of its first batch
        batches = []
        for b, lo in enumerate(range(0, len(idx), self.bs)):
            # gathered and converted a batch at a time, so its rows are still in cache when
            # converted (a whole chunk's float32 copy, 15.7 MB for the lesson, is not)
            hi = lo + self.bs
            np.take(self.x, idx[lo:hi], axis=0, out=ubuf[lo:hi])
            to_input(ubuf[lo:hi], self.scale, self.dtype, out=xbuf[lo:hi])
            x, t = xbuf[lo:hi], tbuf[lo:hi]
            if self.augment is not None:
                x[...] = self.augment(x, first + b)
            cols = self._blank_free(x if self.augment is not None else ubuf[lo : lo + self.bs])
            if cols is None:
                batches.append(Batch(x, t, None))
                continue
            compact = x.take(cols, axis=1)  # then moved to the start of the batch's own rows
            x = x.reshape(-1)[: compact.size].reshape(compact.shape)
            x[...] = compact
            batches.append(Batch(x, t, cols))
        return batches

    def _blank_free(self, x):
        """The columns of batch ``x`` not zero in every row, or None (keep them all) unless
        ``columns`` is set and at least 1/8 of the columns are blank."""
        if not self.columns:
            return None
        cols = np.flatnonzero(np.maximum.reduce(np.abs(x) if x.dtype.kind == "f" else x, axis=0))
        return cols if len(cols) <= x.shape[1] * 7 // 8 else None

    def _next_key(self, epoch, chunk):
        return (epoch, chunk + 1) if chunk + 1 < self.chunks else (epoch + 1, 0)

    def batch(self, epoch, pos):
        """Batch ``pos`` of ``epoch`` (x, t, cols): views valid until the next chunk is reached."""
        key = (epoch, pos // self.cb)
        if self.current is None or self.current[0] != key:
            if self.ahead is not None and self.ahead[0] == key:
                data = self.ahead[1].result()
            else:  # the first chunk, or a jump (a resumed run): gather it here
                if self.ahead is not None:
                    self.ahead[1].result()
                data = self._gather(*key, self.buffers[self.turn])
            self.current, self.turn = (key, data), 1 - self.turn
            ahead = self._next_key(*key)
            self.ahead = (ahead, self.pool.submit(self._gather, *ahead, self.buffers[self.turn]))
        return self.current[1][pos % self.cb]
