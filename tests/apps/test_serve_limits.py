"""bpnet serve's limits in time and memory: the decode budget (its reservations, the estimate
of each image's decoding cost from its header against the measured cost, 32 hostile uploads at
once against a real server process's peak memory, 503 when busy, 413 beyond the whole budget),
408 for requests that stall, quiet ends for idle connections, and Ctrl-C in the middle of it."""

from __future__ import annotations

import io
import json
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from peak import run_measured
from servers import InProcess, Server, exchange, hostile_png, parse_response, peak_rss_mb

from bpnet.apps.serve import RequestError
from bpnet.apps.serve.budget import DECODE_MEMORY, Budget, decode_bytes
from bpnet.data.images import declared_size

Image = pytest.importorskip("PIL.Image", reason="pip install 'bpnet[image]'")
MB = 1024**2


def png_request(body, extra=""):
    return (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n{extra}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def answer(address, body):
    try:
        return parse_response(exchange(address, png_request(body), timeout=300))
    except OSError as e:
        return type(e).__name__, {}, b""


def test_reservations_together_never_pass_the_budget():
    budget = Budget(total=100, wait=0.3)
    with budget.reserve() as first:
        first.need(60, "the first")
        with budget.reserve() as second:
            started = time.monotonic()
            with pytest.raises(RequestError) as busy:
                second.need(50, "the second")  # waits for room, then gives up
            assert 0.25 < time.monotonic() - started < 2
            assert busy.value.status == 503 and busy.value.headers == {"Retry-After": "1"}
            assert str(busy.value) == (
                "busy: the uploads in hand take 60 bytes of the 100 bytes of memory this server "
                "gives them, and the second needs about 50 bytes; try again"
            )
            second.need(40, "the second")  # what fits is held at once
            assert budget.used == 100
        first.need(30, "less than held")  # holds what it holds already
        assert budget.used == 60
    assert budget.used == 0
    with pytest.raises(RequestError) as big, budget.reserve() as alone:
        alone.need(101, "a giant")  # more than the whole budget: refused at once, not waited for
    assert big.value.status == 413 and str(big.value) == (
        "a giant needs about 101 bytes of memory, more than the 100 bytes this server gives the "
        "uploads in hand (bpnet serve --decode-memory)"
    )
    assert budget.used == 0


def test_a_reservation_waits_for_one_that_is_given_back():
    budget = Budget(total=100, wait=5)
    first = budget.reserve()
    first.need(80, "the first")
    threading.Timer(0.3, first.__exit__, (None, None, None)).start()
    started = time.monotonic()
    with budget.reserve() as second:
        second.need(50, "the second")
        assert 0.2 < time.monotonic() - started < 3 and budget.used == 50


def image_bytes(kind, side=2048):
    """A digit of side x side pixels in the worst-costing variant of each format."""
    ink = np.zeros((side, side), np.uint8)
    ink[side // 4 : 3 * side // 4, side // 2 - 8 : side // 2 + 8] = 255
    buf = io.BytesIO()
    if kind == "png-rgba-transparent":
        rgba = np.zeros((side, side, 4), np.uint8)
        rgba[..., 3] = ink
        Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    elif kind == "png-16-bit":
        Image.fromarray(ink.astype(np.uint16) * 257).save(buf, "PNG")
    elif kind == "jpeg-cmyk":
        Image.fromarray(np.stack([ink] * 3, -1)).convert("CMYK").save(buf, "JPEG")
    elif kind == "pgm-ascii":
        values = " ".join(map(str, ink.ravel())).encode()
        buf.write(f"P2 {side} {side} 255\n".encode() + values)
    elif kind == "npy-float32":
        np.save(buf, ink.astype(np.float32) / 255)
    return buf.getvalue()


READ = (
    "import sys; from bpnet.data.images import load_digit; "
    "load_digit('x', open(sys.argv[1], 'rb').read())"
)
KINDS = ["png-rgba-transparent", "png-16-bit", "jpeg-cmyk", "pgm-ascii", "npy-float32"]


def test_an_images_estimate_covers_what_reading_it_takes(tmp_path):
    """The estimate from the header alone against the measured peak of reading and
    preprocessing the image in a process of its own (above that of a 28x28 digit)."""
    small = tmp_path / "small.png"
    Image.fromarray(np.pad(np.full((10, 4), 255, np.uint8), 9)).save(small)
    idle = run_measured([sys.executable, "-c", READ, small])
    assert idle.code == 0, idle.err
    for kind in KINDS:
        raw = image_bytes(kind)
        (tmp_path / kind).write_bytes(raw)
        r = run_measured([sys.executable, "-c", READ, tmp_path / kind])
        assert r.code == 0, (kind, r.err)
        cost, estimate = r.peak_mb - idle.peak_mb, decode_bytes(raw) / MB
        print(f"{kind}: {cost:.0f} MB measured, {estimate:.0f} MB estimated")
        assert cost <= estimate <= 2.5 * cost, (kind, cost, estimate)


def test_the_declared_size_is_read_from_the_header_of_every_format():
    assert declared_size(image_bytes("png-16-bit", 300)) == ("PNG", 300, 300)
    assert declared_size(image_bytes("jpeg-cmyk", 300)) == ("JPEG", 300, 300)
    assert declared_size(image_bytes("pgm-ascii", 30)) == ("P2", 30, 30)
    assert declared_size(b"P5 640 480 255\n") == ("P5", 640, 480)
    assert declared_size(image_bytes("npy-float32", 30)) == ("NPY", 30, 30)
    assert declared_size(hostile_png(4096)) == ("PNG", 4096, 4096)
    for junk in (b"", b"hello", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"P5 10", b"\x93NUMPY"):
        assert declared_size(junk) is None
        assert decode_bytes(junk) == len(junk)  # refused by the reader before it allocates
    claims_too_much = hostile_png(8192)  # over the pixel limit: refused from the header
    assert decode_bytes(claims_too_much) == len(claims_too_much)
    assert decode_bytes(hostile_png(4096)) > 4096 * 4096 * 40


def test_32_hostile_uploads_at_once_stay_within_the_budget(bpnet_exe, weights):
    """Each a 20 KB PNG declaring 4096x4096 pixels, which alone takes about 535 MB to read:
    32 at once took 9.9 GB in a server without a budget; within the 1 GB budget, a few hundred
    MB above idle (none of it timed)."""
    srv = Server(bpnet_exe, weights, "--max-connections", "64")
    try:
        idle = peak_rss_mb(srv.proc.pid)
        body = hostile_png(4096)
        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(lambda _: answer(srv.address, body), range(32)))
        peak = peak_rss_mb(srv.proc.pid)
    finally:
        srv.stop()
    print(f"32 hostile uploads at once: peak {peak:.0f} MB, idle {idle:.0f} MB")
    statuses = [status for status, _, _ in answers]
    assert set(statuses) <= {200, 503} and 200 in statuses, statuses
    for status, headers, body in answers:
        if status == 503:
            assert headers["Retry-After"] == "1" and json.loads(body)["error"].startswith("busy:")
    assert peak < idle + DECODE_MEMORY / MB + 200, (peak, idle)


def test_an_upload_beyond_the_whole_budget_is_413_at_once(bpnet_exe, weights):
    srv = Server(bpnet_exe, weights, "--decode-memory", "64M")
    try:
        status, _, body = answer(srv.address, hostile_png(2048))
        assert status == 413, body
        assert json.loads(body)["error"] == (
            "reading image body needs about 192 MB of memory, more than the 64 MB this "
            "server gives the uploads in hand (bpnet serve --decode-memory)"
        )
        small = io.BytesIO()
        Image.fromarray(np.pad(np.full((10, 4), 255, np.uint8), 9)).save(small, "PNG")
        assert answer(srv.address, small.getvalue())[0] == 200  # and it goes on
    finally:
        srv.stop()


def test_a_busy_budget_is_503_with_retry_after_then_serves_again(weights):
    small = io.BytesIO()
    Image.fromarray(np.pad(np.full((10, 4), 255, np.uint8), 9)).save(small, "PNG")
    with InProcess(weights, decode_memory=8 * MB) as srv:
        srv.server.app.budget.wait = 0.5
        hog = srv.server.app.budget.reserve()
        hog.need(8 * MB, "a hog")
        status, headers, body = answer(srv.address, small.getvalue())
        assert status == 503 and headers["Retry-After"] == "1", body
        assert json.loads(body)["error"].startswith(
            "busy: the uploads in hand take 8 MB of the 8 MB of memory this server gives them"
        )
        hog.__exit__(None, None, None)
        assert answer(srv.address, small.getvalue())[0] == 200


def read_all(s):
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except OSError:
        pass
    return data


def test_a_request_stalled_for_10_s_is_answered_408(bpnet_exe, weights):
    srv = Server(bpnet_exe, weights)
    try:
        head = socket.create_connection(srv.address, timeout=30)
        head.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n")
        body = socket.create_connection(srv.address, timeout=30)
        body.sendall(png_request(b"\x89PNG\r\n\x1a\n" + b"x" * 10)[:-4])
        started = time.monotonic()
        replies = [read_all(head), read_all(body)]
        assert 8 < time.monotonic() - started < 14
    finally:
        srv.stop()
    for reply, part in zip(replies, ("request line and headers", "body")):
        status, headers, text = parse_response(reply)
        assert status == 408 and headers["Content-Type"] == "application/json", reply
        assert json.loads(text) == {"error": f"{part} stalled: nothing received for 10 s"}


STALLS = {
    "in the request line": (b"POST /predi", "request line and headers stalled"),
    "in the headers": (b"POST /predict HTTP/1.1\r\nHost: x\r\n", "request line and headers"),
    "before the body": (png_request(b"0123456789")[:-10], "body stalled"),
    "in the body": (png_request(b"0123456789")[:-5], "body stalled"),
    "after 100 Continue": (
        png_request(b"0123456789", "Expect: 100-continue\r\n")[:-10],
        "body stalled",
    ),
}


@pytest.mark.parametrize("case", STALLS)
def test_a_stall_anywhere_in_a_request_is_408(weights, monkeypatch, case):
    import bpnet.apps.serve as serve

    monkeypatch.setattr(serve, "TIMEOUT", 1.0)
    raw, needle = STALLS[case]
    with InProcess(weights) as srv, socket.create_connection(srv.address, timeout=20) as s:
        s.sendall(raw)
        started = time.monotonic()
        reply = read_all(s)
        assert time.monotonic() - started < 4
    if case == "after 100 Continue":
        assert reply.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        reply = reply.split(b"\r\n\r\n", 1)[1]
    status, _, body = parse_response(reply)
    assert status == 408 and needle in json.loads(body)["error"], reply


def test_idle_connections_are_closed_without_an_answer(weights, monkeypatch):
    import bpnet.apps.serve as serve

    monkeypatch.setattr(serve, "TIMEOUT", 1.0)
    with InProcess(weights) as srv:
        with socket.create_connection(srv.address, timeout=20) as never:
            assert read_all(never) == b""  # nothing sent: nothing to answer
        with socket.create_connection(srv.address, timeout=20) as kept:
            kept.sendall(b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = read_all(kept)  # the answer, then the idle keep-alive connection is closed
            assert reply.startswith(b"HTTP/1.1 200 OK") and reply.count(b"HTTP/1.1") == 1


def test_ctrl_c_with_requests_in_flight_exits_0(bpnet_exe, weights):
    srv = Server(bpnet_exe, weights)
    stalled = socket.create_connection(srv.address, timeout=30)
    stalled.sendall(b"POST /predict HTTP/1.1\r\n")
    uploads = threading.Thread(target=answer, args=(srv.address, hostile_png(4096)), daemon=True)
    uploads.start()
    time.sleep(0.3)
    srv.proc.send_signal(signal.SIGINT)
    srv.proc.wait(20)
    err = srv.stop()
    stalled.close()
    assert srv.proc.returncode == 0 and "Traceback" not in err, err
