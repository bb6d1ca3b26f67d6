"""bpnet serve in a real browser: headless Chromium (Debian's chromium and chromium-driver, driven
by Selenium) opens the page, draws digits with pointer events (mouse strokes, and a finger), and
the page shows the class `bpnet predict` gives for the same drawing saved as PNG. Skipped with the
reason where Chromium is missing, except under CI, where that is a failure."""

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
    ink = browser.execute_script(
        "const d = document.getElementById('pad').getContext('2d').getImageData(0, 0, 280, 280)"
        ".data; let n = 0; for (let i = 0; i < d.length; i += 4) n += d[i] > 0; return n;"
    )
    assert ink == 0
