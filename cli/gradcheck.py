"""``bpnet gradcheck``: backpropagation against numerical gradients."""
from __future__ import annotations

import time

import click
import numpy as np
from click.core import ParameterSource

from bpnet.cli.common import (config_options, data_dir_option, debug_option, echo_json,
                              format_table, handle_errors, load_config_from_cli, threads_option)
from bpnet.data.home import dataset_dir
from bpnet.data.idx import DataCorrupt, DataMissing, load_split, prepare
from bpnet.nn import MultiLayerNet
from bpnet.nn.gradcheck import DEFAULT_H, DEFAULT_TOL, check_layers, check_network
from bpnet.training.config import INPUT_SIZE, OUTPUT_SIZE, defaults, network_kwargs

TOL_HELP = (
    "Largest relative error |a-n|/max(|a|,|n|,tiny) that passes [default: 1e-7]. In float64 a "
    "correct backward agrees with centered differences to about 1e-9 or better, while a wrong "
    "one is off by 1e-3 or more, so 1e-7 separates them with margin on both sides. Gradients "
    "smaller than 'tiny' (float64's resolution for the step, shown in the output) are compared "
    "against tiny instead of themselves.")


DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


def _batch(data_dir, dataset, samples, rng):
    """(x, t, source): real training images scaled to [0, 1] if present, else synthetic ones."""
    folder, title = dataset_dir(data_dir, dataset), DATASET_NAMES[dataset]
    try:
        images, labels = load_split(data_dir, dataset, "train")
        idx = rng.choice(len(images), size=samples, replace=False)
        x, t = prepare(images[idx], labels[idx], dtype=np.float64)
        return x, t, f"{samples} {title} training images from {folder}"
    except DataMissing:
        note = f"no {title} in {folder}"
    except DataCorrupt as e:
        note = f"{title} unreadable ({e})"
    x = rng.random((samples, INPUT_SIZE))
    t = rng.integers(0, OUTPUT_SIZE, size=samples)
    return x, t, f"{samples} synthetic images ({note})"


def _parse_hidden(hidden):
    try:
        sizes = [int(s) for s in hidden.split(",") if s.strip()]
        if any(s < 1 for s in sizes):
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"expected positive integers separated by commas, got {hidden!r}",
                                 param_hint="--hidden") from None
    return sizes


def _config(config, sets, hidden, activation, data_dir):
    """The config whose model is checked: --config's, or the defaults with --hidden/--activation."""
    if config is None:
        if sets:
            raise click.UsageError("--set needs --config")
        cfg = defaults()
        cfg["model"].update(hidden=_parse_hidden(hidden), activation=activation)
        cfg["data_dir"] = data_dir
        return cfg
    ctx = click.get_current_context()
    for name in ("hidden", "activation"):
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE:
            raise click.UsageError(f"--{name} cannot be combined with --config; "
                                   f"use --set model.{name}=... instead")
    return load_config_from_cli(config, sets, data_dir=data_dir)


@click.command(short_help="Check backprop against numerical gradients.")
@click.option("--samples", type=click.IntRange(min=1), default=3, show_default=True,
              help="Images in the batch the whole network is checked on.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for the weights, the inputs and the sampled coordinates.")
@click.option("--tol", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TOL,
              help=TOL_HELP)
@click.option("--step", "h", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_H,
              show_default=True, help="Step h of the centered difference (f(x+h)-f(x-h))/2h.")
@click.option("--coords", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Coordinates checked per network parameter, a seeded sample.")
@click.option("--full", is_flag=True, help="Check every coordinate of every parameter.")
@click.option("--hidden", default="50", show_default=True,
              help="Hidden layer sizes, comma-separated (e.g. 100,50).")
@click.option("--activation", type=click.Choice(["relu", "sigmoid"]), default="relu",
              show_default=True, help="Hidden-layer activation.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@config_options(required=False)
@threads_option()
@data_dir_option
@debug_option
@handle_errors
def gradcheck(samples, seed, tol, h, coords, full, hidden, activation, as_json, config, sets,
              threads, data_dir):
    """Check backpropagation against numerical gradients in float64.

    Every layer type is checked on its own with random inputs, then every parameter of the
    whole network on a small batch. Exit status 0 when all pass, 1 when any fails.

    With --config the network is the config's model (hidden sizes, activation, weight_init,
    weight_decay, batchnorm, dropout with its masks held fixed) in float64, checked on images of its dataset scaled to [0, 1] whatever
    data.normalize says (on raw 0..255 pixels centered differences lose the accuracy the
    check needs); --hidden and --activation then give way to --set model.hidden=... etc.
    """
    cfg = _config(config, sets, hidden, activation, data_dir)
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    results = check_layers(tol=tol, h=h, rng=rng)
    x, t, source = _batch(cfg["data_dir"], cfg["dataset"], samples, rng)
    net = MultiLayerNet(**network_kwargs(cfg, dtype=np.float64), rng=rng, dropout_rng=rng)
    arch = net.describe()
    if cfg["name"]:
        arch += (f", weight_init {cfg['model']['weight_init']}, weight_decay {net.weight_decay:g}"
                 f" (config {cfg['name']})")
    results += check_network(net, x, t, tol=tol, h=h, max_coords=None if full else coords,
                             rng=rng, name="net", threads=threads)
    elapsed = time.perf_counter() - start
    failed = [r for r in results if not r.passed]
    if as_json:
        echo_json({"passed": not failed, "tol": tol, "step": h, "network": arch, "batch": source,
                   "config": cfg["name"],
                   "seconds": round(elapsed, 3), "checks": [r.as_dict() for r in results]})
    else:
        click.echo(f"gradcheck: float64, step {h:g}, tolerance {tol:g} relative")
        click.echo(f"network {arch}, checked on {source}")
        rows = [(r.name, "x".join(map(str, r.shape)), f"{r.checked}", f"{r.max_rel_err:.2e}",
                 f"{r.mean_abs_diff:.2e}", f"{r.tiny:.1e}", "PASS" if r.passed else "FAIL")
                for r in results]
        click.echo(format_table(["check", "shape", "coords", "max rel err", "mean |a-n|", "tiny",
                                 "result"], rows, "lrrrrrl"))
        if failed:
            click.echo(f"{len(failed)} of {len(results)} checks FAILED ({elapsed:.1f} s)")
        else:
            click.echo(f"all {len(results)} checks passed ({elapsed:.1f} s)")
    if failed:
        raise SystemExit(1)
