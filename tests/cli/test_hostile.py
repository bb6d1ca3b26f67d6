"""Hostile and broken inputs, each built for real and given to a real ``bpnet`` process:
weights files that lie about their arrays, files that are not weights, configs that explode,
images that are bombs or never end, and a ``--force`` that fails or is killed. Each must end
in one line naming the culprit, the right exit status, no traceback, bounded memory and time,
and every good file left byte-identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import zipfile

import numpy as np
import pytest
from hostile import AS_LIMIT, refused, run
from peak import run_measured

from bpnet.base import folders
from bpnet.nn.network import param_shapes

# resident memory a refused input may cost once MNIST is loaded (a resume reads the data before
# the checkpoint); before that, hostile.PEAK_MB
DATA_PEAK_MB = 400


def write_npz(path, members, compress=False):
    """An .npz whose members are given as raw .npy bytes (header + data), or as
    (header dict, data bytes or a count of zero bytes to stream)."""
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", mode, compresslevel=1) as z:
        for name, member in members.items():
            with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                if isinstance(member, np.ndarray):
                    np.lib.format.write_array(f, member, allow_pickle=False)
                    continue
                header, data = member
                np.lib.format.write_array_header_1_0(f, header)
                if isinstance(data, int):
                    chunk = bytes(64 * 1024**2)
                    for _ in range(data // len(chunk)):
                        f.write(chunk)
                    f.write(bytes(data % len(chunk)))
                else:
                    f.write(data)
    return path


def meta_array(meta):
    return np.array(meta if isinstance(meta, str) else json.dumps(meta))


META = {
    "sizes": [784, 50, 10],
    "activation": "relu",
    "dataset": "mnist",
    "normalize": True,
    "dtype": "float32",
}


@pytest.fixture(scope="module")
def bomb_npz(tmp_path_factory):
    """8.4 MB on disk: a W1 member honestly holding (784, 640000) float32 zeros, 2 GB inflated."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.npz"
    header = {"descr": "<f4", "fortran_order": False, "shape": (784, 640000)}
    members = {"meta": meta_array(META), "W1": (header, 784 * 640000 * 4)}
    for k, shape in param_shapes(META["sizes"]).items():
        members.setdefault(k, np.zeros(shape, np.float32))
    return write_npz(path, members, compress=True)


# --- weights files -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_an_array_header_larger_than_meta_is_refused_before_its_data_is_read(
    bpnet_exe, bomb_npz, tmp_path, command
):
    args = [bomb_npz, tmp_path / "x.png"] if command == "predict" else [bomb_npz, "--offline"]
    refused(
        run(bpnet_exe, command, *args),
        2,
        str(bomb_npz),
        "W1 has shape (784, 640000), expected (784, 50)",
    )


def test_meta_claiming_a_huge_net_is_refused_by_the_weights_limit(bpnet_exe, tmp_path):
    sizes = [784, 640000, 10]
    header = {"descr": "<f4", "fortran_order": False, "shape": (784, 640000)}
    members = {"meta": meta_array({**META, "sizes": sizes}), "W1": (header, 784 * 640000 * 4)}
    shapes = param_shapes(sizes)
    for k in ("b1", "W2", "b2"):
        members[k] = np.zeros(shapes[k], np.float32)
    path = write_npz(tmp_path / "huge.npz", members, compress=True)
    refused(run(bpnet_exe, "eval", path, "--offline"), 2, "BPNET_MAX_WEIGHTS_BYTES")
    # the same file is read when the limit allows it: the limit is what refused it
    r = run(
        bpnet_exe,
        "eval",
        path,
        "--offline",
        "--data-dir",
        tmp_path / "nodata",
        env={"BPNET_MAX_WEIGHTS_BYTES": "1M"},
    )
    refused(r, 2, "1 MB")


def test_a_member_claiming_more_than_it_holds_is_refused(bpnet_exe, tmp_path):
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**7, 10**7)}
    path = write_npz(tmp_path / "liar.npz", {"meta": meta_array(META), "W1": (header, b"\0" * 64)})
    refused(run(bpnet_exe, "eval", path, "--offline"), 2, "W1", "truncated")


@pytest.mark.parametrize(
    "case, meta, needles",
    [
        ("deep", "[" * 100000 + "]" * 100000, ["nested too deeply"]),
        ("list activation", {**META, "activation": ["relu"]}, ["meta.activation", "['relu']"]),
        ("huge sizes", {**META, "sizes": list(range(1, 200001))}, ["meta.sizes", "200000 entries"]),
        ("sizes text", {**META, "sizes": "784-50-10"}, ["meta.sizes"]),
        ("bool size", {**META, "sizes": [784, True, 10]}, ["meta.sizes"]),
        ("dataset list", {**META, "dataset": {"x": 1}}, ["meta.dataset"]),
        ("normalize text", {**META, "normalize": "yes"}, ["meta.normalize"]),
        ("dropout 1", {**META, "dropout": 1.0}, ["meta.dropout", "[0, 1)"]),
        ("batchnorm int", {**META, "batchnorm": 1}, ["meta.batchnorm"]),
        ("not an object", [1, 2], ["meta: expected a JSON object"]),
        ("huge string", "x" * (5 * 1024**2), ["BPNET_MAX_META_BYTES"]),
        (
            "huge number",
            '{"sizes": [784, 1' + "0" * 5000 + ', 10], "activation": "relu"}',
            ["meta"],
        ),
    ],
)
def test_meta_is_validated_as_untrusted_json(
    bpnet_exe, tmp_path, good_weights, case, meta, needles
):
    with np.load(good_weights) as z:
        arrays = {k: z[k] for k in z.files if k != "meta"}
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays, meta=meta_array(meta))
    refused(run(bpnet_exe, "eval", path, "--offline"), 2, str(path), *needles)


def test_batchnorm_meta_expects_the_batchnorm_arrays(bpnet_exe, tmp_path, good_weights):
    with np.load(good_weights) as z:
        arrays = {k: z[k] for k in z.files if k != "meta"}
    path = tmp_path / "bn.npz"
    np.savez(path, **arrays, meta=meta_array({**META, "sizes": [784, 16, 10], "batchnorm": True}))
    refused(run(bpnet_exe, "eval", path, "--offline"), 2, "missing", "gamma1", "running_var1")


def test_a_good_file_passes_the_checks(bpnet_exe, good_weights, tmp_path):
    img = tmp_path / "digit.npy"
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    np.save(img, digit)
    r = run(bpnet_exe, "predict", good_weights, img, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)[0]["file"] == str(img)


# --- files that are not weights ----------------------------------------------------------------


def test_eval_says_what_a_file_that_is_not_weights_is(bpnet_exe, not_weights):
    for path, needles in not_weights.items():
        refused(run(bpnet_exe, "eval", path, "--offline"), 2, str(path), *needles)


def test_predict_with_its_arguments_swapped_points_at_the_order(bpnet_exe, not_weights, tmp_path):
    refused(
        run(bpnet_exe, "predict", tmp_path / "seven.png", tmp_path / "weights.npz"),
        2,
        "seven.png",
        "did you mean `bpnet predict WEIGHTS IMAGE`?",
    )
    refused(
        run(bpnet_exe, "predict", tmp_path / "weights.npz", tmp_path / "weights.npz"),
        2,
        "not a PNG, JPEG",
        "a zip archive",
        "WEIGHTS IMAGE",
    )


def test_plot_on_a_file_that_is_not_a_metrics_csv(bpnet_exe, not_weights, tmp_path):
    for name, what in (
        ("weights.npz", "a zip archive"),
        ("random.bin", "binary data"),
        ("four.npy", "a .npy array"),
    ):
        refused(run(bpnet_exe, "plot", tmp_path / name), 2, name, "not a metrics CSV", what)
    refused(run(bpnet_exe, "plot", "/dev/zero"), 2, "/dev/zero", "character device")


def test_weights_that_are_a_device_or_a_fifo_are_refused_at_once(bpnet_exe, tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    refused(run(bpnet_exe, "eval", fifo, "--offline", timeout=30), 2, "FIFO", seconds=20)
    refused(run(bpnet_exe, "eval", "/dev/zero", "--offline"), 2, "character device")


def test_a_damaged_checkpoint_is_refused_on_resume(bpnet_exe, tmp_path, mnist_data_dir):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("model: {hidden: [16]}\n")
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)}
    write_npz(
        run_dir / "checkpoint.npz", {"state": np.array("{}"), "param.W1": (header, b"\0" * 16)}
    )
    before = (run_dir / "checkpoint.npz").read_bytes()
    r = run(bpnet_exe, "train", "--resume", run_dir, "--offline", "--data-dir", mnist_data_dir)
    refused(r, 2, "checkpoint.npz", "param.W1", "truncated", peak_mb=DATA_PEAK_MB)
    assert (run_dir / "checkpoint.npz").read_bytes() == before
    write_npz(
        run_dir / "checkpoint.npz",
        {"state": np.array("{}"), "param.W1": np.zeros((784, 17), np.float32)},
    )
    r = run(bpnet_exe, "train", "--resume", run_dir, "--offline", "--data-dir", mnist_data_dir)
    refused(
        r,
        2,
        "checkpoint.npz",
        "'param.W1' has shape (784, 17), expected (784, 16)",
        peak_mb=DATA_PEAK_MB,
    )
    write_npz(run_dir / "checkpoint.npz", {"state": np.array("[" * 100000 + "]" * 100000)})
    r = run(bpnet_exe, "train", "--resume", run_dir, "--offline", "--data-dir", mnist_data_dir)
    line = refused(r, 2, "checkpoint.npz", "state is nested too deeply", peak_mb=DATA_PEAK_MB)
    assert line.count("checkpoint.npz") == 1
    write_npz(
        run_dir / "checkpoint.npz",
        {"state": np.array(json.dumps({"opt_step": "1", "total": [], "rows": {}, "state": {}}))},
    )
    r = run(bpnet_exe, "train", "--resume", run_dir, "--offline", "--data-dir", mnist_data_dir)
    refused(r, 2, "checkpoint.npz", "state is not a bpnet checkpoint's", peak_mb=DATA_PEAK_MB)


# --- configs and --set -------------------------------------------------------------------------


def test_a_50_mb_config_is_refused_before_parsing(bpnet_exe, tmp_path):
    path = tmp_path / "huge.yaml"
    with open(path, "w") as fh:
        line = "# " + "x" * 98 + "\n"
        fh.write("model:\n  hidden: [50]\n" + line * (50 * 1024**2 // len(line)))
    refused(
        run(bpnet_exe, "train", "--config", path),
        2,
        str(path),
        "BPNET_MAX_CONFIG_BYTES",
        seconds=20,
    )


def test_a_config_that_never_ends_is_refused_at_once(bpnet_exe, tmp_path):
    fifo = tmp_path / "cfg.yaml"
    os.mkfifo(fifo)
    refused(run(bpnet_exe, "train", "--config", fifo, timeout=30), 2, "FIFO", seconds=20)
    refused(run(bpnet_exe, "train", "--config", "/dev/zero"), 2, "character device")


@pytest.mark.parametrize(
    "text, needles",
    [
        ("{a: " * 5000 + "1" + "}" * 5000, ["nested more than 32 levels"]),
        ("".join(f"{'  ' * i}k{i}:\n" for i in range(200)), ["nested more than 32 levels"]),
        ("[" * 5000, ["nested more than 32 levels"]),
        ("train:\n  seed: " + "9" * 5000 + "\n", ["train.seed", "an integer of 5000 digits"]),
        ("train:\n  batch_size: " + "9" * 4000 + "\n", ["train.batch_size", "4000 digits"]),
        ("model:\n  hidden: [" + ", ".join(["9" * 40] * 3) + "]\n", ["model.hidden"]),
        ("model:\n  hidden: [100000000]\n", ["model.hidden", "needs about", "BPNET_MAX_MEMORY"]),
        ("augment:\n  elastic_alpha: 34\n  elastic_sigma: 3.0e7\n", ["augment.elastic_sigma"]),
        ("train:\n  batch_size: 100000000\n", ["train.batch_size", "needs about"]),
        ("eval:\n  batch_size: 1000000\nmodel:\n  hidden: [200000]\n", ["needs about"]),
    ],
)
def test_configs_that_explode_are_one_line_errors(bpnet_exe, tmp_path, text, needles):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    refused(
        run(bpnet_exe, "train", "--config", path, "--offline", cwd=tmp_path), 2, str(path), *needles
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # nothing created


@pytest.mark.parametrize(
    "override, needles",
    [
        ("train.lr" + ".x" * 3000 + "=1", ["unknown key of 3002 parts"]),
        ("train.lr.x.y=1", ["train.lr", "expected a number"]),
        ("train.lr=" + "[" * 5000 + "]" * 5000, ["train.lr", "nested more than 32 levels"]),
        ("train.seed=" + "9" * 5000, ["train.seed", "5000 digits"]),
        ("train.seed=" + "9" * 25, ["train.seed", "far too large"]),
        (
            "model.hidden=[100000000]",
            ["--set model.hidden=[100000000]", "model.hidden", "needs about"],
        ),
        ("augment.elastic_sigma=3e7", ["augment.elastic_sigma"]),
    ],
)
def test_overrides_that_explode_are_one_line_errors(bpnet_exe, tmp_path, override, needles):
    refused(run(bpnet_exe, "train", "--set", override, "--offline", cwd=tmp_path), 2, *needles)
    assert list(tmp_path.iterdir()) == []


def test_the_memory_estimate_follows_the_address_space_limit(bpnet_exe, tmp_path):
    """Under a 1.5 GB address-space limit a net needing ~11 GB is refused by the estimate
    (exit 2, naming the key), not by a MemoryError half-way; BPNET_MAX_MEMORY lowers it."""
    r = run(
        bpnet_exe,
        "train",
        "--set",
        "model.hidden=[20000,20000]",
        "--offline",
        cwd=tmp_path,
        as_limit=1536 * 1024**2,
    )
    refused(r, 2, "model.hidden", "needs about", "1.5 GB available")
    r = run(bpnet_exe, "train", "--offline", cwd=tmp_path, env={"BPNET_MAX_MEMORY": "100M"})
    refused(r, 2, "needs about", "100 MB available")
    refused(
        run(bpnet_exe, "train", cwd=tmp_path, env={"BPNET_MAX_MEMORY": "lots"}),
        2,
        "BPNET_MAX_MEMORY",
    )


# --- images for predict ------------------------------------------------------------------------


def test_images_that_never_end_are_refused_at_once(bpnet_exe, good_weights, tmp_path):
    fifo = tmp_path / "digit.png"
    os.mkfifo(fifo)
    refused(run(bpnet_exe, "predict", good_weights, fifo, timeout=30), 2, "FIFO", seconds=20)
    refused(
        run(bpnet_exe, "predict", good_weights, "/dev/zero"), 2, "/dev/zero", "character device"
    )
    refused(run(bpnet_exe, "predict", good_weights, "/dev/urandom"), 2, "character device")


def test_a_png_bomb_is_refused_from_its_header(bpnet_exe, good_weights, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    path = tmp_path / "bomb.png"
    Image.new("L", (9500, 9500)).save(path, optimize=True)
    assert path.stat().st_size < 200_000
    line = refused(
        run(bpnet_exe, "predict", good_weights, path),
        2,
        str(path),
        "9500x9500",
        "BPNET_MAX_IMAGE_PIXELS",
    )
    assert "DecompressionBomb" not in line
    # above Pillow's own bomb limit (2 x 89 Mpx) the answer is the same line
    big = tmp_path / "bigger.png"
    big.write_bytes(_png_header(20000, 20000) + path.read_bytes()[33:])
    refused(run(bpnet_exe, "predict", good_weights, big), 2, "20000x20000")


def _png_header(width, height):
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + b"IHDR"
        + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    )


def test_the_pixel_limit_is_documented_and_configurable(bpnet_exe, good_weights, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    path = tmp_path / "wide.png"
    img = np.zeros((300, 300), np.uint8)
    img[50:250, 140:160] = 255
    Image.fromarray(img).save(path)
    assert run(bpnet_exe, "predict", good_weights, path).code == 0
    refused(
        run(bpnet_exe, "predict", good_weights, path, env={"BPNET_MAX_IMAGE_PIXELS": "50000"}),
        2,
        "300x300 = 90000 pixels",
    )
    refused(
        run(bpnet_exe, "predict", good_weights, path, env={"BPNET_MAX_IMAGE_BYTES": "100"}),
        2,
        "BPNET_MAX_IMAGE_BYTES",
    )


def test_npy_and_pgm_headers_claiming_huge_images_are_refused(bpnet_exe, good_weights, tmp_path):
    npy = tmp_path / "huge.npy"
    with open(npy, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "|u1", "fortran_order": False, "shape": (10**6, 10**6)}
        )
        fh.write(bytes(1000))
    refused(run(bpnet_exe, "predict", good_weights, npy), 2, "NPY", "1000000x1000000")
    small = tmp_path / "short.npy"
    with open(small, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f8", "fortran_order": False, "shape": (1000, 1000)}
        )
        fh.write(bytes(1000))
    refused(run(bpnet_exe, "predict", good_weights, small), 2, "more than the file's")
    pgm = tmp_path / "huge.pgm"
    pgm.write_bytes(b"P5 1000000 1000000 255\n" + bytes(100))
    refused(run(bpnet_exe, "predict", good_weights, pgm), 2, "PGM", "1000000x1000000")


# --- run directories ---------------------------------------------------------------------------


@pytest.fixture
def old_run(bpnet_exe, mnist_data_dir, tmp_path):
    """A finished quick run with its metrics.png, and each file's bytes."""
    run_dir = tmp_path / "run"
    r = run(
        bpnet_exe,
        "train",
        "--config",
        "quick",
        "--out",
        run_dir,
        "--data-dir",
        mnist_data_dir,
        "-q",
        "--iterations",
        "50",
    )
    assert r.code == 0, r.err
    (run_dir / "metrics.png").write_bytes(b"an old picture")
    return run_dir, {p.name: p.read_bytes() for p in run_dir.iterdir()}


def same_files(run_dir, before):
    return {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def test_a_failing_force_leaves_the_old_run_whole(bpnet_exe, old_run, mnist_data_dir):
    run_dir, before = old_run
    # past the memory estimate (raised to 1 TB), the network does not fit in 1.5 GB
    r = run(
        bpnet_exe,
        "train",
        "--config",
        "quick",
        "--out",
        run_dir,
        "--force",
        "--data-dir",
        mnist_data_dir,
        "--set",
        "model.hidden=[300000]",
        env={"BPNET_MAX_MEMORY": "1T"},
        as_limit=1536 * 1024**2,
    )
    assert r.code == 1 and "out of memory" in r.err and "Traceback" not in r.err, r.err
    assert same_files(run_dir, before)
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["data", "run"]
    # a config refused up front does not touch it either
    r = run(
        bpnet_exe,
        "train",
        "--config",
        "quick",
        "--out",
        run_dir,
        "--force",
        "--set",
        "model.hidden=[100000000]",
    )
    assert r.code == 2 and same_files(run_dir, before)


def test_force_replaces_every_file_of_the_old_run(bpnet_exe, old_run, mnist_data_dir):
    run_dir, before = old_run
    r = run(
        bpnet_exe,
        "train",
        "--config",
        "quick",
        "--out",
        run_dir,
        "--force",
        "--data-dir",
        mnist_data_dir,
        "-q",
        "--iterations",
        "20",
    )
    assert r.code == 0, r.err
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(set(before) - {"metrics.png"})
    assert "iterations: 20" in (run_dir / "config.yaml").read_text()
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["data", "run"]


def test_force_refuses_a_folder_with_files_that_are_not_a_run(bpnet_exe, old_run, mnist_data_dir):
    run_dir, before = old_run
    (run_dir / "notes.txt").write_text("mine")
    r = run(
        bpnet_exe,
        "train",
        "--config",
        "quick",
        "--out",
        run_dir,
        "--force",
        "--data-dir",
        mnist_data_dir,
    )
    refused(r, 2, "notes.txt", "not part of a run")
    assert same_files(run_dir, {**before, "notes.txt": b"mine"})


def test_a_force_killed_at_any_moment_leaves_one_whole_run(bpnet_exe, old_run, mnist_data_dir):
    """SIGKILL at increasing delays: the run folder always holds a whole run, the old one
    byte-identical or the new one started; the next train cleans what the killed one left."""
    run_dir, before = old_run
    parent = run_dir.parent
    outcomes = set()
    for delay in (0.0, 0.3, 0.6, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0):
        p = subprocess.Popen(
            [
                bpnet_exe,
                "train",
                "--config",
                "quick",
                "--out",
                str(run_dir),
                "--force",
                "--data-dir",
                str(mnist_data_dir),
                "-q",
                "--iterations",
                "5000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        names = {q.name for q in run_dir.iterdir()}
        if same_files(run_dir, before):
            outcomes.add("old")
        else:
            assert {"config.yaml", "checkpoint.npz"} <= names, names
            outcomes.add("new")
            # the replacement is a run that resumes
            r = run(bpnet_exe, "train", "--resume", run_dir, "--data-dir", mnist_data_dir, "-q")
            assert r.code == 0, r.err
            before = {q.name: q.read_bytes() for q in run_dir.iterdir()}
        r = run(
            bpnet_exe,
            "train",
            "--config",
            "quick",
            "--out",
            run_dir,
            "--data-dir",
            mnist_data_dir,
            "--set",
            "model.hidden=[100000000]",
        )  # refused: no training
        assert r.code == 2
    r = run(
        bpnet_exe,
        "train",
        "--config",
        "quick",
        "--out",
        run_dir,
        "--force",
        "--data-dir",
        mnist_data_dir,
        "-q",
        "--iterations",
        "10",
    )
    assert r.code == 0, r.err
    assert sorted(q.name for q in parent.iterdir()) == ["data", "run"]  # leftovers cleaned
    assert "old" in outcomes


def test_swap_without_atomic_exchange_recovers_from_a_crash_between_renames(tmp_path, monkeypatch):
    """Where renameat2 is missing the old folder is renamed aside first; a crash right after
    that leaves no folder at the target, and clean_leftovers puts the old one back."""
    monkeypatch.setattr(folders, "_exchange", lambda a, b: False)
    target = tmp_path / "run"
    target.mkdir()
    (target / "weights.npz").write_bytes(b"old")
    new = folders.staging_dir(target)
    (new / "weights.npz").write_bytes(b"new")
    folders.swap_dirs(new, target)
    assert (target / "weights.npz").read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    aside = tmp_path / f".run.old-{dead.pid}-0123abcd"
    os.rename(target, aside)  # the state a kill between the two renames leaves
    half = tmp_path / f".run.new-{dead.pid}-4567cdef"
    half.mkdir()
    folders.clean_leftovers(target)
    assert (target / "weights.npz").read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    # a live process's staging folder is left alone
    busy = tmp_path / f".run.new-{os.getppid()}-89abcdef"
    busy.mkdir()
    folders.clean_leftovers(target)
    assert busy.is_dir()


def test_atomic_exchange_is_used_where_the_system_has_it(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    if not folders._exchange(a, b):
        pytest.skip("no renameat2(RENAME_EXCHANGE) here")
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"


def test_a_symlinked_run_directory_stays_a_symlink(tmp_path):
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    (real / "weights.npz").write_bytes(b"old")
    link.symlink_to(real)
    new = folders.staging_dir(link)
    (new / "weights.npz").write_bytes(b"new")
    folders.swap_dirs(new, link)
    assert link.is_symlink() and (real / "weights.npz").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_the_peak_measurement_sees_what_the_child_allocates():
    """The figure the tests bound is the child's own: small for a small child, large for one
    that touches 300 MB, whatever the size of this test process."""
    import sys

    small = run_measured([sys.executable, "-c", "pass"])
    touch = "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096])"
    big = run_measured([sys.executable, "-c", touch])
    assert small.code == 0 and big.code == 0
    assert small.peak_mb < 60 and big.peak_mb > 300, (small.peak_mb, big.peak_mb)
    limited = run_measured([sys.executable, "-c", "bytearray(3 * 2**30)"], as_limit=AS_LIMIT)
    assert limited.code == 1 and "MemoryError" in limited.err


def test_a_plain_pgm_is_parsed_without_a_python_object_per_pixel(bpnet_exe, good_weights, tmp_path):
    side = 2000
    img = np.zeros((side, side), np.uint8)
    img[400:1600, 900:1100] = 255  # a bar: a "1"
    path = tmp_path / "one.pgm"
    path.write_bytes(
        f"P2\n# drawn\n{side} {side}\n255\n".encode()
        + b"\n".join(b" ".join(b"%d" % v for v in row) for row in img)
        + b"\n"
    )
    r = run(bpnet_exe, "predict", good_weights, path, "--json")
    assert r.code == 0, r.err
    assert r.peak_mb < 300, r.peak_mb  # 4 Mpx: 32 MB per float64 copy while preprocessing
    bad = tmp_path / "bad.pgm"
    bad.write_bytes(b"P2\n3 2\n255\n0 255 0\n255 -1 255\n")
    refused(run(bpnet_exe, "predict", good_weights, bad), 2, "other than digits")
    short = tmp_path / "short.pgm"
    short.write_bytes(b"P2\n3 2\n255\n0 255 0\n255\n")
    refused(run(bpnet_exe, "predict", good_weights, short), 2, "PGM has 4 values, expected 6")


# --- mutations: whatever a damaged file holds, the library raises its own one-line error -------


def _mutations(raw, rng, n):
    """Truncations at spread offsets, then random byte flips and random spliced runs."""
    for cut in np.linspace(0, len(raw) - 1, n // 3).astype(int):
        yield raw[:cut]
    for _ in range(n - n // 3):
        b = bytearray(raw)
        for pos in rng.integers(0, len(b), rng.integers(1, 8)):
            b[pos] = rng.integers(0, 256)
        if rng.random() < 0.3:
            at = int(rng.integers(0, len(b)))
            b[at:at] = rng.bytes(int(rng.integers(1, 64)))
        yield bytes(b)


def test_damaged_weights_files_raise_only_weights_errors(good_weights, tmp_path):
    from bpnet.training.weights import WeightsError, load_weights

    rng = np.random.default_rng(1)
    path = tmp_path / "damaged.npz"
    outcomes = {"refused": 0, "loaded": 0}
    for raw in _mutations(good_weights.read_bytes(), rng, 300):
        path.write_bytes(raw)
        try:
            params, meta = load_weights(path)
        except WeightsError as e:
            assert "\n" not in str(e) and len(str(e)) < 400 and str(path) in str(e), str(e)
            outcomes["refused"] += 1
        else:  # a flip in the data of a member: still the expected arrays
            assert {k: v.shape for k, v in params.items()} == param_shapes(meta["sizes"])
            outcomes["loaded"] += 1
    assert outcomes["refused"] > 100, outcomes


def test_damaged_configs_raise_only_config_errors(tmp_path):
    from bpnet.errors import ConfigError
    from bpnet.training.sources import load_config, resolve_config_path

    rng = np.random.default_rng(2)
    raw = resolve_config_path("mnist-best").read_bytes()
    path = tmp_path / "damaged.yaml"
    refusals = 0
    for mutated in _mutations(raw, rng, 300):
        path.write_bytes(mutated)
        try:
            load_config(path)
        except ConfigError as e:
            assert "\n" not in str(e) and len(str(e)) < 400, str(e)
            refusals += 1
    assert refusals > 50


def test_damaged_images_raise_only_input_errors(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    from bpnet.data.images import load_digit
    from bpnet.errors import InputError

    digit = np.zeros((40, 40), np.uint8)
    digit[8:32, 18:22] = 255
    rng = np.random.default_rng(3)
    sources = {}
    Image.fromarray(digit).save(tmp_path / "d.png")
    Image.fromarray(digit).save(tmp_path / "d.jpg")
    np.save(tmp_path / "d.npy", digit)
    (tmp_path / "d.pgm").write_bytes(b"P5 40 40 255\n" + digit.tobytes())
    for name in ("d.png", "d.jpg", "d.npy", "d.pgm"):
        sources[name] = (tmp_path / name).read_bytes()
    path = tmp_path / "damaged"
    for name, raw in sources.items():
        for mutated in _mutations(raw, rng, 150):
            path.write_bytes(mutated)
            try:
                assert load_digit(path).shape == (28, 28)
            except InputError as e:
                assert "\n" not in str(e) and len(str(e)) < 400, (name, str(e))
