"""The words follow the network in use: served a 784-32-10 ReLU network, the lede, the
explorer, the blank pad's note and the tour describe one hidden layer of 32 ReLU
neurons, never the video's two layers of 16 sigmoid ones."""

import pytest
from pagetools import DIGITS, page_at, serving, stroke
from playwright.sync_api import expect

from digitnet.files.modelfile import save
from digitnet.train import TrainConfig, evaluate, train_network


@pytest.fixture(scope="module")
def relu_server(mnist, tmp_path_factory):
    """A 784-32-10 ReLU network, trained for one epoch, served."""
    config = TrainConfig(sizes=(784, 32, 10), activation="relu", epochs=1, kernel="numpy")
    net, history = train_network(mnist.train_images, mnist.train_labels, config)
    path = tmp_path_factory.mktemp("relu") / "relu.safetensors"
    accuracy = evaluate(net, mnist.test_images, mnist.test_labels).accuracy
    save(path, net, {"history": history.to_dict(), "test_accuracy": accuracy})
    yield from serving(path)


def test_the_words_follow_a_relu_network(browser, relu_server):
    with page_at(browser, relu_server, viewport={"width": 1366, "height": 768}) as page:
        lede = page.locator("#lede")
        expect(lede).to_have_text(
            "Draw a digit: its 784 pixels flow through one hidden layer of 32 neurons. Each "
            "hidden neuron adds up the layer before it times its weights, plus its bias, "
            "squashed by ReLU: a′ = ReLU(W a + b). The biggest of the ten outputs is the "
            "network's guess."
        )
        words = " ".join(page.locator("header, main, #explorer").all_inner_texts())
        assert "of 16 neurons" not in words and "16 first-layer" not in words
        assert "σ(W" not in words
        expect(page.locator("#model-info")).to_contain_text("784-32-10 network, relu")
        expect(page.locator("#explorer-count")).to_have_text("The 32 first-layer neurons")
        expect(page.locator("#layer1-grid .cell")).to_have_count(32)
        expect(page.locator("#status")).to_contain_text("each first-layer neuron shows ReLU(b)")

        page.get_by_role("button", name="Tour").click()
        texts = {}
        for _ in range(11):
            title = page.locator("#tour-title").inner_text()
            texts[title] = page.locator("#tour-text").inner_text()
            page.locator("#tour-next").click()
        assert "one hidden layer of 32 neurons" in texts["The layers"]
        assert "This network's hidden layers use ReLU" in texts["The sigmoid"]
        assert "2 times here" in texts["All at once: a′ = ReLU(W a + b)"]
        assert "This network's hidden layers use ReLU" in texts["ReLU"]
        assert not any("of 16 neurons" in t or "σ(W" in t for t in [*texts, *texts.values()])


def test_the_video_network_is_told_as_in_the_video(browser, server):
    with page_at(browser, server, viewport={"width": 1366, "height": 768}) as page:
        expect(page.locator("#lede")).to_contain_text(
            "flow through two hidden layers of 16 neurons"
        )
        expect(page.locator("#lede .math")).to_have_text("a′ = σ(W a + b)")
        expect(page.locator("#explorer-count")).to_have_text("The 16 first-layer neurons")


def test_captions_use_words_a_viewer_of_the_video_knows(browser, server):
    """No norm bars or L-norm names on the page: the explorer's "what it wants" and the
    nudge's result say in words what they measure."""
    with page_at(browser, server, viewport={"width": 1366, "height": 768}) as page:
        stroke(page, DIGITS["7"][0])
        expect(page.locator("#guess")).to_have_text("7", timeout=5000)
        page.locator("#layer1-grid .cell").nth(0).click()
        expect(page.locator("#explore-top img")).to_have_count(9, timeout=10_000)
        page.locator("#nudge").click()
        expect(page.locator("#nudge-result")).to_contain_text("Now it says 3", timeout=10_000)
        words = page.locator("body").text_content()
        for symbol in ("‖", "L∞", "L2", "gradient ascent"):
            assert symbol not in words, symbol
        expect(page.locator("#explore-neuron")).to_contain_text("brightening the pixels")
