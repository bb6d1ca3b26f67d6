"""Downloads against real HTTP servers on 127.0.0.1 that inject faults, and `bpnet download`."""

import fcntl
import gzip
import os
import pty
import re
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from faultserver import FaultServer, gzip_bomb
from mnist import MNIST_FILES
from synthetic import synthetic_dataset, write_dataset

from bpnet import __version__
from bpnet.cli.main import main
from bpnet.data.download import DownloadFailed, download_dataset, ensure_dataset
from bpnet.data.idx import GZIP_MAGIC, DataCorrupt, DataMissing, load_arrays, read_idx
from bpnet.data.mirrors import HttpOptions, mirror_list, retry_wait
from bpnet.data.specs import IMAGE_MAGIC, SPECS, max_transfer
from bpnet.errors import InputError
from bpnet.nn.network import MultiLayerNet
from bpnet.training.weights import save_weights

FAST = HttpOptions(connect_timeout=2, read_timeout=0.3, tries=3, backoff=0.01, max_wait=0.05)
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"


@pytest.fixture
def ds():
    return synthetic_dataset()


@pytest.fixture(autouse=True)
def no_threads_left():
    """A download leaves no thread behind (the matrix products' pool, made once per process by
    the first large product, is the process's, not the download's)."""

    def ours():
        return {t for t in threading.enumerate() if not t.name.startswith("bpnet-matmul")}

    before = ours()
    yield
    assert ours() == before, f"threads left: {ours() - before}"


def fetch(ds, data_dir, *mirrors, **kw):
    """download_dataset of the synthetic spec; (results, notes reported)."""
    notes = []
    kw.setdefault("options", FAST)
    results = download_dataset(
        data_dir=data_dir, mirrors=mirrors, spec=ds.spec, report=notes.append, **kw
    )
    return results, notes


def assert_verified_only(folder, spec, names=None):
    """``folder`` holds exactly the named files of ``spec`` (default all), each gzip and
    verified."""
    names = [f.name for f in spec.files] if names is None else names
    assert sorted(os.listdir(folder)) == sorted(names)  # nothing else: no .part, no temporaries
    for f in spec.files:
        if f.name in names:
            assert (folder / f.name).read_bytes()[:2] == GZIP_MAGIC
            read_idx(folder / f.name, f, decode=False)


def hint(data_dir, dataset="mnist"):
    cmd = f"bpnet download --dataset {dataset} --data-dir {data_dir}"
    return (
        f"no mirror reachable? copy the files into a folder and run `{cmd} --mirror FOLDER`, "
        f"or use another mirror: `{cmd} --mirror URL` (BPNET_MIRROR=URL for every command)"
    )


def run(*args, env=None):
    return CliRunner().invoke(main, ["download", *args], env=env)


# ---- the library against one fault at a time -------------------------------------------------


def test_fetches_every_file_then_nothing(ds, tmp_path):
    with FaultServer(ds.files) as srv:
        results, notes = fetch(ds, tmp_path, srv.url)
        assert [r.source for r in results] == [srv.url + n for n in ds.files]
        again, _ = fetch(ds, tmp_path, srv.url)
    assert [r.source for r in again] == [None] * 4
    assert len(srv.requests) == 4 and notes == []
    assert {r["agent"] for r in srv.requests} == {f"bpnet/{__version__}"}
    assert_verified_only(tmp_path / "mnist", ds.spec)


@pytest.mark.parametrize("code", [404, 403])
def test_client_error_moves_to_the_next_mirror_without_retrying(ds, tmp_path, code):
    with FaultServer(ds.files, {TRAIN_IMAGES: [code]}) as bad, FaultServer(ds.files) as good:
        results, notes = fetch(ds, tmp_path, bad.url, good.url)
    assert results[0].source == good.url + TRAIN_IMAGES
    assert len(bad.hits(TRAIN_IMAGES)) == 1
    assert notes == [f"{bad.url}{TRAIN_IMAGES}: HTTP {code}; trying the next mirror"]
    assert_verified_only(tmp_path / "mnist", ds.spec)


@pytest.mark.parametrize("code", [500, 429])
def test_server_error_then_success_is_retried_on_the_same_mirror(ds, tmp_path, code):
    with FaultServer(ds.files, {TRAIN_IMAGES: [code, "ok"]}) as srv:
        results, notes = fetch(ds, tmp_path, srv.url)
    assert results[0].source == srv.url + TRAIN_IMAGES and notes == []
    assert [h["range"] for h in srv.hits(TRAIN_IMAGES)] == [None, None]
    assert_verified_only(tmp_path / "mnist", ds.spec)


def test_503_forever_gives_up_after_the_tries_and_uses_the_next_mirror(ds, tmp_path):
    with FaultServer(ds.files, {TRAIN_IMAGES: [503]}) as bad, FaultServer(ds.files) as good:
        results, notes = fetch(ds, tmp_path, bad.url, good.url)
    assert len(bad.hits(TRAIN_IMAGES)) == 3
    assert notes == [f"{bad.url}{TRAIN_IMAGES}: HTTP 503 after 3 tries; trying the next mirror"]
    assert results[0].source == good.url + TRAIN_IMAGES
    assert_verified_only(tmp_path / "mnist", ds.spec)


def test_html_page_with_status_200_is_rejected(ds, tmp_path):
    with FaultServer(ds.files, {TRAIN_IMAGES: ["html"]}) as bad, FaultServer(ds.files) as good:
        results, notes = fetch(ds, tmp_path, bad.url, good.url)
    assert notes == [f"{bad.url}{TRAIN_IMAGES}: not gzip/IDX (got HTML?); trying the next mirror"]
    assert results[0].source == good.url + TRAIN_IMAGES
    assert_verified_only(tmp_path / "mnist", ds.spec)


@pytest.mark.parametrize("fault", ["truncate", "reset", "stall"])
def test_interrupted_body_is_resumed_with_range(ds, tmp_path, fault):
    size = len(ds.files[TRAIN_IMAGES])
    with FaultServer(ds.files, {TRAIN_IMAGES: [fault, "ok"]}) as srv:
        results, notes = fetch(ds, tmp_path, srv.url)
    first, second = srv.hits(TRAIN_IMAGES)
    assert first["range"] is None and 0 < first["sent"] < size
    if fault != "reset":  # a reset may also discard bytes the client had not read yet
        assert second["range"] == f"bytes={first['sent']}-"
    have = int(second["range"][6:-1]) if second["range"] else 0
    assert second["sent"] == size - have
    assert results[0].source == srv.url + TRAIN_IMAGES and notes == []
    assert_verified_only(tmp_path / "mnist", ds.spec)


@pytest.mark.parametrize(
    "fault, message",
    [
        ("truncate", "connection dropped at {} of {} bytes after 3 tries"),
        ("stall", "read timed out (no data for 0.3 s) after 3 tries"),
        ("silent", "read timed out (no data for 0.3 s) after 3 tries"),
    ],
)
def test_body_that_never_completes_fails_the_mirror(ds, tmp_path, fault, message):
    size = len(ds.files[TRAIN_IMAGES])
    with FaultServer(ds.files, {TRAIN_IMAGES: [fault]}) as bad, FaultServer(ds.files) as good:
        results, notes = fetch(ds, tmp_path, bad.url, good.url)
    hits = bad.hits(TRAIN_IMAGES)
    assert len(hits) == 3 and all(h["range"] for h in hits[1:] if fault != "silent")
    got = sum(h["sent"] for h in hits)
    assert notes == [
        f"{bad.url}{TRAIN_IMAGES}: {message.format(got, size)}; trying the next mirror"
    ]
    assert results[0].source == good.url + TRAIN_IMAGES
    assert_verified_only(tmp_path / "mnist", ds.spec)


def flip(data, at):
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


@pytest.mark.parametrize(
    "where, message",
    [
        ("content", "SHA-256 mismatch (content"),
        ("gzip", "corrupt gzip ("),
    ],
)
def test_one_flipped_byte_is_rejected(ds, tmp_path, where, message):
    raw = ds.raw[TRAIN_IMAGES]
    bad_bytes = (
        gzip.compress(flip(raw, len(raw) // 2))
        if where == "content"
        else flip(ds.files[TRAIN_IMAGES], len(ds.files[TRAIN_IMAGES]) - 6)
    )
    with FaultServer({**ds.files, TRAIN_IMAGES: bad_bytes}) as bad, FaultServer(ds.files) as good:
        results, notes = fetch(ds, tmp_path, bad.url, good.url)
    assert len(notes) == 1 and notes[0].startswith(f"{bad.url}{TRAIN_IMAGES}: {message}")
    assert results[0].source == good.url + TRAIN_IMAGES
    assert_verified_only(tmp_path / "mnist", ds.spec)


def test_every_mirror_failing_raises_one_line_per_mirror(ds, tmp_path):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{closed.getsockname()[1]}/"
    closed.close()
    missing = (tmp_path / "nowhere").as_uri()
    with (
        FaultServer(ds.files, {TRAIN_IMAGES: [503]}) as a,
        FaultServer(ds.files, {TRAIN_IMAGES: ["html"]}) as b,
        pytest.raises(DownloadFailed) as e,
    ):
        fetch(ds, tmp_path, a.url, b.url, dead, missing)
    assert str(e.value).splitlines() == [
        f"no mirror served a verified {TRAIN_IMAGES} (4 tried):",
        f"  {a.url}{TRAIN_IMAGES}: HTTP 503 after 3 tries",
        f"  {b.url}{TRAIN_IMAGES}: not gzip/IDX (got HTML?)",
        f"  {dead}{TRAIN_IMAGES}: connection failed (Connection refused) after 3 tries",
        f"  {missing}/{TRAIN_IMAGES}: No such file or directory",
        hint(tmp_path),
    ]
    assert e.value.exit_code == 1
    assert os.listdir(tmp_path) == []


# ---- resuming, recompressed and uncompressed files, present files ---------------------------

OTHER_BYTES = b"\x1f\x8b" + bytes(998)  # a partial file that is no beginning of the real one


@pytest.mark.parametrize(
    "part, plan, expect, note",
    [
        (lambda d: d[:1000], ["ok"], lambda n: [("bytes=1000-", n - 1000)], None),
        (
            lambda d: d[:1000],
            ["short", "ok"],
            lambda n: [  # a 206 that ends before its range
                ("bytes=1000-", (n - 1000) // 2),
                (f"bytes={1000 + (n - 1000) // 2}-", (n - 999) // 2),
            ],
            None,
        ),
        (lambda d: d + b"junk", ["ok"], lambda n: [(f"bytes={n + 4}-", 0), (None, n)], None),  # 416
        (lambda d: OTHER_BYTES, ["norange"], lambda n: [("bytes=1000-", n)], None),
        (
            lambda d: OTHER_BYTES,
            ["ok"],
            lambda n: [("bytes=1000-", n - 1000), (None, n)],
            f"after resuming {TRAIN_IMAGES}.part; fetching it whole",
        ),
    ],
    ids=["resumed", "short-206", "longer-416", "range-ignored", "other-bytes"],
)
def test_partial_file_of_an_earlier_run(ds, tmp_path, part, plan, expect, note):
    """A .part left behind is continued with Range (only the rest is sent) where that can work,
    and replaced by the whole file where it cannot."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    data = ds.files[TRAIN_IMAGES]
    (folder / (TRAIN_IMAGES + ".part")).write_bytes(part(data))
    with FaultServer(ds.files, {TRAIN_IMAGES: plan}) as srv:
        results, notes = fetch(ds, tmp_path, srv.url)
    assert [(h["range"], h["sent"]) for h in srv.hits(TRAIN_IMAGES)] == expect(len(data))
    assert len(notes) == bool(note) and all(n.endswith(note) for n in notes)
    assert results[0].source == srv.url + TRAIN_IMAGES
    assert_verified_only(folder, ds.spec)


def test_body_shorter_than_the_file_under_a_matching_length_fails_verification(ds, tmp_path):
    with FaultServer(ds.files, {TRAIN_IMAGES: ["short"]}) as bad, FaultServer(ds.files) as good:
        results, notes = fetch(ds, tmp_path, bad.url, good.url)
    assert len(notes) == 1 and notes[0].startswith(f"{bad.url}{TRAIN_IMAGES}: corrupt gzip (")
    assert results[0].source == good.url + TRAIN_IMAGES
    assert_verified_only(tmp_path / "mnist", ds.spec)


def test_recompressed_gzip_is_accepted_when_the_content_matches(ds, tmp_path):
    repacked = {n: gzip.compress(r, compresslevel=1, mtime=1234) for n, r in ds.raw.items()}
    assert repacked != ds.files
    with FaultServer(repacked) as srv:
        fetch(ds, tmp_path, srv.url)
    assert (tmp_path / "mnist" / TRAIN_IMAGES).read_bytes() == repacked[TRAIN_IMAGES]
    assert_verified_only(tmp_path / "mnist", ds.spec)


def test_uncompressed_idx_under_the_gz_name_is_accepted_and_stored_compressed(ds, tmp_path):
    with FaultServer(ds.raw) as srv:
        fetch(ds, tmp_path, srv.url)
    assert gzip.decompress((tmp_path / "mnist" / TRAIN_IMAGES).read_bytes()) == ds.raw[TRAIN_IMAGES]
    assert_verified_only(tmp_path / "mnist", ds.spec)


def test_present_files_are_checked_corrupt_ones_refetched_and_force_fetches_all(ds, tmp_path):
    folder = write_dataset(ds, tmp_path)
    labels = ds.spec.files[1].name
    (folder / labels).write_bytes(b"<html>oops</html>")
    with FaultServer(ds.files) as srv:
        results, notes = fetch(ds, tmp_path, srv.url)
        assert [r.source is not None for r in results] == [False, True, False, False]
        assert notes == [f"{folder / labels}: not gzip/IDX (got HTML?); fetching it again"]
        forced, _ = fetch(ds, tmp_path, srv.url, force=True)
    assert all(r.source for r in forced) and len(srv.requests) == 5
    assert_verified_only(folder, ds.spec)


def test_file_mirror(ds, tmp_path):
    src = write_dataset(ds, tmp_path / "src")
    results, notes = fetch(ds, tmp_path / "data", (tmp_path / "empty").as_uri(), src.as_uri())
    assert results[0].source == f"{src.as_uri()}/{TRAIN_IMAGES}"
    assert notes == [
        f"{(tmp_path / 'empty').as_uri()}/{n}: No such file or directory; trying the next mirror"
        for n in ds.files
    ]
    assert_verified_only(tmp_path / "data" / "mnist", ds.spec)


# ---- mirrors, waits, ensure_dataset ----------------------------------------------------------


def test_mirror_order_env_and_schemes(monkeypatch):
    monkeypatch.setenv("BPNET_MIRROR", " http://b/x, file:///c\nhttp://a ")
    assert mirror_list(SPECS["mnist"], ["http://a/"]) == [
        "http://a/",
        "http://b/x/",
        "file:///c/",
        *SPECS["mnist"].mirrors,
    ]
    assert mirror_list(SPECS["mnist"], builtin=False) == ["http://b/x/", "file:///c/", "http://a/"]
    assert SPECS["mnist"].mirrors == (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    )
    for bad in ("ftp://host/mnist/", "http:///mnist"):
        with pytest.raises(
            InputError, match="expected an http://, https:// or file:// URL, or a folder"
        ):
            mirror_list(SPECS["mnist"], [bad])
    with pytest.raises(
        InputError,
        match=r"mirror 'host/mnist': no such folder \(expected a "
        r"folder holding the files, or an http://",
    ):
        mirror_list(SPECS["mnist"], ["host/mnist"])


def test_retry_wait_follows_retry_after_within_the_cap():
    opt = HttpOptions(backoff=0.5, max_wait=30)
    assert [retry_wait(k, None, opt) for k in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert retry_wait(1, "7", opt) == 7.0
    assert retry_wait(1, "3600", opt) == 30.0
    soon = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=100), usegmt=True)
    assert 90 < retry_wait(1, soon, HttpOptions(max_wait=200)) <= 100
    assert retry_wait(1, "Wed, 21 Oct 2015 07:28:00 GMT", opt) == 0.0
    assert retry_wait(2, "soon", opt) == 1.0


def test_ensure_dataset_fetches_only_missing_files_with_progress(ds, tmp_path):
    folder = write_dataset(ds, tmp_path)
    missing = [f.name for f in ds.spec.files[2:]]
    for name in missing:
        (folder / name).unlink()
    bars = []

    class Bar:
        def __init__(self, desc, total, initial):
            self.desc, self.total, self.n, self.closed = desc, total, initial, False
            bars.append(self)

        def update(self, n):
            self.n += n

        def close(self):
            self.closed = True

    notes = []
    with FaultServer(ds.files) as srv:
        assert (
            ensure_dataset(
                data_dir=tmp_path,
                spec=ds.spec,
                mirrors=[srv.url],
                progress=Bar,
                report=notes.append,
                options=FAST,
            )
            == folder
        )
        assert (
            ensure_dataset(data_dir=tmp_path, spec=ds.spec, mirrors=[srv.url], report=notes.append)
            == folder
        )
    assert notes == [f"downloading {', '.join(missing)} into {folder}"]
    assert [r["name"] for r in srv.requests] == missing
    assert [(b.desc, b.total, b.n, b.closed) for b in bars] == [
        (n, len(ds.files[n]), len(ds.files[n]), True) for n in missing
    ]
    assert_verified_only(folder, ds.spec)


def test_ensure_dataset_offline_reports_missing_files(ds, tmp_path):
    folder = write_dataset(ds, tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(
        DataMissing,
        match=re.escape(
            f"missing t10k-labels-idx1-ubyte.gz; run `bpnet download --dataset mnist --data-dir "
            f"{tmp_path}` to fetch them"
        ),
    ):
        ensure_dataset(data_dir=tmp_path, spec=ds.spec, offline=True)
    ensure_dataset(data_dir=tmp_path, spec=ds.spec, offline=True, splits=("train",))
    assert_verified_only(folder, ds.spec, [f.name for f in ds.spec.files[:3]])


# ---- the command ----------------------------------------------------------------------------


def test_cli_fetches_real_mnist_over_loopback_then_nothing(shared_mnist, tmp_path, bpnet_exe):
    files = {n: (shared_mnist / n).read_bytes() for n in MNIST_FILES}
    with FaultServer(files) as srv:
        p = subprocess.run(
            [bpnet_exe, "download", "--mirror", srv.url, "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 0, p.stderr
        assert p.stderr == ""  # no progress bars when stderr is not a terminal
        for n in MNIST_FILES:
            assert f"{n}  fetched from {srv.url}{n}" in p.stdout.replace("   ", "  ")
        assert f"mnist: 4 files verified in {tmp_path / 'mnist'}, 4 fetched" in p.stdout
        again = run("--mirror", srv.url, "--data-dir", str(tmp_path))
    assert again.exit_code == 0, again.output
    assert "4 files verified" in again.output and "0 fetched" in again.output
    assert len(srv.requests) == 4
    assert_verified_only(tmp_path / "mnist", SPECS["mnist"])


def test_cli_file_mirror_from_env_quietly(shared_mnist, tmp_path):
    r = run(
        "--data-dir",
        str(tmp_path),
        "--quiet",
        "--mirrors-only",
        env={"BPNET_MIRROR": shared_mnist.as_uri()},
    )
    assert r.exit_code == 0 and r.output == ""
    assert_verified_only(tmp_path / "mnist", SPECS["mnist"])


def test_cli_shows_progress_bars_on_a_terminal(shared_mnist, tmp_path, bpnet_exe):
    main_fd, tty = pty.openpty()
    fcntl.ioctl(tty, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    with subprocess.Popen(
        [
            bpnet_exe,
            "download",
            "--mirror",
            shared_mnist.as_uri(),
            "--mirrors-only",
            "--data-dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=tty,
    ) as p:
        os.close(tty)
        shown = b""
        while True:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            shown += chunk
    os.close(main_fd)
    assert p.returncode == 0
    text = shown.decode(errors="replace")
    for n in MNIST_FILES:
        assert n in text
    assert "100%" in text and "9.45M/9.45M" in text and "B/s" in text


def test_cli_all_mirrors_failing_exits_1_with_a_line_per_mirror(ds, tmp_path):
    with FaultServer({}) as srv:
        r = run(
            "--mirror",
            srv.url,
            "--mirror",
            (tmp_path / "none").as_uri(),
            "--mirrors-only",
            "--data-dir",
            str(tmp_path),
        )
    assert r.exit_code == 1
    assert r.output.splitlines() == [
        f"bpnet: warning: {srv.url}{TRAIN_IMAGES}: HTTP 404; trying the next mirror",
        f"bpnet: error: no mirror served a verified {TRAIN_IMAGES} (2 tried):",
        f"  {srv.url}{TRAIN_IMAGES}: HTTP 404",
        f"  {(tmp_path / 'none').as_uri()}/{TRAIN_IMAGES}: No such file or directory",
        hint(tmp_path),
    ]
    assert os.listdir(tmp_path) == []  # the folder made for the download is gone again


def test_cli_read_timeout_option(tmp_path):
    with FaultServer({TRAIN_IMAGES: b"\x1f\x8b" + bytes(1000)}, {TRAIN_IMAGES: ["stall"]}) as srv:
        r = run(
            "--mirror",
            srv.url,
            "--mirrors-only",
            "--timeout",
            "0.3",
            "--tries",
            "1",
            "--data-dir",
            str(tmp_path),
        )
    assert r.exit_code == 1
    assert f"{srv.url}{TRAIN_IMAGES}: read timed out (no data for 0.3 s)" in r.output
    assert "Traceback" not in r.output
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "kmnist"], "unknown dataset 'kmnist': expected one of mnist, fashion-mnist"),
        (
            ["--mirror", "ftp://host/mnist/"],
            "mirror 'ftp://host/mnist/': expected an http://, https:// or file:// URL, or a folder",
        ),
    ],
)
def test_cli_usage_errors_exit_2_in_one_line(tmp_path, args, message):
    r = run(*args, "--data-dir", str(tmp_path))
    assert r.exit_code == 2
    assert r.output == f"bpnet: error: {message}\n"
    assert not (tmp_path / "mnist").exists()


def test_cli_bad_env_mirror_is_a_usage_error(tmp_path):
    r = run("--data-dir", str(tmp_path), env={"BPNET_MIRROR": "gopher://x"})
    assert r.exit_code == 2 and r.output.startswith("bpnet: error: mirror 'gopher://x'")


def test_cli_default_data_dir_then_env_override(shared_mnist, tmp_path, monkeypatch):
    """The default is the per-user data home, whatever the current folder; BPNET_DATA_DIR
    chooses another."""
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    r = run("--mirror", shared_mnist.as_uri(), "--mirrors-only")
    assert r.exit_code == 0 and f"4 files verified in {home / 'bpnet' / 'mnist'}" in r.output
    assert_verified_only(home / "bpnet" / "mnist", SPECS["mnist"])
    assert sorted(os.listdir(tmp_path)) == ["xdg"]  # nothing in the current folder
    r = run(
        "--mirror",
        shared_mnist.as_uri(),
        "--mirrors-only",
        env={"BPNET_DATA_DIR": str(tmp_path / "elsewhere")},
    )
    assert r.exit_code == 0 and "4 fetched" in r.output
    assert_verified_only(tmp_path / "elsewhere" / "mnist", SPECS["mnist"])


def test_cli_fashion_mnist_is_checked_against_its_own_checksums(shared_mnist, tmp_path):
    r = run(
        "--dataset",
        "fashion-mnist",
        "--mirror",
        shared_mnist.as_uri(),
        "--mirrors-only",
        "--data-dir",
        str(tmp_path),
    )
    assert r.exit_code == 1
    assert (
        f"{shared_mnist.as_uri()}/{TRAIN_IMAGES}: SHA-256 mismatch (content ba891046e6505d7a…, "
        f"expected c59f468a2f672dc8…): the content of mnist's {TRAIN_IMAGES}, not "
        "fashion-mnist's\n" in r.output
    )
    assert os.listdir(tmp_path) == []


def test_cli_another_datasets_file_in_the_folder_is_named_and_fetched_again(
    shared_mnist, tmp_path, bpnet_exe
):
    """MNIST's files copied into fashion-mnist/ by hand: each is named for what it is."""
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    shutil.copyfile(shared_mnist / TRAIN_IMAGES, folder / TRAIN_IMAGES)
    p = subprocess.run(
        [bpnet_exe, "download", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path)]
        + ["--mirror", str(tmp_path / "nowhere"), "--mirrors-only"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "BPNET_MIRROR": ""},
    )
    assert p.returncode == 2  # the mirror folder does not exist: before any file is read
    (tmp_path / "empty").mkdir()
    p = subprocess.run(
        [bpnet_exe, "download", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path)]
        + ["--mirror", str(tmp_path / "empty"), "--mirrors-only"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1
    assert p.stderr.splitlines()[0] == (
        f"bpnet: warning: {folder / TRAIN_IMAGES}: SHA-256 mismatch (content "
        f"ba891046e6505d7a…, expected c59f468a2f672dc8…): the content of mnist's {TRAIN_IMAGES}, "
        "not fashion-mnist's; fetching it again"
    )


def test_a_corrupt_file_is_not_named_for_another_dataset(ds, tmp_path):
    """A SHA-256 mismatch that is no known dataset's file says only that."""
    bad = gzip.compress(ds.raw[TRAIN_IMAGES][:16] + b"\1" * (len(ds.raw[TRAIN_IMAGES]) - 16))
    _, note = failover(ds, tmp_path, bad)
    assert re.fullmatch(r"SHA-256 mismatch \(content [0-9a-f]{16}…, expected [0-9a-f]{16}…\)", note)


# ---- names that do not resolve ----------------------------------------------------------------


@pytest.fixture
def resolver(monkeypatch):
    """Name lookups answered here: every name but 127.0.0.1 and localhost fails with
    ``resolver.errno`` (EAI_NONAME: no such name; EAI_AGAIN: the resolver does not answer);
    ``resolver.asked`` lists the names looked up. Proxies are bypassed, so the client looks
    names up itself."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kw):
        if host in ("127.0.0.1", "localhost"):
            return real(host, *args, **kw)
        getaddrinfo.asked.append(host)
        raise socket.gaierror(getaddrinfo.errno, getaddrinfo.words)

    getaddrinfo.asked, getaddrinfo.errno = [], socket.EAI_NONAME
    getaddrinfo.words = "Name or service not known"
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "*")
    return getaddrinfo


def test_a_name_that_does_not_resolve_fails_its_mirror_at_once_for_every_file(
    ds, tmp_path, resolver
):
    with FaultServer(ds.files) as good:
        results, notes = fetch(ds, tmp_path, "http://nowhere.invalid/", good.url)
    assert [r.source for r in results] == [good.url + n for n in ds.files]
    assert resolver.asked == ["nowhere.invalid"]  # once: no retries, and not for the next files
    assert notes == [
        f"http://nowhere.invalid/{TRAIN_IMAGES}: name resolution failed (Name or service not "
        "known); trying the next mirror"
    ]


def test_a_resolver_that_does_not_answer_fails_every_mirror_needing_it(ds, tmp_path, resolver):
    resolver.errno, resolver.words = socket.EAI_AGAIN, "Temporary failure in name resolution"
    with FaultServer(ds.files) as good:
        results, notes = fetch(
            ds, tmp_path, "http://a.invalid/", "https://b.invalid/", "http://localhost:9/", good.url
        )
    assert [r.source for r in results] == [good.url + n for n in ds.files]
    assert resolver.asked == ["a.invalid"]  # b.invalid is not looked up; localhost is local
    assert notes[0] == (
        f"http://a.invalid/{TRAIN_IMAGES}: name resolution failed (Temporary failure in name "
        "resolution); trying the next mirror"
    )
    with pytest.raises(DownloadFailed) as exc:
        fetch(ds, tmp_path / "none", "http://a.invalid/", "https://b.invalid/", options=FAST)
    assert str(exc.value).splitlines()[1:3] == [
        f"  http://a.invalid/{TRAIN_IMAGES}: name resolution failed (Temporary failure in name "
        "resolution)",
        f"  https://b.invalid/{TRAIN_IMAGES}: not tried: the name resolver does not answer (name "
        "resolution failed (Temporary failure in name resolution))",
    ]


def test_cli_a_mirror_whose_name_does_not_resolve_is_tried_once(tmp_path, bpnet_exe):
    """A real lookup of a name that cannot exist (.invalid, RFC 6761), without a proxy."""
    p = subprocess.run(
        [bpnet_exe, "download", "--mirror", "http://bpnet.invalid/", "--mirrors-only"]
        + ["--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_PROXY": "bpnet.invalid", "no_proxy": "bpnet.invalid"},
    )
    assert p.returncode == 1
    assert re.search(
        rf"^  http://bpnet\.invalid/{TRAIN_IMAGES}: name resolution failed \([^()]+\)$",
        p.stderr,
        re.M,
    ), p.stderr
    assert "tries" not in p.stderr


# ---- hostile mirrors: bombs, tarpits, redirect loops -----------------------------------------


def idx_header(f):
    dims = (f.count, 28, 28) if f.magic == IMAGE_MAGIC else (f.count,)
    return f.magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)


def failover(ds, tmp_path, body=None, plan=None, options=FAST, **server):
    """Fetch from a mirror serving ``body`` for the training images (or following ``plan``), then
    a good one: the good one must serve the file. Returns (bad server, the one note reported)."""
    files = ds.files if body is None else {**ds.files, TRAIN_IMAGES: body}
    plan = {TRAIN_IMAGES: plan} if plan else None
    with FaultServer(files, plan, **server) as bad, FaultServer(ds.files) as good:
        results, notes = fetch(ds, tmp_path, bad.url, good.url, options=options)
    assert results[0].source == good.url + TRAIN_IMAGES
    assert_verified_only(tmp_path / "mnist", ds.spec)
    assert len(notes) == 1 and notes[0].startswith(bad.url + TRAIN_IMAGES + ": ")
    assert notes[0].endswith("; trying the next mirror")
    return bad, notes[0][len(bad.url + TRAIN_IMAGES + ": ") : -len("; trying the next mirror")]


def test_gzip_bomb_from_a_mirror_fails_it_at_the_spec_size(ds, tmp_path):
    f = ds.spec.files[0]
    bomb = gzip_bomb(idx_header(f), 4 << 20)  # 4 MiB of zeros in 4 KB, under max_transfer
    assert len(bomb) < max_transfer(f)
    _, note = failover(ds, tmp_path, bomb)
    assert note == "more than 4704 data bytes, expected 4704 (not read further)"


def test_body_longer_than_any_good_copy_is_cut_off(ds, tmp_path):
    n = max_transfer(ds.spec.files[0])
    _, note = failover(ds, tmp_path, os.urandom(n + 1))
    assert note == f"{n + 1} bytes announced, more than the {n} a good copy can have"


def test_gzip_bomb_already_in_the_folder_is_discarded_and_fetched_again(ds, tmp_path):
    folder = write_dataset(ds, tmp_path)
    f = ds.spec.files[0]
    bomb = gzip_bomb(idx_header(f), 64 << 20)
    (folder / TRAIN_IMAGES).write_bytes(b"".join(bomb.chunks()))
    with pytest.raises(DataCorrupt, match="more than 4704 data bytes, expected 4704"):
        load_arrays(data_dir=tmp_path, spec=ds.spec)
    with FaultServer(ds.files) as srv:
        results, notes = fetch(ds, tmp_path, srv.url)
    assert notes == [
        f"{folder / TRAIN_IMAGES}: more than 4704 data bytes, expected 4704 (not read "
        "further); fetching it again"
    ]
    assert [r.source is not None for r in results] == [True, False, False, False]
    assert_verified_only(folder, ds.spec)


def measured(*cmd):
    """Run ``cmd``; (completed process, its peak resident memory in MiB). A wrapper process
    reads RUSAGE_CHILDREN after waiting for its one child, so other tests' children don't count."""
    wrapper = (
        "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(p.returncode)"
    )
    p = subprocess.run(
        [sys.executable, "-c", wrapper, *map(str, cmd)], capture_output=True, text=True, timeout=300
    )
    *lines, peak_kib = p.stderr.splitlines()
    return subprocess.CompletedProcess(p.args, p.returncode, p.stdout, "\n".join(lines)), int(
        peak_kib
    ) / 1024


def test_cli_gzip_bomb_of_8_gib_from_a_mirror_and_in_the_folder_in_bounded_memory(
    shared_mnist, tmp_path, bpnet_exe
):
    """The real MNIST spec; the bomb inflates to 8 GiB (8 MB on the wire or on disk)."""
    files = {n: (shared_mnist / n).read_bytes() for n in MNIST_FILES}
    bomb = gzip_bomb(idx_header(SPECS["mnist"].files[0]), 8 << 30)
    reason = "more than 47040000 data bytes, expected 47040000 (not read further)"
    with FaultServer({**files, TRAIN_IMAGES: bomb}) as bad, FaultServer(files) as good:
        p, peak = measured(
            bpnet_exe,
            "download",
            "--mirror",
            bad.url,
            "--mirror",
            good.url,
            "--mirrors-only",
            "--data-dir",
            tmp_path,
        )
        assert p.returncode == 0, p.stderr
        assert p.stderr == (
            f"bpnet: warning: {bad.url}{TRAIN_IMAGES}: {reason}; trying the next mirror"
        )
        assert f"{TRAIN_IMAGES}  fetched from {good.url}{TRAIN_IMAGES}" in p.stdout
        print(f"peak RSS of bpnet download, 8 GiB gzip bomb on a mirror: {peak:.0f} MiB")
        assert peak < 300  # the bomb's content alone would be 8192 MiB
        assert_verified_only(tmp_path / "mnist", SPECS["mnist"])

        target = tmp_path / "mnist" / TRAIN_IMAGES
        with open(target, "wb") as fh:
            for chunk in bomb.chunks():
                fh.write(chunk)
        p, peak = measured(
            bpnet_exe,
            "eval",
            tiny_weights(tmp_path / "w.npz"),
            "--split",
            "train",
            "--data-dir",
            tmp_path,
        )
        assert p.returncode == 1
        assert p.stderr == (
            f"bpnet: error: {target}: {reason} (run `bpnet download --dataset "
            f"mnist --data-dir {tmp_path}` to fetch it again)"
        )
        print(f"peak RSS of bpnet eval, 8 GiB gzip bomb in the data dir: {peak:.0f} MiB")
        assert peak < 300
        p, peak = measured(
            bpnet_exe, "download", "--mirror", good.url, "--mirrors-only", "--data-dir", tmp_path
        )
    assert (
        p.returncode == 0 and p.stderr == f"bpnet: warning: {target}: {reason}; fetching it again"
    )
    print(f"peak RSS of bpnet download, 8 GiB gzip bomb in the data dir: {peak:.0f} MiB")
    assert peak < 300
    assert_verified_only(tmp_path / "mnist", SPECS["mnist"])


def test_tarpit_fails_over_once_a_window_passes_under_the_min_rate(ds, tmp_path):
    size = len(ds.files[TRAIN_IMAGES])
    opt = HttpOptions(connect_timeout=2, read_timeout=1.5, tries=2, backoff=0.01, min_rate=size)
    bad, note = failover(ds, tmp_path, plan=["drip"], options=opt, drip=0.2)
    assert re.fullmatch(
        rf"too slow: \d B/s over the last 1\.\d s, under the minimum 4\.74 kB/s \(\d+ of {size} "
        r"bytes\)",
        note,
    ), note
    assert len(bad.hits(TRAIN_IMAGES)) == 1  # the drip never went silent: one request


def test_the_rate_counts_over_the_last_window_not_from_the_start(ds, tmp_path):
    """Half the file at once, then a byte every 0.2 s: the fast half does not buy the drip
    time. Averaged from the start, the 2371 bytes would keep the rate over 474 B/s for 5 s
    (25 more bytes); over the last 1 s window it falls under at once (about 5 more)."""
    size = len(ds.files[TRAIN_IMAGES])
    opt = HttpOptions(connect_timeout=2, read_timeout=1, tries=1, min_rate=size / 10)
    bad, note = failover(ds, tmp_path, plan=["halfdrip"], options=opt, drip=0.2)
    m = re.fullmatch(
        r"too slow: \d B/s over the last 1\.\d s, under the minimum 474 B/s \((\d+) of "
        rf"{size} bytes\)",
        note,
    )
    assert m, note
    assert size // 2 < int(m[1]) < size // 2 + 15


def test_cli_tarpit_dripping_a_byte_a_second_then_a_good_mirror(shared_mnist, tmp_path, bpnet_exe):
    """A 9.9 MB file at a byte a second is given up after one --timeout window (2 s here, 30 by
    default), not after the time the whole file would take at --min-rate (496 s)."""
    files = {n: (shared_mnist / n).read_bytes() for n in MNIST_FILES}
    with FaultServer(files, {TRAIN_IMAGES: ["drip"]}) as bad, FaultServer(files) as good:
        p = subprocess.run(
            [
                bpnet_exe,
                "download",
                "--mirror",
                bad.url,
                "--mirror",
                good.url,
                "--mirrors-only",
                "--timeout",
                "2",
                "--tries",
                "1",
                "--data-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert p.returncode == 0, p.stderr
    m = re.fullmatch(
        rf"bpnet: warning: {re.escape(bad.url + TRAIN_IMAGES)}: too slow: \d+ B/s over the last "
        r"(\d+\.\d) s, under the minimum 20 kB/s \((\d+) of 9912422 bytes\); trying the next "
        r"mirror\n",
        p.stderr,
    )
    assert m, p.stderr
    # one window of about --timeout (2 s; a loaded machine's scheduling may stretch it a
    # little), never the 496 s the whole file would take at the minimum rate
    assert 2.0 <= float(m.group(1)) < 10 and int(m.group(2)) < 20, p.stderr
    assert_verified_only(tmp_path / "mnist", SPECS["mnist"])


def test_redirect_loop_says_too_many_redirects(ds, tmp_path):
    bad, note = failover(ds, tmp_path, plan=["loop"])
    assert note == "too many redirects (more than 10)"
    assert len(bad.hits(TRAIN_IMAGES)) == 11


# ---- several processes, killed processes ------------------------------------------------------


def test_cli_two_downloads_racing_into_one_folder_both_succeed(shared_mnist, tmp_path, bpnet_exe):
    files = {n: (shared_mnist / n).read_bytes() for n in MNIST_FILES}
    with FaultServer(files) as srv:
        for round_ in range(3):
            data_dir = tmp_path / f"round{round_}"
            cmd = [
                bpnet_exe,
                "download",
                "--mirror",
                srv.url,
                "--mirrors-only",
                "--data-dir",
                str(data_dir),
            ]
            procs = [
                subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)
            ]
            outs = [p.communicate(timeout=120) for p in procs]
            assert [p.returncode for p in procs] == [0, 0], outs
            assert sorted(o.count("fetched from") for o, _ in outs) == [0, 4], outs
            assert_verified_only(data_dir / "mnist", SPECS["mnist"])
    assert len(srv.requests) == 12  # every file fetched once per round


def test_cli_two_trainings_downloading_into_one_fresh_folder_both_succeed(
    shared_mnist, tmp_path, bpnet_exe
):
    """`bpnet train` downloads first: two of them racing on a fresh data dir share the files
    and the cache."""
    files = {n: (shared_mnist / n).read_bytes() for n in MNIST_FILES}
    with FaultServer(files) as srv:
        for round_ in range(2):
            d = tmp_path / f"data{round_}"
            procs = [
                subprocess.Popen(
                    [
                        bpnet_exe,
                        "train",
                        "--config",
                        "quick.yaml",
                        "--iterations",
                        "5",
                        "--quiet",
                        "--data-dir",
                        str(d),
                        "--out",
                        str(tmp_path / f"run{round_}-{i}"),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env={**os.environ, "BPNET_MIRROR": srv.url},
                )
                for i in range(2)
            ]
            outs = [p.communicate(timeout=300) for p in procs]
            assert [p.returncode for p in procs] == [0, 0], outs
            assert_verified_only(d / "mnist", SPECS["mnist"], [*MNIST_FILES, "cache.npz"])
            for i in range(2):
                assert (tmp_path / f"run{round_}-{i}" / "weights.npz").is_file()
    assert len(srv.requests) == 8


def test_two_processes_building_the_cache_at_once_both_load(mnist_data_dir):
    code = (
        "import sys; from bpnet.data.idx import load_arrays; "
        "a = load_arrays('mnist', sys.argv[1]); print(a['x_train'].shape, a['t_test'][:3])"
    )
    for _ in range(2):
        (mnist_data_dir / "mnist" / "cache.npz").unlink(missing_ok=True)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(mnist_data_dir)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        assert [o for o, _ in outs] == ["(60000, 28, 28) [7 2 1]\n"] * 2
        assert sorted(os.listdir(mnist_data_dir / "mnist")) == sorted([*MNIST_FILES, "cache.npz"])


def test_leftovers_of_a_killed_process_are_removed(ds, tmp_path, bpnet_exe):
    """A real `bpnet download` killed mid-transfer, plus the temporaries that a process killed
    while writing a file or the cache leaves: the next run resumes or removes them all."""
    folder = tmp_path / "mnist"
    with FaultServer(ds.files, {TRAIN_IMAGES: ["drip"]}, drip=0.05) as srv:
        p = subprocess.Popen(
            [
                bpnet_exe,
                "download",
                "--mirror",
                srv.url,
                "--mirrors-only",
                "--data-dir",
                str(tmp_path),
            ],
            stderr=subprocess.DEVNULL,
        )
        part = folder / (TRAIN_IMAGES + ".part")
        for _ in range(600):
            if part.exists():
                break
            time.sleep(0.05)
        time.sleep(0.5)
        p.kill()
        p.wait()
    assert part.exists()
    orphans = [f".{TRAIN_IMAGES}.0123abcd.tmp", ".cache.npz.deadbeef.tmp"]
    for name in orphans + ["t10k-labels-idx1-ubyte.gz.part"]:  # that file is in place already
        (folder / name).write_bytes(b"half written")
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(ds.files["t10k-labels-idx1-ubyte.gz"])
    with FaultServer(ds.files) as srv:
        results, _ = fetch(ds, tmp_path, srv.url)
    assert results[0].source == srv.url + TRAIN_IMAGES and results[3].source is None
    assert_verified_only(folder, ds.spec)
    for name in orphans:  # the cache writer cleans up too
        (folder / name).write_bytes(b"half written")
    load_arrays(data_dir=tmp_path, spec=ds.spec)
    assert sorted(os.listdir(folder)) == sorted([*ds.files, "cache.npz"])


# ---- a failed download leaves the user a way forward ---------------------------------------------


def test_import_bpnet_nn_does_not_load_requests():
    code = (
        "import sys, bpnet.nn; "
        "print(sorted(m for m in ('requests', 'urllib3', 'filelock') if m in sys.modules))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout == "[]\n", p.stderr


@pytest.mark.parametrize("relative", [False, True])
def test_cli_plain_folder_as_mirror(shared_mnist, tmp_path, monkeypatch, relative):
    src = tmp_path / "usb stick"
    shutil.copytree(shared_mnist, src)
    monkeypatch.chdir(tmp_path)
    r = run(
        "--mirror",
        "usb stick" if relative else str(src),
        "--mirrors-only",
        "--data-dir",
        str(tmp_path / "data"),
    )
    assert r.exit_code == 0, r.output
    assert f"fetched from {src.as_uri()}/{TRAIN_IMAGES}" in r.output
    assert_verified_only(tmp_path / "data" / "mnist", SPECS["mnist"])


def test_cli_no_mirror_reachable_names_commands_that_work_as_typed(
    shared_mnist, tmp_path, monkeypatch
):
    """Every built-in mirror unreachable (the tests' proxy is a closed port): the hint's
    command, typed as shown with a folder of the files, then works."""
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "my data"
    r = run("--data-dir", str(d), "--tries", "1")
    assert r.exit_code == 1
    last = r.output.splitlines()[-1]
    cmd = f"bpnet download --dataset mnist --data-dir '{d}'"
    assert last == (
        f"no mirror reachable? copy the files into a folder and run `{cmd} --mirror "
        f"FOLDER`, or use another mirror: `{cmd} --mirror URL` (BPNET_MIRROR=URL for "
        "every command)"
    )
    assert os.listdir(tmp_path) == []  # no empty data folder left behind
    typed = shlex.split(last.split("`")[1].replace("FOLDER", shlex.quote(str(shared_mnist))))
    assert typed[:2] == ["bpnet", "download"]
    r = CliRunner().invoke(main, typed[1:])
    assert r.exit_code == 0, r.output
    assert_verified_only(d / "mnist", SPECS["mnist"])


def tiny_weights(path):
    net = MultiLayerNet(784, [16], 10)
    save_weights(path, net.params, {"sizes": [784, 16, 10], "activation": "relu"})
    return path


def test_cli_eval_elsewhere_failing_to_download_leaves_nothing_and_names_the_data_dir(
    tmp_path, monkeypatch, bpnet_exe
):
    weights = tiny_weights(tmp_path / "w.npz")
    work = tmp_path / "elsewhere"
    work.mkdir()
    p = subprocess.run(
        [bpnet_exe, "eval", str(weights)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BPNET_MIRROR": "http://127.0.0.1:9/"},
    )
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    home = Path(os.environ["XDG_DATA_HOME"]) / "bpnet"
    assert p.stderr.splitlines()[-1].endswith(
        f"(BPNET_MIRROR=URL for every command) (data dir {home}, the per-user data home; "
        f"--data-dir DIR or BPNET_DATA_DIR=DIR choose another)"
    )
    assert os.listdir(work) == []


def test_cli_train_offline_suggests_a_download_into_its_data_dir(
    shared_mnist, tmp_path, monkeypatch, bpnet_exe
):
    d = tmp_path / "D"
    p = subprocess.run(
        [bpnet_exe, "train", "--data-dir", str(d), "--offline", "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 1, p.stderr
    m = re.search(r"run `(bpnet download [^`]*)`", p.stderr)
    assert m and m[1] == f"bpnet download --dataset mnist --data-dir {d}", p.stderr
    monkeypatch.setenv("BPNET_MIRROR", str(shared_mnist))
    r = CliRunner().invoke(main, shlex.split(m[1])[1:] + ["--mirrors-only"])
    assert r.exit_code == 0, r.output
    assert_verified_only(d / "mnist", SPECS["mnist"])


def test_cli_eval_of_the_test_split_needs_only_the_test_files(shared_mnist, tmp_path):
    d = tmp_path / "data"
    (d / "mnist").mkdir(parents=True)
    for n in MNIST_FILES[2:]:
        shutil.copyfile(shared_mnist / n, d / "mnist" / n)
    weights = tiny_weights(tmp_path / "w.npz")
    r = CliRunner().invoke(
        main, ["eval", str(weights), "--offline", "--data-dir", str(d), "--json"]
    )
    assert r.exit_code == 0, r.output
    assert '"images": 10000' in r.output
    r = CliRunner().invoke(
        main, ["eval", str(weights), "--offline", "--split", "train", "--data-dir", str(d)]
    )
    assert r.exit_code == 1
    assert r.output == (
        f"bpnet: error: {d / 'mnist'}: missing train-images-idx3-ubyte.gz, "
        f"train-labels-idx1-ubyte.gz; run `bpnet download --dataset mnist "
        f"--data-dir {d}` to fetch them\n"
    )
    assert sorted(os.listdir(d / "mnist")) == sorted(MNIST_FILES[2:])  # no cache of half a dataset


def test_cli_says_what_it_downloads_as_information_not_a_warning(shared_mnist, tmp_path):
    weights = tiny_weights(tmp_path / "w.npz")
    d = tmp_path / "D"
    p = subprocess.run(
        [sys.executable, "-m", "bpnet", "eval", str(weights), "--data-dir", str(d)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BPNET_MIRROR": str(shared_mnist)},
    )
    assert p.returncode == 0, p.stderr
    assert p.stderr == (
        f"downloading t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz into {d / 'mnist'}\n"
    )
