"""axe-core (vendored from npm, never from a CDN) finds nothing wrong with the page in
any of its states: blank, drawn with a neuron pinned and another previewed, a drawing
that is no digit, the preprocessing steps open, and on a phone."""

import json
import math

from pagetools import AXE, DIGITS, page_at, stroke
from playwright.sync_api import expect


def violations(page):
    """axe-core's violations of every WCAG 2.x A/AA rule and its best practices."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ['violations']});
            return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }"""
    )
    return found


def test_axe_is_the_npm_package():
    head = AXE.read_text(encoding="utf-8")[:400]
    assert head.startswith("/*! axe v4.") and "Mozilla Public" in head
    assert (AXE.parent / "axe-core-LICENSE.txt").read_text().startswith("Mozilla Public License")


def test_axe_finds_what_is_wrong(browser, server):
    """The check can fail: a picture without a text alternative and a button without a
    name are reported."""
    with page_at(browser, server) as page:
        page.evaluate(
            """() => {
                const img = document.createElement('img');
                img.src = 'data:,';
                document.querySelector('main').append(img, document.createElement('button'));
            }"""
        )
        assert {"image-alt", "button-name"} <= {v["id"] for v in violations(page)}


def check(page):
    found = violations(page)
    assert found == [], json.dumps(found, indent=1)


def test_blank_page(browser, server):
    with page_at(browser, server, viewport={"width": 1366, "height": 768}) as page:
        check(page)


def test_drawn_pinned_previewed(browser, server):
    with page_at(browser, server, viewport={"width": 1024, "height": 768}) as page:
        stroke(page, DIGITS["7"][0])
        expect(page.locator("#guess")).to_have_text("7", timeout=5000)
        page.locator("#layer-1 .neuron").nth(4).click()
        page.locator("#layer-3 .neuron").nth(2).hover()
        expect(page.locator("#neuron-title")).to_have_text("Output 2 (preview)")
        check(page)


def test_no_digit_and_the_steps(browser, server):
    with page_at(browser, server) as page:
        box = page.locator("#pad").bounding_box()
        page.mouse.click(box["x"] + 100, box["y"] + 100)
        expect(page.locator("#caveat")).to_be_visible(timeout=5000)
        check(page)
        page.get_by_role("button", name="See the preprocessing steps").click()
        expect(page.locator("figure.step")).to_have_count(4)
        check(page)


def test_phone(browser, server):
    context = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}
    with page_at(browser, server, **context) as page:
        stroke(page, DIGITS["0"][0])
        expect(page.locator("#guess")).to_have_text("0", timeout=5000)
        page.locator("#layer-2 .neuron").nth(0).tap()
        check(page)


def test_training_controls_and_a_refused_field(browser, server):
    """The training form with its help, the video's preset and a field the server
    refused (marked aria-invalid), and a star that is probably not a digit."""
    with page_at(browser, server, viewport={"width": 1366, "height": 768}) as page:
        expect(page.locator("#train-help dd")).not_to_have_count(0)
        page.locator("#train-preset").click()
        page.fill("#train-lr", "0")
        page.locator("#train-start").click()
        expect(page.locator("#train-lr")).to_have_attribute("aria-invalid", "")
        page.evaluate("scrollTo(0, 0)")  # back up to the pad
        turn = [4 * math.pi * i / 5 for i in range(6)]
        stroke(page, [(140 + 110 * math.sin(t), 140 - 110 * math.cos(t)) for t in turn])
        expect(page.locator("#not-digit")).to_be_visible(timeout=5000)
        check(page)
