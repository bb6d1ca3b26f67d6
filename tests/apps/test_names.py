"""File names that hold newlines, carriage returns, escape sequences, bidirectional overrides or
bytes that are not UTF-8, given to real ``bpnet`` processes: every printed name is escaped, so
each file keeps its one line of ``predict``'s table, no error line splits in two, no name can
forge a line or reach the terminal raw, and ordinary Unicode is printed as it is. ``--json``
keeps the real names (JSON escapes them itself)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hostile import refused, run

from bpnet.base.text import display_width, printable

FORGED = "bpnet: all 10 images OK"
HOSTILE = [
    f"seven.npy\n{FORGED}",
    "over\rwrite.npy",
    "\x1b[2J\x1b[31mred\x1b[0m.npy",
    "tab\tand\x7fdel\x9b.npy",
    "\u202eypn.lave.npy",
    "line\u2028sep.npy",
    os.fsdecode(b"caf\xe9-latin1.npy"),
]
PLAIN = ["chiffre écrit 数字 7.npy"]


def digit():
    d = np.zeros((28, 28), np.uint8)
    d[6:22, 12:16] = 255
    return d


@pytest.fixture
def images(tmp_path):
    paths = []
    for name in HOSTILE + PLAIN:
        path = tmp_path / name
        with open(path, "wb") as fh:  # np.save would add .npy to a name ending otherwise
            np.save(fh, digit())
        paths.append(str(path))
    return paths


def clean(text):
    """No raw control, layout or undecodable character anywhere in ``text``."""
    text.encode("utf-8")
    bad = [c for c in text if c != "\n" and printable(c) != c]
    assert not bad, bad


def test_each_image_keeps_one_line_of_the_table(bpnet_exe, good_weights, images):
    r = run(bpnet_exe, "predict", good_weights, *images)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert len(lines) == len(images) and FORGED not in lines
    for line, path in zip(lines, images):
        assert line.startswith(printable(path) + " "), (line, path)
    clean(r.out)
    assert "\\n" + FORGED in r.out and "\\x1b[2J" in r.out and "\\u202e" in r.out
    assert "caf\\xe9-latin1.npy" in r.out and PLAIN[0] in r.out  # Unicode kept as it is
    columns = {display_width(line.rsplit("%", 3)[0]) for line in lines}
    assert len(columns) == 1, lines  # aligned, wide characters counted twice


def test_json_keeps_the_real_names(bpnet_exe, good_weights, images):
    r = run(bpnet_exe, "predict", good_weights, *images, "--json")
    assert r.code == 0, r.err
    assert [row["file"] for row in json.loads(r.out)] == images
    clean(r.out)


def test_error_lines_name_files_escaped(bpnet_exe, good_weights, tmp_path):
    weird = "bad\nbpnet: error: none\x1b[31m"
    cases = {}
    (tmp_path / f"{weird}.png").write_bytes(b"")
    cases["not an image"] = ([good_weights, tmp_path / f"{weird}.png"], "not a PNG")
    cases["missing image"] = ([good_weights, tmp_path / f"{weird}.npy"], "no such file")
    os.mkfifo(tmp_path / f"{weird}.fifo")
    cases["fifo image"] = ([good_weights, tmp_path / f"{weird}.fifo"], "FIFO")
    np.save(tmp_path / f"{weird}-3d.npy", np.zeros((2, 28, 28), np.uint8))
    cases["3-D array"] = ([good_weights, tmp_path / f"{weird}-3d.npy"], "expected a 2-D")
    np.save(tmp_path / f"{weird}-blank.npy", np.zeros((28, 28), np.uint8))
    cases["blank"] = ([good_weights, tmp_path / f"{weird}-blank.npy"], "blank image")
    (tmp_path / f"{weird}.npz").write_text("epoch,iteration,lr\n1,2,3\n")
    np.save(tmp_path / "ok.npy", digit())
    cases["not weights"] = ([tmp_path / f"{weird}.npz", tmp_path / "ok.npy"], "not a weights")
    cases["missing weights"] = ([tmp_path / f"{weird}-gone.npz", tmp_path / "ok.npy"], "no such")
    for case, (args, needle) in cases.items():
        culprit = next(a for a in args if weird in str(a))
        line = refused(run(bpnet_exe, "predict", *args), 2, needle, printable(culprit))
        clean(line)
        assert "bpnet: error: none" not in line.replace("\\nbpnet: error: none", ""), case
    r = run(bpnet_exe, "eval", tmp_path / f"{weird}.npz", "--offline")
    clean(refused(r, 2, printable(tmp_path / f"{weird}.npz")))


def test_export_says_where_it_wrote_on_one_line(bpnet_exe, good_weights, tmp_path):
    pytest.importorskip("onnx")
    for name in (f"model\n{FORGED}.onnx", "\x1b]0;title\x07.onnx", "modèle 数字.onnx"):
        out = tmp_path / name
        r = run(bpnet_exe, "export", good_weights, "-o", out)
        assert r.code == 0 and out.is_file(), r.err
        assert r.out == f"wrote {printable(out)}: 784-16-10 relu network, ONNX opset 21\n"
        clean(r.out)


def test_the_grid_is_never_drawn_over_an_input(bpnet_exe, good_weights, tmp_path):
    pytest.importorskip("matplotlib")
    Image = pytest.importorskip("PIL.Image")
    png = tmp_path / "four.png"
    Image.fromarray(digit()).save(png)
    (tmp_path / "link.png").symlink_to(png)
    before = png.read_bytes(), good_weights.read_bytes()
    for grid in (png, tmp_path / "link.png", tmp_path / "." / "four.png"):
        r = run(bpnet_exe, "predict", good_weights, png, "--grid", grid)
        refused(r, 2, "--grid", "is the input", "which the drawing would replace")
    weights_png = tmp_path / "weights.png"
    weights_png.write_bytes(good_weights.read_bytes())  # a weights file named .png
    r = run(bpnet_exe, "predict", weights_png, png, "--grid", weights_png)
    refused(r, 2, "--grid", "is the input")
    assert (png.read_bytes(), good_weights.read_bytes()) == before
    r = run(bpnet_exe, "predict", good_weights, png, "--grid", tmp_path / "grid.png")
    assert r.code == 0 and (tmp_path / "grid.png").is_file(), r.err


def test_grid_captions_escape_names():
    from bpnet.cli.predict import _caption

    caption = _caption({"file": "/x/a\nb\x1b.png", "top": [{"label": 3, "probability": 0.5}]})
    assert caption == "a\\nb\\x1b.png\n3 (50.0%)"
