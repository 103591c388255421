"""Read a digit from a picture: preprocess it, run the network, rank the answers; and
say when the picture is probably not a digit at all (``doubt``), since the network
itself has no such answer and must pick one of 0-9."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from threading import Lock

import numpy as np
from PIL import Image

from ..files.data import load_split
from ..files.paths import require_regular
from ..learn.knockout import Knockout, trace
from ..learn.network import Network
from .preprocess import PictureError, read_digit, to_mnist

Array = np.ndarray

#: Every MNIST digit's ink spans 19-20 of the 28 pixels (it was fitted into a 20x20
#: box); a dot is kept smaller.
DIGIT_SPAN = 17
#: The share of MNIST's training digits with fewer pixels over half bright than the
#: most a digit may have (229 of them; the median digit has 101, the inkiest 312).
INK_QUANTILE = 0.999
#: How each digit's MNIST training pictures vary: SHAPE_DIRECTIONS directions (principal
#: components) of SHAPE_FIT pictures of it, and the distance from them that
#: SHAPE_QUANTILE of SHAPE_CHECK other pictures of it stay within.
SHAPE_DIRECTIONS, SHAPE_FIT, SHAPE_CHECK, SHAPE_QUANTILE = 20, 1000, 500, 0.99
#: Rounds of subspace iteration that find the directions (the limits are measured with
#: the directions found, so they need not be exact).
SHAPE_ROUNDS = 8


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


@dataclass(frozen=True)
class DigitShapes:
    """How MNIST's pictures of each digit d vary: their mean m_d (784,), the k directions
    U_d (k, 784) along which they vary most, and ``limits[d]``, the distance
    ‖z - U_dᵀ U_d z‖ (z = x - m_d: what the k directions cannot explain) that most
    unseen pictures of d stay within; ``most_ink``, the pixels over half bright that
    almost every MNIST digit stays within.  Arrays: means (10, 784), directions
    (10, k, 784), limits (10,)."""

    means: Array
    directions: Array
    limits: Array
    most_ink: float

    def distance(self, x: Array, digit: int) -> float:
        """How far x (784,) in [0, 1] lies from the ways MNIST's pictures of ``digit`` vary."""
        z = np.asarray(x, dtype=np.float64).reshape(-1) - self.means[digit]
        U = self.directions[digit]
        return float(np.linalg.norm(z - U.T @ (U @ z)))


def top_directions(Z: Array, k: int) -> Array:
    """Orthonormal rows (k, n) spanning about the k directions along which the rows of
    Z (m, n) vary most: subspace iteration Q ← orth(Zᵀ Z Q), ``SHAPE_ROUNDS`` times, from
    k rows of Z.  (Matrix products only: a full SVD is far slower on a busy machine.)"""
    Q = np.linalg.qr(Z[:: max(1, len(Z) // k)][:k].T)[0]  # (n, k)
    for _ in range(SHAPE_ROUNDS):
        Q = np.linalg.qr(Z.T @ (Z @ Q))[0]
    return Q.T


def digit_shapes(images: Array, labels: Array) -> DigitShapes:
    """``DigitShapes`` of uint8 images (N, 784) with their labels (N,): for each digit the
    first ``SHAPE_FIT`` of its pictures give the mean and directions, the next
    ``SHAPE_CHECK`` the limit (their ``SHAPE_QUANTILE`` distance)."""
    means, directions, limits = [], [], []
    for d in range(10):
        mine = images[np.flatnonzero(labels == d)[: SHAPE_FIT + SHAPE_CHECK]] / np.float32(255)
        fit, check = mine[:SHAPE_FIT], mine[SHAPE_FIT : SHAPE_FIT + SHAPE_CHECK]
        if len(fit) < SHAPE_DIRECTIONS or not len(check):
            raise ValueError(f"expected at least {SHAPE_FIT + 1} pictures of {d}, got {len(mine)}")
        mean = fit.mean(0)
        U = top_directions(fit - mean, SHAPE_DIRECTIONS)  # (k, 784)
        z = check - mean
        far = np.linalg.norm(z - (z @ U.T) @ U, axis=1)
        means.append(mean)
        directions.append(U)
        limits.append(np.quantile(far, SHAPE_QUANTILE))
    most_ink = float(np.quantile((images > 127).sum(1), INK_QUANTILE))
    return DigitShapes(np.array(means), np.array(directions), np.array(limits), most_ink)


_SHAPES_LOCK = Lock()


def mnist_shapes() -> DigitShapes:
    """``digit_shapes`` of the MNIST training set that ships with digitnet, made once per
    process (on first use: a second or two)."""
    with _SHAPES_LOCK:
        return _mnist_shapes()


@cache
def _mnist_shapes() -> DigitShapes:
    return digit_shapes(*load_split(split="train"))


def ink_span(pixels: Array) -> int:
    """The larger side, in pixels, of the box around the pixels over 0.05 of (28, 28)."""
    on = np.asarray(pixels).reshape(28, 28) > 0.05
    rows, cols = np.flatnonzero(on.any(1)), np.flatnonzero(on.any(0))
    if not len(rows):
        return 0
    return int(max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1)


def doubt(pixels: Array, digit: int, shapes: DigitShapes | None = None) -> str | None:
    """Why the input (784,) or (28, 28) in [0, 1] that the network reads as ``digit`` is
    probably not a digit, or None: a dot (ink spanning under ``DIGIT_SPAN`` pixels), more
    ink than almost every MNIST digit (``DigitShapes.most_ink``), or a picture unlike
    MNIST's pictures of that digit (``DigitShapes.distance`` over its limit).
    On MNIST's test digits it says so for about 1% of them (README, The page)."""
    x = np.asarray(pixels, dtype=np.float64).reshape(-1)
    span = ink_span(x)
    if span == 0:
        return "there is no ink at all"
    if span < DIGIT_SPAN:
        return f"it is a dot: its ink spans {span} of 28 pixels, every MNIST digit's 20"
    shapes = shapes or mnist_shapes()
    inked = int((x > 0.5).sum())
    if inked > shapes.most_ink:
        share = round(1000 * INK_QUANTILE)
        return f"it has more ink than {share} in 1000 MNIST digits ({inked} bright pixels)"
    if shapes.distance(x, digit) > shapes.limits[digit]:
        share = round(100 * SHAPE_QUANTILE)
        return f"it is unlike MNIST's {digit}s: further from their shapes than {share} in 100 are"
    return None
