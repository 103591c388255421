"""The neuron explorer in the page: choosing neurons (first-layer pictures, hidden and
output neurons of the diagram), knocking them out until the guess changes, and the
nudge that makes the network say another digit."""

import json
import re
import urllib.request

import pytest
from pagetools import DIGITS, SCREENSHOTS, page_at, stroke
from playwright.sync_api import expect


@pytest.fixture
def page(browser, server):
    with page_at(browser, server, viewport={"width": 1366, "height": 768}) as page:
        yield page


def post(url, body):
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def draw_seven(page):
    stroke(page, DIGITS["7"][0])
    expect(page.locator("#guess")).to_have_text("7", timeout=5000)


def cell(page, index):
    return page.locator("#layer1-grid .cell").nth(index)


def first_layer(page, body: str) -> list[float]:
    """Layer 1's activations for a /api/predict body (a JavaScript expression), asked
    from the page."""
    return page.evaluate(
        "fetch('/api/predict', {method: 'POST', headers: {'Content-Type': 'application/json'},"
        f" body: JSON.stringify({body})}}).then(r => r.json()).then(a => a.activations[1])"
    )


def shown(page, expected: list[float]) -> tuple[list[float], list[float]]:
    """The activations written under the 16 pictures, and their tints, once the panel
    (redrawn at the next frame) shows ``expected``."""
    cells = page.locator("#layer1-grid .cell")
    for j, a in enumerate(expected):
        expect(cells.nth(j).locator(".cell-act")).to_have_text(f"{a:.2f}")
    values = [float(cells.nth(j).locator(".cell-act").inner_text()) for j in range(16)]
    tints = [
        float(cells.nth(j).evaluate("c => c.style.getPropertyValue('--a')")) for j in range(16)
    ]
    return values, tints


def test_sixteen_first_layer_pictures_lit_by_the_drawing(page):
    expect(page.locator("#layer1-grid .cell")).to_have_count(16)
    blank = first_layer(page, "{pixels: new Array(784).fill(0)}")  # σ(b): the bias alone
    values, tints = shown(page, blank)
    assert values == pytest.approx(blank, abs=0.006) and tints == pytest.approx(blank, abs=0.001)
    draw_seven(page)
    seen = first_layer(page, "{image: document.getElementById('pad').toDataURL()}")
    values, tints = shown(page, seen)
    assert values == pytest.approx(seen, abs=0.006) and tints == pytest.approx(seen, abs=0.001)
    assert max(abs(a - b) for a, b in zip(seen, blank, strict=True)) > 0.2  # the drawing shows


def test_choose_a_neuron_of_each_kind(page):
    draw_seven(page)
    cell(page, 4).click()
    expect(page.locator("#explore-title")).to_have_text("Layer 1, neuron 5")
    expect(cell(page, 4)).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#neuron-title")).to_have_text("Layer 1, neuron 5 (pinned)")  # one choice
    expect(page.locator("#explore-top img")).to_have_count(9)
    expect(page.locator("#knockout-effect")).to_contain_text("test digits right")
    assert page.evaluate("[document.getElementById('explore-weights').width]") == [28]
    wants = page.evaluate(
        """() => { const c = document.getElementById('explore-wants');
                   const d = c.getContext('2d').getImageData(0, 0, 28, 28).data;
                   let ink = 0; for (let i = 0; i < d.length; i += 4) ink += d[i];
                   return [c.width, ink]; }"""
    )
    assert wants[0] == 28 and wants[1] > 0  # painted, not blank
    activations = [
        float(a) for a in re.findall(r"\d\.\d{3}", page.locator("#explore-top").inner_text())
    ]
    assert len(activations) == 9 and activations == sorted(activations, reverse=True)

    page.locator("#layer-2 .neuron").nth(6).click()  # a hidden neuron of layer 2: bars
    expect(page.locator("#explore-title")).to_have_text("Layer 2, neuron 7")
    expect(page.locator("#explore-weights")).to_be_hidden()  # no picture: labelled bars
    expect(page.locator("#explore-weights-bars .wbar")).to_have_count(16)
    expect(page.locator("#explore-weights-caption")).to_contain_text("one bar per neuron")
    expect(page.locator("#knockout-row")).to_be_visible()
    expect(cell(page, 4)).to_have_attribute("aria-pressed", "false")

    page.locator("#layer-3 .neuron").nth(7).click()  # an output neuron: no knock-out
    expect(page.locator("#explore-title")).to_have_text("Output 7")
    expect(page.locator("#explore-top img")).to_have_count(9)
    alts = page.locator("#explore-top img").evaluate_all("imgs => imgs.map(i => i.alt)")
    told = [re.fullmatch(r"MNIST test digit #\d+, a (\d)", alt) for alt in alts]
    assert all(told), alts  # each announced with its digit
    assert sum(m.group(1) == "7" for m in told) >= 8, alts  # output 7 answers 7s most
    expect(page.locator("#explore-top figcaption").first).to_contain_text("a 7: ")
    expect(page.locator("#knockout-row")).to_be_hidden()


def knockouts_that_change(server, image, digit):
    """Hidden neurons to knock out, one at a time, until the answer is no longer
    ``digit``: each time the one that lowers its probability most (found through the
    API itself)."""
    chosen = []
    for _ in range(12):
        best = None
        for layer in (1, 2):
            for index in range(16):
                if [layer, index] in chosen:
                    continue
                answer = post(
                    server + "api/predict", {"image": image, "knockout": [*chosen, [layer, index]]}
                )
                p = answer["probabilities"][digit]
                if best is None or p < best[0]:
                    best = (p, [layer, index], answer["digit"])
        chosen.append(best[1])
        if best[2] != digit:
            return chosen, best[2]
    raise AssertionError("twelve knock-outs did not change the guess")


def test_knock_outs_change_the_guess(page, server):
    draw_seven(page)
    image = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
    chosen, now = knockouts_that_change(server, image, 7)
    for layer, index in chosen:
        if layer == 1:
            cell(page, index).click()
        else:
            page.locator(f"#layer-{layer} .neuron").nth(index).click()
        expect(page.locator("#explore-title")).to_have_text(f"Layer {layer}, neuron {index + 1}")
        page.locator("#knockout-switch").check()
    expect(page.locator("#guess")).to_have_text(str(now), timeout=5000)
    n = len(chosen)
    expect(page.locator("#knockout-count")).to_have_text(
        f"{n} neuron{'' if n == 1 else 's'} knocked out."
    )
    for layer, index in chosen:
        if layer == 1:
            expect(cell(page, index)).to_have_class(re.compile(r"\boff\b"))
            expect(cell(page, index).locator(".cell-act")).to_have_text("0.00")
    page.locator("#knockout-clear").click()
    expect(page.locator("#guess")).to_have_text("7", timeout=5000)
    expect(page.locator("#knockout-switch")).not_to_be_checked()


def test_nudge_makes_it_say_another_digit(page):
    draw_seven(page)
    page.locator("#nudge-target").select_option("3")
    page.locator("#nudge").click()
    expect(page.locator("#nudge-result")).to_contain_text("Now it says 3", timeout=10000)
    expect(page.locator("#fool")).to_contain_text("at least 90% sure of that digit")
    sure = re.search(r"Now it says 3, (\d+)% sure", page.locator("#nudge-result").inner_text())
    assert int(sure.group(1)) >= 90  # on until the confident answer, not the first flip
    expect(page.locator("#guess")).to_have_text("3", timeout=5000)
    expect(page.locator("#status")).to_contain_text("nudged until the network says 3")
    expect(page.locator("#nudge-pictures")).to_be_visible()
    text = page.locator("#nudge-result").inner_text()
    linf, l2 = (
        float(v)
        for v in re.search(
            r"more than ([\d.]+) of the way from black to white; "
            r"all the changes together measure ([\d.]+) \(the square root",
            text,
        ).groups()
    )
    assert 0 < linf < 1 and 0 < l2 < 10
    before, after = page.evaluate(
        """() => ['nudge-before', 'nudge-after'].map(id => {
              const g = document.getElementById(id).getContext('2d');
              const d = g.getImageData(0, 0, 28, 28).data;
              return Array.from({length: 784}, (_, i) => d[4 * i] / 255); })"""
    )
    assert max(abs(a - b) for a, b in zip(before, after, strict=True)) == pytest.approx(
        linf, abs=0.01
    )
    if SCREENSHOTS:
        page.locator("#explorer").screenshot(path=f"{SCREENSHOTS}/explorer.png")
