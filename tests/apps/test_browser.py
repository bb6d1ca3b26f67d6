"""bpnet serve in a real browser: headless Chromium (Debian's chromium and chromium-driver, driven
by Selenium) opens the page, draws digits with pointer events (mouse strokes, and a finger), and
the page shows the class `bpnet predict` gives for the same drawing saved as PNG, and a forward
and backward panel whose numbers are those `network_trace` gives for that PNG (for a fully
connected and a convolutional network; also after a class is clicked). Skipped with the reason
where Chromium is missing, except under CI, where that is a failure."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile

import pytest
from servers import Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def need_browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        reason = (
            f"browser test needs {', '.join(missing)} (Debian: apt-get install chromium "
            f"chromium-driver; pip install selenium)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="bpnet-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=900,700",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def server(bpnet_exe, mnist_session_dir, tmp_path_factory):
    from mnist import train_mnist_net

    weights = tmp_path_factory.mktemp("browser") / "weights.npz"
    train_mnist_net(mnist_session_dir, 100, 1500, weights)
    srv = Server(bpnet_exe, weights)
    srv.weights = weights
    yield srv
    srv.stop()


CONV = "[{conv: {filters: 8, size: 5}}, relu, {pool: 2}, {affine: 50}, relu, {affine: 10}]"


@pytest.fixture(scope="module")
def conv_server(bpnet_exe, mnist_session_dir, tmp_path_factory):
    """A small convolutional network from a real `bpnet train` run, served."""
    out = tmp_path_factory.mktemp("browser-conv") / "run"
    r = subprocess.run(
        [bpnet_exe, "train", "--config", "quick", "--set", f"model.layers={CONV}"]
        + ["--set", "train.optimizer=adam", "--set", "train.lr=0.002", "--set"]
        + ["train.dtype=float32", "--iterations", "300", "--threads", "1", "--out", str(out)]
        + ["--data-dir", str(mnist_session_dir), "--offline", "-q"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    srv = Server(bpnet_exe, out / "weights.npz")
    srv.weights = out / "weights.npz"
    yield srv
    srv.stop()


# Strokes of digits on the 280x280 pad, as (x, y) points from its top-left corner.
SEVEN = [[(70, 60), (210, 60), (180, 120), (150, 180), (125, 240)]]
FOUR = [[(90, 50), (75, 150), (195, 150)], [(170, 70), (165, 160), (160, 240)]]
ONE = [[(140, 40), (140, 100), (138, 170), (136, 245)]]


def draw(driver, strokes, pointer="mouse"):
    """Each stroke as pointer down, moves in small steps, up (W3C actions: pointer events)."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    pad = driver.find_element("id", "pad")
    origin = pad.location
    actions = ActionBuilder(driver, mouse=PointerInput(pointer, pointer), duration=10)
    p = actions.pointer_action
    for stroke in strokes:
        x0, y0 = stroke[0]
        p.move_to_location(origin["x"] + x0, origin["y"] + y0).pointer_down()
        for (xa, ya), (xb, yb) in zip(stroke, stroke[1:]):
            for k in range(1, 9):
                p.move_to_location(
                    origin["x"] + xa + (xb - xa) * k // 8, origin["y"] + ya + (yb - ya) * k // 8
                )
        p.pointer_up()
    actions.perform()


def shown_label(driver, timeout=20):
    from selenium.webdriver.support.ui import WebDriverWait

    answer = driver.find_element("id", "answer")
    WebDriverWait(driver, timeout).until(lambda d: answer.get_attribute("data-label"))
    WebDriverWait(driver, timeout).until(  # the answer to the last stroke, not an earlier one
        lambda d: d.execute_script(
            "return sent === shown && document.getElementById('bars').children.length > 0"
        )
    )
    return int(answer.get_attribute("data-label"))


def traced(weights, png, target=None):
    """``network_trace`` of the drawing saved as ``png``, read as `bpnet predict` reads it."""
    import numpy as np

    from bpnet.apps.graph.trace import network_trace
    from bpnet.data.images import load_digit
    from bpnet.nn.evaluate import input_scale, to_input
    from bpnet.training.weights import network_from_weights

    net, meta = network_from_weights(weights)
    x = to_input(load_digit(png)[None], input_scale(meta["normalize"]), np.float64)[0]
    return network_trace(net, x, target)


def panel(driver):
    """The numbers the forward and backward panel shows, read from the page."""
    return driver.execute_script(
        "const t = document.getElementById('trace');"
        "const num = s => s === '' ? null : Number(s);"
        "return {hidden: t.hidden, predicted: num(t.dataset.predicted),"
        " target: num(t.dataset.target), loss: num(t.dataset.loss),"
        " lossText: document.getElementById('trace-loss').textContent,"
        " gradNorm: num(document.getElementById('trace-grad-norm').dataset.gradNorm || ''),"
        " nodes: [...document.querySelectorAll('#trace-nodes .node')].map(li => ({"
        "  name: li.dataset.name, kind: li.dataset.kind, norm: Number(li.dataset.gradNorm),"
        "  shape: li.querySelector('.shape').textContent,"
        "  tiles: li.querySelectorAll('.tile').length,"
        "  strips: li.querySelectorAll('.cells').length,"
        "  params: [...li.querySelectorAll('.param')].map(p => ({key: p.dataset.key,"
        "   norm: Number(p.dataset.gradNorm), max: Number(p.dataset.gradMaxAbs)}))})),"
        " probs: [...document.querySelectorAll('#trace-probs button')].map(b =>"
        "  Number(b.dataset.probability))};"
    )


def check_panel(driver, expected):
    """The panel shows the trace ``expected``: predicted class, target, loss, the input's
    gradient norm, every node with its arriving gradient's norm and parameter gradients."""
    shown = panel(driver)
    assert not shown["hidden"]
    assert shown["predicted"] == expected["predicted"]
    assert shown["target"] == expected["target"]
    assert shown["loss"] == pytest.approx(expected["loss"], rel=1e-5, abs=1e-9)
    # the text has 3 significant digits at least (toExponential(2) below 1e-3, toPrecision(4)
    # above): within half a unit of the third digit
    assert float(shown["lossText"]) == pytest.approx(expected["loss"], rel=5e-3, abs=1e-9)
    assert shown["gradNorm"] == pytest.approx(expected["input"]["grad_norm"], rel=1e-5)
    assert shown["probs"] == pytest.approx(expected["probabilities"], rel=1e-5, abs=1e-9)
    assert [n["name"] for n in shown["nodes"]] == [n["name"] for n in expected["nodes"]]
    for got, node in zip(shown["nodes"], expected["nodes"]):
        assert got["kind"] == node["kind"]
        assert got["norm"] == pytest.approx(node["backward"]["norm"], rel=1e-5, abs=1e-12)
        assert got["params"] == [
            {
                "key": p["key"],
                "norm": pytest.approx(p["grad_norm"], rel=1e-5, abs=1e-12),
                "max": pytest.approx(p["grad_max_abs"], rel=1e-5, abs=1e-12),
            }
            for p in node["params"]
        ]
    return shown


def wait_for_trace(driver, target=None, timeout=20):
    """Wait until the answer to the last drawing sent is shown (with ``target``, if given)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script(
            "const t = document.getElementById('trace');"
            "return sent === shown && !t.hidden && (arguments[0] === null ||"
            " t.dataset.target === String(arguments[0]))",
            target,
        )
    )


def pad_png(driver, path):
    data = driver.execute_script("return document.getElementById('pad').toDataURL('image/png')")
    path.write_bytes(base64.b64decode(data.split(",", 1)[1]))
    return path


@pytest.mark.parametrize(
    "name, strokes, pointer",
    [("seven", SEVEN, "mouse"), ("four", FOUR, "mouse"), ("one", ONE, "touch")],
)
def test_the_page_shows_what_predict_says_of_the_same_drawing(
    browser, server, bpnet_exe, tmp_path, name, strokes, pointer
):
    browser.get(server.url)
    draw(browser, strokes, pointer)
    label = shown_label(browser)
    png = pad_png(browser, tmp_path / f"{name}.png")
    r = subprocess.run(
        [bpnet_exe, "predict", str(server.weights), str(png), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert label == json.loads(r.stdout)[0]["top"][0]["label"]
    # bars for the top classes, and the 28x28 picture drawn from the server's answer
    bars = browser.find_elements("css selector", "#bars li")
    assert len(bars) == 5 and bars[0].get_attribute("data-label") == str(label)
    fill, track, pct = browser.execute_script(
        "const li = document.querySelector('#bars li'); return ["
        "li.querySelector('.fill').getBoundingClientRect().width,"
        "li.querySelector('.track').getBoundingClientRect().width,"
        "parseFloat(li.querySelector('.pct').textContent)];"
    )
    assert abs(fill / track - pct / 100) < 0.02  # the bar is as long as the probability
    lit = browser.execute_script(
        "const d = document.getElementById('seen').getContext('2d').getImageData(0, 0, 140, 140)"
        ".data; let n = 0; for (let i = 0; i < d.length; i += 4) n += d[i] > 128; return n;"
    )
    assert lit > 100
    # the forward and backward panel: what network_trace gives for the same drawing
    wait_for_trace(browser)
    check_panel(browser, traced(server.weights, png))
    if name == "seven":
        assert label == 7  # a clear seven is read as one
        browser.save_screenshot(str(tmp_path / "serve.png"))
        assert (tmp_path / "serve.png").read_bytes().startswith(b"\x89PNG")
        if os.environ.get("BPNET_SERVE_SCREENSHOT"):  # docs/serve.png is made this way
            shutil.copyfile(tmp_path / "serve.png", os.environ["BPNET_SERVE_SCREENSHOT"])


def test_clear_empties_the_pad_and_the_answer(browser, server):
    browser.get(server.url)
    draw(browser, ONE)
    shown_label(browser)
    browser.find_element("id", "clear").click()
    assert browser.find_element("id", "answer").get_attribute("data-label") == ""
    assert browser.find_elements("css selector", "#bars li") == []
    assert panel(browser)["hidden"] and panel(browser)["nodes"] == []
    ink = browser.execute_script(
        "const d = document.getElementById('pad').getContext('2d').getImageData(0, 0, 280, 280)"
        ".data; let n = 0; for (let i = 0; i < d.length; i += 4) n += d[i] > 0; return n;"
    )
    assert ink == 0


def test_the_panel_of_a_convolutional_network_and_a_clicked_class(browser, conv_server, tmp_path):
    browser.get(conv_server.url)
    draw(browser, FOUR)
    label = shown_label(browser)
    wait_for_trace(browser)
    png = pad_png(browser, tmp_path / "four.png")
    expected = traced(conv_server.weights, png)
    assert expected["predicted"] == label
    shown = check_panel(browser, expected)
    conv = shown["nodes"][0]
    assert conv["name"] == "Conv1" and conv["shape"] == "1×28×28 → 8×24×24"
    assert conv["tiles"] == 2 * 8  # its 8 feature maps, and the gradient on each
    assert [n["tiles"] for n in shown["nodes"][1:3]] == [16, 16]  # Relu1, Pool1
    assert [n["strips"] for n in shown["nodes"][3:6]] == [2, 2, 2]  # Affine1, Relu2, Affine2
    # a click on another class takes the loss against it, and the panel follows
    other = (label + 5) % 10
    browser.find_element("css selector", f'#trace-probs button[data-label="{other}"]').click()
    wait_for_trace(browser, other)
    check_panel(browser, traced(conv_server.weights, png, other))
    assert "predicts " + str(label) in browser.find_element("id", "trace-which").text
    if os.environ.get("BPNET_SERVE_GRAPH_SCREENSHOT"):  # docs/serve-graph.png is made this way
        browser.set_window_size(900, 2000)
        try:
            shot = browser.find_element("tag name", "main").screenshot_as_png
        finally:
            browser.set_window_size(900, 700)
        with open(os.environ["BPNET_SERVE_GRAPH_SCREENSHOT"], "wb") as fh:
            fh.write(shot)
