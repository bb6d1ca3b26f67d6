"""What an atomic write may replace: nothing but a regular file (or a link to one). A FIFO, a
device node, a socket or a folder where bpnet was to write, or a link to one, is refused before
anything is written and left as it was; a cache bpnet alone writes replaces any of them but a
folder. Checked on the library and on real ``bpnet`` processes for every command that writes a
file the user names."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import numpy as np
import pytest
from hostile import refused, run

from bpnet.base.files import NotRegularFile, atomic_write, replaceable, same_file
from bpnet.errors import InputError


def special_files(folder):
    """{name: (path, test of what must still be there)}: a FIFO, a socket, a folder, links to
    a FIFO and to /dev/null, and, as root, a character device node like /dev/null."""
    made = {}
    os.mkfifo(folder / "fifo")
    made["fifo"] = stat.S_ISFIFO
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock"))
    sock.close()
    made["sock"] = stat.S_ISSOCK
    (folder / "dir").mkdir()
    (folder / "dir" / "inside").write_text("kept")
    made["dir"] = stat.S_ISDIR
    (folder / "to-fifo").symlink_to(folder / "fifo")
    made["to-fifo"] = stat.S_ISLNK
    (folder / "to-null").symlink_to("/dev/null")
    made["to-null"] = stat.S_ISLNK
    if os.geteuid() == 0:
        os.mknod(folder / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        made["null"] = stat.S_ISCHR
    return {name: (folder / name, test) for name, test in made.items()}


def unchanged(path, test):
    return test(os.lstat(path).st_mode)


def no_temporaries(folder):
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_a_write_never_replaces_anything_but_a_regular_file(tmp_path):
    for name, (path, test) in special_files(tmp_path).items():
        with (
            pytest.raises(NotRegularFile, match="not a regular file") as e,
            atomic_write(path) as fh,
        ):
            fh.write(b"data")
        assert str(path) in str(e.value) and isinstance(e.value, InputError), name
        assert unchanged(path, test), name
    assert (tmp_path / "dir" / "inside").read_text() == "kept"
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert no_temporaries(tmp_path)


def test_regular_files_links_to_them_and_new_names_are_written(tmp_path):
    (tmp_path / "old").write_bytes(b"old")
    (tmp_path / "target").write_bytes(b"target")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for name in ("old", "new", "link", "dangling"):
        with atomic_write(tmp_path / name) as fh:
            fh.write(name.encode())
        assert (tmp_path / name).read_bytes() == name.encode()
        assert not (tmp_path / name).is_symlink()  # the link itself is replaced ...
    assert (tmp_path / "target").read_bytes() == b"target"  # ... never what it led to
    assert no_temporaries(tmp_path)


def test_a_cache_replaces_what_is_there_unless_it_is_a_folder(tmp_path):
    for name, (path, _) in special_files(tmp_path).items():
        if name == "dir":
            with pytest.raises(NotRegularFile, match="a folder"):
                replaceable(path, any_entry=True)
            continue
        with atomic_write(path, any_entry=True) as fh:
            fh.write(b"cache")
        assert not path.is_symlink() and path.read_bytes() == b"cache", name
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert no_temporaries(tmp_path)


def test_what_appears_while_writing_is_checked_again_before_the_rename(tmp_path):
    path = tmp_path / "model.onnx"
    with pytest.raises(NotRegularFile, match="FIFO"), atomic_write(path) as fh:
        fh.write(b"model")
        os.mkfifo(path)  # swapped in by another process meanwhile
    assert stat.S_ISFIFO(os.lstat(path).st_mode) and no_temporaries(tmp_path)


def test_same_file_sees_links_and_other_names(tmp_path):
    a = tmp_path / "weights.npz"
    a.write_bytes(b"w")
    (tmp_path / "sym").symlink_to(a)
    os.link(a, tmp_path / "hard")
    (tmp_path / "sub").mkdir()
    for other in (a, tmp_path / "sym", tmp_path / "hard", tmp_path / "sub" / ".." / a.name):
        assert same_file(other, a), other
    (tmp_path / "copy").write_bytes(b"w")
    assert not same_file(tmp_path / "copy", a)
    assert not same_file(tmp_path / "missing", a) and not same_file(a, tmp_path / "missing")


# --- real processes -------------------------------------------------------------------------


def _digit(folder):
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    np.save(folder / "one.npy", digit)
    return folder / "one.npy"


def test_export_refuses_every_target_that_is_not_a_regular_file(bpnet_exe, good_weights, tmp_path):
    pytest.importorskip("onnx")
    targets = tmp_path / "targets"
    targets.mkdir()
    for name, (path, test) in special_files(targets).items():
        if name == "dir":
            continue  # click's own dir_okay=False answers first
        r = run(bpnet_exe, "export", good_weights, "-o", path, timeout=30)
        refused(r, 2, str(path), "not a regular file", seconds=20)
        assert unchanged(path, test), name
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and no_temporaries(targets)
    if os.geteuid() != 0:  # as root, the mknod'ed twin above stands for it
        refused(run(bpnet_exe, "export", good_weights, "-o", "/dev/null"), 2, "character device")


def test_predict_grid_and_plot_refuse_them_too(bpnet_exe, good_weights, tmp_path):
    pytest.importorskip("matplotlib")
    digit = _digit(tmp_path)
    fifo = tmp_path / "grid.png"
    os.mkfifo(fifo)
    r = run(bpnet_exe, "predict", good_weights, digit, "--grid", fifo, timeout=30)
    refused(r, 2, "grid.png", "FIFO", seconds=20)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.csv").write_text(
        "epoch,iteration,lr,train_loss,train_acc\n1,600,0.1,0.3,0.9\n2,1200,0.1,0.2,0.95\n"
    )
    os.mkfifo(tmp_path / "run" / "metrics.png")
    refused(run(bpnet_exe, "plot", tmp_path / "run", timeout=30), 2, "metrics.png", "FIFO")
    (tmp_path / "null.png").symlink_to("/dev/null")
    r = run(bpnet_exe, "plot", tmp_path / "run", "-o", tmp_path / "null.png")
    refused(r, 2, "null.png", "character device")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and (tmp_path / "null.png").is_symlink()
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_eval_errors_png_refuses_a_fifo(bpnet_exe, good_weights, mnist_data_dir, tmp_path):
    pytest.importorskip("matplotlib")
    fifo = tmp_path / "errors.png"
    os.mkfifo(fifo)
    r = run(
        bpnet_exe,
        "eval",
        good_weights,
        "--offline",
        "--data-dir",
        mnist_data_dir,
        "--errors",
        fifo,
        timeout=60,
    )
    refused(r, 2, "errors.png", "FIFO", peak_mb=1000)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert Path(mnist_data_dir, "mnist", "cache.npz").is_file()
