"""The notebook widget in Python: its JavaScript is the page's, its answers are
/api/predict's, its traits hold the input and every layer's activations.  The same
widget in a real browser is tests/browser/test_widget.py."""

import base64
import io

import numpy as np
import pytest
import traitlets
from fastapi.testclient import TestClient
from PIL import Image

import digitnet
from digitnet.files.modelfile import load
from digitnet.learn.network import Network
from digitnet.notebook import STATIC, DigitWidget, bundle
from digitnet.server import create_app
from digitnet.vision.recognise import predict_pixels


@pytest.fixture
def pad(trained):
    _, path = trained
    return digitnet.widget(path)


def png_of(digit: np.ndarray) -> bytes:
    """An MNIST digit as the pad sends it: dark ink on white, 280x280, RGBA, as a PNG."""
    canvas = Image.fromarray(255 - digit.reshape(28, 28)).resize((280, 280)).convert("RGBA")
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def from_pad(widget: DigitWidget, content: dict, buffers=()) -> None:
    """A message as the pad's JavaScript sends it (``model.send``), drawn on what the
    widget shows now, through ipywidgets' dispatch to the handlers of ``on_msg``."""
    content = {"generation": widget._generation, **content}
    widget._handle_custom_msg(content, [memoryview(b) for b in buffers])


def test_the_widget_runs_the_pages_own_modules():
    esm = DigitWidget._esm.default_value
    for name in ("diagram.js", "pad.js", "guess.js"):
        source = (STATIC / name).read_text("utf-8")
        assert "import " not in source  # so each is inlined as it is, character for character
        assert esm.count(source) == 1, name
    page = (STATIC / "app.js").read_text("utf-8")
    for name in ("diagram.js", "pad.js", "guess.js"):
        assert f'from "./{name}";' in page  # the page imports the same files
    assert "\nimport " not in esm
    assert esm.rstrip().endswith("export default { render };")
    assert (STATIC / "diagram.css").read_text("utf-8") in DigitWidget._css.default_value


def test_bundle_puts_each_module_once_after_what_it_imports(tmp_path):
    (tmp_path / "c.js").write_text("export const C = 1;\n")
    (tmp_path / "b.js").write_text('import { C } from "./c.js";\nexport const B = C + 1;\n')
    (tmp_path / "a.js").write_text(
        'import { B } from "./b.js";\nimport { C } from "./c.js";\nexport default B + C;\n'
    )
    text = bundle("a.js", tmp_path)
    assert "import" not in text
    assert text.index("const C") < text.index("const B") < text.index("export default")
    assert text.count("const C = 1") == 1


@pytest.mark.parametrize(
    "files, message",
    [
        (
            {"a.js": 'import { B } from "./b.js";\n', "b.js": 'import { A } from "./a.js";\n'},
            "a.js -> b.js -> a.js: modules import each other",
        ),
        ({"a.js": 'import { B as X } from "./b.js";\n', "b.js": ""}, "renames"),
        ({"a.js": 'import B from "./b.js";\n', "b.js": ""}, "an import other than"),
        (
            {"a.js": 'import { B } from "./b.js";\nconst el = 1;\n', "b.js": "function el() {}\n"},
            "'el' is declared in both b.js and a.js",
        ),
    ],
)
def test_bundle_refuses_what_it_cannot_inline(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=message):
        bundle("a.js", tmp_path)


def test_a_blank_pad_shows_the_networks_answer_to_a_blank_input(pad, trained):
    net, _ = trained
    assert pad.digit is None
    assert pad.pixels.shape == (784,) and not pad.pixels.any()
    for shown, a in zip(pad.activations, net.trace(np.zeros(784)), strict=True):
        assert np.allclose(shown, a, atol=1e-6)


def test_pixels_set_from_python_are_read_and_shown(pad, trained, mnist):
    net, _ = trained
    seen = []
    pad.observe(lambda change: seen.append(change["new"]), names="digit")
    pad.pixels = mnist.test_images[0]  # uint8, (784,)
    x = mnist.test_images[0] / 255
    assert pad.digit == int(net.predict(x)) == 7 and seen == [7]
    assert np.allclose(pad.pixels, x, atol=1e-7)
    layers = net.trace(x)
    assert [a.shape for a in pad.activations] == [(784,), (16,), (16,), (10,)]
    for shown, a in zip(pad.activations, layers, strict=True):
        assert np.allclose(shown, a, atol=1e-6)
    assert np.allclose(pad.probabilities, layers[-1] / layers[-1].sum(), atol=1e-6)
    assert pad._drawn == 0  # the pad shows these pixels: they did not come from it
    state = pad.get_state()  # what is sent to the browser
    assert len(state["pixels"]) == 784
    assert [len(a) for a in state["activations"]] == [784, 16, 16, 10]
    pad.pixels = (mnist.test_images[1] / 255).reshape(28, 28)
    assert pad.digit == int(mnist.test_labels[1])
    with pytest.raises(ValueError):
        pad.pixels[0] = 1  # read-only: assign a new input instead


def test_a_drawing_is_read_as_api_predict_reads_it(pad, trained, mnist):
    _, path = trained
    png = png_of(mnist.test_images[3])
    from_pad(pad, {"kind": "drawing", "seq": 1}, [png])
    with TestClient(create_app(load(path), samples=(mnist.test_images, mnist.test_labels))) as api:
        url = "data:image/png;base64," + base64.b64encode(png).decode()
        answer = api.post("/api/predict", json={"image": url}).json()
    assert pad.digit == answer["digit"] == mnist.test_labels[3]
    assert pad._drawn == 1 and pad.error == ""
    assert np.allclose(pad.pixels, answer["input"], atol=1e-4)
    for shown, a in zip(pad.activations, answer["activations"], strict=True):
        assert np.allclose(shown, a, atol=1e-4)

    from_pad(pad, {"kind": "clear", "seq": 2})
    assert pad.digit is None and not pad.pixels.any() and pad._drawn == 2
    from_pad(pad, {"kind": "pixels", "seq": 3, "pixels": (mnist.test_images[0] / 255).tolist()})
    assert pad.digit == 7 and pad._drawn == 3


def test_a_drawing_sent_before_pixels_were_set_from_python_is_dropped(pad, mnist):
    """The pad's last message for a stroke can reach the kernel after Python has put
    a picture on the pad: it was drawn under the old picture, and is not read over it."""
    drawn_on = pad._generation
    pad.pixels = mnist.test_images[0]  # a 7, set from Python
    assert pad._generation == drawn_on + 1 and pad._drawn == 0
    late = {"kind": "drawing", "seq": 5, "generation": drawn_on}
    from_pad(pad, late, [png_of(mnist.test_images[2])])  # a 1, drawn before the 7 came
    assert pad.digit == 7 and pad._drawn == 0
    np.testing.assert_allclose(pad.pixels, mnist.test_images[0] / 255, atol=1e-6)
    from_pad(pad, {"kind": "drawing", "seq": 6}, [png_of(mnist.test_images[2])])  # drawn now
    assert pad.digit == 1 and pad._drawn == 6


def test_a_drawing_that_cannot_be_read_says_why_and_keeps_the_input(pad, mnist):
    pad.pixels = mnist.test_images[0]
    from_pad(pad, {"kind": "drawing", "seq": 1}, [b"not a png"])
    assert "picture" in pad.error and pad.digit == 7
    white = io.BytesIO()
    Image.new("RGBA", (280, 280), "white").save(white, format="PNG")
    from_pad(pad, {"kind": "drawing", "seq": 2}, [white.getvalue()])
    assert "ink" in pad.error and pad.digit == 7
    from_pad(pad, {"kind": "drawing", "seq": 3}, [png_of(mnist.test_images[1])])
    assert pad.error == "" and pad.digit == int(mnist.test_labels[1])
    from_pad(pad, {"kind": "something else", "seq": 4})
    from_pad(pad, {"kind": "clear"})  # no sequence number: not the pad's
    assert pad.digit == int(mnist.test_labels[1])


@pytest.mark.parametrize(
    "value, message",
    [
        (np.zeros(783), r"expected 784 values \(28x28\), got shape \(783,\)"),
        (np.full(784, 1.5), r"expected values in \[0, 1\], got 1.5 to 1.5"),
        (np.full(784, np.nan), r"expected values in \[0, 1\], got nan to nan"),
        (["a"] * 784, "expected numbers"),
    ],
)
def test_bad_pixels_are_refused_by_name(pad, value, message):
    with pytest.raises(traitlets.TraitError, match=message):
        pad.pixels = value
    assert pad.digit is None and not pad.pixels.any()


def test_widget_takes_a_network_a_model_or_a_path(trained):
    net, path = trained
    for model in (net, load(path), path, str(path)):
        assert digitnet.widget(model).net.sizes == (784, 16, 16, 10)
    with pytest.raises(TypeError, match="a Network, a Model or a model file's path, got int"):
        digitnet.widget(42)
    with pytest.raises(ValueError, match="expected a model with 784 inputs, this one takes 100"):
        digitnet.widget(Network((100, 10)))
    assert isinstance(digitnet.widget(net), DigitWidget)


def test_the_answer_is_predict_pixels(pad, trained, mnist):
    net, _ = trained
    pad.pixels = mnist.test_images[5]
    expected = predict_pixels(net, mnist.test_images[5] / 255)
    assert pad.digit == expected.digit
    assert np.allclose(pad.probabilities, expected.probabilities, atol=1e-7)
