"""bpnet serve at its edges, a real server process on a free loopback port and raw sockets: strict
request parsing (each refusal one line of JSON, and the server goes on), the methods of each path
(405 with Allow, HEAD), digits uploaded as bare bytes or as a multipart form and read as `bpnet
predict` reads files, a client that resets mid-request (one log line), and the addresses it
listens on (IPv6, a warning when open to the network)."""

from __future__ import annotations

import json
import shutil
import socket
import struct
import subprocess
import time

import numpy as np
import pytest
from servers import Server, exchange, parse_response

Image = pytest.importorskip("PIL.Image", reason="pip install 'bpnet[image]'")

POST = "POST /predict HTTP/1.1\r\nHost: x\r\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same digit as PNG, JPEG, PGM (P5) and NPY files."""
    folder = tmp_path_factory.mktemp("files")
    digit = np.zeros((40, 30), np.uint8)
    digit[6:34, 13:18] = 255
    digit[6:11, 8:18] = 255
    Image.fromarray(digit).save(folder / "one.png")
    Image.fromarray(digit).save(folder / "one.jpg", quality=95)
    (folder / "one.pgm").write_bytes(b"P5 30 40 255\n" + digit.tobytes())
    np.save(folder / "one.npy", digit)
    return [folder / f"one.{ext}" for ext in ("png", "jpg", "pgm", "npy")]


def predict_json(exe, weights, paths, top=3):
    r = subprocess.run(
        [exe, "predict", str(weights), *map(str, paths), "--json", "--top", str(top)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return [item["top"] for item in json.loads(r.stdout)]


def same_top(got, expected):
    """The same classes in the same order, with the same probabilities but for float32
    rounding (predict reads its files as one batch, the server one digit at a time)."""
    return [t["label"] for t in got] == [t["label"] for t in expected] and np.allclose(
        [t["probability"] for t in got], [t["probability"] for t in expected], rtol=1e-5
    )


def form(parts, boundary="bpnet-boundary-42"):
    """A multipart/form-data body of (name, filename or None, bytes) parts."""
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        body += b"Content-Type: application/octet-stream\r\n\r\n" if filename else b"\r\n"
        body += data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def upload(raw, content_type=None, path="/predict", extra=""):
    head = POST.replace("/predict", path) + extra
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    return (head + f"Content-Length: {len(raw)}\r\n\r\n").encode() + raw


def good_answer(server, files):
    status, _, body = server.request(upload(files[0].read_bytes(), "image/png"))
    assert status == 200, body
    return json.loads(body)


def test_digits_as_bare_bytes_or_a_form_answer_what_predict_says(server, bpnet_exe, weights, files):
    expected = predict_json(bpnet_exe, weights, files)
    for path, top in zip(files, expected):
        raw = path.read_bytes()
        ways = {
            "no Content-Type": upload(raw),
            "octet-stream": upload(raw, "application/octet-stream"),
            "another image type": upload(raw, "image/x-anything"),
            "curl's --data-binary default": upload(raw, "application/x-www-form-urlencoded"),
            "form": upload(
                form([("note", None, b"hello"), ("file", path.name, raw)]),
                "multipart/form-data; boundary=bpnet-boundary-42",
            ),
            "form, quoted boundary, one part": upload(
                form([("digit", None, raw)], "q b"), 'multipart/form-data; boundary="q b"'
            ),
        }
        for way, request in ways.items():
            status, headers, body = server.request(request)
            assert status == 200 and headers["Content-Type"] == "application/json", (way, body)
            assert same_top(json.loads(body)["top"], top), (path.name, way)


def test_a_form_from_requests_and_from_curl(server, bpnet_exe, weights, files):
    import requests

    top = predict_json(bpnet_exe, weights, files[:1], 2)[0]
    with open(files[0], "rb") as fh:
        r = requests.post(
            server.url + "predict?top=2", files={"file": fh}, timeout=30, proxies={"http": None}
        )
    assert r.status_code == 200 and same_top(r.json()["top"], top), r.text
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl not installed")
    out = subprocess.run(
        [curl, "-s", "--noproxy", "*", "-F", f"file=@{files[0]}", server.url + "predict?top=2"],
        capture_output=True,
        timeout=30,
    ).stdout
    assert same_top(json.loads(out)["top"], top)


def test_the_methods_of_each_path(server):
    for method, path, allow in [
        ("GET", "/predict", "POST"),
        ("PUT", "/predict", "POST"),
        ("OPTIONS", "/predict", "POST"),
        ("POST", "/", "GET, HEAD"),
        ("DELETE", "/app.js", "GET, HEAD"),
    ]:
        status, headers, body = server.request(
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode()
        )
        assert status == 405 and headers["Allow"] == allow, (method, path, body)
        error = json.loads(body)["error"]
        assert error.startswith(f"{method} {path}: expected "), error
    assert "the page to draw on is /" in json.loads(server.get("/predict")[2])["error"]


def test_head_answers_the_headers_of_get_without_a_body(server):
    for path in ("/", "/app.js", "/trace.js", "/style.css"):
        _, get_headers, page = server.get(path)
        raw = exchange(server.address, f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, headers, body = parse_response(raw)
        assert status == 200 and body == b"", raw
        assert headers["Content-Length"] == str(len(page)) == get_headers["Content-Length"]
        assert headers["Content-Type"] == get_headers["Content-Type"]
    for path, status in (("/predict", 405), ("/nothing", 404)):
        raw = exchange(server.address, f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert parse_response(raw)[0] == status and parse_response(raw)[2] == b"", raw


def head_with(lines, body=b"hello"):
    return (POST + "Content-Type: image/png\r\n" + lines + "\r\n").encode() + body


def with_query(query):
    return (
        f"POST /predict?{query} HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


BIG = 2 * 1024**3
STRICT = {
    # Content-Length: one number of ASCII digits, given once
    "length-twice-equal": (
        head_with("Content-Length: 5\r\nContent-Length: 5\r\n"),
        400,
        "Content-Length given more than once (5, 5): expected one",
    ),
    "length-conflicting": (
        head_with("Content-Length: 5\r\nContent-Length: 6\r\n"),
        400,
        "Content-Length given more than once (5, 6)",
    ),
    "length-list": (
        head_with("Content-Length: 5,5\r\n"),
        400,
        "Content-Length '5,5': expected a number of bytes",
    ),
    "length-superscript": (
        head_with("Content-Length: ²\r\n"),
        400,
        "Content-Length '\\xc2\\xb2': expected a number of bytes",
    ),
    "length-arabic-indic": (
        head_with("Content-Length: ٥\r\n"),
        400,
        "expected a number of bytes",
    ),
    "length-fullwidth": (
        head_with("Content-Length: ５\r\n"),
        400,
        "expected a number of bytes",
    ),
    "length-plus": (head_with("Content-Length: +5\r\n"), 400, "Content-Length '+5'"),
    "length-hex": (head_with("Content-Length: 0x5\r\n"), 400, "Content-Length '0x5'"),
    "length-5000-digits": (
        head_with("Content-Length: " + "9" * 5000 + "\r\n", b""),
        400,
        "Content-Length of 5000 digits",
    ),
    "length-2-GB": (head_with(f"Content-Length: {BIG}\r\n", b""), 413, f"body of {BIG} bytes"),
    "length-2-GB-expecting-100": (
        head_with(f"Content-Length: {BIG}\r\nExpect: 100-continue\r\n", b""),
        413,
        "more than the",
    ),
    # ?top=K: ASCII digits, once, 1..classes
    "top-circled": (with_query("top=%E2%91%A0"), 400, "top='\u2460': expected a whole number"),
    "top-superscript": (with_query("top=%C2%B2"), 400, "top='\u00b2': expected a whole number"),
    "top-twice": (with_query("top=1&top=2"), 400, "top given 2 times: expected it once"),
    "top-huge": (with_query("top=" + "9" * 30), 400, "expected a whole number 1..10"),
    "top-signed": (with_query("top=%2B3"), 400, "top='+3'"),
    "top-zero": (with_query("top=0"), 400, "top=0: expected a whole number 1..10"),
    "top-raw-utf8": (
        "POST /predict?top=① HTTP/1.1\r\n\r\n".encode(),
        400,
        "malformed request",
    ),
    # Transfer-Encoding: refused, whatever the coding or version
    "te-gzip": (head_with("Transfer-Encoding: gzip\r\n"), 411, "Content-Length"),
    "te-chunked-and-length": (
        head_with("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
        411,
        "chunked bodies are not accepted",
    ),
    "te-http-1.0": (
        head_with("Transfer-Encoding: chunked\r\n").replace(b"HTTP/1.1", b"HTTP/1.0"),
        411,
        "chunked bodies are not accepted",
    ),
    # malformed heads
    "bare-lf": (b"GET / HTTP/1.1\nHost: x\n\n", 400, "request ended before its headers did"),
    "lowercase-method": (b"get / HTTP/1.1\r\n\r\n", 400, "malformed request"),
    "header-without-colon": (b"GET / HTTP/1.1\r\nNonsense\r\n\r\n", 400, "malformed request"),
    "space-before-colon": (head_with("Content-Length : 5\r\n"), 400, "malformed request"),
    "nul-in-header": (b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400, "malformed request"),
    "head-over-64-KB": (
        b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
        431,
        "request line and headers too long",
    ),
    "json-over-256-KB-sent-whole": (
        upload(b"[" + b"0," * 150_000 + b"0]", "application/json"),
        413,
        "body of 300003 bytes, more than the 262144 accepted",
    ),
    "http2-preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 404, "no page *"),
    # forms that carry no digit
    "form-without-boundary": (
        upload(form([("file", "a.png", b"x")]), "multipart/form-data"),
        400,
        "multipart/form-data without a boundary",
    ),
    "form-without-a-file": (
        upload(
            form([("a", None, b"1"), ("b", None, b"2")]),
            "multipart/form-data; boundary=bpnet-boundary-42",
        ),
        400,
        "multipart form of 2 parts and no file: send the digit as a file",
    ),
    "form-cut-short": (
        upload(
            form([("file", "a.png", b"x")])[:-30], "multipart/form-data; boundary=bpnet-boundary-42"
        ),
        400,
        "a part without its headers or closing boundary",
    ),
    "form-of-text": (
        upload(
            form([("file", "notes.txt", b"hello")]),
            "multipart/form-data; boundary=bpnet-boundary-42",
        ),
        400,
        "notes.txt: not a PNG, JPEG, PGM (P2/P5) or NPY image: a text file",
    ),
    "form-too-long": (
        (
            POST + "Content-Type: multipart/form-data; boundary=b\r\n"
            "Content-Length: 67174401\r\n\r\n"
        ).encode(),
        413,
        "body of 67174401 bytes, more than the 67174400 accepted",
    ),
}


@pytest.mark.parametrize("case", STRICT)
def test_a_strictly_refused_request_is_one_line_of_json_and_the_server_goes_on(server, files, case):
    raw, status, needle = STRICT[case]
    started = time.monotonic()
    data = exchange(server.address, raw)
    got, headers, body = parse_response(data)
    assert got == status, data
    assert headers["Content-Type"] == "application/json" and b"100 Continue" not in data
    assert b"\n" not in body.strip()
    error = json.loads(body)["error"]
    assert needle in error and len(error) < 400, error
    assert time.monotonic() - started < 5
    assert good_answer(server, files)["top"]  # still serving
    assert server.proc.poll() is None


def test_the_33rd_connection_is_answered_503_at_once_and_the_32_are_served(server, files):
    time.sleep(0.5)  # connections of earlier tests closed (a refused one lingers a moment)
    idle = [socket.create_connection(server.address, timeout=20) for _ in range(32)]
    try:
        time.sleep(0.5)  # all accepted
        started = time.monotonic()
        status, headers, body = server.get("/")  # sent at once: read or not, 503
        assert time.monotonic() - started < 2
        assert status == 503 and headers["Retry-After"] == "1", body
        assert json.loads(body) == {
            "error": "busy: 32 connections are open, the most served at once; try again"
        }
        idle[0].sendall(upload(files[0].read_bytes(), "image/png", extra="Connection: close\r\n"))
        reply = b""
        while chunk := idle[0].recv(65536):  # one of the 32 is served meanwhile
            reply += chunk
        assert parse_response(reply)[0] == 200
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + 10
    while server.get("/")[0] != 200:  # their places are free again
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_a_refused_clients_late_request_does_not_reset_its_503(server):
    """The 503 is sent at once; what the client sends after it is read and dropped until the
    client ends its side, not met with a reset (which can reach a client before the answer and
    lose it, and fails the client's next send)."""
    time.sleep(0.5)  # connections of earlier tests closed
    idle = [socket.create_connection(server.address, timeout=20) for _ in range(32)]
    try:
        time.sleep(0.5)  # all accepted
        with socket.create_connection(server.address, timeout=20) as late:
            time.sleep(0.5)  # answered and ended on the server's side before we send
            late.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.5)  # a reset, if the server had closed, arrives meanwhile
            late.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # after a reset: EPIPE
            late.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := late.recv(65536):
                reply += chunk
        assert parse_response(reply)[0] == 503, reply
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + 10
    while server.get("/")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def reset(address, raw):
    """Send ``raw``, then reset the connection (RST, not an orderly end)."""
    s = socket.create_connection(address, timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if raw:
        s.sendall(raw)
    time.sleep(0.3)
    s.close()


def test_a_client_that_resets_mid_request_costs_one_log_line(bpnet_exe, weights, files):
    srv = Server(bpnet_exe, weights, quiet=False)
    try:
        partial = {
            "in the request line": b"POST /pre",
            "in the headers": POST.encode() + b"Content-Type: image/png\r\n",
            "in the body": upload(files[0].read_bytes(), "image/png")[:-50],
        }
        for raw in partial.values():
            reset(srv.address, raw)
        reset(srv.address, b"")  # an idle connection: nothing to log
        assert good_answer(srv, files)["top"]
    finally:
        err = srv.stop()
    lines = err.strip().splitlines()
    assert "Traceback" not in err and "Exception" not in err, err
    resets = [line for line in lines if "reset by the client mid-request" in line]
    assert len(resets) == 3 and len(lines) == 4, err
    assert '"POST /pre" -' in resets[0] and '"POST /predict HTTP/1.1" -' in resets[2]
    assert lines[-1].endswith('"POST /predict HTTP/1.1" 200 ' + lines[-1].split()[-1])


def listening(exe, weights, host):
    """(first stderr lines, whether a page came back) of `bpnet serve --host HOST`."""
    srv = Server(exe, weights, host=host)
    try:
        ok = srv.get("/")[0] == 200
    finally:
        err = srv.stop()
    return srv.url, err.strip().splitlines(), ok


def ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_loopback_addresses_serve_without_a_warning(bpnet_exe, weights):
    hosts = ["127.0.0.1", "localhost"] + (["::1"] if ipv6_loopback() else [])
    for host in hosts:
        url, lines, ok = listening(bpnet_exe, weights, host)
        assert ok and lines == [], (host, lines)
        assert url.startswith(("http://[::1]:", "http://127.0.0.1:")), url
        assert host == "localhost" or url.startswith(f"http://{'[::1]' if ':' in host else host}:")
    if "::1" not in hosts:
        pytest.skip("no IPv6 loopback here: --host ::1 not tried")


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_an_address_open_to_the_network_is_served_with_a_one_line_warning(bpnet_exe, weights, host):
    if ":" in host and not ipv6_loopback():
        pytest.skip("no IPv6 here")
    url, lines, ok = listening(bpnet_exe, weights, host)
    assert ok and url.startswith(f"http://{'[::]' if ':' in host else host}:")
    assert lines == [
        f"bpnet: warning: listening on {host}: the page and POST /predict are open to every "
        f"machine that can reach this one (--host 127.0.0.1 keeps them on this one)"
    ]


def test_an_address_that_cannot_be_listened_on_is_one_line_and_exit_status_1(bpnet_exe, weights):
    for host in ("no-such-host.invalid", "192.0.2.1"):
        r = subprocess.run(
            [bpnet_exe, "serve", str(weights), "--host", host, "--port", "0"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 1, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"bpnet: error: cannot listen on {host}:0 (")
