"""The address follows the page: a link holds the drawing, the pinned neuron and the
model, and opening it shows the same view and the same guess."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from pagetools import DIGITS, page_at, stroke
from playwright.sync_api import expect


def shown(page):
    """What the page shows: the guess, the ten percentages, the 784 grey levels of what
    the network sees, the neuron panel's title."""
    return {
        "guess": page.locator("#guess").inner_text(),
        "values": [float(v.rstrip("%")) for v in page.locator("#bars .value").all_inner_texts()],
        "seen": page.evaluate(
            "Array.from(seen.getContext('2d').getImageData(0, 0, 28, 28).data)"
            ".filter((v, i) => i % 4 === 0)"
        ),
        "neuron": page.locator("#neuron-title").inner_text(),
    }


def test_a_link_opens_the_same_view_and_guess(browser, server):
    with page_at(browser, server) as page:
        history = page.evaluate("history.length")
        assert urlsplit(page.url).query == ""  # nothing to keep yet
        for points in DIGITS["7"]:
            stroke(page, points)
        expect(page.locator("#guess")).to_have_text("7", timeout=5000)
        page.wait_for_function("location.search.includes('d=')")  # the 7, settled
        drawn = page.evaluate("location.search")
        stroke(page, [(200, 230), (204, 236)])
        # the answer for the pad with both strokes, settled: nothing is in flight after it
        page.wait_for_function("drawn => location.search !== drawn", arg=drawn)
        page.locator("#layer-2 .neuron").nth(3).click()
        expect(page.locator("#neuron-title")).to_have_text("Layer 2, neuron 4 (pinned)")
        page.wait_for_function("location.search.includes('n=2.4')")
        url = page.url
        before = shown(page)
        assert page.evaluate("history.length") == history  # replaced, never pushed
    query = parse_qs(urlsplit(url).query)
    assert set(query) == {"d", "n", "m"}
    assert re.fullmatch(r"[A-Za-z0-9_-]+", query["d"][0]) and re.fullmatch(
        r"[0-9a-f]{8}", query["m"][0]
    )
    assert len(url) < 1000  # short enough to paste

    with page_at(browser, url) as again:
        expect(again.locator("#guess")).to_have_text(before["guess"], timeout=5000)
        after = shown(again)
        assert after["neuron"] == "Layer 2, neuron 4 (pinned)"
        assert after["values"] == pytest.approx(before["values"], abs=0.2)
        assert max(abs(a - b) for a, b in zip(after["seen"], before["seen"], strict=True)) <= 1
        expect(again.locator("#status")).to_have_text("The drawing from the link you opened.")
        expect(again.locator("#layer-2 .neuron").nth(3)).to_have_attribute("aria-pressed", "true")
        assert again.url == url  # opening it changes nothing
        stroke(again, [(30, 250), (60, 250)])  # draw on top of it
        expect(again.locator("#status")).to_contain_text("with 1 stroke of yours on top")
        again.wait_for_function(f"location.href !== {url!r}")


def test_copy_link(browser, server):
    with page_at(browser, server) as page:
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        stroke(page, DIGITS["1"][0])
        expect(page.locator("#guess")).to_have_text("1", timeout=5000)
        page.wait_for_function("location.search.includes('d=')")
        page.get_by_role("button", name="Copy link").click()
        expect(page.locator("#status")).to_have_text(
            "Your drawing, 1 stroke. Keep drawing, undo the last stroke, or clear the pad. "
            "The link is copied: it opens this drawing, its guess, the pinned neuron and any "
            "knock-outs."
        )
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied == page.url and "d=" in copied


def test_a_broken_link_says_so(browser, server):
    with page_at(browser, server + "?d=not-a-drawing&n=9.99") as page:
        expect(page.locator("#status")).to_have_text(
            "The link's drawing could not be read; the pad is blank."
        )
        expect(page.locator("#guess")).to_have_text("?")
        expect(page.locator("#neuron-title")).to_have_text("Pick a neuron")  # no layer 9


def test_a_link_from_another_network_says_so(browser, server):
    with page_at(browser, server) as page:
        stroke(page, DIGITS["0"][0])
        expect(page.locator("#guess")).to_have_text("0", timeout=5000)
        page.wait_for_function("location.search.includes('m=')")
        url = re.sub(r"m=[0-9a-f]{8}", "m=00000000", page.url)
    with page_at(browser, url) as page:
        expect(page.locator("#status")).to_contain_text("made with another network (model 00000000")
        expect(page.locator("#guess")).to_have_text("0")
