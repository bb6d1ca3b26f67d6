"""bpnet serve: a real server process on a free loopback port; its answers against `bpnet predict
--json` on real MNIST digits, a battery of bad requests (each a 4xx with one line of JSON, and the
server goes on), and Ctrl-C."""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from mnist import write_test_digits
from servers import InProcess, Server, trickle_until_answered

Image = pytest.importorskip("PIL.Image", reason="pip install 'bpnet[image]'")

IMAGE_LIMIT = 200_000  # BPNET_MAX_IMAGE_BYTES for the server under test


@pytest.fixture(scope="module")
def weights(tmp_path_factory, mnist_session_dir):
    from mnist import train_mnist_net

    path = tmp_path_factory.mktemp("serve") / "weights.npz"
    train_mnist_net(mnist_session_dir, 50, 600, path)
    return path


@pytest.fixture(scope="module")
def server(bpnet_exe, weights):
    import os

    srv = Server(bpnet_exe, weights, env={**os.environ, "BPNET_MAX_IMAGE_BYTES": str(IMAGE_LIMIT)})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def digits(mnist_session_dir, tmp_path_factory):
    """Eight real MNIST test digits as PNG files, with their labels."""
    return write_test_digits(mnist_session_dir, tmp_path_factory.mktemp("digits"), 8)


def predict_json(exe, weights, path, top=3):
    r = subprocess.run(
        [exe, "predict", str(weights), str(path), "--json", "--top", str(top)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]


def good_answer(server, digits):
    status, _, body = server.post(digits[0][0].read_bytes(), "image/png")
    assert status == 200, body
    return json.loads(body)


def test_png_answers_what_predict_json_prints(server, bpnet_exe, weights, digits):
    paths, labels, _ = digits
    right = 0
    for path, label in zip(paths, labels):
        status, headers, body = server.post(path.read_bytes(), "image/png")
        assert status == 200 and headers["Content-Type"] == "application/json", body
        got = json.loads(body)
        assert got["top"] == predict_json(bpnet_exe, weights, path)["top"]
        assert np.array(got["input"]).shape == (28, 28)
        right += got["top"][0]["label"] == label
    assert right >= 7  # the network is a real one


def test_json_pixels_answer_like_predict_of_the_same_array(
    server, bpnet_exe, weights, digits, tmp_path
):
    _, _, x = digits
    np.save(tmp_path / "digit.npy", x[1])
    status, _, body = server.post(
        json.dumps({"pixels": x[1].tolist()}).encode(), "application/json", path="/predict?top=10"
    )
    assert status == 200, body
    got = json.loads(body)
    assert got["top"] == predict_json(bpnet_exe, weights, tmp_path / "digit.npy", 10)["top"]
    assert len(got["top"]) == 10 and abs(sum(t["probability"] for t in got["top"]) - 1) < 1e-9
    # the input the network saw is predict's preprocessing of the digit
    from bpnet.data.images import mnist_preprocess

    assert np.allclose(got["input"], np.round(mnist_preprocess(x[1].astype(float)), 1))


def test_the_page_and_its_assets_are_served_from_the_package(server):
    status, headers, body = server.get("/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'<canvas id="pad"' in body and b'src="app.js"' in body and b'src="trace.js"' in body
    for path, kind in (
        ("/app.js", "text/javascript"),
        ("/trace.js", "text/javascript"),
        ("/style.css", "text/css"),
    ):
        status, headers, asset = server.get(path)
        assert status == 200 and headers["Content-Type"].startswith(kind)
        assert b"http://" not in asset and b"https://" not in asset  # nothing from the internet
    assert b"pointerdown" in server.get("/app.js")[2]


def png_header_claiming(width, height):
    """A PNG whose header claims width x height pixels (and whose data is garbage)."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"\0" * 64)


def blank_png():
    import io

    buf = io.BytesIO()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


POST = "POST /predict HTTP/1.1\r\nHost: x\r\n"
BAD = {
    "oversized": (
        (POST + f"Content-Type: image/png\r\nContent-Length: {IMAGE_LIMIT + 1}\r\n\r\n").encode(),
        413,
        "more than the 200000 accepted",
    ),
    "oversized-json": (
        (POST + "Content-Type: application/json\r\nContent-Length: 300000\r\n\r\n").encode(),
        413,
        "more than the 262144 accepted",
    ),
    "truncated": (
        (POST + "Content-Type: image/png\r\nContent-Length: 1000\r\n\r\n").encode()
        + b"\x89PNG\r\n\x1a\n",
        400,
        "body ended after 8 of 1000 bytes",
    ),
    "no-length": ((POST + "Content-Type: image/png\r\n\r\n").encode(), 411, "no Content-Length"),
    "bad-length": (
        (POST + "Content-Type: image/png\r\nContent-Length: -5\r\n\r\n").encode(),
        400,
        "expected a number of bytes",
    ),
    "chunked": (
        (
            POST + "Content-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n0\r\n\r\n"
        ).encode(),
        411,
        "chunked bodies are not accepted",
    ),
    "wrong-type": (
        (POST + "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello").encode(),
        415,
        "Content-Type text/plain: expected an image (image/png, ...), multipart/form-data, "
        "application/json or none",
    ),
    "no-type-not-an-image": (
        (POST + "Content-Length: 5\r\n\r\nhello").encode(),
        400,
        "image body: not a PNG, JPEG, PGM (P2/P5) or NPY image: a text file",
    ),
    "garbage-json": (
        (POST + "Content-Type: application/json\r\nContent-Length: 9\r\n\r\n{pixels:[").encode(),
        400,
        "not valid JSON",
    ),
    "json-not-object": (
        (POST + "Content-Type: application/json\r\nContent-Length: 7\r\n\r\n[1,2,3]").encode(),
        400,
        'expected an object {"pixels"',
    ),
    "json-deep": (
        (POST + "Content-Type: application/json\r\nContent-Length: 200000\r\n\r\n").encode()
        + b"[" * 100000
        + b"]" * 100000,
        400,
        "JSON body",
    ),
}


def json_case(pixels):
    body = json.dumps({"pixels": pixels}).encode()
    return (
        POST + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def png_case(raw):
    return (POST + f"Content-Type: image/png\r\nContent-Length: {len(raw)}\r\n\r\n").encode() + raw


BAD.update(
    {
        "json-wrong-shape": (json_case([[0] * 28] * 27), 400, "pixels of shape (27, 28)"),
        "json-ragged": (json_case([[0] * 28] * 27 + [[0]]), 400, "28 rows of 28 numbers"),
        "json-out-of-range": (json_case([[300] * 28] * 28), 400, "grey levels 0..255"),
        "json-strings": (json_case([["a"] * 28] * 28), 400, "28 rows of 28 numbers"),
        "json-blank": (json_case([[0] * 28] * 28), 400, "JSON body:"),
        "png-bomb-header": (
            png_case(png_header_claiming(100_000, 100_000)),
            400,
            "100000x100000 = 10000000000 pixels",
        ),
        "png-garbage": (png_case(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10), 400, "cannot decode PNG"),
        "not-an-image": (
            png_case(b"hello world"),
            400,
            "not a PNG, JPEG, PGM (P2/P5) or NPY image",
        ),
        "blank-png": (png_case(blank_png()), 400, "image body"),
        "bad-top": (
            b"POST /predict?top=0 HTTP/1.1\r\nContent-Type: image/png\r\nContent-Length: 0\r\n\r\n",
            400,
            "expected a whole number 1..10",
        ),
        "post-elsewhere": (
            b"POST /train HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            404,
            "POST /predict",
        ),
        "get-unknown": (b"GET /weights.npz HTTP/1.1\r\n\r\n", 404, "no page /weights.npz"),
        "traversal": (b"GET /../../etc/passwd HTTP/1.1\r\n\r\n", 404, "no page"),
        "traversal-encoded": (b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n\r\n", 404, "no page"),
        "wrong-method": (
            b"DELETE /predict HTTP/1.1\r\n\r\n",
            405,
            "DELETE /predict: expected POST",
        ),
        "garbage-request": (b"\x00\x01\x02 nonsense\r\n\r\n", 400, ""),
    }
)


@pytest.mark.parametrize("case", BAD)
def test_a_bad_request_is_a_4xx_with_one_line_of_json_and_the_server_goes_on(server, digits, case):
    raw, status, needle = BAD[case]
    started = time.monotonic()
    got, headers, body = server.request(raw)
    assert got == status, (got, body)
    assert headers["Content-Type"] == "application/json"
    assert b"\n" not in body.strip()
    error = json.loads(body)["error"]
    assert needle in error and len(error) < 400, error
    assert time.monotonic() - started < 15
    assert good_answer(server, digits)["top"][0]["label"] == digits[1][0]  # still serving
    assert server.proc.poll() is None


def test_a_stalled_client_gets_408_and_others_are_served_meanwhile(server, digits):
    slow = socket.create_connection((server.host, server.port), timeout=30)
    slow.sendall((POST + "Content-Type: image/png\r\nContent-Length: 100\r\n\r\n").encode())
    started = time.monotonic()
    assert good_answer(server, digits)["top"]  # served while the slow one waits
    assert time.monotonic() - started < 5
    data = b""
    while chunk := slow.recv(65536):  # the server gives up on it after 10 s of silence
        data += chunk
    slow.close()
    assert 9 < time.monotonic() - started < 15
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 408 Request Timeout", data
    assert json.loads(body) == {"error": "body stalled: nothing received for 10 s"}


def test_ctrl_c_stops_the_server_with_exit_status_0(bpnet_exe, weights):
    srv = Server(bpnet_exe, weights)
    assert srv.host == "127.0.0.1"  # loopback unless --host says otherwise
    srv.proc.send_signal(signal.SIGINT)
    out, err = srv.proc.communicate(timeout=30)
    assert srv.proc.returncode == 0, err
    assert "Traceback" not in err
    with pytest.raises(OSError):
        socket.create_connection((srv.host, srv.port), timeout=2).close()


def test_weights_that_are_not_for_28x28_digits_are_refused_at_start(bpnet_exe, tmp_path):
    from bpnet.nn.network import param_shapes
    from bpnet.training.weights import save_weights

    params = {k: np.zeros(s, np.float32) for k, s in param_shapes([30, 5, 3]).items()}
    save_weights(
        tmp_path / "w.npz",
        params,
        {
            "sizes": [30, 5, 3],
            "activation": "relu",
            "dataset": "mnist",
            "normalize": True,
            "dtype": "float32",
        },
    )
    r = subprocess.run(
        [bpnet_exe, "serve", str(tmp_path / "w.npz"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"bpnet: error: {tmp_path / 'w.npz'}: the network takes 30 "
        f"inputs, expected 784 (28x28 images)"
    )


def test_a_taken_port_is_one_line_and_exit_status_1(bpnet_exe, good_weights):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run(
            [bpnet_exe, "serve", str(good_weights), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"bpnet: error: cannot listen on 127.0.0.1:{port}"
    ), r.stderr


def test_the_served_files_are_in_the_package():
    from importlib import resources

    static = resources.files("bpnet.apps.serve").joinpath("static")
    assert {p.name for p in static.iterdir()} >= {"index.html", "app.js", "trace.js", "style.css"}
    repo = Path(__file__).resolve().parents[2]
    assert repo.joinpath("apps", "serve", "static", "app.js").exists()


def test_a_body_trickled_byte_by_byte_is_cut_off_by_its_deadline(good_weights, monkeypatch):
    import bpnet.apps.serve as serve

    monkeypatch.setattr(serve, "BODY_SECONDS", 2.0)
    with InProcess(good_weights) as srv:
        started = time.monotonic()
        with socket.create_connection(srv.address, timeout=20) as s:
            s.sendall((POST + "Content-Type: image/png\r\nContent-Length: 1000\r\n\r\n").encode())
            reply = trickle_until_answered(s, b"x")
        assert reply.split(b"\r\n")[0].split()[1] == b"408", reply
        assert b"body too slow" in reply
        assert time.monotonic() - started < 6


@pytest.mark.parametrize("start, byte", [(POST + "X-Slow: ", b"y"), ("POST /pre", b"d")])
def test_a_request_head_trickled_byte_by_byte_is_cut_off_by_its_deadline(
    good_weights, monkeypatch, start, byte
):
    import bpnet.apps.serve as serve

    monkeypatch.setattr(serve, "HEAD_SECONDS", 2.0)
    with InProcess(good_weights) as srv:
        started = time.monotonic()
        with socket.create_connection(srv.address, timeout=20) as s:
            s.sendall(start.encode())
            reply = trickle_until_answered(s, byte)
        assert reply.split(b"\r\n")[0].split()[1] == b"408", reply
        assert reply.endswith(b'{"error": "request line and headers too slow: more than 2 s"}')
        assert time.monotonic() - started < 6
        with socket.create_connection(srv.address, timeout=20) as s:  # and it goes on
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_connections_beyond_the_limit_are_answered_503_at_once(good_weights):
    with InProcess(good_weights, max_connections=2) as srv:
        idle = [socket.create_connection(srv.address, timeout=20) for _ in range(2)]
        time.sleep(0.5)  # both accepted: each holds a thread waiting for its request
        started = time.monotonic()
        with socket.create_connection(srv.address, timeout=20) as s:
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        assert time.monotonic() - started < 2  # refused without waiting on anything
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0] == b"HTTP/1.1 503 Service Unavailable", reply
        assert json.loads(body) == {
            "error": "busy: 2 connections are open, the most served at once; try again"
        }
        for s in idle:
            s.close()
        deadline = time.monotonic() + 10
        while True:  # the two threads see their clients gone and free their places
            with socket.create_connection(srv.address, timeout=20) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                status = s.recv(65536).split(b"\r\n")[0]
            if status == b"HTTP/1.1 200 OK" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status == b"HTTP/1.1 200 OK"


def test_max_connections_must_be_a_positive_number(bpnet_exe, good_weights):
    r = subprocess.run(
        [bpnet_exe, "serve", str(good_weights), "--max-connections", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "--max-connections" in r.stderr and "Traceback" not in r.stderr


class watching_assignments:
    """Records every assignment to ``name`` on ``module`` while in force (the module gets a
    class of its own, through which its attribute assignments go)."""

    def __init__(self, module, name):
        import types

        self.module, self.writes = module, []

        class Watched(types.ModuleType):
            def __setattr__(inner, key, value):
                if key == name:
                    self.writes.append(value)
                super().__setattr__(key, value)

        self.cls = Watched

    def __enter__(self):
        self.module.__class__ = self.cls
        return self.writes

    def __exit__(self, *exc):
        import types

        self.module.__class__ = types.ModuleType


def post_png(address, body):
    """(status, parsed JSON) of ``POST /predict`` with a PNG body, on a connection of its own
    (closed by the server after its answer)."""
    head = (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(address, timeout=60) as s:
        s.sendall(head + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, answer = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(answer)


def test_uploads_at_once_change_no_process_wide_state(good_weights, digits, monkeypatch):
    """Twelve clients post PNGs at once, round after round, to a server in this process: some
    digits, some over the pixel limit. Each answer is what that PNG gets alone, and all along
    no request thread assigns Pillow's ``MAX_IMAGE_PIXELS`` or ``warnings.filters`` (a
    thread samples both too, and compares them before and after)."""
    import io
    import threading
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("BPNET_MAX_IMAGE_PIXELS", str(100 * 100))
    big = np.zeros((120, 90), np.uint8)
    big[20:100, 40:50] = 255
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, "PNG")
    bodies = [p.read_bytes() for p in digits[0]] + [buf.getvalue()]
    with InProcess(good_weights) as srv:
        alone = [post_png(srv.address, b) for b in bodies]
        assert [s for s, _ in alone] == [200] * (len(bodies) - 1) + [400]
        assert "120 = 10800 pixels, more than the 10000 read" in alone[-1][1]["error"]
        limit, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
        seen, running = [], threading.Event()

        def sample():
            while running.is_set():
                if limit != Image.MAX_IMAGE_PIXELS or warnings.filters != filters:
                    seen.append((Image.MAX_IMAGE_PIXELS, len(warnings.filters)))

        order = list(range(len(bodies))) * 12
        with (
            watching_assignments(Image, "MAX_IMAGE_PIXELS") as pillow_writes,
            watching_assignments(warnings, "filters") as warning_writes,
        ):
            running.set()
            sampler = threading.Thread(target=sample)
            sampler.start()
            try:
                with ThreadPoolExecutor(12) as pool:
                    answers = list(pool.map(lambda i: post_png(srv.address, bodies[i]), order))
            finally:
                running.clear()
                sampler.join()
        assert answers == [alone[i] for i in order]
        assert pillow_writes == [] and warning_writes == [] and seen == []
        assert limit == Image.MAX_IMAGE_PIXELS and warnings.filters == filters
