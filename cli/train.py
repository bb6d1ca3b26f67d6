"""``bpnet train``: train a network from a YAML config into a run directory."""

from __future__ import annotations

import math
import shlex
import signal
from pathlib import Path

import click

from bpnet.base.text import printable
from bpnet.cli.common import (
    config_options,
    data_dir_option,
    debug_option,
    ensure_data,
    handle_errors,
    load_config_from_cli,
    schema_option,
    threads_option,
)


class BarProgress:
    """The Trainer's Progress hooks as a tqdm bar over iterations with the running loss, and
    one line per evaluation."""

    def __init__(self, quiet):
        self.quiet, self.bar, self.ema = quiet, None, None

    def start(self, total, done, iters_per_epoch):
        from tqdm import tqdm

        self.total, self.ipe = total, iters_per_epoch
        self.bar = tqdm(
            total=total,
            initial=done,
            unit="it",
            disable=True if self.quiet else None,
            dynamic_ncols=True,
            leave=False,
            mininterval=0.25,
        )

    def step(self, iteration, loss):
        self.ema = loss if self.ema is None else 0.98 * self.ema + 0.02 * loss
        self.bar.update(1)
        if iteration % 50 == 0:
            self.bar.set_postfix_str(f"loss {self.ema:.4f}", refresh=False)

    def evaluated(self, row):
        parts = [
            f"epoch {row['epoch']:.4g}/{self.total / self.ipe:.4g}",
            f"iter {row['iteration']}",
            f"lr {row['lr']:.3g}",
            f"train loss {row['train_loss']:.4f}",
            f"acc {row['train_acc']:.4f}",
        ]
        if row.get("train_penalty"):  # the weight-decay term, apart from the cross-entropy
            parts.append(f"penalty {row['train_penalty']:.4f}")
        for split in ("val", "test"):
            if f"{split}_acc" in row:
                parts.append(
                    f"{split} loss {row[f'{split}_loss']:.4f} acc {row[f'{split}_acc']:.4f}"
                )
        parts.append(f"{row['elapsed']:.1f} s")
        self.message("  ".join(parts))

    def message(self, text):
        if not self.quiet:
            (self.bar.write if self.bar is not None else click.echo)(text)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _already_trained(run_dir, cfg, done, data_dir):
    """What a second `bpnet train` of a run that went to its end says (and does nothing)."""
    from bpnet.training.rundir import resume_command

    m = done.metrics
    figures = [f"test accuracy {m['test_acc']:.4f}"] if m.get("test_acc") is not None else []
    if m.get("val_acc") is not None:
        figures.append(f"validation accuracy {m['val_acc']:.4f}")
    unit = "--iterations" if cfg["train"]["iterations"] else "--epochs"
    now = cfg["train"]["iterations"] or cfg["train"]["epochs"]
    evaluate = shlex.join(
        ["bpnet", "eval", str(run_dir)] + (["--data-dir", str(data_dir)] if data_dir else [])
    )
    return (
        f"{printable(run_dir)} already holds this run, trained to iteration {done.iteration} of "
        f"{done.total}: {', '.join(figures) or 'no figures'} -> "
        f"{printable(run_dir / 'weights.npz')}\n"
        f"evaluate it with `{evaluate}`; train it again by adding --force; train it longer "
        f"with `{resume_command(run_dir, data_dir, unit, 'N')}` (N > {now})"
    )


def _resuming(trainer):
    """The line of a resumed run: where it is, and a new length and what it does to the lr."""
    st, total, before = trainer.state, trainer.total, trainer.extended_from
    line = f"resuming {trainer.run_dir} at iteration {st.iteration} of {total}"
    if before is None and st.iteration >= total:
        line += " (it is finished; adding --epochs N or --iterations N trains it longer)"
    if before is None:
        return line
    line += f" (extended from {before})"
    kind = trainer.cfg["train"]["schedule"]
    if kind in ("cosine", "onecycle") and st.iteration < total:
        was, now = trainer.schedule(before)(st.iteration), trainer.lr_at(st.iteration)
        line += (
            f"; the {kind} schedule now spans {total} iterations: lr {now:.3g} from here "
            f"(the {before}-iteration schedule's was {was:.3g})"
        )
    return line


@click.command(short_help="Train a network from a YAML config into a run directory.")
@config_options(required=False)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    help="Shortcut for --set train.epochs=N (not with --iterations); with --resume, the "
    "run's new length.",
)
@click.option(
    "--iterations",
    type=click.IntRange(min=1),
    help="Shortcut for --set train.iterations=N (not with --epochs); with --resume, the "
    "run's new length.",
)
@click.option("--seed", type=click.IntRange(min=0), help="Shortcut for --set train.seed=N.")
@threads_option("; shortcut for --set train.threads=N")
@click.option(
    "--out", type=click.Path(file_okay=False), help="Run directory [default: runs/<config name>]."
)
@data_dir_option
@click.option("--force", is_flag=True, help="Overwrite an existing run directory.")
@click.option(
    "--resume",
    type=click.Path(file_okay=False, exists=True),
    help="Continue the run in this directory from its checkpoint (to a new length with "
    "--epochs or --iterations).",
)
@click.option("--offline", is_flag=True, help="Never download missing data.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no per-epoch lines.")
@schema_option("config")
@debug_option
@handle_errors
def train(
    config, sets, epochs, iterations, seed, threads, out, data_dir, force, resume, offline, quiet
):
    """Train a network as a YAML config describes (default: the shipped mnist.yaml) and
    save it into a run directory (default: runs/<config name>).

    Ctrl-C (or SIGTERM) stops after the current step, saving a checkpoint that
    --resume continues to the same weights an uninterrupted run gives. --resume RUN_DIR
    --epochs N (or --iterations N) trains a run, finished or not, on to a new length. A run
    of the same config that went to its end is not trained again (--force does).
    """
    from bpnet.training.batches import load_data
    from bpnet.training.rundir import check_new_run, check_resumable, finished_run
    from bpnet.training.sources import load_config
    from bpnet.training.trainer import StopFlag, Trainer

    ctx = click.get_current_context()
    if epochs is not None and iterations is not None:
        raise click.UsageError(
            "--epochs and --iterations cannot be combined: a run's length is "
            "counted in epochs or in iterations, not both"
        )
    if resume:
        given = [
            n
            for n in ("config", "sets", "seed", "out", "force")
            if ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            raise click.UsageError(
                f"--resume continues a run as it was configured (--epochs or --iterations "
                f"give it a new length); it cannot be combined with "
                f"--{given[0].replace('sets', 'set')}"
            )
        run_dir = check_resumable(resume)
        cfg = load_config(
            run_dir / "config.yaml",
            cli={
                "data_dir": data_dir,
                "train.threads": threads,
                "train.epochs": epochs,
                "train.iterations": iterations,
            },
        )
        cfg["output"]["dir"] = str(run_dir)
    else:
        cfg = load_config_from_cli(
            config or "mnist.yaml",
            sets,
            train_epochs=epochs,
            train_iterations=iterations,
            train_seed=seed,
            train_threads=threads,
            output_dir=out,
            data_dir=data_dir,
        )
        run_dir = Path(cfg["output"]["dir"])
        done = None if force else finished_run(run_dir, cfg)
        if done is not None and not done.differences:
            click.echo(_already_trained(run_dir, cfg, done, data_dir))
            return
        check_new_run(run_dir, force, data_dir, command=True, cfg=cfg)  # before loading any data
    ensure_data(cfg["dataset"], cfg["data_dir"], offline, quiet)
    data = load_data(cfg)
    progress, stop = BarProgress(quiet), StopFlag()
    trainer = Trainer(cfg, data, run_dir, progress, stop, replace=force)
    if resume:
        trainer.load_checkpoint(extend=epochs is not None or iterations is not None)
        if not quiet:
            click.echo(_resuming(trainer))
    elif not quiet:
        click.echo(
            f"training {trainer.net.describe()} on {cfg['dataset']} "
            f"({len(data.train)} train, {len(data.val) if data.val else 0} validation), "
            f"{trainer.total} iterations, {cfg['train']['optimizer']} lr "
            f"{cfg['train']['lr']:g}, {cfg['train']['dtype']}, into {printable(run_dir)}"
        )

    def on_signal(signum, _frame):
        if stop.requested:  # a second signal: stop now
            raise KeyboardInterrupt
        stop.requested = signal.Signals(signum).name

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = trainer.run()
    finally:
        progress.close()
        for s, h in previous.items():
            signal.signal(s, h)
    done = (
        f"done in {result['elapsed']:.1f} s: test accuracy "
        f"{result.get('test_acc', math.nan):.4f} -> {printable(run_dir / 'weights.npz')}"
    )
    st = trainer.state
    if trainer.selected_on == "val":
        done += (
            f"; best validation accuracy {st.best:.4f} (iteration {st.best_iteration}) -> "
            f"{printable(run_dir / 'best.npz')}"
        )
    else:
        done += "; no best.npz: without validation images (data.validation: 0) nothing is selected"
    click.echo(done)
