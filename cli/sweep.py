"""``bpnet sweep``: a hyperparameter search on Optuna, on every core and across machines."""

from __future__ import annotations

import time
from pathlib import Path

import click

from bpnet.base.text import printable
from bpnet.cli.common import (
    data_dir_option,
    debug_option,
    ensure_data,
    format_table,
    handle_errors,
    schema_option,
)
from bpnet.errors import InputError


def _list_sweeps(ctx, _param, value):
    if value:
        from bpnet.sweep.spec import list_sweeps

        click.echo(format_table(["sweep", "description"], list_sweeps(), "ll"))
        ctx.exit()


class TrialBar:
    """A tqdm bar over the study's finished trials with the best value so far."""

    def __init__(self, sweep, quiet):
        from tqdm import tqdm

        self.sweep, self.n = sweep, 0
        tqdm.monitor_interval = 0  # no monitor thread: the workers are forked after this
        self.bar = tqdm(
            total=sweep.n_trials,
            unit="trial",
            disable=True if quiet else None,
            dynamic_ncols=True,
            leave=False,
        )

    def __call__(self, study):
        from bpnet.sweep.results import best_trials, budget_trials

        done = [t for t in budget_trials(study, self.sweep) if t.state.is_finished()]
        self.bar.update(len(done) - self.n)
        self.n = len(done)
        best = best_trials(study, self.sweep, 1)
        if best:
            self.bar.set_postfix_str(
                f"best {self.sweep.metric} {best[0].value:.4f} (trial {best[0].number})"
            )

    def close(self):
        self.bar.close()


def _results(study, sweep, out, cli, k=10):
    """Print the table of the best trials; write trials.csv, best.yaml and sweep.png."""
    from bpnet.sweep.results import (
        best_trials,
        plot_sweep,
        trial_rows,
        write_best_yaml,
        write_trials_csv,
    )

    rows = {r["number"]: r for r in trial_rows(study, sweep)}
    states = {}
    for r in rows.values():
        states[r["state"]] = states.get(r["state"], 0) + 1
    best = best_trials(study, sweep, k)
    keys = [d.key for d in sweep.space]
    table = [
        [
            t.number,
            f"{t.value:.4f}",
            *(_fmt(t.params[key]) for key in keys),
            _fmt(rows[t.number]["seconds"]),
        ]
        for t in best
    ]
    click.echo(
        f"{len(rows)} of {sweep.n_trials} trials: "
        + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items()))
    )
    if table:
        click.echo(format_table(["trial", sweep.metric, *keys, "seconds"], table))
    write_trials_csv(study, sweep, out / "trials.csv")
    written = [out / "trials.csv"]
    best_yaml = write_best_yaml(study, sweep, out / "best.yaml", cli)
    if best_yaml:
        written.append(out / "best.yaml")
    try:
        plot_sweep(study, sweep, out / "sweep.png")
        written.append(out / "sweep.png")
    except Exception as e:  # matplotlib missing: say so, the rest stands
        from bpnet.apps.plots import PlotUnavailable

        if not isinstance(e, PlotUnavailable):
            raise
        click.echo(f"no picture: {e}")
    click.echo("wrote " + ", ".join(map(printable, written)))
    if best_yaml:
        best = printable(out / "best.yaml")
        click.echo(f"retrain the best on all images: bpnet train --config {best}")


def _fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@click.command(short_help="Search hyperparameters with Optuna on every core (and machines).")
@click.argument("sweep_file", required=False, metavar="SWEEP.yaml")
@click.option(
    "--config",
    "config",
    metavar="PATH|NAME",
    help="The sweep file (same as the argument): a path or a shipped sweep's name.",
)
@click.option(
    "--list",
    "list_",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_list_sweeps,
    help="List the shipped sweeps and exit.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    help="Worker processes, one trial each [default: the cores this process may use].",
)
@click.option(
    "--storage",
    metavar="URL",
    help="Optuna storage shared by every process and machine of the study: "
    "postgresql://…, mysql://…, sqlite:///…, redis://…, or a journal file "
    "[default: OUT/journal.log].",
)
@click.option("--study", "study_name", help="Study name [default: the sweep's name].")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Folder for journal, trials.csv, best.yaml, sweep.png [default: sweeps/<name>].",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=1),
    default=10.0,
    show_default=True,
    help="Seconds without a heartbeat after which a running trial counts as FAIL "
    "(its process died).",
)
@data_dir_option
@click.option("--offline", is_flag=True, help="Never download missing data.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@schema_option("sweep")
@debug_option
@handle_errors
def sweep(sweep_file, config, jobs, storage, study_name, out, grace, data_dir, offline, quiet):
    """Run the hyperparameter search a sweep file describes (see --list) as an Optuna study.

    Running the same command again, or on another machine with the same --storage and
    --study, joins the same study: the trial budget is global. A study belongs to the sweep
    that made it: another sweep file is refused by name. Ctrl-C (or SIGTERM) stops the
    workers and puts their trials back; the same command continues and runs them again.
    """
    from bpnet.sweep.interrupts import exit_status
    from bpnet.sweep.spec import load_sweep
    from bpnet.sweep.study import find_study, storage_kind
    from bpnet.sweep.urls import shown
    from bpnet.sweep.workers import default_jobs, run_sweep

    if sweep_file and config and sweep_file != config:
        raise click.UsageError("give the sweep file once: as the argument or as --config")
    if not (sweep_file or config):
        raise click.UsageError("missing the sweep file: bpnet sweep SWEEP.yaml (see --list)")
    cli = {"data_dir": data_dir} if data_dir else None
    sw = load_sweep(sweep_file or config, cli)
    out = Path(out or f"sweeps/{sw.name}")
    if out.exists() and not out.is_dir():
        raise InputError(f"{printable(out)}: exists and is not a folder")
    if storage:
        storage_kind(storage)  # refused here if it cannot work, before any file or process
    out.mkdir(parents=True, exist_ok=True)
    storage = storage or str(out / "journal.log")
    storage_kind(storage)
    study_name = study_name or sw.name
    jobs = jobs or default_jobs()
    ensure_data(sw.base["dataset"], sw.base["data_dir"], offline, quiet)
    if not quiet:
        click.echo(
            f"sweep {sw.name}: {sw.n_trials} trials, {sw.sampler} sampler, {sw.metric}, "
            f"{jobs} worker(s), study {printable(study_name)} in {printable(shown(storage))}"
        )
    bar = TrialBar(sw, quiet)
    started = time.perf_counter()
    try:
        study = run_sweep(sw, storage, study_name, jobs, cli, monitor=bar, grace=grace)
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM or SIGHUP: the workers have stopped
        bar.close()
        study = find_study(sw, storage, study_name)
        if study is not None:
            _results(study, sw, out, cli)
        click.echo(
            "interrupted; run the same command to continue the study (interrupted trials "
            "run again)",
            err=True,
        )
        raise SystemExit(exit_status(e)) from None
    bar.close()
    if not quiet:
        click.echo(f"done in {time.perf_counter() - started:.1f} s")
    _results(study, sw, out, cli)
