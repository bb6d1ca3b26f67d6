"""Pictures: metrics curves and error grids decode as PNGs of the promised size; without
matplotlib the commands say how to install it and exit 1."""

import sys

import numpy as np
import pytest
from click.testing import CliRunner
from pngs import png_size

from bpnet.apps.plots import CELL_SIZE, DPI, error_grid, most_confident_errors, plot_metrics
from bpnet.cli.main import main
from bpnet.errors import InputError

HEADER = "epoch,iteration,lr,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,elapsed"


def write_metrics(folder, epochs=5, val=False):
    rows = [HEADER]
    for e in range(1, epochs + 1):
        v = f"{0.5 / e:.4f},{0.9 + e / 100:.4f}" if val else ","
        rows.append(
            f"{e},{e * 600},0.01,{1 / e:.4f},{0.8 + e / 50:.4f},{v},"
            f"{0.6 / e:.4f},{0.85 + e / 60:.4f},{e * 3.5}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    return folder


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(autouse=True)
def _matplotlib():
    pytest.importorskip("matplotlib")


def test_plot_writes_metrics_png_in_the_run_dir(tmp_path):
    run_dir = write_metrics(tmp_path / "run")
    r = run("plot", run_dir)
    assert r.exit_code == 0, r.output
    assert r.output == f"wrote {run_dir / 'metrics.png'}\n"
    assert png_size(run_dir / "metrics.png") == (1000, 400)
    assert sorted(p.name for p in run_dir.iterdir()) == ["metrics.csv", "metrics.png"]


def test_plot_output_option_and_validation_split(tmp_path):
    run_dir = write_metrics(tmp_path / "run", val=True)
    out = tmp_path / "curves.png"
    assert run("plot", run_dir, "-o", out).exit_code == 0
    assert png_size(out) == (1000, 400)
    # the CSV itself works as the argument too
    assert run("plot", run_dir / "metrics.csv", "-o", tmp_path / "again.png").exit_code == 0
    assert png_size(tmp_path / "again.png") == (1000, 400)


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "metrics.csv: no such file"),
        (HEADER + "\n", "no evaluations recorded yet"),
        ("a,b\n1,2\n", "expected a metrics CSV with an 'epoch' column"),
        (
            HEADER + "\n1,600,0.1,0.5,0.9,,,0.4,zero,3\n",
            "line 2, column test_acc: expected a number",
        ),
        (HEADER + "\n1,600,0.1\n", "line 2 has 3 cells, expected 10"),
    ],
)
def test_bad_metrics_are_one_line_exit_2(tmp_path, content, message):
    if content is not None:
        (tmp_path / "metrics.csv").write_text(content)
    r = run("plot", tmp_path)
    assert r.exit_code == 2
    assert r.output.startswith("bpnet: error: ") and message in r.output
    assert r.output.count("\n") == 1
    assert not (tmp_path / "metrics.png").exists()


def test_plot_refuses_other_formats_and_missing_folders(tmp_path):
    run_dir = write_metrics(tmp_path / "run")
    r = run("plot", run_dir, "-o", tmp_path / "curves.jpg")
    assert r.exit_code == 2 and "expected a .png file name" in r.output
    r = run("plot", run_dir, "-o", tmp_path / "nowhere" / "c.png")
    assert r.exit_code == 2 and "does not exist" in r.output


def test_without_matplotlib_one_line_exit_1_and_good_file_kept(tmp_path, monkeypatch):
    run_dir = write_metrics(tmp_path / "run")
    (run_dir / "metrics.png").write_bytes(b"an older picture")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    r = run("plot", run_dir)
    assert r.exit_code == 1
    assert r.output == (
        "bpnet: error: drawing needs matplotlib, which is not installed: "
        "pip install 'bpnet[plot]'\n"
    )
    assert (run_dir / "metrics.png").read_bytes() == b"an older picture"
    with pytest.raises(Exception, match="pip install 'bpnet\\[plot\\]'"):
        error_grid(np.zeros((1, 28, 28)), [1], [2], [0.9], tmp_path / "e.png")


def test_most_confident_errors_orders_wrong_rows_by_confidence():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.05, 0.95], [0.3, 0.7]])
    labels = np.array([0, 0, 1, 0, 1])
    assert most_confident_errors(probs, labels, 10).tolist() == [3, 1, 2]
    assert most_confident_errors(probs, labels, 2).tolist() == [3, 1]
    assert most_confident_errors(probs, np.array([0, 1, 0, 1, 1]), 5).tolist() == []


@pytest.mark.parametrize("n,cols,grid", [(16, 8, (8, 2)), (5, 8, (5, 1)), (7, 3, (3, 3))])
def test_error_grid_size_follows_the_cell_count(tmp_path, n, cols, grid):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
    out = error_grid(
        images,
        rng.integers(0, 10, n),
        rng.integers(0, 10, n),
        rng.random(n),
        tmp_path / "errors.png",
        cols=cols,
    )
    assert out == tmp_path / "errors.png"
    cols, rows = grid
    assert png_size(out) == (round(cols * CELL_SIZE[0] * DPI), round(rows * CELL_SIZE[1] * DPI))
    assert [p.name for p in tmp_path.iterdir()] == ["errors.png"]
    with pytest.raises(InputError, match="no misclassified images"):
        error_grid(images[:0], [], [], [], tmp_path / "none.png")


def test_metrics_png_shows_the_curves(tmp_path):
    """The drawing is not blank: both panels hold coloured curve pixels."""
    Image = pytest.importorskip("PIL.Image")
    run_dir = write_metrics(tmp_path / "run", epochs=20)
    out = plot_metrics(run_dir / "metrics.csv", tmp_path / "m.png")
    rgb = np.asarray(Image.open(out).convert("RGB")).astype(int)
    coloured = np.abs(rgb - rgb.mean(axis=2, keepdims=True)).max(axis=2) > 60
    assert coloured[:, :500].sum() > 500 and coloured[:, 500:].sum() > 500


def test_pictures_get_ordinary_file_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        out = plot_metrics(write_metrics(tmp_path / "run") / "metrics.csv", tmp_path / "m.png")
    finally:
        os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o644


def test_plot_reads_both_metrics_layouts(tmp_path):
    """A run's metrics.csv as the trainer writes it now (with train_penalty) and one from
    before that column: both plot, and the loss curves are the cross-entropy columns."""
    from toy import run as train
    from toy import toy_cfg, toy_data

    from bpnet.apps.plots import read_metrics

    new = tmp_path / "new"
    train(toy_cfg(tmp_path, **{"train.weight_decay": 0.01}), toy_data(), new)
    header = (new / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "train_penalty" in header and header != HEADER.split(",")
    old = write_metrics(tmp_path / "old", val=True)
    for run_dir in (new, old):
        r = run("plot", run_dir)
        assert r.exit_code == 0, r.output
        assert png_size(run_dir / "metrics.png") == (1000, 400)
    m = read_metrics(new / "metrics.csv")
    assert np.all(m["train_penalty"] > 0) and np.all(np.isfinite(m["val_loss"]))
