"""``bpnet gradcheck``: backpropagation against numerical gradients."""

from __future__ import annotations

import click
from click.core import ParameterSource

from bpnet.cli.common import (
    config_options,
    data_dir_option,
    debug_option,
    echo_json,
    format_table,
    handle_errors,
    load_config_from_cli,
    threads_option,
)
from bpnet.nn.defaults import GRADCHECK_STEP, GRADCHECK_TOL

TOL_HELP = (
    f"Largest relative error |a-n|/max(|a|,|n|,tiny) that passes [default: {GRADCHECK_TOL:g}]. "
    "In float64 a correct backward agrees with centered differences to about 1e-9 or better, "
    "while a wrong one is off by 1e-3 or more, so the default separates them with margin on "
    "both sides. Gradients smaller than 'tiny' (float64's resolution for the step, shown in "
    "the output) are compared against tiny instead of themselves."
)


def _parse_hidden(hidden):
    try:
        sizes = [int(s) for s in hidden.split(",") if s.strip()]
        if any(s < 1 for s in sizes):
            raise ValueError
    except ValueError:
        raise click.BadParameter(
            f"expected positive integers separated by commas, got {hidden!r}", param_hint="--hidden"
        ) from None
    return sizes


def _config(config, sets, hidden, activation, data_dir):
    """The config whose model is checked: --config's, or the defaults with --hidden/--activation."""
    if config is None:
        if sets:
            raise click.UsageError("--set needs --config")
        from bpnet.training.config import defaults

        cfg = defaults()
        cfg["model"].update(hidden=_parse_hidden(hidden), activation=activation)
        cfg["data_dir"] = data_dir
        return cfg
    ctx = click.get_current_context()
    for name in ("hidden", "activation"):
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE:
            raise click.UsageError(
                f"--{name} cannot be combined with --config; use --set model.{name}=... instead"
            )
    return load_config_from_cli(config, sets, data_dir=data_dir)


@click.command(short_help="Check backprop against numerical gradients.")
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Images in the batch the whole network is checked on.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed for the weights, the inputs and the sampled coordinates.",
)
@click.option(
    "--tol", type=click.FloatRange(min=0, min_open=True), default=GRADCHECK_TOL, help=TOL_HELP
)
@click.option(
    "--step",
    "h",
    type=click.FloatRange(min=0, min_open=True),
    default=GRADCHECK_STEP,
    show_default=True,
    help="Step h of the centered difference (f(x+h)-f(x-h))/2h.",
)
@click.option(
    "--coords",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Coordinates checked per network parameter, a seeded sample.",
)
@click.option("--full", is_flag=True, help="Check every coordinate of every parameter.")
@click.option(
    "--hidden",
    default="50",
    show_default=True,
    help="Hidden layer sizes, comma-separated (e.g. 100,50).",
)
@click.option(
    "--activation",
    type=click.Choice(["relu", "sigmoid"]),
    default="relu",
    show_default=True,
    help="Hidden-layer activation.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@config_options(required=False)
@threads_option()
@data_dir_option
@debug_option
@handle_errors
def gradcheck(
    samples,
    seed,
    tol,
    h,
    coords,
    full,
    hidden,
    activation,
    as_json,
    config,
    sets,
    threads,
    data_dir,
):
    """Check backpropagation against numerical gradients in float64.

    Every layer type is checked on its own with random inputs, then every parameter of the
    whole network on a small batch. Exit status 0 when all pass, 1 when any fails.

    With --config the network is the config's model (hidden sizes, activation, weight_init,
    weight_decay, batchnorm, dropout with its masks held fixed) in float64, checked on images of
    its dataset scaled to [0, 1] whatever
    data.normalize says (on raw 0..255 pixels centered differences lose the accuracy the
    check needs); --hidden and --activation then give way to --set model.hidden=... etc.
    """
    from bpnet.training.check import check_config

    cfg = _config(config, sets, hidden, activation, data_dir)
    report = check_config(cfg, samples, seed, tol, h, None if full else coords, threads)
    results, failed, elapsed = report.results, report.failed, report.seconds
    if as_json:
        echo_json(
            {
                "passed": not failed,
                "tol": tol,
                "step": h,
                "network": report.network,
                "batch": report.batch,
                "config": cfg["name"],
                "seconds": round(elapsed, 3),
                "checks": [r.as_dict() for r in results],
            }
        )
    else:
        click.echo(f"gradcheck: float64, step {h:g}, tolerance {tol:g} relative")
        click.echo(f"network {report.network}, checked on {report.batch}")
        rows = [
            (
                r.name,
                "x".join(map(str, r.shape)),
                f"{r.checked}",
                f"{r.max_rel_err:.2e}",
                f"{r.mean_abs_diff:.2e}",
                f"{r.tiny:.1e}",
                "PASS" if r.passed else "FAIL",
            )
            for r in results
        ]
        click.echo(
            format_table(
                ["check", "shape", "coords", "max rel err", "mean |a-n|", "tiny", "result"],
                rows,
                "lrrrrrl",
            )
        )
        kinks = sum(r.kinks for r in results)
        if kinks:
            click.echo(
                f"{kinks} coordinate(s) left out: their ±step crossed a ReLU's 0 or a max "
                f"pooling's tie, where a centered difference is no derivative"
            )
        if failed:
            click.echo(f"{len(failed)} of {len(results)} checks FAILED ({elapsed:.1f} s)")
        else:
            click.echo(f"all {len(results)} checks passed ({elapsed:.1f} s)")
    if failed:
        raise SystemExit(1)
