"""The page sends its pad to /api/predict as grey bytes: the very pixels of the PNG it
used to send (toDataURL), and the same answer."""

import base64
import io
import zlib

import numpy as np
import pytest
from pagetools import DIGITS, page_at, stroke
from PIL import Image
from playwright.sync_api import expect

ASK_BOTH = """async (grey) => {
    const ask = async (body) => (await fetch('/api/predict', {method: 'POST',
        headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)})).json();
    const image = document.getElementById('pad').toDataURL('image/png');
    return {image, fromGrey: await ask({grey}), fromPng: await ask({image})};
}"""


@pytest.fixture
def page(browser, server):
    with page_at(browser, server) as page:
        yield page


def test_the_pad_goes_as_grey_bytes_that_read_as_its_png(page):
    sent = []
    page.on(
        "request",
        lambda r: sent.append(r.post_data_json) if r.url.endswith("/api/predict") else None,
    )
    stroke(page, DIGITS["7"][0])
    expect(page.locator("#guess")).to_have_text("7", timeout=5000)
    # The guess may come from a picture sent while the stroke grew; the finished pad
    # goes once the request in flight is answered: wait (10 s at most) for it.
    for _ in range(100):
        drawn = [body for body in sent if "pixels" not in body]  # not the blank pad's
        grey = drawn[-1]["grey"]
        pixels = np.frombuffer(zlib.decompress(base64.b64decode(grey["data"])), np.uint8)
        url = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
        png = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert (grey["width"], grey["height"]) == png.size == (280, 280)
        if np.array_equal(pixels.reshape(280, 280), np.asarray(png.convert("L"))):
            break
        page.wait_for_timeout(100)
    assert all("grey" in body and "image" not in body for body in drawn)
    assert np.array_equal(pixels.reshape(280, 280), np.asarray(png.convert("L")))
    both = page.evaluate(ASK_BOTH, grey)
    assert both["fromGrey"]["digit"] == both["fromPng"]["digit"] == 7
    assert both["fromGrey"]["input"] == both["fromPng"]["input"]
