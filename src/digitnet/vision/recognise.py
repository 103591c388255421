"""Read a digit from a picture: preprocess it, run the network, rank the answers."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..files.paths import require_regular
from ..learn.knockout import Knockout, trace
from ..learn.network import Network
from .preprocess import PictureError, read_digit, to_mnist

Array = np.ndarray


@dataclass
class Prediction:
    """The network's answer for one picture.

    ``input`` is the (28, 28) array in [0, 1] the network saw; ``activations`` every
    layer's activations [a_0 (784,), a_1, ..., a_L (10,)]; ``probabilities`` the
    output normalised to sum to 1 (the softmax itself for a softmax output).
    """

    digit: int
    confidence: float
    probabilities: list[float]
    input: Array
    activations: list[Array]

    def top(self, k: int = 3) -> list[tuple[int, float]]:
        """The k likeliest digits with their probabilities, likeliest first."""
        order = np.argsort(self.probabilities)[::-1][:k]
        return [(int(d), float(self.probabilities[d])) for d in order]


def probabilities(output: Array) -> Array:
    """Output activations (n,) -> probabilities summing to 1."""
    total = float(output.sum())
    return output / total if total > 0 else np.full_like(output, 1 / len(output))


def predict_pixels(net: Network, pixels: Array, knockout: Knockout = ()) -> Prediction:
    """Run the network on a (28, 28) or (784,) input already in [0, 1], with the
    ``knockout`` neurons switched off (``knockout.trace``)."""
    pixels = np.asarray(pixels, dtype=np.float32)
    layers = trace(net, pixels.reshape(-1), knockout) if knockout else net.trace(pixels.reshape(-1))
    p = probabilities(layers[-1])
    digit = int(np.argmax(p))
    side = int(np.sqrt(pixels.size))
    return Prediction(digit, float(p[digit]), p.tolist(), pixels.reshape(side, side), layers)


def predict_image(
    net: Network, picture: str | os.PathLike | bytes | Array | Image.Image
) -> Prediction:
    """Read one digit from a picture: a file path, the file's bytes, a Pillow image or
    an array (H, W[, 3|4]); it is first brought to MNIST's form (``preprocess``).
    A path must name a regular file: a FIFO or a device is refused unopened."""
    if isinstance(picture, (str, os.PathLike)) and os.path.exists(picture):
        require_regular(picture, PictureError, "an image file")  # (missing: read_digit says)
    if isinstance(picture, (str, os.PathLike, bytes)):
        pixels = read_digit(picture)
    else:
        pixels = to_mnist(picture)
    return predict_pixels(net, pixels)
