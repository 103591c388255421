"""How the page answers people: pins and previews, the keyboard, the status line, the
blank pad, announcements, pens, the preprocessing steps, drawings that are no digit,
reduced motion and contrast."""

import math
import re

import numpy as np
import pytest
from pagetools import DIGITS, page_at, stroke
from playwright.sync_api import expect


@pytest.fixture
def page(browser, server):
    with page_at(browser, server, viewport={"width": 1366, "height": 768}) as page:
        yield page


def draw_seven(page):
    stroke(page, DIGITS["7"][0])
    expect(page.locator("#guess")).to_have_text("7", timeout=5000)


def neuron(page, layer, index):
    return page.locator(f"#layer-{layer} .neuron").nth(index)


def title(page):
    return page.locator("#neuron-title")


def test_click_pins_hover_previews_escape_unpins(page):
    draw_seven(page)
    neuron(page, 1, 2).click()
    expect(title(page)).to_have_text("Layer 1, neuron 3 (pinned)")
    for j in range(3, 10):  # down the column
        neuron(page, 1, j).hover()
        expect(title(page)).to_have_text(f"Layer 1, neuron {j + 1} (preview)")
    page.mouse.move(5, 5)  # away from the diagram: back to the pinned neuron
    expect(title(page)).to_have_text("Layer 1, neuron 3 (pinned)")
    expect(neuron(page, 1, 2)).to_have_attribute("aria-pressed", "true")
    expect(neuron(page, 1, 9)).to_have_attribute("aria-pressed", "false")
    assert "n=1.3" in page.url
    page.keyboard.press("Escape")
    expect(title(page)).to_have_text("Pick a neuron")
    expect(page.locator("#diagram .neuron[aria-pressed=true]")).to_have_count(0)
    assert "n=" not in page.url
    neuron(page, 2, 5).click()
    expect(neuron(page, 2, 5)).to_have_attribute("aria-pressed", "true")
    neuron(page, 2, 5).click()  # a second click unpins too; the mouse still previews it
    expect(neuron(page, 2, 5)).to_have_attribute("aria-pressed", "false")
    expect(title(page)).to_have_text("Layer 2, neuron 6 (preview)")
    page.mouse.move(5, 5)
    expect(title(page)).to_have_text("Pick a neuron")


def test_output_neurons_can_be_chosen(page):
    draw_seven(page)
    neuron(page, 3, 7).click()
    expect(title(page)).to_have_text("Output 7 (pinned)")
    expect(page.locator("#neuron-from")).to_have_text(
        "Weights from layer 2's 16 neurons, one bar each."
    )
    expect(page.locator("#weights")).to_be_hidden()  # bars, not a 4x4 picture
    expect(page.locator("#weights-bars .wbar")).to_have_count(16)
    activation = float(page.locator("#neuron-activation").inner_text())
    assert activation > 0.9  # the guess's own output


def focused(page):
    return page.evaluate(
        """() => {
            const el = document.activeElement;
            const n = el.closest && el.closest('#diagram .neuron');
            return n ? `neuron ${n.dataset.layer}.${n.dataset.index}` : (el.id || el.tagName);
        }"""
    )


def test_keyboard_only(page):
    """Everything from the keyboard: load a digit, Tab into the diagram (one stop), move
    with the arrow keys, pin with Enter or Space, unpin with Escape."""
    stops = []
    for _ in range(40):
        page.keyboard.press("Tab")
        stops.append(focused(page))
        if stops[-1] == "sample":
            break
    assert stops[-1] == "sample"
    page.keyboard.press("Enter")  # Load an MNIST digit
    expect(page.locator("#guess")).to_have_text(re.compile(r"^\d$"), timeout=5000)
    for _ in range(40):
        page.keyboard.press("Tab")
        stops.append(focused(page))
        if stops[-1].startswith("neuron"):
            break
    assert stops[-1] == "neuron 1.0"
    page.keyboard.press("Tab")  # the diagram is a single Tab stop
    after = focused(page)
    assert not after.startswith("neuron")
    assert sum(s.startswith("neuron") for s in stops) == 1
    page.keyboard.press("Shift+Tab")
    assert focused(page) == "neuron 1.0"

    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert focused(page) == "neuron 1.2"
    expect(title(page)).to_have_text("Layer 1, neuron 3 (preview)")
    page.keyboard.press("Enter")
    expect(title(page)).to_have_text("Layer 1, neuron 3 (pinned)")
    expect(neuron(page, 1, 2)).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("ArrowRight")
    assert focused(page) == "neuron 2.2"
    page.keyboard.press("ArrowRight")
    assert focused(page) == "neuron 3.1"  # the same height in a layer of 10
    page.keyboard.press("End")
    assert focused(page) == "neuron 3.9"
    page.keyboard.press("Space")
    expect(neuron(page, 3, 9)).to_have_attribute("aria-pressed", "true")
    expect(neuron(page, 1, 2)).to_have_attribute("aria-pressed", "false")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Home")
    assert focused(page) == "neuron 2.0"
    page.keyboard.press("Escape")
    expect(page.locator("#diagram .neuron[aria-pressed=true]")).to_have_count(0)
    expect(title(page)).to_have_text("Layer 2, neuron 1 (preview)")  # focus still previews
    page.keyboard.press("Tab")
    expect(title(page)).to_have_text("Pick a neuron")
    labels = page.evaluate(
        "[...document.querySelectorAll('#layer-1 .neuron')].map(n => n.getAttribute('aria-label'))"
    )
    assert all(re.fullmatch(r"layer 1, neuron \d+ of 16, activation \d\.\d{3}", s) for s in labels)


def status(page):
    return page.locator("#status")


def test_status_always_describes_the_pad(page):
    expect(status(page)).to_contain_text("The pad is blank")
    stroke(page, DIGITS["1"][0])
    expect(status(page)).to_contain_text("Your drawing, 1 stroke.", timeout=5000)
    page.get_by_role("button", name="Undo stroke").click()
    expect(status(page)).to_contain_text("The pad is blank")
    expect(page.locator("#guess")).to_have_text("?")
    page.select_option("#sample-digit", "3")
    page.get_by_role("button", name="Load an MNIST digit").click()
    expect(status(page)).to_have_text(re.compile(r"^MNIST test image #\d+, labelled 3\.$"))
    stroke(page, [(40, 40), (80, 60)])
    expect(status(page)).to_contain_text("with 1 stroke of yours on top", timeout=5000)
    page.get_by_role("button", name="Undo stroke").click()
    expect(status(page)).to_have_text(re.compile(r"^MNIST test image #\d+, labelled 3\.$"))
    page.get_by_role("button", name="Clear").click()
    expect(status(page)).to_contain_text("The pad is blank")


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def greys(page, layer):
    """The grey level (0-255) each neuron of a layer is drawn in."""
    fills = page.evaluate(
        f"[...document.querySelectorAll('#layer-{layer} .cell')].map(c => c.getAttribute('fill'))"
    )
    return [int(re.fullmatch(r"rgb\((\d+),\1,\1\)", f).group(1)) for f in fills]


def test_blank_pad_shows_the_networks_answer_to_a_blank_input(page):
    """An all-black input still lights the first layer: σ(W·0 + b) = σ(b), and so on."""
    model = page.evaluate("fetch('/api/model').then(r => r.json())")
    W = [np.array(w) for w in model["weights"]]
    b = [np.array(v) for v in model["biases"]]
    a1 = sigmoid(b[0])
    a2 = sigmoid(W[1] @ a1 + b[1])
    z3 = W[2] @ a2 + b[2]
    a3 = np.exp(z3 - z3.max()) / np.exp(z3 - z3.max()).sum()
    for layer, expected in ((1, a1), (2, a2), (3, a3)):
        shown = greys(page, layer)
        assert np.abs(np.array(shown) - np.round(255 * expected)).max() <= 1, layer
    assert len(set(shown)) > 1  # not all black
    expect(page.locator("#guess")).to_have_text("?")
    values = [float(v.rstrip("%")) for v in page.locator("#bars .value").all_inner_texts()]
    assert values == pytest.approx(list(np.round(100 * a3, 1)), abs=0.11)
    expect(page.locator("#bars li.top")).to_have_count(0)
    expect(page.locator("#bars-caption")).to_contain_text("empty picture")
    stroke(page, DIGITS["7"][0])
    expect(page.locator("#guess")).to_have_text("7", timeout=5000)
    page.get_by_role("button", name="Clear").click()
    shown = greys(page, 1)
    assert np.abs(np.array(shown) - np.round(255 * a1)).max() <= 1  # the same after Clear


RECORD = """() => {
    window.said = [];
    window.guesses = 0;
    const all = {childList: true, characterData: true, subtree: true};
    const announce = document.getElementById('announce');
    new MutationObserver(() => {
        if (announce.textContent) window.said.push(announce.textContent);
    }).observe(announce, all);
    new MutationObserver(() => window.guesses++).observe(document.getElementById('guess'), all);
}"""


def slow_stroke(page, points, pause=40):
    """A stroke drawn slowly enough that the page predicts while the button is down."""
    box = page.locator("#pad").bounding_box()
    scale = box["width"] / 280
    at = [(box["x"] + x * scale, box["y"] + y * scale) for x, y in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(at, at[1:], strict=False):
        for t in range(1, 11):
            page.mouse.move(x0 + (x1 - x0) * t / 10, y0 + (y1 - y0) * t / 10)
            page.wait_for_timeout(pause)
    page.mouse.up()


def test_the_guess_is_announced_once_per_finished_stroke(page):
    assert page.locator("#guess").get_attribute("aria-live") == "off"
    assert page.locator("#status").get_attribute("aria-live") in (None, "off")
    page.evaluate(RECORD)
    slow_stroke(page, DIGITS["7"][0])
    expect(page.locator("#announce")).to_have_text(
        re.compile(r"^Guess 7, \d+\.\d% sure$"), timeout=5000
    )
    page.wait_for_timeout(800)  # nothing more arrives
    said = page.evaluate("window.said")
    assert len(said) == 1 and re.fullmatch(r"Guess 7, \d+\.\d% sure", said[0]), said
    assert page.evaluate("window.guesses") >= 2  # the guess was shown while drawing
    stroke(page, [(200, 200), (205, 205)])  # a second stroke: a second announcement
    page.wait_for_function("window.said.length === 2", timeout=5000)
    page.wait_for_timeout(500)
    assert len(page.evaluate("window.said")) == 2


def test_a_pinned_neuron_is_announced(page):
    draw_seven(page)
    neuron(page, 1, 4).click()
    expect(page.locator("#announce")).to_have_text(
        re.compile(r"^Pinned\. Layer 1, neuron 5: bias -?\d\.\d{3}, activation \d\.\d{3}\. ")
    )
    page.keyboard.press("Escape")
    expect(page.locator("#announce")).to_have_text("Neuron unpinned.")


@pytest.mark.parametrize("pen, width", [("thin", 10), ("normal", 20), ("thick", 36)])
def test_pen_widths(page, pen, width):
    page.get_by_label(pen, exact=True).check()
    stroke(page, [(40, 140), (240, 140)])
    expect(page.locator("#guess")).to_have_text(re.compile(r"^\d$"), timeout=5000)
    dark = page.evaluate(
        "Array.from(pad.getContext('2d').getImageData(140, 0, 1, 280).data)"
        ".filter((v, i) => i % 4 === 0 && v < 128).length"
    )
    assert abs(dark - width) <= 2


def test_preprocessing_steps_on_demand(page):
    expect(page.locator("#show-steps")).to_be_disabled()  # nothing to show on a blank pad
    draw_seven(page)
    neuron(page, 1, 0).click()
    page.get_by_role("button", name="See the preprocessing steps").click()
    dialog = page.get_by_role("dialog", name="How the drawing became the network's input")
    expect(dialog).to_be_visible()
    steps = dialog.locator("figure.step")
    expect(steps).to_have_count(4)
    assert steps.locator("h3").all_inner_texts() == [
        "1. Your drawing",
        "2. The ink, cropped",
        "3. Fitted into 20 × 20",
        "4. Centred by its mass in 28 × 28",
    ]
    expect(steps.nth(2)).to_contain_text("The longer side scaled to 20 px")
    expect(steps.nth(3)).to_contain_text("(14, 14)")
    lit = page.evaluate(
        "(() => { const c = document.querySelectorAll('figure.step canvas')[3];"
        " return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"
        ".filter((v, i) => i % 4 === 0 && v > 200).length; })()"
    )
    assert lit > 1000  # the input is drawn
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(title(page)).to_have_text("Layer 1, neuron 1 (pinned)")  # Escape closed only the dialog


def test_a_dot_is_told_it_is_no_digit(page):
    box = page.locator("#pad").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    caveat = page.locator("#caveat")
    expect(caveat).to_be_visible(timeout=5000)
    expect(caveat).to_contain_text("no “not a digit” answer")
    expect(page.locator("#announce")).to_contain_text("dot")
    span = page.evaluate(
        """(() => {
            const d = seen.getContext('2d').getImageData(0, 0, 28, 28).data;
            const rows = [], cols = [];
            for (let i = 0; i < 784; i++) {
                if (d[4 * i] > 12) { rows.push(i / 28 | 0); cols.push(i % 28); }
            }
            const span = (v) => Math.max(...v) - Math.min(...v) + 1;
            return Math.max(span(rows), span(cols));
        })()"""
    )
    assert span < 10  # the dot stays a dot, it does not fill the 20x20 box
    page.get_by_role("button", name="Clear").click()
    expect(caveat).to_be_hidden()
    draw_seven(page)
    expect(caveat).to_be_hidden()
    expect(page.locator("#not-digit")).to_be_hidden()


def test_a_scribble_is_told_it_is_no_digit(page):
    """A five-pointed star: the network still names a digit (often quite sure of it),
    and the page says it is probably not one, and why."""
    star = [
        (140 + 110 * math.sin(4 * math.pi * i / 5), 140 - 110 * math.cos(4 * math.pi * i / 5))
        for i in range(6)
    ]
    stroke(page, star)
    expect(page.locator("#caveat")).to_be_visible(timeout=5000)
    expect(page.locator("#caveat")).to_contain_text("Probably not a digit: it ")
    expect(page.locator("#caveat")).to_contain_text("no “not a digit” answer")
    expect(page.locator("#not-digit")).to_be_visible()  # beside the guess
    expect(page.locator("#not-digit")).to_have_text("probably not a digit")
    expect(page.locator("#announce")).to_contain_text("Probably not a digit")


def style(page, selector, prop):
    return page.evaluate(f"getComputedStyle(document.querySelector('{selector}')).{prop}")


@pytest.mark.parametrize("motion, duration", [("reduce", "0s"), ("no-preference", "0.12s")])
def test_reduced_motion(browser, server, motion, duration):
    with page_at(browser, server, reduced_motion=motion) as page:
        assert page.evaluate("matchMedia('(prefers-reduced-motion: reduce)').matches") == (
            motion == "reduce"
        )
        value = page.evaluate(
            "getComputedStyle(document.querySelector('.bar > span')).transitionDuration"
        )
        assert value == duration


def luminance(rgb):
    def linear(c):
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a, b):
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def rgb(text):
    """ "rgb(r, g, b)" or "#rrggbb" -> (r, g, b)."""
    text = text.strip()
    if text.startswith("#"):
        return tuple(int(text[i : i + 2], 16) for i in (1, 3, 5))
    return tuple(int(float(v)) for v in re.findall(r"[\d.]+", text)[:3])


def test_graphics_have_3_to_1_contrast(page):
    """Every outline, track, border and line that carries meaning stands out from the
    panel by at least 3:1 (WCAG 1.4.11), unlit neurons included."""
    draw_seven(page)
    colours = page.evaluate(
        """() => {
            const css = (sel, prop) => getComputedStyle(document.querySelector(sel))[prop];
            const root = getComputedStyle(document.documentElement);
            return {
                panel: css('.panel', 'backgroundColor'),
                'panel border': css('.panel', 'borderTopColor'),
                'neuron outline': css('#diagram .cell', 'stroke'),
                'input frame': css('#diagram .frame', 'stroke'),
                'bar track border': css('.bar', 'borderTopColor'),
                'bar fill': css('.bar > span', 'backgroundColor'),
                'guess bar fill': css('li.top .bar > span', 'backgroundColor'),
                'button border': css('#clear', 'borderTopColor'),
                'seen border': css('#seen', 'borderTopColor'),
                'pinned ring': root.getPropertyValue('--pin'),
                'guess ring': root.getPropertyValue('--accent'),
            };
        }"""
    )
    panel = rgb(colours.pop("panel"))
    for name, colour in colours.items():
        value = colour.strip()
        value = (
            rgb(value)
            if value.startswith("rgb")
            else tuple(int(value[i : i + 2], 16) for i in (1, 3, 5))
        )
        assert contrast(value, panel) >= 3, (name, colour)
    track = rgb(page.evaluate("getComputedStyle(document.querySelector('.bar')).backgroundColor"))
    fill = rgb(
        page.evaluate("getComputedStyle(document.querySelector('.bar > span')).backgroundColor")
    )
    assert contrast(fill, track) >= 3
    lines = page.evaluate(
        "[...document.querySelectorAll('#links line')].map(l => [l.getAttribute('stroke'),"
        " Number(l.getAttribute('stroke-opacity'))])"
    )
    assert lines
    for colour, opacity in lines:  # each line as it shows over the panel
        c = rgb(colour)
        shown = tuple(opacity * x + (1 - opacity) * p for x, p in zip(c, panel, strict=True))
        assert contrast(shown, panel) >= 3, (colour, opacity)
    assert math.isclose(contrast((255, 255, 255), (0, 0, 0)), 21)
