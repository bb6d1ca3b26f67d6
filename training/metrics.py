"""A run's ``metrics.csv``: one row per evaluation, in these columns. Every ``*_loss`` is the
mean cross-entropy; the weight-decay term of the training objective is ``train_penalty``."""

from __future__ import annotations

import csv
import io

METRIC_COLUMNS = [
    "epoch",
    "iteration",
    "lr",
    "train_loss",
    "train_acc",
    "train_penalty",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "elapsed",
]


def cell(v):
    """A value as metrics.csv writes it: floats to 6 significant digits, None empty."""
    if v is None:
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def metrics_csv(rows):
    """The text of a metrics.csv holding ``rows`` (dicts keyed by METRIC_COLUMNS)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, METRIC_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: cell(row.get(k)) for k in METRIC_COLUMNS})
    return buf.getvalue()
