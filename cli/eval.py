"""``bpnet eval``: accuracy, loss, per-class accuracy and confusion matrix of a weights file."""

from __future__ import annotations

import click

from bpnet.base.text import printable
from bpnet.cli.common import (
    data_dir_option,
    debug_option,
    echo_json,
    ensure_data,
    format_table,
    handle_errors,
    threads_option,
)
from bpnet.nn.defaults import EVAL_BATCH


@click.command("eval", short_help="Accuracy, loss, per-class table and confusion matrix.")
@click.argument("weights", type=click.Path())
@click.option(
    "--split",
    type=click.Choice(["test", "train"]),
    default="test",
    show_default=True,
    help="Which MNIST split to evaluate on (train: all 60000 images).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=EVAL_BATCH,
    show_default=True,
    help="Images per forward pass.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--offline", is_flag=True, help="Never download missing data.")
@click.option(
    "--errors",
    "errors_png",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also draw the most confidently misclassified digits into this PNG "
    "(needs matplotlib: pip install 'bpnet[plot]').",
)
@click.option(
    "--errors-count",
    type=click.IntRange(1, 100),
    default=32,
    show_default=True,
    help="How many misclassified digits --errors draws.",
)
@threads_option()
@data_dir_option
@debug_option
@handle_errors
def eval_cmd(
    weights, split, batch_size, as_json, offline, errors_png, errors_count, threads, data_dir
):
    """Evaluate WEIGHTS.npz (or a run directory's weights.npz); the architecture and input
    scaling come from the file."""
    import numpy as np

    from bpnet.apps.plots import error_grid, most_confident_errors
    from bpnet.data.idx import load_split
    from bpnet.nn.evaluate import confusion_matrix, evaluate, input_scale
    from bpnet.training.rundir import weights_path
    from bpnet.training.weights import network_from_weights

    weights = weights_path(weights)
    net, meta = network_from_weights(weights)
    dataset = meta["dataset"]
    ensure_data(dataset, data_dir, offline, quiet=as_json, splits=(split,))
    images, labels = load_split(data_dir, dataset, split)
    labels = labels.astype(np.int64)
    scale = input_scale(meta["normalize"])
    loss, acc, pred, probs = evaluate(net, images, labels, scale, batch_size, threads)
    if errors_png:
        idx = most_confident_errors(probs, labels, errors_count)
        error_grid(
            images[idx].reshape(-1, 28, 28),
            labels[idx],
            pred[idx],
            probs[idx, pred[idx]],
            errors_png,
        )
    cm = confusion_matrix(labels, pred, net.output_size)
    support = cm.sum(axis=1)
    per_class = np.divide(np.diag(cm), support, out=np.full(len(cm), np.nan), where=support > 0)
    if as_json:
        echo_json(
            {
                "accuracy": acc,
                "loss": loss,
                "weights": str(weights),
                "dataset": dataset,
                "split": split,
                "images": int(len(labels)),
                "correct": int(np.trace(cm)),
                "per_class_accuracy": {str(c): float(a) for c, a in enumerate(per_class)},
                "confusion_matrix": cm.tolist(),
            }
        )
        return
    name = printable(weights)
    click.echo(f"{name}: {net.describe()}, {dataset} {split} split, {len(labels)} images")
    click.echo(f"accuracy {acc:.4f} ({int(np.trace(cm))}/{len(labels)})   mean loss {loss:.4f}")
    click.echo("")
    click.echo(
        format_table(
            ["class", "images", "correct", "accuracy"],
            [(c, support[c], cm[c, c], f"{per_class[c]:.4f}") for c in range(len(cm))],
        )
    )
    click.echo("")
    click.echo("confusion matrix (rows: true class, columns: predicted)")
    click.echo(format_table(["", *range(len(cm))], [(c, *cm[c]) for c in range(len(cm))]))
    if errors_png:
        click.echo(
            f"\nwrote the {min(errors_count, len(labels) - int(np.trace(cm)))} most "
            f"confident errors to {printable(errors_png)}"
        )
