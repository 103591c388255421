"""The page in a real browser: draw digits with the mouse, read the guess."""

import re

import pytest
from pagetools import DIGITS, page_at, stroke
from playwright.sync_api import expect


@pytest.fixture
def page(browser, server):
    with page_at(browser, server) as page:
        yield page


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


PAD_CHECKSUM = """() => {
    const d = document.getElementById('pad').getContext('2d').getImageData(0, 0, 280, 280).data;
    let h = 0;
    for (let i = 0; i < d.length; i += 4) h = (h * 31 + d[i]) >>> 0;
    return h;
}"""


def test_clear_and_undo(page):
    stroke(page, DIGITS["1"][0])
    expect(page.locator("#guess")).to_have_text("1", timeout=5000)
    one_stroke = page.evaluate(PAD_CHECKSUM)
    stroke(page, [(60, 140), (220, 140)])  # a second stroke across it
    expect(page.locator("#status")).to_contain_text("2 strokes")
    assert page.evaluate(PAD_CHECKSUM) != one_stroke
    page.get_by_role("button", name="Undo stroke").click()
    expect(page.locator("#status")).to_contain_text("1 stroke.")
    assert page.evaluate(PAD_CHECKSUM) == one_stroke  # the pad as it was before it
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
    page.locator("#layer-1 .neuron").nth(4).click()
    panel = page.locator("#neuron")
    expect(panel).to_be_visible()
    expect(page.locator("#neuron-title")).to_have_text("Layer 1, neuron 5 (pinned)")
    colours = page.evaluate(
        "() => new Set(Array.from(document.getElementById('weights').getContext('2d')"
        ".getImageData(0, 0, 28, 28).data)).size"
    )
    assert colours > 20  # a picture, not a flat square
    assert re.fullmatch(r"-?\d+\.\d{3}", page.locator("#neuron-bias").inner_text())
    assert re.fullmatch(r"\d\.\d{3}", page.locator("#neuron-activation").inner_text())


def test_connections_are_drawn(page):
    stroke(page, DIGITS["0"][0])
    expect(page.locator("#guess")).to_have_text("0", timeout=5000)
    lines = page.locator("#links line")
    assert lines.count() > 50
    colours = {lines.nth(i).get_attribute("stroke") for i in range(lines.count())}
    assert colours == {"#ff7a5c", "#5aa2ff"}  # both signs shown


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
