"""The "train your own" panel in a real browser on a real server: a 2-epoch network
trained from the page, its curves, weight pictures and guess growing epoch by epoch,
then compared, used on the page and downloaded; a bad setting refused by name."""

import re

import pytest
from pagetools import DIGITS, page_at, stroke
from playwright.sync_api import expect

from digitnet.files.modelfile import load

pytestmark = pytest.mark.slow


@pytest.fixture
def page(browser, server):
    with page_at(browser, server) as page:
        yield page


#: Records, at each change of the curves' number of points, that number and the first
#: weight picture: the page draws both in the same event handler, before the observer
#: runs, so every epoch is seen however quickly the next one follows.
RECORD_EPOCHS = """() => {
    window.epochsSeen = [];
    const curves = document.getElementById('train-curves');
    new MutationObserver(() => {
        const picture = document.querySelector('#train-weights canvas');
        window.epochsSeen.push([curves.dataset.points, picture && picture.toDataURL()]);
    }).observe(curves, {attributes: true, attributeFilter: ['data-points']});
}"""


def test_train_two_epochs_from_the_page(page, tmp_path):
    stroke(page, DIGITS["7"][0])
    expect(page.locator("#guess")).to_have_text("7", timeout=5000)
    expect(page.locator("#train-start")).to_be_enabled()
    expect(page.locator("#train-hidden")).to_have_value("16,16")  # the defaults
    expect(page.locator("#train-epochs")).to_have_value("40")
    page.fill("#train-epochs", "2")
    page.evaluate(RECORD_EPOCHS)
    page.click("#train-start")

    curves, guess = page.locator("#train-curves"), page.locator("#train-guess")
    expect(curves).to_have_attribute("data-points", "2", timeout=120_000)
    expect(page.locator("#train-weights canvas")).to_have_count(16)
    seen = dict(page.evaluate("window.epochsSeen"))  # points -> the picture drawn with them
    assert sorted(seen) == ["1", "2"]
    assert seen["1"] != seen["2"]  # the pictures change as it learns
    expect(guess).to_have_text(re.compile(r"^\d$"), timeout=10_000)
    expect(page.locator("#train-guess-p")).to_contain_text("with the weights of epoch 2")
    expect(curves).to_have_attribute("aria-label", re.compile(r"after epoch 2 of 2"))
    status = page.locator("#train-status")
    expect(status).to_have_attribute("data-state", "done", timeout=60_000)
    expect(status).to_contain_text(re.compile(r"Done: 2 epochs\. Network trained-\d+ keeps"))
    expect(page.locator("#train-start")).to_be_enabled()
    expect(page.locator("#train-stop")).to_be_disabled()
    model = re.search(r"Network (trained-\d+)", status.inner_text()).group(1)

    # side by side with the served network, on the same drawing
    expect(page.locator("#compare-a")).to_have_value("served")
    expect(page.locator("#compare-b")).to_have_value(model)
    expect(page.locator("#compare-a-guess")).to_have_text("7")
    expect(page.locator("#compare-b-guess")).to_have_text(re.compile(r"^\d$"))
    expect(page.locator("#compare-b-detail")).to_contain_text("%")

    # the whole page on the new network
    page.select_option("#page-model", model)
    page.click("#use-model")
    expect(page.locator("#model-info")).to_contain_text(f"Network {model}: 784-16-16-10")
    expect(page.locator("#guess")).to_have_text(re.compile(r"^\d$"))
    expect(page.locator("#layer-1 .neuron")).to_have_count(16)

    with page.expect_download() as download:
        page.click("#download")
    path = tmp_path / "downloaded.safetensors"
    download.value.save_as(path)
    assert download.value.suggested_filename == f"{model}.safetensors"
    saved = load(path)
    assert saved.network.sizes == (784, 16, 16, 10) and saved.info["config"]["epochs"] == 2


def test_a_bad_setting_is_refused_by_name(page):
    expect(page.locator("#train-start")).to_be_enabled()
    page.fill("#train-hidden", "300")
    page.click("#train-start")
    status = page.locator("#train-status")
    expect(status).to_have_attribute("data-state", "error")
    expect(status).to_contain_text("Cannot train: sizes: hidden layers of 1-256 neurons, got [300]")
    expect(page.locator("#train-start")).to_be_enabled()


def test_stop_from_the_page_keeps_a_network(page):
    expect(page.locator("#train-start")).to_be_enabled()
    page.fill("#train-hidden", "32")
    page.select_option("#train-activation", "relu")
    page.fill("#train-epochs", "50")  # 100 would be over the work budget
    page.click("#train-start")
    expect(page.locator("#train-curves")).to_have_attribute(
        "data-points", re.compile(r"^[1-9]"), timeout=120_000
    )
    page.click("#train-stop")
    status = page.locator("#train-status")
    expect(status).to_have_attribute("data-state", "done", timeout=60_000)
    expect(status).to_contain_text(re.compile(r"^Stopped after \d+ epochs\. Network trained-\d+"))
    model = re.search(r"Network (trained-\d+)", status.inner_text()).group(1)
    expect(page.locator("#compare-b")).to_have_value(model)
    expect(page.locator("#compare-b")).to_contain_text("784-32-10 relu")
