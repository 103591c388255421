"""How it learns, on the page: choosing the drawing's label shows its cost, what each
output and hidden neuron wants, the first layer's 16 weight-nudge pictures and the ten
connections that matter most; steps go downhill on a copy of the network, never the
served one; "Average over many" and the landscape are drawn when opened; by keyboard,
on a phone, axe-core clean, and a link keeps the label."""

import json
import os
import re
import urllib.request

import pytest
from pagetools import DIGITS, page_at, stroke
from playwright.sync_api import expect
from test_accessibility import check

LAPTOP = {"viewport": {"width": 1366, "height": 768}}
SIZES = {
    "laptop": LAPTOP,
    "small laptop": {"viewport": {"width": 1024, "height": 768}},
    "phone": {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True},
}
#: Where the screenshots go (LEARN_SCREENSHOTS=docs for the README's).
SHOTS = os.environ.get("LEARN_SCREENSHOTS", "/tmp")


def served_model(server):
    with urllib.request.urlopen(server + "api/model", timeout=30) as answer:
        return json.load(answer)


def requests_to(page, path):
    """A list that fills with the page's POSTs to path."""
    seen = []
    page.on("request", lambda r: seen.append(r) if r.url.endswith(path) else None)
    return seen


def draw_and_label(page, digit="7"):
    """Draw digit, wait for the guess, choose the label: the gradient's answer."""
    for points in DIGITS[digit]:
        stroke(page, points)
    expect(page.locator("#guess")).to_have_text(digit, timeout=10000)
    with page.expect_response("**/api/gradient") as answer:
        labels(page).get_by_role("button", name=digit, exact=True).click()
    expect(page.locator("#learn-cost")).to_contain_text("How wrong it is", timeout=10000)
    return answer.value.json()


def labels(page):
    return page.get_by_role("group", name="What is your drawing?")


def bar_signs(page, selector):
    return page.locator(f"{selector} .wbar").evaluate_all(
        "bars => bars.map(b => b.classList.contains('up') ? 1 : -1)"
    )


def test_a_label_shows_the_cost_and_what_it_asks(browser, server):
    with page_at(browser, server, **LAPTOP) as page:
        asked = requests_to(page, "/api/gradient")
        for points in DIGITS["7"]:
            stroke(page, points)
        expect(page.locator("#guess")).to_have_text("7", timeout=10000)
        # nothing is worked out until a label is chosen, however much is drawn
        expect(page.locator("#learn-result")).to_be_hidden()
        assert asked == []
        expect(labels(page).get_by_role("button")).to_have_count(10)
        assert labels(page).locator("[aria-pressed=true]").count() == 0
        with page.expect_response("**/api/gradient") as response:
            labels(page).get_by_role("button", name="7", exact=True).click()
        answer = response.value.json()
        cost = page.locator("#learn-cost")
        expect(cost).to_contain_text("How wrong it is:")
        expect(cost).to_contain_text(f"{answer['cost']:.3f}")
        expect(page.locator("#announce")).to_contain_text("You say it is a 7. How wrong it is")
        expect(labels(page).get_by_role("button", name="7", exact=True)).to_have_attribute(
            "aria-pressed", "true"
        )
        # the outputs' wishes: the right digit's bar up, the nine others down
        assert bar_signs(page, "#learn-out-bars") == [1 if d == 7 else -1 for d in range(10)]
        expect(page.locator("#learn-out-bars .wbar-labels span")).to_have_text(
            [str(d) for d in range(10)]
        )
        # what that asks of each hidden layer: one labelled set of bars per layer
        sizes = served_model(server)["sizes"]
        figures = page.locator("#learn-wants figure")
        expect(figures).to_have_count(len(sizes) - 2)
        for k, layer in enumerate(range(len(sizes) - 2, 0, -1)):
            expect(figures.nth(k).locator(".wbar")).to_have_count(sizes[layer])
            expect(figures.nth(k).locator("figcaption")).to_contain_text(f"layer {layer}'s")
            signs = [1 if v > 0 else -1 for v in answer["wants"][layer - 1]]
            assert bar_signs(page, f"#learn-wants figure:nth-child({k + 1})") == signs
        # the first layer's nudges: 16 pictures, drawn, on one scale with its key
        pictures = page.locator("#learn-nudges canvas")
        expect(pictures).to_have_count(sizes[1])
        lit = pictures.evaluate_all(
            """cs => cs.map(c => { const d = c.getContext('2d').getImageData(0, 0, 28, 28).data;
                let n = 0; for (let i = 0; i < d.length; i += 4)
                    if (d[i] !== 255 || d[i + 1] !== 255 || d[i + 2] !== 255) n++;
                return n; })"""
        )
        scale = max(abs(v) for row in answer["weight_nudges"][0] for v in row)
        # each drawn but one whose nudges are all too faint for the shared scale (a
        # neuron that did not fire passes nothing back)
        faint = [max(map(abs, row)) < scale / 255 for row in answer["weight_nudges"][0]]
        assert [n == 0 for n in lit] == faint, (lit, faint)
        assert not all(faint)
        expect(page.locator("#learn-key-high")).to_have_text(re.compile(r"^\+[0-9.e-]+$"))
        shown = float(page.locator("#learn-key-high").inner_text()[1:])
        assert shown == pytest.approx(scale, rel=0.05)
        high = page.locator("#learn-key-high").inner_text()
        expect(page.locator("#learn-key-low")).to_have_text("−" + high[1:])
        # the ten connections that matter most, listed and marked in the diagram
        expect(page.locator("#learn-top li")).to_have_count(10)
        expect(page.locator("#diagram line.marked-link")).to_have_count(10)
        assert len(asked) == 1
        # a new drawing: the numbers no longer hold, and nothing is asked until a label
        page.locator("#clear").click()
        stroke(page, DIGITS["1"][0])
        expect(page.locator("#guess")).to_have_text("1", timeout=10000)
        expect(page.locator("#learn-result")).to_be_hidden()
        expect(page.locator("#learn-status")).to_contain_text("press 7 again")
        expect(page.locator("#diagram line.marked-link")).to_have_count(0)
        assert len(asked) == 1


def step(page):
    """Press "Take a step": /api/step's answer."""
    with page.expect_response("**/api/step") as response:
        page.get_by_role("button", name="Take a step").click()
    return response.value.json()


def test_steps_go_downhill_on_a_copy_and_reset(browser, server):
    before = served_model(server)
    with page_at(browser, server, **LAPTOP) as page:
        draw_and_label(page, "7")
        page.get_by_label("Learning rate (η)").fill("0.5")
        first = step(page)
        expect(page.locator("#learn-steps-body tr")).to_have_count(1)
        second = step(page)
        rows = page.locator("#learn-steps-body tr")
        expect(rows).to_have_count(2)
        for s in (first, second):
            assert s["cost_after"] < s["cost_before"]
        assert second["model"] != first["model"]
        # each step starts from the last stepped copy
        assert second["cost_before"] == pytest.approx(first["cost_after"], rel=1e-6)
        cells = rows.nth(1).locator("td").all_inner_texts()
        costs = [f"{second['cost_before']:.4f}", f"{second['cost_after']:.4f}"]
        assert cells[:4] == ["2", "0.5", *costs]
        expect(page.locator("#announce")).to_contain_text("Step 2: the cost went from")
        expect(page.locator("#learn-step-result")).to_contain_text(
            "the page's own network is unchanged"
        )
        # the served network is untouched, and so is the page's guess
        assert served_model(server)["weights"] == before["weights"]
        expect(page.locator("#guess")).to_have_text("7")
        page.get_by_role("button", name="Reset").click()
        expect(rows).to_have_count(0)
        expect(page.get_by_role("button", name="Reset")).to_be_disabled()
        expect(page.locator("#announce")).to_contain_text("Reset")
        again = step(page)
        assert again["cost_before"] == pytest.approx(first["cost_before"], rel=1e-6)
        assert again["model"] not in (first["model"], second["model"])


def test_average_over_many_and_the_landscape(browser, server):
    with page_at(browser, server, **LAPTOP) as page:
        chart = page.locator("#learn-cosine")
        expect(chart).to_have_attribute("data-points", "0")
        with page.expect_response("**/api/minibatch", timeout=60000) as response:
            page.locator("#learn-many summary").click()
        batches = sorted(response.value.json()["batches"], key=lambda b: b["size"])
        assert batches[0]["size"] == 1 and batches[-1]["size"] == 60000
        assert batches[-1]["cosine"] == pytest.approx(1, abs=1e-6)
        expect(chart).to_have_attribute("data-points", str(len(batches)), timeout=10000)
        assert "60,000: 1.00" in chart.get_attribute("aria-label")
        expect(page.locator("#learn-many-text")).to_contain_text(
            "Stochastic gradient descent steps along a small random batch's average"
        )
        # closing and opening again asks nothing more
        asked = requests_to(page, "/api/minibatch")
        page.locator("#learn-many summary").click()
        page.locator("#learn-many summary").click()
        with page.expect_response("**/api/landscape", timeout=60000) as response:
            page.locator("#learn-land summary").click()
        land = response.value.json()
        n = len(land["alphas"]) * len(land["betas"])
        expect(page.locator("#learn-map")).to_have_attribute("data-cells", str(n), timeout=10000)
        expect(page.locator("#learn-land-text")).to_contain_text("The ring is the network itself")
        corners = page.locator("#learn-map").evaluate(
            """c => { const g = c.getContext('2d');
                return [[2, 2], [c.width - 3, c.height - 3]].map(([x, y]) =>
                    Array.from(g.getImageData(x, y, 1, 1).data)); }"""
        )
        assert all(px[3] == 255 for px in corners) and corners[0] != [0, 0, 0, 255]
        assert asked == []


def test_by_keyboard_alone(browser, server):
    with page_at(browser, server, **LAPTOP) as page:
        page.locator("#sample").focus()
        page.keyboard.press("Enter")
        expect(page.locator("#status")).to_contain_text("labelled", timeout=10000)
        label = page.locator("#status").inner_text().split("labelled ")[1][0]
        nav = page.get_by_role("navigation", name="Sections").get_by_role("link", name="Learn")
        nav.focus()
        page.keyboard.press("Enter")
        expect(page.locator("#learn-title")).to_be_focused()
        expect(page.locator("#announce")).to_have_text("How it learns.")
        for _ in range(int(label) + 1):
            page.keyboard.press("Tab")
        expect(page.locator(":focus")).to_have_text(label)
        with page.expect_response("**/api/gradient"):
            page.keyboard.press("Enter")
        expect(page.locator("#announce")).to_contain_text(f"You say it is a {label}.")
        for _ in range(10 - int(label)):
            page.keyboard.press("Tab")
        expect(page.get_by_label("Learning rate (η)")).to_be_focused()
        page.keyboard.press("Tab")
        expect(page.get_by_role("button", name="Take a step")).to_be_focused()
        with page.expect_response("**/api/step"):
            page.keyboard.press("Enter")
        expect(page.locator("#announce")).to_contain_text("Step 1: the cost went from")
        page.keyboard.press("Tab")
        expect(page.get_by_role("button", name="Reset")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("#learn-steps")).to_be_hidden()
        page.locator("#learn-many summary").focus()
        with page.expect_response("**/api/minibatch", timeout=60000):
            page.keyboard.press("Enter")
        expect(page.locator("#learn-cosine")).not_to_have_attribute("data-points", "0")


@pytest.mark.parametrize("size", SIZES)
def test_fits_every_screen_and_axe_is_clean(browser, server, size):
    with page_at(browser, server, **SIZES[size]) as page:
        check(page)  # nothing chosen yet
        draw_and_label(page, "0")
        step(page)
        with page.expect_response("**/api/minibatch", timeout=60000):
            page.locator("#learn-many summary").click()
        with page.expect_response("**/api/landscape", timeout=60000):
            page.locator("#learn-land summary").click()
        expect(page.locator("#learn-map")).not_to_have_attribute("data-cells", "0")
        width = SIZES[size]["viewport"]["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        parts = ["#learn-labels", "#learn-nudges", "#learn-out-bars", "#learn-cosine", "#learn-map"]
        for part in parts:
            box = page.locator(part).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (part, box)
        check(page)
        name = {"laptop": "laptop", "phone": "phone"}.get(size)
        if name:
            page.locator("#learn").scroll_into_view_if_needed()
            page.locator("#learn").screenshot(path=f"{SHOTS}/learn-{name}.png")


def test_a_link_keeps_the_label(browser, server):
    with page_at(browser, server, **LAPTOP) as page:
        answer = draw_and_label(page, "7")
        assert "l=7" in page.url
        link = page.url
    with page_at(browser, server, **LAPTOP) as page:
        asked = []
        page.on("request", lambda r: "gradient" in r.url and asked.append(r.post_data_json))
        page.goto(link)
        page.wait_for_selector("body[data-ready=true]")
        expect(labels(page).get_by_role("button", name="7", exact=True)).to_have_attribute(
            "aria-pressed", "true"
        )
        expect(page.locator("#learn-cost")).to_contain_text("gives 7 a")
        # the link's picture is the drawing to 1/255: the same cost to about 1%
        shown = float(re.search(r"is (\d+\.\d+)\.$", page.locator("#learn-cost").inner_text())[1])
        assert shown == pytest.approx(answer["cost"], rel=0.02, abs=2e-3)
        assert [a["label"] for a in asked] == [7]
