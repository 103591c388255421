"""The page in a real browser (Debian's Chromium driven by Playwright), against the
real server on a free loopback port: draw digits with the mouse, read the guess."""

import math
import os
import re
import shutil
import time
import urllib.request

import pytest

from conftest import start_server, stop

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    if os.environ.get("CI"):
        raise RuntimeError("CI must install Debian's chromium for the browser tests")
    pytest.skip(
        "no Chromium at /usr/bin/chromium (apt-get install chromium)", allow_module_level=True
    )

from playwright.sync_api import expect, sync_playwright  # noqa: E402

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def server(trained):
    _, model = trained
    process, port, _ = start_server(model)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "api/model", timeout=2).read()
            break
        except OSError:
            time.sleep(0.1)
    yield url
    stop(process)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server)
    page.wait_for_selector("body[data-ready=true]")
    yield page
    context.close()
    assert errors == []


def stroke(page, points):
    """Draw one stroke through points given in the pad's 280x280 coordinates."""
    box = page.locator("#pad").bounding_box()
    scale = box["width"] / 280
    at = [(box["x"] + x * scale, box["y"] + y * scale) for x, y in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=3)
    page.mouse.up()


def ellipse(cx, cy, rx, ry, n=40):
    return [
        (cx + rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n))
        for i in range(n + 1)
    ]


DIGITS = {
    "1": [[(150, 40), (140, 140), (130, 240)]],
    "0": [ellipse(140, 140, 65, 100)],
    "7": [[(60, 50), (220, 50), (170, 130), (110, 245)]],
}


@pytest.mark.parametrize("digit", sorted(DIGITS))
def test_drawn_digit_is_read(page, digit):
    for points in DIGITS[digit]:
        stroke(page, points)
    expect(page.locator("#guess")).to_have_text(digit, timeout=5000)
    top = page.locator("#bars li.top")
    expect(top).to_have_count(1)
    assert top.get_attribute("data-digit") == digit
    seen = page.evaluate(
        "() => Array.from(document.getElementById('seen').getContext('2d')"
        ".getImageData(0, 0, 28, 28).data).filter((v, i) => i % 4 === 0 && v > 128).length"
    )
    assert seen > 20  # the 28x28 input the network saw has ink


def test_clear_and_undo(page):
    stroke(page, DIGITS["1"][0])
    expect(page.locator("#guess")).to_have_text("1", timeout=5000)
    stroke(page, [(60, 140), (220, 140)])  # a second stroke across it
    page.wait_for_timeout(400)
    page.get_by_role("button", name="Undo stroke").click()
    expect(page.locator("#guess")).to_have_text("1", timeout=5000)
    page.get_by_role("button", name="Clear").click()
    expect(page.locator("#guess")).to_have_text("?")
    blank = page.evaluate(
        "() => Array.from(document.getElementById('pad').getContext('2d')"
        ".getImageData(0, 0, 280, 280).data).every(v => v === 255)"
    )
    assert blank


def test_hidden_neuron_shows_its_weights(page):
    stroke(page, DIGITS["7"][0])
    expect(page.locator("#guess")).to_have_text("7", timeout=5000)
    page.locator("#layer-1 circle").nth(4).click()
    panel = page.locator("#neuron")
    expect(panel).to_be_visible()
    expect(page.locator("#neuron-title")).to_contain_text("Layer 1, neuron 5")
    colours = page.evaluate(
        "() => new Set(Array.from(document.getElementById('weights').getContext('2d')"
        ".getImageData(0, 0, 28, 28).data)).size"
    )
    assert colours > 20  # a picture, not a flat square
    assert re.fullmatch(r"-?\d+\.\d{3}", page.locator("#neuron-bias").inner_text())
    # keyboard: a second-layer neuron by Tab focus and Enter
    neuron = page.locator("#layer-2 circle").nth(0)
    neuron.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#neuron-title")).to_contain_text("Layer 2, neuron 1")


def test_connections_are_drawn(page):
    stroke(page, DIGITS["0"][0])
    expect(page.locator("#guess")).to_have_text("0", timeout=5000)
    lines = page.locator("#links line")
    assert lines.count() > 50
    colours = {lines.nth(i).get_attribute("stroke") for i in range(lines.count())}
    assert colours == {"#e4572e", "#3a86ff"}  # both signs shown


def test_mnist_sample(page):
    page.select_option("#sample-digit", "3")
    page.get_by_role("button", name="Load an MNIST digit").click()
    expect(page.locator("#status")).to_contain_text("labelled 3", timeout=5000)
    expect(page.locator("#guess")).to_have_text(re.compile(r"^\d$"), timeout=5000)
    expect(page.locator("#model-info")).to_contain_text("784-16-16-10")


def test_screenshot_and_phone_width(page, browser, server, tmp_path):
    for points in DIGITS["7"]:
        stroke(page, points)
    expect(page.locator("#guess")).to_have_text("7", timeout=5000)
    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    assert page.evaluate("getComputedStyle(document.getElementById('pad')).touchAction") == "none"

    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    small = phone.new_page()
    small.goto(server)
    small.wait_for_selector("body[data-ready=true]")
    assert small.evaluate("document.documentElement.scrollWidth") <= 390
    expect(small.get_by_role("button", name="Clear")).to_be_visible()
    phone.close()
