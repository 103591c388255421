"""What the browser tests share: Debian's Chromium driven by Playwright, the real
server on a free loopback port, and ways to draw on the pad.  Each test module makes
its fixtures from these (``server``, ``browser``, ``page``)."""

import math
import os
import shutil
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import start_server, stop

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    if os.environ.get("CI"):
        raise RuntimeError("CI must install Debian's chromium for the browser tests")
    pytest.skip(
        "no Chromium at /usr/bin/chromium (apt-get install chromium)", allow_module_level=True
    )

from playwright.sync_api import sync_playwright  # noqa: E402

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
#: Set to a folder to keep the screenshots the layout tests take (docs/ for the README).
SCREENSHOTS = os.environ.get("DIGITNET_SCREENSHOTS")


def serving(model):
    """``digitnet serve MODEL`` on a free port, for real: yields its address."""
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


def chromium():
    """Yields Debian's Chromium, launched headless."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def open_page(browser, url, errors, **context):
    """A fresh context and page at url, once the page has its network."""
    options = {"viewport": {"width": 1400, "height": 900}, **context}
    ctx = browser.new_context(**options)
    page = ctx.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    return ctx, page


@contextmanager
def page_at(browser, url, **context):
    """A page at url in a browser context of its own; no script errors allowed."""
    errors = []
    ctx, page = open_page(browser, url, errors, **context)
    try:
        yield page
    finally:
        ctx.close()
    assert errors == []


def stroke(page, points, pad="#pad"):
    """Draw one stroke with the mouse through points in the pad's 280x280 coordinates
    (pad: the canvas's selector)."""
    box = page.locator(pad).bounding_box()
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


def inside(box, width, height, slack=0.5):
    """Whether a bounding box lies within a width x height viewport."""
    return (
        box["x"] >= -slack
        and box["y"] >= -slack
        and box["x"] + box["width"] <= width + slack
        and box["y"] + box["height"] <= height + slack
    )


def touch_stroke(page, points, during=None):
    """Draw one stroke with a finger (real touch events through the DevTools
    protocol), points in the pad's 280x280 coordinates; call during() while the
    finger is still down."""
    cdp = page.context.new_cdp_session(page)
    box = page.locator("#pad").bounding_box()
    scale = box["width"] / 280
    at = [(box["x"] + x * scale, box["y"] + y * scale) for x, y in points]
    dense = []
    for (x0, y0), (x1, y1) in zip(at, at[1:], strict=False):
        dense += [(x0 + (x1 - x0) * t / 8, y0 + (y1 - y0) * t / 8) for t in range(8)]
    dense.append(at[-1])
    cdp.send(
        "Input.dispatchTouchEvent",
        {"type": "touchStart", "touchPoints": [{"x": dense[0][0], "y": dense[0][1]}]},
    )
    for x, y in dense[1:]:
        cdp.send(
            "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]}
        )
    if during:
        during()
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()
