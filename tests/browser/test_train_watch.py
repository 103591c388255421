"""Training you can watch: the video's setup in one press, each epoch held on screen for
the pace asked, the accuracy scale fitted to the run with chance marked, the settings'
own help beside each choice, and a bad field named and marked."""

import re

import pytest
from pagetools import page_at
from playwright.sync_api import expect

from digitnet.settings import SETTINGS

pytestmark = pytest.mark.slow

#: performance.now() at each change of the curves' number of points.
RECORD_TIMES = """() => {
    window.epochTimes = [];
    const curves = document.getElementById('train-curves');
    new MutationObserver(() => window.epochTimes.push(performance.now()))
        .observe(curves, {attributes: true, attributeFilter: ['data-points']});
}"""


@pytest.fixture
def page(browser, server):
    with page_at(browser, server) as page:
        expect(page.locator("#train-start")).to_be_enabled()
        yield page


def test_each_choice_has_the_settings_own_help(page):
    for name in ("output", "loss", "optimizer", "lr", "batch_size", "epochs", "augment"):
        expect(page.locator(f"#train-help-{name}")).to_have_text(SETTINGS[name].help)
    expect(page.locator("#train-loss")).to_have_attribute("aria-describedby", "train-help-loss")
    for words in ("softmax", "cross-entropy", "quadratic", "sgd", "momentum", "adam"):
        expect(page.locator("#train-help")).to_contain_text(words)
    expect(page.locator("#train-help-pace")).to_contain_text("seconds at least")
    expect(page.locator("#train-pace")).to_have_value("1")


def test_the_video_setup_trains_at_a_watchable_pace(page):
    page.click("#train-preset")
    for control, value in [("#train-hidden", "16,16"), ("#train-output", "sigmoid"),
                           ("#train-loss", "quadratic"), ("#train-optimizer", "sgd"),
                           ("#train-lr", "3"), ("#train-batch", "10"), ("#train-augment", "0")]:
        expect(page.locator(control)).to_have_value(value)
    page.fill("#train-epochs", "2")
    page.evaluate(RECORD_TIMES)
    page.click("#train-start")
    curves = page.locator("#train-curves")
    expect(curves).to_have_attribute("data-points", "2", timeout=120_000)
    first, second = page.evaluate("window.epochTimes")[:2]
    assert second - first >= 1000 - 50  # the page's pace: a second at least per epoch
    # a network that learns: the scale fits its accuracies, chance far below it
    low, high = map(int, curves.get_attribute("data-accuracy-scale").split("-"))
    assert 50 <= low < high <= 100, (low, high)
    expect(curves).to_have_attribute("data-chance", "below")
    scale = re.compile(rf"scale runs from {low}% to {high}%")
    expect(curves).to_have_attribute("aria-label", scale)
    status = page.locator("#train-status")
    expect(status).to_have_attribute("data-state", "done", timeout=60_000)
    model = re.search(r"Network (trained-\d+)", status.inner_text()).group(1)
    expect(page.locator("#compare-b")).to_have_value(model)


def test_a_refused_field_is_named_and_marked(page):
    expect(page.locator("#train-pace")).to_have_attribute("max", "10")  # the API's bound
    page.fill("#train-lr", "0")
    page.click("#train-start")
    status = page.locator("#train-status")
    expect(status).to_have_attribute("data-state", "error")
    expect(status).to_contain_text("Cannot train: lr: expected")
    expect(page.locator("#train-lr")).to_have_attribute("aria-invalid", "")
    expect(page.locator("#train-lr")).to_be_focused()
    page.fill("#train-lr", "0.02")
    page.fill("#train-hidden", "300")
    page.click("#train-start")
    expect(status).to_contain_text("Cannot train: sizes")
    expect(page.locator("#train-lr")).not_to_have_attribute("aria-invalid", "")
    expect(page.locator("#train-hidden")).to_have_attribute("aria-invalid", "")
