"""The pad's picture sent as grey bytes ("grey") reads exactly as the same pad sent as
a PNG ("image"): the same digit, probabilities and input on held-out drawings (MNIST
test digits drawn large on the pad, and strokes drawn as the page draws them); and bad
grey bytes are refused with one line each."""

import base64
import io
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitnet.server import MAX_IMAGE_PIXELS
from pictures import upscale

PAD = 280
#: Strokes on the 280x280 pad (the browser tests' digits and two more), pen 20 px.
STROKES = {
    "1": [[(150, 40), (140, 140), (130, 240)]],
    "7": [[(60, 50), (220, 50), (170, 130), (110, 245)]],
    "4": [[(170, 40), (70, 170), (215, 170)], [(170, 90), (165, 245)]],
    "bar": [[(40, 140), (240, 140)]],
}


def drawn(strokes: list[list[tuple[int, int]]], width: int = 20) -> np.ndarray:
    """Strokes as the canvas draws them: round joins, antialiased (drawn at 4x and
    averaged down), black on a white uint8 (280, 280) pad."""
    big = Image.new("L", (4 * PAD, 4 * PAD), 255)
    draw = ImageDraw.Draw(big)
    for points in strokes:
        scaled = [(4 * x, 4 * y) for x, y in points]
        draw.line(scaled, fill=0, width=4 * width, joint="curve")
        for x, y in scaled[:: len(scaled) - 1]:
            draw.ellipse([x - 2 * width, y - 2 * width, x + 2 * width, y + 2 * width], fill=0)
    return np.asarray(big.resize((PAD, PAD), Image.Resampling.BOX))


def on_pad(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An MNIST digit (784,) drawn 120-260 px large somewhere on the white pad."""
    big = upscale(digit.reshape(28, 28), rng.uniform(4.5, 9.5))
    h, w = big.shape
    pad = np.zeros((PAD, PAD), np.uint8)
    top, left = rng.integers(0, PAD - h + 1), rng.integers(0, PAD - w + 1)
    pad[top : top + h, left : left + w] = big
    return 255 - pad


def as_png(pad: np.ndarray) -> dict:
    """The pad as the page's toDataURL sends it: an opaque RGBA PNG."""
    buffer = io.BytesIO()
    Image.fromarray(pad).convert("RGBA").save(buffer, format="PNG")
    return {"image": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()}


def as_grey(pad: np.ndarray) -> dict:
    """The pad as the page's greyPicture sends it."""
    data = base64.b64encode(zlib.compress(pad.tobytes())).decode()
    return {"grey": {"width": pad.shape[1], "height": pad.shape[0], "data": data}}


@pytest.fixture(scope="module")
def pads(mnist) -> list[np.ndarray]:
    rng = np.random.default_rng(22)
    digits = [on_pad(mnist.test_images[i], rng) for i in rng.choice(10_000, 40, replace=False)]
    return digits + [drawn(s) for s in STROKES.values()] + [drawn(STROKES["7"], 36)]


def test_grey_bytes_read_as_the_png_does(client, pads):
    agree = 0
    for pad in pads:
        old = client.post("/api/predict", json=as_png(pad))
        new = client.post("/api/predict", json=as_grey(pad))
        assert old.status_code == new.status_code == 200, (old.text, new.text)
        old, new = old.json(), new.json()
        assert new.keys() == old.keys()
        assert new["digit"] == old["digit"]
        # the answer's input is rounded to 4 decimals: one step of that rounding apart
        assert np.abs(np.subtract(new["input"], old["input"])).max() <= 1e-4 + 1e-9
        assert np.abs(np.subtract(new["probabilities"], old["probabilities"])).max() <= 1e-5
        agree += 1
    assert agree == len(pads) == 45


def test_grey_bytes_are_read_by_every_endpoint_that_takes_a_picture(client, pads):
    pad = as_grey(pads[-1])
    assert client.post("/api/nudge", json={**pad, "target": 3}).status_code == 200
    gradient = client.post("/api/gradient", json={**pad, "label": 7})
    assert gradient.status_code == 200, gradient.text


def grey(width: int, height: int, raw: bytes) -> dict:
    data = base64.b64encode(zlib.compress(raw)).decode()
    return {"grey": {"width": width, "height": height, "data": data}}


@pytest.mark.parametrize(
    "body, status, message",
    [
        (grey(10, 10, bytes(99)), 422, r"expected 10x10 = 100 bytes, got 99$"),
        (grey(10, 10, bytes(101)), 422, r"expected 10x10 = 100 bytes, got more than 100$"),
        (grey(2000, 2000, bytes(10**7)), 422, "got more than 4000000$"),  # inflated no further
        (grey(3000, 3000, b""), 413, f"{MAX_IMAGE_PIXELS:,}-pixel limit"),
        ({"grey": {"width": 10, "height": 10, "data": "@@"}}, 422, "not base64"),
        ({"grey": {"width": 10, "height": 10, "data": "AAAA"}}, 422, "not a whole zlib"),
        (
            {"grey": {**grey(10, 10, bytes(100))["grey"], "data": base64.b64encode(
                zlib.compress(bytes(100))[:-6]).decode()}},
            422, "cut short",
        ),
        ({"grey": {"width": 0, "height": 10, "data": ""}}, 422, "greater than or equal to 1"),
        ({"grey": {"width": 10, "height": 10}}, 422, "data"),
        ({**grey(28, 28, bytes(784)), "pixels": [0] * 784}, 422, "exactly one of"),
        (grey(28, 28, bytes([255]) * 784), 422, "no ink"),
    ],
)  # fmt: skip
def test_bad_grey_bytes_are_refused_in_one_line(client, body, status, message):
    import re

    response = client.post("/api/predict", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert "\n" not in error and re.search(message, error), error


def test_a_picture_declares_its_pixels_before_it_is_decoded(pads):
    from digitnet.server.pictures import declared_pixels
    from digitnet.server.schemas import GreyPicture

    assert declared_pixels(as_png(pads[0])["image"]) == 280 * 280
    assert declared_pixels(GreyPicture(**as_grey(pads[0][:100, :30])["grey"])) == 3000
    for junk in ["data:image/png;base64,@@@", "data:image/png;base64,AAAA", "hello", ""]:
        assert declared_pixels(junk) is None


#: Reads a pad 30 times with the server's malloc settings: page faults per read.
_FAULTS = """
import resource, sys
import numpy as np
from PIL import Image
from digitnet.server.memory import map_large_blocks
from digitnet.vision.preprocess import to_mnist
pad = np.load(sys.argv[1])
map_large_blocks()
to_mnist(Image.fromarray(pad))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(30):
    to_mnist(Image.fromarray(pad))
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 30)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_a_pads_arrays_stay_in_the_servers_heap(tmp_path):
    """The server gives large blocks back to the system at once (``map_large_blocks``);
    the arrays of a small picture must still be reused, not handed back and faulted in
    again for every picture (739 page faults a pad when they were, twice the time)."""
    path = tmp_path / "pad.npy"
    np.save(path, drawn(STROKES["4"]))
    done = subprocess.run([sys.executable, "-c", _FAULTS, str(path)], capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert float(done.stdout) < 50
