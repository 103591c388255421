"""The notebook widget in a real browser with a live kernel: Voila (installed from PyPI
with the test extra, its JavaScript and anywidget's shipped inside their wheels) runs a
notebook that shows ``digitnet.widget(model)`` and serves it on loopback; Chromium
draws on the pad, the kernel reads the drawing, the guess changes.  Requests for
anything outside this machine are refused, so the widget is seen to need none."""

import json
import os
import re
import socket
import subprocess
import sys
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from pagetools import DIGITS, SCREENSHOTS, chromium, stroke
from playwright.sync_api import expect

PAD = ".digitnet-widget .dw-pad"
GUESS = ".digitnet-widget .dw-guess"
#: Voila's page template links Font Awesome from a CDN, for icons this widget has none of.
OUTSIDE = re.compile(r"^https?://(?!127\.0\.0\.1[:/])")

NOTEBOOK = [
    "import digitnet\n\nw = digitnet.widget({model!r})\nw",
    # Python's side of the widget, shown as the traits are set: the browser reads it.
    "import json\n\nimport ipywidgets\n\n"
    "python = ipywidgets.Label()\n\n"
    "def report(change=None):\n"
    "    python.value = json.dumps({{'digit': w.digit, 'ink': round(float(w.pixels.sum()), 2),\n"
    "                               'layers': [len(a) for a in w.activations]}})\n\n"
    "w.observe(report, names=['activations', 'probabilities', 'digit'])\n"
    "report()\npython",
    # A picture put on the pad from Python.
    "from digitnet import load_mnist\n\n"
    "images = load_mnist().test_images\n"
    "show = ipywidgets.Button(description='Show test image 0')\n"
    "show.on_click(lambda _: setattr(w, 'pixels', images[0]))\n"
    "show",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def voila(trained, tmp_path_factory):
    """``voila widget.ipynb`` on a free loopback port, for real: yields its address."""
    _, model = trained
    folder = tmp_path_factory.mktemp("voila")
    notebook = new_notebook(
        cells=[new_code_cell(cell.format(model=str(model))) for cell in NOTEBOOK],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    nbformat.write(notebook, folder / "widget.ipynb")
    jupyter = {f"JUPYTER_{d}_DIR": str(folder / d.lower()) for d in ("CONFIG", "DATA", "RUNTIME")}
    port = free_port()
    log = open(folder / "voila.log", "w")  # closed when Voila stops
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voila",
            "widget.ipynb",
            f"--port={port}",
            "--no-browser",
            "--Voila.ip=127.0.0.1",
            "--Voila.port_retries=0",
            "--show_tracebacks=True",
        ],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **jupyter},
    )
    for _ in range(300):
        assert process.poll() is None, (folder / "voila.log").read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/"
    process.terminate()
    process.wait(timeout=20)
    log.close()


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


def ink_on(page) -> int:
    """How many of the pad's pixels are not white."""
    return page.evaluate(
        """(selector) => {
            const pad = document.querySelector(selector);
            const data = pad.getContext('2d').getImageData(0, 0, pad.width, pad.height).data;
            let n = 0;
            for (let i = 0; i < data.length; i += 4) if (data[i] < 250) n++;
            return n;
        }""",
        PAD,
    )


@pytest.mark.slow  # Voila starts a kernel that imports digitnet and runs the notebook
def test_drawing_on_the_widget_changes_the_guess_in_python_and_on_screen(browser, voila, mnist):
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    refused, errors = [], []
    ctx.route(OUTSIDE, lambda route: (refused.append(route.request.url), route.abort()))
    page = ctx.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(voila)
        page.wait_for_selector(PAD, timeout=60_000)  # the kernel has run the notebook
        python = page.locator(".widget-label")
        expect(page.locator(GUESS)).to_have_text("?")
        expect(python).to_have_text(re.compile(r'"digit": null'))
        # the page's diagram, drawn for this model
        expect(page.locator(".digitnet-widget svg .neuron")).to_have_count(16 + 16 + 10)

        stroke(page, DIGITS["7"][0], pad=PAD)
        expect(page.locator(GUESS)).to_have_text("7", timeout=10_000)
        expect(python).to_have_text(re.compile(r'"digit": 7'), timeout=10_000)
        state = json.loads(python.text_content())
        assert state["layers"] == [784, 16, 16, 10] and state["ink"] > 20
        expect(page.locator(".digitnet-widget #out-label-7")).to_have_class(re.compile("top"))
        assert page.locator(".digitnet-widget svg #links line").count() > 0
        if SCREENSHOTS:
            page.locator(".digitnet-widget").screenshot(path=f"{SCREENSHOTS}/widget.png")

        page.locator(".digitnet-widget button", has_text="Clear").click()
        expect(page.locator(GUESS)).to_have_text("?", timeout=10_000)
        expect(python).to_have_text(re.compile(r'"digit": null, "ink": 0\.0'), timeout=10_000)

        stroke(page, DIGITS["1"][0], pad=PAD)
        expect(page.locator(GUESS)).to_have_text("1", timeout=10_000)
        expect(python).to_have_text(re.compile(r'"digit": 1'), timeout=10_000)

        # Pixels set from Python replace the drawing; strokes drawn over them are read
        # with them; undoing the strokes brings back the picture as it was.
        page.locator(".widget-button", has_text="Show test image 0").click()
        expect(page.locator(GUESS)).to_have_text("7", timeout=10_000)
        expect(python).to_have_text(re.compile(r'"digit": 7'), timeout=10_000)
        ink = float((mnist.test_images[0] / 255).sum())
        assert json.loads(python.text_content())["ink"] == pytest.approx(ink, abs=0.02)
        assert ink_on(page) > 2000  # the 7 on the pad, 10x10 px per pixel
        stroke(page, [(40, 150), (240, 150)], pad=PAD)  # a bar across it
        expect(python).not_to_have_text(re.compile(f'"ink": {ink:.2f}'), timeout=10_000)
        page.locator(".digitnet-widget button", has_text="Undo stroke").click()
        expect(page.locator(GUESS)).to_have_text("7", timeout=10_000)
        # the 7 with part of the bar was a 7 too: wait for the undone picture's own ink
        expect(python).to_have_text(re.compile(f'"digit": 7, "ink": {ink:.2f}'), timeout=10_000)
    finally:
        ctx.close()
    assert errors == []
    assert all("fontawesome" in url for url in refused), refused
