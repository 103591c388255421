"""Finding one's way: the section bar reaches every section from the first screen (on a
laptop, a small laptop and a phone, by mouse, finger or keyboard), the footer comes
last, a pinned neuron leads to the explorer, and the guided tour tells the video's
story in its order on the page's live parts: Next, Back, Escape, focus and
announcements, axe-core clean at every step."""

import pytest
from pagetools import DIGITS, SCREENSHOTS, page_at, stroke
from playwright.sync_api import expect
from test_accessibility import check

SIZES = {
    "laptop": {"viewport": {"width": 1366, "height": 768}},
    "small laptop": {"viewport": {"width": 1024, "height": 768}},
    "phone": {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True},
}
SECTIONS = {
    "Draw": "draw",
    "Neurons": "explorer",
    "Learn": "learn",
    "Fool it": "fool",
    "Train": "train",
}
#: The video's order, one step each.
STEPS = [
    "A neuron holds a number",
    "The 784 inputs",
    "The layers",
    "The hope: edges and loops",
    "Weights",
    "Then the bias",
    "The sigmoid",
    "All at once: a′ = σ(W a + b)",
    "ReLU",
    "Fool it, knock it out",
    "Training",
    "How it learns",
    "Many examples, one landscape",
]


def in_view(page, selector):
    """Whether some of selector's box is in the viewport."""
    return page.evaluate(
        """s => { const r = document.querySelector(s).getBoundingClientRect();
                  return r.bottom > 0 && r.top < innerHeight && r.height > 0; }""",
        selector,
    )


def announced(page):
    return page.locator("#announce")


@pytest.mark.parametrize("size", SIZES)
def test_every_section_one_press_from_the_first_screen(browser, server, size):
    with page_at(browser, server, **SIZES[size]) as page:
        height = SIZES[size]["viewport"]["height"]
        for name in [*SECTIONS, "Tour"]:
            box = page.get_by_role("navigation", name="Sections").get_by_text(name).bounding_box()
            assert 0 <= box["y"] and box["y"] + box["height"] <= height, name
        for name, section in SECTIONS.items():
            page.get_by_role("navigation", name="Sections").get_by_role("link", name=name).click()
            heading = page.locator(f"#{section} h2")
            expect(heading).to_be_focused()
            top = heading.bounding_box()["y"]
            assert 0 <= top < height - 40, (name, top)
            expect(announced(page)).to_have_text(f"{heading.inner_text()}.")
        # the footer is last, after every section, outside main
        order = page.evaluate(
            """() => { const f = document.querySelector('footer');
                return [...document.querySelectorAll('section.panel')].every(s =>
                    s.compareDocumentPosition(f) & Node.DOCUMENT_POSITION_FOLLOWING)
                    && !f.closest('main') && f.getBoundingClientRect().top
                       >= document.getElementById('train').getBoundingClientRect().bottom; }"""
        )
        assert order
        expect(page.locator("footer")).to_contain_text(
            "3Blue1Brown's video “But what is a neural network?”"
        )


def test_sections_by_keyboard(browser, server):
    with page_at(browser, server, viewport={"width": 1366, "height": 768}) as page:
        names = []
        for _ in range(7):
            page.keyboard.press("Tab")
            names.append(page.evaluate("document.activeElement.textContent.trim()"))
        assert names == ["Draw", "Neurons", "Learn", "Fool it", "Train", "Teach", "Tour"]
        for _ in range(3):
            page.keyboard.press("Shift+Tab")
        page.keyboard.press("Enter")  # "Fool it"
        expect(page.locator("#fool-title")).to_be_focused()
        page.keyboard.press("Tab")  # and Tab goes on from the section
        expect(page.locator("#nudge-target")).to_be_focused()


def test_a_pinned_neuron_leads_to_the_explorer(browser, server):
    with page_at(browser, server, viewport={"width": 1366, "height": 768}) as page:
        stroke(page, DIGITS["7"][0])
        expect(page.locator("#guess")).to_have_text("7", timeout=5000)
        more = page.locator("#explore-this")
        expect(more).to_be_hidden()
        page.locator("#layer-2 .neuron").nth(3).click()
        expect(announced(page)).to_contain_text("What it does is in the Neurons section.")
        assert page.evaluate("scrollY") == 0  # the diagram stays where it was
        expect(more).to_be_visible()
        assert in_view(page, "#explore-this")
        more.click()
        expect(page.locator("#explore-title")).to_be_focused()
        expect(page.locator("#explore-title")).to_have_text("Layer 2, neuron 4")
        assert in_view(page, "#explore-title") and in_view(page, "#explore-weights-bars")
        expect(announced(page)).to_have_text("Layer 2, neuron 4: what it does, below the diagram.")


def step_title(page):
    return page.locator("#tour-title")


@pytest.mark.parametrize("size", ["laptop", "phone"])
def test_the_tour_tells_the_video_in_order(browser, server, size):
    with page_at(browser, server, **SIZES[size]) as page:
        page.goto(page.url + "?tour=1")
        page.wait_for_selector("body[data-ready=true]")
        tour = page.get_by_role("dialog", name=STEPS[0])
        expect(tour).to_be_visible()
        expect(tour).to_contain_text("3Blue1Brown's video “But what is a neural network?”")
        for k, title in enumerate(STEPS):
            expect(step_title(page)).to_have_text(title)
            expect(step_title(page)).to_be_focused()
            expect(page.locator("#tour-count")).to_have_text(f"Step {k + 1} of {len(STEPS)}")
            expect(announced(page)).to_contain_text(f"Tour, step {k + 1} of {len(STEPS)}: {title}.")
            targets = page.locator(".tour-target")
            assert targets.count() >= 1
            first = targets.first.evaluate("n => '#' + n.id || n.className")
            assert in_view(page, ".tour-target"), (title, first)
            # the tour's box leaves most of the first highlighted part in sight
            hidden = page.evaluate(
                """() => { const a = document.querySelector('.tour-target').getBoundingClientRect();
                    const b = document.getElementById('tour').getBoundingClientRect();
                    const top = Math.max(a.top, 0), bottom = Math.min(a.bottom, innerHeight);
                    const dx = Math.max(0, Math.min(a.right, b.right) - Math.max(a.left, b.left));
                    const dy = Math.max(0, Math.min(bottom, b.bottom) - Math.max(top, b.top));
                    return dx * dy / Math.max(1, a.width * (bottom - top)); }"""
            )
            assert hidden < 0.5, (title, hidden)
            paragraphs = page.locator("#tour-text p")
            assert 1 <= paragraphs.count() <= 3
            if k == len(STEPS) - 1:
                expect(page.locator("#tour-next")).to_have_text("Finish")
            page.locator("#tour-next").click()
        expect(page.locator("#tour")).to_be_hidden()
        expect(page.locator(".tour-target")).to_have_count(0)
        expect(announced(page)).to_have_text("The tour is over.")


def test_the_tour_by_keyboard_back_and_escape(browser, server):
    with page_at(browser, server, viewport={"width": 1366, "height": 768}) as page:
        page.locator("#tour-start").focus()
        page.keyboard.press("Enter")
        expect(step_title(page)).to_have_text(STEPS[0])
        expect(page.locator("#tour-back")).to_be_disabled()
        page.keyboard.press("Tab")  # Back is disabled: Next is the first button
        expect(page.locator("#tour-next")).to_be_focused()
        for _ in range(4):
            page.locator("#tour-next").focus()
            page.keyboard.press("Enter")
        expect(step_title(page)).to_have_text("Weights")
        # the weights step pins a neuron to show its weights
        expect(page.locator("#neuron-title")).to_contain_text("(pinned)")
        expect(page.locator("#neuron")).to_have_class("neuron tour-target")
        page.locator("#tour-next").focus()
        page.keyboard.press("Enter")
        expect(page.locator("#tour-text")).to_contain_text("The pinned neuron's bias is")
        page.locator("#tour-back").focus()
        page.keyboard.press("Enter")
        expect(step_title(page)).to_have_text("Weights")
        check(page)  # axe-core, with the tour open
        page.keyboard.press("Escape")
        expect(page.locator("#tour")).to_be_hidden()
        expect(page.locator("#tour-start")).to_be_focused()
        # Escape ended the tour only: the neuron stays pinned
        expect(page.locator("#neuron-title")).to_contain_text("(pinned)")
        page.get_by_role("button", name="Tour").click()
        page.get_by_role("button", name="End the tour").click()
        expect(page.locator("#tour")).to_be_hidden()


#: The steps whose screenshots go into docs/ when SCREENSHOTS is set: (size, step) -> name.
SHOWN = {
    ("laptop", 1): "a-neuron",
    ("laptop", 4): "edges-and-loops",
    ("laptop", 8): "the-formula",
    ("laptop", 10): "fool-it",
    ("laptop", 11): "training",
    ("phone", 2): "the-inputs",
    ("phone", 7): "the-sigmoid",
}


def keep_screenshot(page, size, step):
    """The page as it is, into SCREENSHOTS/tour-SIZE-STEP-NAME.png, in 64 colours (small)."""
    from PIL import Image

    path = f"{SCREENSHOTS}/tour-{size}-{step}-{SHOWN[size, step]}.png"
    page.screenshot(path=path)
    Image.open(path).convert("RGB").quantize(colors=64).save(path, optimize=True)


@pytest.mark.parametrize("size", ["laptop", "phone"])
def test_axe_at_every_step_of_the_tour(browser, server, size):
    with page_at(browser, server, **SIZES[size]) as page:
        page.locator("#sample").click()
        expect(page.locator("#guess")).not_to_have_text("?", timeout=5000)
        page.get_by_role("button", name="Tour").click()
        for k, title in enumerate(STEPS):
            expect(step_title(page)).to_have_text(title)
            check(page)
            if SCREENSHOTS and (size, k + 1) in SHOWN:
                keep_screenshot(page, size, k + 1)
            page.locator("#tour-next").click()
        check(page)
