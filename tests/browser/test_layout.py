"""The page on the screens it is used on: a projector or laptop (1024x768, 1366x768,
1920x1080) and phones with touch (390x844, 412x915).  The boxes of the pad, the guess
and the diagram are measured in Chromium, with a neuron open."""

import os

import pytest
from pagetools import DIGITS, SCREENSHOTS, inside, page_at, stroke, touch_stroke
from playwright.sync_api import expect

DESKS = [(1024, 768), (1366, 768), (1920, 1080)]
PHONES = [(390, 844), (412, 915)]


def boxes(page, *selectors):
    return {s: page.locator(s).bounding_box() for s in selectors}


def keep(page, tmp_path, name):
    """A screenshot of the viewport, in tmp_path and in DIGITNET_SCREENSHOTS if set."""
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if SCREENSHOTS:
        os.makedirs(SCREENSHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SCREENSHOTS, f"{name}.png"))


def neuron_targets(page):
    """The hit area of every neuron: [(layer, index, box)]."""
    return page.evaluate(
        """() => [...document.querySelectorAll('#diagram .neuron')].map(n => {
            const r = n.querySelector('.hit').getBoundingClientRect();
            return [Number(n.dataset.layer), Number(n.dataset.index),
                    {x: r.x, y: r.y, width: r.width, height: r.height}];
        })"""
    )


def assert_targets_fit_a_finger(page):
    targets = neuron_targets(page)
    assert len(targets) == 16 + 16 + 10
    for layer, index, box in targets:
        assert box["width"] >= 24 and box["height"] >= 24, (layer, index, box)
    for layer in (1, 2, 3):  # neighbours in a layer do not overlap
        column = sorted((b["y"], b["height"]) for lay, _, b in targets if lay == layer)
        for (y0, h0), (y1, _) in zip(column, column[1:], strict=False):
            assert y1 >= y0 + h0 - 0.5


def assert_labels_not_clipped(page):
    clipped = page.evaluate(
        """() => {
            const svg = document.getElementById('diagram').getBoundingClientRect();
            return [...document.querySelectorAll('#diagram text')].filter(t => {
                const r = t.getBoundingClientRect();
                return r.left < svg.left || r.right > svg.right
                    || r.top < svg.top || r.bottom > svg.bottom;
            }).map(t => t.textContent);
        }"""
    )
    assert clipped == []


def smallest_text(page):
    """The smallest font size (px) of any visible text on the page."""
    return page.evaluate(
        """() => {
            let least = Infinity;
            const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
            while (walker.nextNode()) {
                const node = walker.currentNode;
                const el = node.parentElement;
                if (!node.textContent.trim() || !el.checkVisibility()) continue;
                const r = el.getBoundingClientRect();
                if (r.width <= 1 || r.height <= 1) continue;  // visually hidden
                least = Math.min(least, parseFloat(getComputedStyle(el).fontSize));
            }
            return least;
        }"""
    )


@pytest.mark.parametrize("width, height", DESKS)
def test_one_screen_on_a_desk_or_projector(browser, server, tmp_path, width, height):
    """Pad, guess with its bars, diagram and the open neuron all in view, no scrolling."""
    with page_at(browser, server, viewport={"width": width, "height": height}) as page:
        stroke(page, DIGITS["7"][0])
        expect(page.locator("#guess")).to_have_text("7", timeout=5000)
        page.locator("#layer-1 .neuron").nth(4).click()
        expect(page.locator("#neuron-title")).to_have_text("Layer 1, neuron 5 (pinned)")
        page.locator("#layer-2 .neuron").nth(9).hover()  # a preview on top of the pin
        expect(page.locator("#neuron-title")).to_have_text("Layer 2, neuron 10 (preview)")
        measured = boxes(page, "#pad", "#guess", "#bars", "#diagram", "#neuron")
        print(width, height, {k: {n: round(v) for n, v in b.items()} for k, b in measured.items()})
        for selector, box in measured.items():
            assert inside(box, width, height), (selector, box)
        scroll = page.evaluate("[window.scrollX, window.scrollY]")
        size = page.evaluate(
            "[document.documentElement.scrollWidth, document.querySelector('.screen')"
            ".getBoundingClientRect().bottom]"
        )
        # the screen fills the view exactly; the panels (#panels) follow below it
        assert scroll == [0, 0] and size == [width, height]
        assert_targets_fit_a_finger(page)
        assert_labels_not_clipped(page)
        assert smallest_text(page) >= 12
        keep(page, tmp_path, f"page-{width}x{height}")


@pytest.mark.parametrize("width, height", PHONES)
def test_phone_with_touch(browser, server, tmp_path, width, height):
    """On a phone the guess stays in view while the finger draws; the diagram fits the
    screen's width and height; its neurons are fingertip-sized; no text under 12 px."""
    context = {
        "viewport": {"width": width, "height": height},
        "has_touch": True,
        "is_mobile": True,
        "device_scale_factor": 2,
    }
    with page_at(browser, server, **context) as page:
        seen_while_drawing = {}

        def look():
            expect(page.locator("#guess")).to_have_text("7", timeout=5000)
            seen_while_drawing.update(boxes(page, "#pad", "#guess", "#bars"))
            seen_while_drawing["scroll"] = page.evaluate("window.scrollY")

        touch_stroke(page, DIGITS["7"][0], during=look)
        print(
            width,
            height,
            {
                k: v if k == "scroll" else {n: round(x) for n, x in v.items()}
                for k, v in seen_while_drawing.items()
            },
        )
        assert seen_while_drawing["scroll"] == 0  # drawing does not scroll the page
        for selector in ("#pad", "#guess", "#bars"):
            assert inside(seen_while_drawing[selector], width, height), selector
        assert page.evaluate("document.documentElement.scrollWidth") == width
        assert smallest_text(page) >= 12
        keep(page, tmp_path, f"page-phone-{width}x{height}")

        diagram = page.locator("#diagram")
        diagram.scroll_into_view_if_needed()
        box = diagram.bounding_box()
        print(width, height, "diagram", {n: round(x) for n, x in box.items()})
        assert box["width"] <= width and box["height"] <= height
        assert inside(box, width, height)  # all of it in view at once
        assert_targets_fit_a_finger(page)
        assert_labels_not_clipped(page)
        page.locator("#layer-1 .neuron").nth(2).tap()
        expect(page.locator("#neuron-title")).to_have_text("Layer 1, neuron 3 (pinned)")
        page.locator("#layer-3 .neuron").nth(7).tap()  # an output neuron
        expect(page.locator("#neuron-title")).to_have_text("Output 7 (pinned)")
        keep(page, tmp_path, f"page-phone-{width}x{height}-diagram")
