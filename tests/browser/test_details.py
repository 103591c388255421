"""The smaller things a learner trips on, each measured in Chromium: the network in
view while drawing on a phone; a 1024x768 screen readable (text at least 14 px,
layers apart, no line over the input picture); knock-outs crossed out on the diagram
and kept in links; a pinned neuron's connections drawn; deeper layers' weights as
labelled bars; the diagram's SVG no Tab stop of its own."""

import json
import re
import urllib.request

import pytest
from pagetools import DIGITS, inside, page_at, stroke, touch_stroke
from playwright.sync_api import expect
from test_layout import smallest_text

PHONE = {
    "viewport": {"width": 390, "height": 844},
    "has_touch": True,
    "is_mobile": True,
    "device_scale_factor": 2,
}


@pytest.fixture(scope="module")
def model(server):
    with urllib.request.urlopen(server + "api/model", timeout=30) as response:
        return json.load(response)


def draw_seven(page):
    stroke(page, DIGITS["7"][0])
    expect(page.locator("#guess")).to_have_text("7", timeout=5000)


def mini_pixels(page):
    return page.evaluate(
        """() => { const c = document.getElementById('mini');
            return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)
                .reduce((s, v, i) => s + (i % 4 === 3 ? 0 : v), 0); }"""
    )


def test_the_network_in_view_while_drawing_on_a_phone(browser, server):
    with page_at(browser, server, **PHONE) as page:
        blank = mini_pixels(page)
        seen = {}

        def look():
            expect(page.locator("#guess")).to_have_text("7", timeout=5000)
            seen["box"] = page.locator("#mini").bounding_box()
            seen["pad"] = page.locator("#pad").bounding_box()
            seen["updates"] = int(page.locator("#mini").get_attribute("data-updates"))
            seen["pixels"] = mini_pixels(page)
            seen["scroll"] = page.evaluate("scrollY")

        before = int(page.locator("#mini").get_attribute("data-updates"))
        touch_stroke(page, DIGITS["7"][0], during=look)
        assert seen["scroll"] == 0
        assert inside(seen["box"], 390, 844) and inside(seen["pad"], 390, 844)
        assert seen["box"]["height"] >= 60 and seen["box"]["width"] >= 180
        assert seen["updates"] > before  # redrawn for the stroke, while the finger is down
        assert seen["pixels"] != blank
        expect(page.locator("#mini")).to_have_attribute("role", "img")
        expect(page.locator(".mini figcaption")).to_have_text("the network at a glance")


def test_readable_at_1024x768(browser, server, model):
    with page_at(browser, server, viewport={"width": 1024, "height": 768}) as page:
        draw_seven(page)
        page.locator("#layer-2 .neuron").nth(3).click()  # its bars and their numbers
        expect(page.locator("#weights-bars .wbar")).to_have_count(16)
        assert smallest_text(page) >= 14
        columns = [
            page.locator(f"#layer-{layer} .cell").first.bounding_box()["x"] for layer in (1, 2, 3)
        ]
        assert min(b - a for a, b in zip(columns, columns[1:], strict=False)) >= 90, columns
        # whatever is drawn, the input picture is on top: no line crosses it
        picture = page.locator("#input-image").bounding_box()
        on_top = page.evaluate(
            """b => { const ids = [];
                for (let i = 1; i < 8; i++) for (let j = 1; j < 8; j++) {
                    const x = b.x + b.width * i / 8, y = b.y + b.height * j / 8;
                    const e = document.elementFromPoint(x, y);
                    ids.push(e.id); }
                return ids; }""",
            picture,
        )
        assert set(on_top) == {"input-image"}
        assert page.locator("#links line").count() > 40  # and the lines are there


def test_knock_outs_on_the_diagram_and_in_links(browser, server):
    with page_at(browser, server, viewport={"width": 1366, "height": 768}) as page:
        draw_seven(page)
        neuron = page.locator('#layer-1 .neuron[data-index="3"]')
        neuron.click()
        cross = neuron.locator(".cross")
        assert cross.evaluate("c => getComputedStyle(c).stroke") == "none"
        page.locator("#knockout-switch").check()
        expect(neuron).to_have_class(re.compile(r"\boff\b"))
        assert cross.evaluate("c => getComputedStyle(c).stroke") != "none"
        assert "knocked out" in neuron.get_attribute("aria-label")
        page.locator('#layer-2 .neuron[data-index="6"]').click()
        expect(page.locator("#explore-title")).to_have_text("Layer 2, neuron 7")
        page.locator("#knockout-switch").check()
        page.wait_for_function("location.search.includes('k=1.4%2C2.7')")
        page.wait_for_load_state("networkidle")  # the guess without both neurons
        guess = page.locator("#guess").inner_text()
        bars = page.locator("#bars .value").all_inner_texts()
        link = page.url
    with page_at(browser, link, viewport={"width": 1366, "height": 768}) as again:
        expect(again.locator("#knockout-count")).to_have_text("2 neurons knocked out.")
        for layer, index in ((1, 3), (2, 6)):
            expect(again.locator(f'#layer-{layer} .neuron[data-index="{index}"]')).to_have_class(
                re.compile(r"\boff\b")
            )
        expect(again.locator(".diagram .neuron.off")).to_have_count(2)
        expect(again.locator("#guess")).to_have_text(guess)
        expect(again.locator("#bars .value")).to_have_text(bars)
        expect(again.locator("#layer1-grid .cell.off")).to_have_count(1)
        again.get_by_role("button", name="Switch every neuron back on").click()
        expect(again.locator(".diagram .neuron.off")).to_have_count(0)
        again.wait_for_function("!location.search.includes('k=')")


def ends(page):
    """Each highlighted connection's two ends, rounded: [[x1, y1, x2, y2], ...]."""
    return page.evaluate(
        """() => [...document.querySelectorAll('#links line.pin-link')].map(l =>
            ['x1', 'y1', 'x2', 'y2'].map(a => Math.round(Number(l.getAttribute(a)))))"""
    )


def centre(page, layer, index):
    c = page.locator(f'#layer-{layer} .neuron[data-index="{index}"] .cell')
    return [round(float(c.get_attribute("cx"))), round(float(c.get_attribute("cy")))]


def near(a: list[int], b: list[int]) -> bool:
    """Two rounded points the same within a pixel (x.5 may round either way)."""
    return all(abs(p - q) <= 1 for p, q in zip(a, b, strict=True))


def test_a_pinned_neurons_connections_are_drawn(browser, server, model):
    with page_at(browser, server, viewport={"width": 1366, "height": 768}) as page:
        draw_seven(page)
        assert ends(page) == []
        page.locator('#layer-2 .neuron[data-index="5"]').click()
        lines = ends(page)
        here = centre(page, 2, 5)
        incoming = [line for line in lines if near(line[2:], here)]
        outgoing = [line for line in lines if near(line[:2], here)]
        assert len(incoming) == 16 and len(outgoing) == 10 and len(lines) == 26
        assert all(any(near(line[:2], centre(page, 1, k)) for line in incoming) for k in range(16))
        assert all(any(near(line[2:], centre(page, 3, k)) for line in outgoing) for k in range(10))
        # the others stay, dimmed
        others = page.locator("#links line:not(.pin-link)")
        assert others.count() > 40
        assert (
            max(
                float(o)
                for o in others.evaluate_all("ls => ls.map(l => l.getAttribute('stroke-opacity'))")
            )
            <= 0.3
        )
        # colours: red for a positive weight, blue for a negative one
        w = model["weights"][2]
        colours = page.evaluate(
            """() => [...document.querySelectorAll('#links line.pin-link')].slice(16)
                .map(l => l.getAttribute('stroke'))"""
        )
        assert colours == ["#ff7a5c" if w[j][5] > 0 else "#5aa2ff" for j in range(10)]
        page.keyboard.press("Escape")
        expect(page.locator("#links line.pin-link")).to_have_count(0)


def test_deeper_weights_as_labelled_bars(browser, server, model):
    with page_at(browser, server, viewport={"width": 1366, "height": 768}) as page:
        page.locator('#layer-3 .neuron[data-index="2"]').click()  # output 2, from layer 2
        expect(page.locator("#weights")).to_be_hidden()
        bars = page.locator("#weights-bars .wbar")
        expect(bars).to_have_count(16)
        w = model["weights"][2][2]
        top = max(abs(v) for v in w)
        heights = [
            float(b)
            for b in bars.evaluate_all("bs => bs.map(b => b.style.getPropertyValue('--h'))")
        ]
        assert heights == pytest.approx([abs(v) / top for v in w], abs=1e-3)
        kinds = bars.evaluate_all("bs => bs.map(b => b.classList.contains('up'))")
        assert kinds == [v > 0 for v in w]
        labels = page.locator("#weights-bars .wbar-labels span").all_inner_texts()
        assert labels == [
            "1",
            "2",
            "",
            "4",
            "",
            "6",
            "",
            "8",
            "",
            "10",
            "",
            "12",
            "",
            "14",
            "",
            "16",
        ]
        label = page.locator("#weights-bars").get_attribute("aria-label")
        strongest = max(range(16), key=lambda k: w[k])
        assert f"strongest positive weight {w[strongest]:.2f} from neuron {strongest + 1}" in label
        expect(page.locator("#neuron-from")).to_have_text(
            "Weights from layer 2's 16 neurons, one bar each."
        )
        # the explorer shows the same bars, never a 4x4 picture
        page.locator("#explore-this").click()
        expect(page.locator("#explore-weights")).to_be_hidden()
        expect(page.locator("#explore-weights-bars .wbar")).to_have_count(16)
        # and a first-layer neuron is still a 28x28 picture
        page.locator("#layer1-grid .cell").nth(0).click()
        expect(page.locator("#explore-weights")).to_be_visible()
        expect(page.locator("#explore-weights-bars")).to_be_hidden()


def test_the_svg_is_no_tab_stop_of_its_own(browser, server):
    with page_at(browser, server, viewport={"width": 1366, "height": 768}) as page:
        page.locator("#sample").focus()
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "[document.activeElement.tagName, document.activeElement.getAttribute('class')]"
        )
        assert focused[0] == "g" and "neuron" in focused[1]  # a neuron, not the <svg>
        page.keyboard.press("ArrowDown")
        expect(page.locator("#neuron-title")).to_have_text("Layer 1, neuron 2 (preview)")
        assert page.evaluate("scrollY") == 0  # the arrows move between neurons only
        page.keyboard.press("Shift+Tab")
        expect(page.locator("#sample")).to_be_focused()


def test_a_stroke_that_undoes_the_nudge_is_told(browser, server):
    with page_at(browser, server, viewport={"width": 1366, "height": 768}) as page:
        draw_seven(page)
        page.locator("#nudge-target").select_option("3")
        page.locator("#nudge").click()
        expect(page.locator("#nudge-result")).to_contain_text("Now it says 3, ", timeout=10000)
        expect(page.locator("#nudge-result")).to_contain_text("% sure, after ")
        expect(page.locator("#guess")).to_have_text("3", timeout=5000)
        page.evaluate("scrollTo(0, 0)")  # the pad, above the nudge's section
        stroke(page, [(40, 140), (240, 140)])  # a bar across the nudged picture
        status = page.locator("#status")
        expect(status).to_contain_text("with 1 stroke of yours on top", timeout=5000)
        expect(status).to_contain_text(" 3.", timeout=5000)  # the stroke's own guess
        guess = page.locator("#guess").inner_text()
        told = (
            "With your strokes it still says 3."
            if guess == "3"
            else f"Your strokes undid the nudge: it now says {guess}, not 3."
        )
        expect(status).to_contain_text(told)
        expect(page.locator("#nudge-result")).to_have_text(told)
        expect(page.locator("#announce")).to_contain_text(told)
