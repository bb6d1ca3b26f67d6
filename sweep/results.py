"""What a sweep leaves: the table of trials, trials.csv, the winner's config and the picture."""

from __future__ import annotations

import csv
import io
import random

from bpnet.base.files import atomic_write
from bpnet.sweep.study import _optuna
from bpnet.training.config import dump_config

MAX_LABELS = 10  # choices a picture names one by one


def budget_trials(study, sweep, states=None):
    """The trials of the sweep's budget (numbered below ``n_trials``), by number."""
    found = study.get_trials(deepcopy=False, states=states)
    return sorted((t for t in found if t.number < sweep.n_trials), key=lambda t: t.number)


def state_name(trial):
    """Optuna's state name, or INTERRUPTED for a trial put back to run again."""
    if trial.state.name == "WAITING" and trial.user_attrs.get("interrupted"):
        return "INTERRUPTED"
    return trial.state.name


def trial_rows(study, sweep):
    """One dict per trial: number, state, value, each parameter, last metrics, seconds, error."""
    rows = []
    for t in budget_trials(study, sweep):
        curve = t.user_attrs.get("curve") or {}
        row = {"number": t.number, "state": state_name(t), "value": t.value}
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
    done = budget_trials(study, sweep, (optuna.trial.TrialState.COMPLETE,))
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
    params = {d.key: d.value_of(t.params[d.key]) for d in sweep.space}
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
    """The book's picture: the validation curves of the ``k`` best trials (the title counts
    those drawn), beside the trials' sampled values and what they scored: the first two
    numeric dimensions against each other, coloured by the metric; with one numeric
    dimension, the metric against it; with choices only, the metric against the first choice;
    with no space, the metric against the trial number. Points of a choice dimension are
    coloured by it when the axes leave one over."""
    from bpnet.apps.plots import _figure, save_png

    fig = _figure((11.0, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    best = [
        t for t in best_trials(study, sweep, k) if (t.user_attrs.get("curve") or {}).get("epoch")
    ]
    for t in best:
        curve = t.user_attrs["curve"]
        ax1.plot(curve["epoch"], curve[sweep.metric], label=f"#{t.number} {t.value:.3f}")
    finished = [t for t in budget_trials(study, sweep) if t.state.is_finished()]
    title = f"best {len(best)} of {len(finished)} trials of {sweep.name}"
    ax1.set(
        xlabel="epoch",
        ylabel=sweep.metric.replace("_", " "),
        title=title if best else f"{sweep.name}: no complete trial yet",
    )
    if best:
        ax1.legend(fontsize=7)
    done = [t for t in finished if t.state.name == "COMPLETE"]  # a pruned one has a value too
    _sampled(fig, ax2, sweep, done)
    fig.tight_layout()
    save_png(fig, path)


def _sampled(fig, ax, sweep, done):
    """The right panel of :func:`plot_sweep`."""
    metric = sweep.metric.replace("_", " ")
    numeric = [d for d in sweep.space if d.kind != "choice"]
    choices = [d for d in sweep.space if d.kind == "choice"]
    ax.set_title(f"sampled values of {len(done)} complete trials")
    if not done:
        ax.text(0.5, 0.5, "no complete trial yet", ha="center", va="center", transform=ax.transAxes)
        ax.set(xticks=[], yticks=[])
        return
    values = [t.value for t in done]
    if len(numeric) >= 2:
        x, y = numeric[:2]
        sc = ax.scatter(
            _axis(ax, "x", x, done), _axis(ax, "y", y, done), c=values, cmap="viridis", s=18
        )
        fig.colorbar(sc, ax=ax, label=metric)
        return
    if numeric:
        xs = _axis(ax, "x", numeric[0], done)
    elif choices:
        xs = _axis(ax, "x", choices[0], done)
        choices = choices[1:]
    else:
        xs = [t.number for t in done]
        ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    if choices and len(choices[0].labels) <= MAX_LABELS:  # colour by the next choice
        dim = choices[0]
        for i, label in enumerate(dim.labels):
            picked = [(x, v) for x, v, t in zip(xs, values, done) if t.params.get(dim.key) == label]
            if picked:
                ax.scatter(*zip(*picked), s=18, color=f"C{i % 10}", label=f"{dim.key} {label}")
        ax.legend(fontsize=7)
    else:
        ax.scatter(xs, values, s=18)


def _axis(ax, which, dim, done):
    """The coordinates of ``done`` trials along ``dim`` on ``ax``'s ``which`` axis, labelled
    (and log-scaled or ticked by choice as the dimension says)."""
    getattr(ax, f"set_{which}label")(dim.key)
    if dim.kind == "choice":
        if len(dim.labels) <= MAX_LABELS:
            ticks = range(len(dim.labels))
            getattr(ax, f"set_{which}ticks")(ticks, [str(lab) for lab in dim.labels])
        else:
            getattr(ax, f"set_{which}label")(f"{dim.key} (index of the choice)")
        index = {lab: i for i, lab in enumerate(dim.labels)}
        rng = random.Random(0)  # spread the points of one choice a little
        return [index[t.params[dim.key]] + rng.uniform(-0.15, 0.15) for t in done]
    getattr(ax, f"set_{which}scale")("log" if dim.kind == "log_uniform" else "linear")
    return [t.params[dim.key] for t in done]
