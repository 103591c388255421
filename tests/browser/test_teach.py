"""The "Teach it your handwriting" panel in a real browser: digits drawn on the pad and
labelled join a collection kept in the browser, which the network is scored on and
which downloads as a zip of two MNIST-format files that ``files.data`` reads back."""

import io
import os
import re
import zipfile

import numpy as np
import pytest
from pagetools import DIGITS, SCREENSHOTS, page_at, stroke
from playwright.sync_api import expect

from digitnet.files.data import PAIR, load_pair

pytestmark = pytest.mark.slow

#: What is drawn, in order, and the digit each is said to be.
DRAWN = ["1", "0", "7", "1", "7"]


def draw_and_label(page, digit: str, count: int) -> list[float]:
    """Clear the pad, draw ``digit``, wait for the answer, label it; the input the
    network saw (784 values)."""
    page.click("#clear")
    for points in DIGITS[digit]:
        stroke(page, points)
    button = page.locator(f"#teach-digits button[data-digit='{digit}']")
    expect(button).to_be_enabled(timeout=5000)
    seen = page.evaluate("window.lastInput")
    button.click()
    expect(page.locator("#teach-total")).to_have_text(str(count))
    expect(button).to_be_disabled()  # one label per drawing
    return seen


#: Keeps the inputs /api/predict answers with, to compare with the collection's.
RECORD_INPUTS = """() => {
    const real = window.fetch;
    window.fetch = async (url, options) => {
        const response = await real(url, options);
        const drawn = options && /"(image|grey)"/.test(String(options.body));
        if (String(url).endsWith('/api/predict') && drawn) {
            window.lastInput = (await response.clone().json()).input;
        }
        return response;
    };
}"""


def test_collect_score_and_download_my_digits(browser, server, tmp_path):
    with page_at(browser, server) as page:
        page.evaluate("localStorage.clear()")
        page.evaluate(RECORD_INPUTS)
        expect(page.locator("#teach-score")).to_be_disabled()
        seen = [draw_and_label(page, d, i + 1) for i, d in enumerate(DRAWN)]
        for d in "0178":
            expected = DRAWN.count(d)
            expect(page.locator(f"#teach-count-{d}")).to_have_text(str(expected))

        page.click("#teach-score")
        result = page.locator("#teach-result")
        expect(result).to_contain_text(re.compile(r"reads \d+\.\d% \(\d of 5\)"), timeout=20_000)
        accuracy = float(result.get_attribute("data-accuracy"))
        assert accuracy >= 0.6, result.inner_text()  # these strokes read as they are drawn

        with page.expect_download() as download:
            page.click("#teach-download")
        assert download.value.suggested_filename == "my-digits.zip"
        path = tmp_path / "my-digits.zip"
        download.value.save_as(path)
        folder = tmp_path / "mine"
        with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
            assert archive.testzip() is None  # every CRC right
            assert sorted(archive.namelist()) == sorted(f"{n}.gz" for n in PAIR.values())
            archive.extractall(folder)
        images, labels = load_pair(folder)
        assert labels.tolist() == [int(d) for d in DRAWN]
        expected = np.round(np.clip(np.array(seen), 0, 1) * 255).astype(np.uint8)
        assert np.array_equal(images, expected)  # the 28x28 inputs, white ink on black
        assert images.max() == 255 and images.reshape(-1, 28, 28)[:, 0].max() == 0

        # kept in the browser: there again after a reload, until forgotten
        page.reload()
        page.wait_for_selector("body[data-ready=true]")
        expect(page.locator("#teach-total")).to_have_text("5")
        page.click("#teach-forget")
        expect(page.locator("#teach-total")).to_have_text("0")
        expect(page.locator("#teach-download")).to_be_disabled()


def test_teach_panel_on_a_phone(browser, server, tmp_path):
    context = {"viewport": {"width": 390, "height": 844}, "has_touch": True,
               "is_mobile": True, "device_scale_factor": 2}  # fmt: skip
    with page_at(browser, server, **context) as page:
        page.evaluate("localStorage.clear()")
        page.evaluate(RECORD_INPUTS)
        for i, digit in enumerate(DRAWN * 2):
            draw_and_label(page, digit, i + 1)
        page.click("#teach-score")
        expect(page.locator("#teach-result")).to_contain_text("%", timeout=20_000)
        page.click("a[data-section=teach]")
        panel = page.locator("#teach")
        assert page.evaluate("document.documentElement.scrollWidth") == 390
        for selector in ("#teach-digits button", "#teach-score", "#teach-tune"):
            box = page.locator(selector).first.bounding_box()
            assert box["height"] >= 40 and box["width"] >= 40, selector  # fingertip-sized
        shot = tmp_path / "teach-phone.png"
        panel.screenshot(path=str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if SCREENSHOTS:
            os.makedirs(SCREENSHOTS, exist_ok=True)
            panel.screenshot(path=os.path.join(SCREENSHOTS, "teach-phone.png"))
