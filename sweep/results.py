"""What a sweep leaves: the table of trials, trials.csv, the winner's config and the picture."""

from __future__ import annotations

import csv
import io

from bpnet.base.files import atomic_write
from bpnet.sweep.spec import _label
from bpnet.sweep.study import _optuna
from bpnet.training.config import dump_config


def trial_rows(study, sweep):
    """One dict per trial: number, state, value, each parameter, last metrics, seconds, error."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        curve = t.user_attrs.get("curve") or {}
        row = {"number": t.number, "state": t.state.name, "value": t.value}
        for d in sweep.space:
            row[d.key] = t.params.get(d.key)
        for k in ("val_acc", "val_loss", "train_acc", "train_loss"):
            row[k] = curve[k][-1] if curve.get(k) else None
        row["epochs"] = curve["epoch"][-1] if curve.get("epoch") else None
        row["seconds"] = t.user_attrs.get("seconds")
        row["error"] = t.user_attrs.get("error", "")
        rows.append(row)
    return rows


def best_trials(study, sweep, k=10):
    optuna = _optuna()
    done = list(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    return sorted(done, key=lambda t: -t.value if sweep.direction == "maximize" else t.value)[:k]


def write_trials_csv(study, sweep, path):
    rows = trial_rows(study, sweep)
    buf = io.StringIO()
    cols = list(rows[0]) if rows else ["number", "state", "value"]
    w = csv.DictWriter(buf, cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if v is None else v for k, v in r.items()})
    with atomic_write(path) as fh:
        fh.write(buf.getvalue().encode())


def best_config(study, sweep, cli=None):
    """The winner's complete config for ``bpnet train --config``: its parameters on the base
    config, ``data.subset`` dropped (null: all training images), named ``<sweep>-best``."""
    best = best_trials(study, sweep, 1)
    if not best:
        return None, None
    t = best[0]
    params = {}
    for d in sweep.space:
        v = t.params[d.key]
        params[d.key] = (
            d.values[[_label(c) for c in d.values].index(v)] if d.kind == "choice" else v
        )
    cfg = sweep.trial_config(params, cli, number=t.number)
    cfg["data"]["subset"] = None
    cfg["name"], cfg["output"]["dir"] = f"{sweep.name}-best", None
    return t, cfg


def write_best_yaml(study, sweep, path, cli=None):
    t, cfg = best_config(study, sweep, cli)
    if t is None:
        return None
    head = (
        f"# Best trial {t.number} of sweep {sweep.name}: {sweep.metric} {t.value:.6g}\n"
        f"# (data.subset dropped: `bpnet train --config {path}` retrains it on all images)\n"
    )
    with atomic_write(path) as fh:
        fh.write((head + dump_config(cfg)).encode())
    return t


def plot_sweep(study, sweep, path, k=10):
    """The book's picture: validation curves of the ``k`` best trials, and the sampled points of
    the first two float dimensions coloured by the metric."""
    from bpnet.apps.plots import _figure, save_png

    fig = _figure((11.0, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    for t in best_trials(study, sweep, k):
        curve = t.user_attrs.get("curve") or {}
        if curve.get("epoch"):
            ax1.plot(curve["epoch"], curve[sweep.metric], label=f"#{t.number} {t.value:.3f}")
    ax1.set(
        xlabel="epoch",
        ylabel=sweep.metric.replace("_", " "),
        title=f"best {k} trials of {sweep.name}",
    )
    if ax1.lines:
        ax1.legend(fontsize=7)
    dims = [d for d in sweep.space if d.kind in ("log_uniform", "uniform", "int")][:2]
    done = [t for t in study.get_trials(deepcopy=False) if t.value is not None]
    if len(dims) == 2 and done:
        xs = [t.params[dims[0].key] for t in done]
        ys = [t.params[dims[1].key] for t in done]
        sc = ax2.scatter(xs, ys, c=[t.value for t in done], cmap="viridis", s=18)
        ax2.set(xlabel=dims[0].key, ylabel=dims[1].key, title="sampled points")
        ax2.set_xscale("log" if dims[0].kind == "log_uniform" else "linear")
        ax2.set_yscale("log" if dims[1].kind == "log_uniform" else "linear")
        fig.colorbar(sc, ax=ax2, label=sweep.metric)
    else:
        ax2.set_axis_off()
    fig.tight_layout()
    save_png(fig, path)
