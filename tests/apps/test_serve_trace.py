"""``POST /predict?trace=1[&target=C]``: the digit's forward and backward trace from a real
`bpnet serve` process is what ``network_trace`` gives for the same digit read as `bpnet predict`
reads it (PNG, form, JSON pixels; traces asked for at once from several threads too); bad
``trace``/``target`` values are refused from the request's head in one line of JSON, and a trace
is held to the same body limits and memory budget as a prediction."""

from __future__ import annotations

import io
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from servers import InProcess, exchange, parse_response

from bpnet.apps.graph.trace import network_trace
from bpnet.base.text import human
from bpnet.data.images import load_digit, mnist_preprocess
from bpnet.nn.evaluate import input_scale, to_input
from bpnet.training.weights import network_from_weights

Image = pytest.importorskip("PIL.Image", reason="pip install 'bpnet[image]'")
MB = 1024**2


def png_of(digit):
    buf = io.BytesIO()
    Image.fromarray(digit).save(buf, "PNG")
    return buf.getvalue()


def digits():
    """A few digit-like drawings (strokes of ink on black), 40x30 grey levels."""
    made = []
    for k in range(4):
        d = np.zeros((40, 30), np.uint8)
        d[6:34, 12 + k : 17 + k] = 255
        d[6 + 6 * k : 11 + 6 * k, 5:25] = 200
        made.append(d)
    return made


def request(query, body, content_type="image/png", extra=""):
    return (
        f"POST /predict{query} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def post(address, query, body, content_type="image/png"):
    status, headers, raw = parse_response(exchange(address, request(query, body, content_type)))
    return status, headers, json.loads(raw)


def expected(weights, digit, target=None):
    """network_trace of a digit (already preprocessed, 28x28 0..255) as the server reads it."""
    net, meta = network_from_weights(weights)
    x = to_input(digit[None], input_scale(meta["normalize"]), np.float64)[0]
    return network_trace(net, x, target)


def test_a_traced_png_form_or_json_digit_is_what_network_trace_gives(server, weights):
    d = digits()[0]
    png = png_of(d)
    read = load_digit("drawing.png", png)  # what bpnet predict makes of the same bytes
    status, _, plain = post(server.address, "?top=3", png)
    assert status == 200 and "trace" not in plain
    for query, target in (("?trace=1", None), ("?top=2&trace=1&target=6", 6)):
        status, _, got = post(server.address, query, png)
        assert status == 200, got
        assert got["top"][: len(plain["top"])] == plain["top"][: len(got["top"])]
        assert got["trace"] == expected(weights, read, target)
        assert got["trace"]["predicted"] == plain["top"][0]["label"]
        assert got["trace"]["target"] == (plain["top"][0]["label"] if target is None else 6)
    boundary = "bpnet-trace"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.png"\r\n\r\n'
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, _, got = post(
        server.address, "?trace=1&target=2", form, f"multipart/form-data; boundary={boundary}"
    )
    assert status == 200 and got["trace"] == expected(weights, read, 2)
    pixels = json.dumps({"pixels": np.pad(d[8:32, 3:27], 2).tolist()}).encode()
    status, _, got = post(server.address, "?trace=1", pixels, "application/json")
    assert status == 200
    want = mnist_preprocess(np.array(json.loads(pixels)["pixels"], dtype=np.float64))
    assert got["trace"] == expected(weights, want)
    status, _, plain = post(server.address, "?trace=0", png)
    assert status == 200 and "trace" not in plain


def test_traces_asked_for_at_once_are_each_their_own(weights):
    cases = [(png_of(d), t) for d in digits() for t in (None, 1, 8)]
    wants = [expected(weights, load_digit("d.png", png), t) for png, t in cases]
    with InProcess(weights) as srv:

        def ask(case):
            png, t = case
            return post(srv.address, "?trace=1" + ("" if t is None else f"&target={t}"), png)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, cases * 2))
    for (status, _, got), want in zip(answers, wants * 2):
        assert status == 200 and got["trace"] == want


BAD = {
    "trace=2": "trace='2': expected 1 (or 0)",
    "trace=yes": "trace='yes': expected 1 (or 0)",
    "trace=1&trace=1": "trace given 2 times: expected it once",
    "target=3": "target='3' without trace=1: the target is the class a trace's loss is taken",
    "trace=0&target=3": "target='3' without trace=1",
    "trace=1&target=10": "target=10: expected a class 0..9",
    "trace=1&target=%2B3": "target='+3': expected a class 0..9",
    "trace=1&target=%C2%B2": "target='\u00b2': expected a class 0..9",
    "trace=1&target=" + "9" * 2000: "target of 2000 digits: expected a class 0..9",
    "trace=1&target=1&target=2": "target given 2 times: expected it once",
}


@pytest.mark.parametrize("query", BAD)
def test_a_bad_trace_or_target_is_refused_from_the_head_in_one_line(server, query):
    """The head claims a body that never comes: the refusal cannot have waited for it."""
    started = time.monotonic()
    with socket.create_connection(server.address, timeout=20) as s:
        s.sendall(
            (
                f"POST /predict?{query} HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                "Content-Length: 100000\r\n\r\n"
            ).encode()
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status, headers, body = parse_response(data)
    assert status == 400 and headers["Content-Type"] == "application/json", data
    assert b"\n" not in body.strip() and b"100 Continue" not in data
    assert BAD[query] in json.loads(body)["error"]
    assert time.monotonic() - started < 5
    assert post(server.address, "?trace=1", png_of(digits()[1]))[0] == 200  # and it goes on


def test_a_trace_keeps_the_body_limits(server):
    for query in ("?trace=1", "?trace=1&target=4"):
        raw = (
            f"POST /predict{query} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {300 * 1024}\r\n\r\n"
        ).encode()
        status, _, body = parse_response(exchange(server.address, raw))
        assert status == 413
        assert json.loads(body)["error"] == "body of 307200 bytes, more than the 262144 accepted"
    status, _, got = post(server.address, "?trace=1", b"hello")
    assert status == 400 and "not a PNG, JPEG, PGM (P2/P5) or NPY image" in got["error"]
    status, _, got = post(server.address, "?trace=1", b'{"pixels": [1, 2]}', "application/json")
    assert status == 400 and got["error"].startswith("JSON body: pixels of shape (2,)")


def test_a_trace_is_held_to_the_memory_budget(weights):
    png = png_of(digits()[2])
    pixels = json.dumps({"pixels": np.pad(digits()[2][8:32, 3:27], 2).tolist()}).encode()
    with InProcess(weights, decode_memory=8 * MB) as srv:
        tracing = srv.server.app.classifier.trace_bytes
        assert 8 * MB < tracing < 64 * MB  # more than this budget, a fraction of the default
        assert post(srv.address, "", png)[0] == 200  # a prediction fits
        status, _, got = post(srv.address, "?trace=1", png)
        assert status == 413
        assert got["error"].startswith("reading image body and tracing it needs about ")
        assert got["error"].endswith(
            "more than the 8 MB this server gives the uploads in hand (bpnet serve --decode-memory)"
        )
        status, _, got = post(srv.address, "?trace=1", pixels, "application/json")
        assert status == 413 and got["error"].startswith("tracing the digit needs about ")
        assert srv.server.app.budget.used == 0  # every reservation given back
    with InProcess(weights, decode_memory=tracing + 4 * MB) as srv:
        srv.server.app.budget.wait = 0.5
        hog = srv.server.app.budget.reserve()
        hog.need(4 * MB + 1, "a hog")  # room for a prediction, not for a trace beside it
        assert post(srv.address, "", png)[0] == 200
        status, headers, got = post(srv.address, "?trace=1", png)
        assert status == 503 and headers["Retry-After"] == "1"
        assert got["error"].startswith(f"busy: the uploads in hand take {human(4 * MB + 1)}")
        hog.__exit__(None, None, None)
        assert post(srv.address, "?trace=1", png)[0] == 200
