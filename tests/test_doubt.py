"""The "probably not a digit" rule (``recognise.doubt``) on the pictures it is meant to
tell apart: MNIST's test digits (almost never flagged), printed digits, dots, scribbles
and printed letters."""

import string

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitnet.vision.preprocess import to_mnist
from digitnet.vision.recognise import doubt, ink_span, mnist_shapes
from pictures import FONTS, printed


def scribble(rng: np.random.Generator) -> Image.Image:
    """One to three random pen strokes on the page's 280x280 pad, black on white."""
    pad = Image.new("L", (280, 280), 255)
    draw = ImageDraw.Draw(pad)
    for _ in range(rng.integers(1, 4)):
        points = [tuple(rng.uniform(20, 260, 2)) for _ in range(rng.integers(3, 12))]
        draw.line(points, fill=0, width=int(rng.choice([12, 20, 30])), joint="curve")
    return pad


def dot(rng: np.random.Generator) -> Image.Image:
    pad = Image.new("L", (280, 280), 255)
    r, (x, y) = rng.uniform(3, 40), rng.uniform(50, 230, 2)
    ImageDraw.Draw(pad).ellipse([x - r, y - r, x + r, y + r], fill=0)
    return pad


def flagged(net, inputs: np.ndarray) -> float:
    """The share of inputs (N, 784) in [0, 1] the rule calls probably not a digit."""
    digits = net.forward(inputs.astype(np.float32)).argmax(1)
    verdicts = [doubt(x, int(d)) is not None for x, d in zip(inputs, digits, strict=True)]
    return float(np.mean(verdicts))


@pytest.fixture(scope="module")
def net(trained):
    return trained[0]


def test_mnist_test_digits_are_almost_never_flagged(net, mnist):
    assert flagged(net, mnist.test_images[:3000] / 255) < 0.02


def test_dots_scribbles_and_letters_are_flagged(net):
    rng = np.random.default_rng(0)
    dots = np.array([to_mnist(dot(rng)).reshape(-1) for _ in range(20)])
    scribbles = np.array([to_mnist(scribble(rng)).reshape(-1) for _ in range(60)])
    letters = np.array([to_mnist(printed(FONTS[0], c)).reshape(-1) for c in string.ascii_letters])
    digits = np.array([to_mnist(printed(f, d)).reshape(-1) for f in FONTS for d in range(10)])
    assert flagged(net, dots) == 1
    assert flagged(net, scribbles) > 0.6  # 75% of 300 measured
    assert flagged(net, letters) >= 0.2  # many are shaped as digits: O, l, S, Z, b, g, q
    assert flagged(net, digits) < 0.15  # a serif 1 is unlike MNIST's 1s


def test_the_reasons_say_what_is_wrong(mnist):
    x = np.zeros(784)
    assert doubt(x, 3) == "there is no ink at all"
    x.reshape(28, 28)[12:15, 12:15] = 1
    assert ink_span(x) == 3 and doubt(x, 3).startswith("it is a dot: its ink spans 3 of 28")
    block = np.zeros((28, 28))
    block[4:24, 4:24] = 1  # 400 pixels lit
    assert doubt(block, 8) == "it has more ink than 999 in 1000 MNIST digits (400 bright pixels)"
    shapes = mnist_shapes()
    seven = mnist.test_images[0] / 255  # a 7
    assert doubt(seven, 7, shapes) is None
    assert shapes.distance(seven, 7) < shapes.limits[7] < shapes.distance(seven, 0)
