"""Pictures: training curves from metrics.csv and grids of digits (misclassified ones, inputs).

matplotlib is an optional extra (``pip install 'bpnet[plot]'``), imported only when a picture is
drawn, and used through its Agg canvas (no window, no pyplot state). PNGs are written to a
temporary file in the target folder and moved into place, so a failed drawing never leaves a
partial file.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from bpnet.base.extras import ExtraMissing, require
from bpnet.base.files import atomic_write, describe, read_bytes
from bpnet.errors import InputError

DPI = 100
MAX_METRICS_BYTES = 64 * 1024**2  # a metrics.csv row is ~100 bytes: 600 000 evaluations
METRICS_SIZE = (10.0, 4.0)  # inches: 1000 x 400 pixels at DPI
CELL_SIZE = (1.3, 1.5)  # inches per digit of an error grid: 130 x 150 pixels at DPI
SPLITS = (("train", "train"), ("val", "validation"), ("test", "test"))


class PlotUnavailable(ExtraMissing):
    """matplotlib is not installed (exit status 1)."""


def _figure(size):
    """A matplotlib Figure of ``size`` inches on an Agg canvas."""
    require("matplotlib", "plot", "drawing", error=PlotUnavailable)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path):
    """Write ``fig`` to ``path`` as PNG atomically (temporary file, fsync, os.replace)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(f"{path}: expected a .png file name")
    if not path.parent.is_dir():
        raise InputError(f"{path}: folder {path.parent} does not exist")
    with atomic_write(path) as fh:
        fig.savefig(fh, format="png", dpi=DPI)
    return path


def read_metrics(csv_path):
    """metrics.csv as {column: float array}, NaN where a cell is empty."""
    csv_path = Path(csv_path)
    raw = read_bytes(csv_path, InputError, InputError, MAX_METRICS_BYTES, "a metrics CSV")
    try:
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error):
        rows = None
    if rows is None or "\x00" in raw[:512].decode("utf-8", "replace"):
        raise InputError(
            f"{csv_path}: not a metrics CSV: {describe(raw[:512])}; expected a run "
            f"directory or its metrics.csv"
        )
    if not rows or "epoch" not in rows[0]:
        raise InputError(f"{csv_path}: expected a metrics CSV with an 'epoch' column")
    header, body = rows[0], [r for r in rows[1:] if r]
    if not body:
        raise InputError(f"{csv_path}: no evaluations recorded yet")
    values = np.full((len(body), len(header)), np.nan)
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise InputError(f"{csv_path}: line {i} has {len(row)} cells, expected {len(header)}")
        for j, cell in enumerate(row):
            try:
                values[i - 2, j] = float(cell) if cell.strip() else np.nan
            except ValueError:
                raise InputError(
                    f"{csv_path}: line {i}, column {header[j]}: expected a number, got {cell!r}"
                ) from None
    return {name: values[:, j] for j, name in enumerate(header)}


def plot_metrics(csv_path, out_path):
    """Loss and accuracy against epoch for every split with values; returns out_path.

    The PNG is METRICS_SIZE × DPI pixels: loss on the left, accuracy (%) on the right.
    """
    m = read_metrics(csv_path)
    fig = _figure(METRICS_SIZE)
    axes = fig.subplots(1, 2)
    for ax, metric, title, factor in (
        (axes[0], "loss", "loss", 1.0),
        (axes[1], "acc", "accuracy (%)", 100.0),
    ):
        drawn = 0
        for colour, (split, label) in enumerate(SPLITS):
            y = m.get(f"{split}_{metric}")
            keep = np.isfinite(y) & np.isfinite(m["epoch"]) if y is not None else None
            if keep is None or not keep.any():
                continue
            ax.plot(
                m["epoch"][keep],
                y[keep] * factor,
                marker="o" if keep.sum() < 30 else None,
                markersize=3,
                label=label,
                color=f"C{colour}",
            )
            drawn += 1
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(Path(csv_path).resolve().parent.name)
    fig.tight_layout()
    return save_png(fig, out_path)


def most_confident_errors(probs, labels, k):
    """Indices of at most k misclassified rows, most confident (highest top probability) first.

    probs: (N, C) class probabilities; labels: (N,) true classes.
    """
    probs, labels = np.asarray(probs), np.asarray(labels)
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)
    confidence = probs[wrong, pred[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:k]]


def digit_grid(images, titles, path, cols=8, colour="black"):
    """Draw digits (N, H, W) as a grid, each under its title (up to two short lines); returns path.

    Pixels are 0..1 or 0..255 (taken from the maximum), drawn dark on light. The PNG is
    min(cols, N)·CELL_SIZE[0] by ceil(N / cols)·CELL_SIZE[1] inches at DPI.
    """
    images = np.asarray(images, dtype=np.float64)
    n = len(images)
    if n == 0:
        raise InputError("no images to draw")
    if images.ndim != 3 or len(titles) != n:
        raise ValueError(
            f"expected images (N, H, W) and N titles, got {images.shape} and {len(titles)}"
        )
    cols = max(1, min(int(cols), n))
    rows = math.ceil(n / cols)
    fig = _figure((cols * CELL_SIZE[0], rows * CELL_SIZE[1]))
    top = 255.0 if images.max() > 1.0 else 1.0
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.set_axis_off()
        if i < n:
            ax.imshow(images[i], cmap="gray_r", vmin=0.0, vmax=top, interpolation="nearest")
            ax.set_title(titles[i], fontsize=9, color=colour)
    fig.subplots_adjust(
        left=0.02,
        right=0.98,
        bottom=0.02,
        top=1 - 0.45 / (rows * CELL_SIZE[1]),
        wspace=0.1,
        hspace=0.45,
    )
    return save_png(fig, path)


def error_grid(images, true, pred, confidence, path, cols=8):
    """Misclassified digits (N, 28, 28), each titled with its true and predicted label and the
    prediction's confidence (0..1), as a ``digit_grid``; returns path."""
    if len(images) == 0:
        raise InputError("no misclassified images to draw")
    if not len(true) == len(pred) == len(confidence) == len(images):
        raise ValueError(
            f"expected {len(images)} labels and confidences, got {len(true)}, "
            f"{len(pred)}, {len(confidence)}"
        )
    titles = [
        f"true {int(t)}, pred {int(p)}\n{float(c):.1%}" for t, p, c in zip(true, pred, confidence)
    ]
    return digit_grid(images, titles, path, cols, colour="darkred")
