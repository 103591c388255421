"""Pictures of digits made from MNIST test digits, as people make them: big canvases,
dark ink on white, transparent backgrounds, thick and thin strokes, noisy paper; and
digits and letters printed in the fonts the test set-up installs."""

import os

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont


def upscale(digit: np.ndarray, factor: float) -> np.ndarray:
    """A (28, 28) uint8 digit drawn larger: smooth, then cropped to its ink."""
    side = max(1, int(round(28 * factor)))
    big = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC))
    rows, cols = np.flatnonzero(big.max(1) > 30), np.flatnonzero(big.max(0) > 30)
    return big[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def on_canvas(ink: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Place white-on-black ink (h, w) at a random spot of a black canvas (H, W)."""
    H, W = size
    h, w = ink.shape
    canvas = np.zeros((H, W), np.uint8)
    top, left = rng.integers(0, H - h + 1), rng.integers(0, W - w + 1)
    canvas[top : top + h, left : left + w] = ink
    return canvas


def thicker(ink: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(Image.fromarray(ink).filter(ImageFilter.MaxFilter(k)))


def thinner(ink: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(Image.fromarray(ink).filter(ImageFilter.MinFilter(k)))


def variants(digit: np.ndarray, rng: np.random.Generator) -> dict[str, Image.Image]:
    """Each way a person's picture of this digit may look."""
    big = upscale(digit, rng.uniform(4, 10))  # 110-280 px tall
    canvas = on_canvas(big, (400, 600), rng)
    dark_on_white = 255 - canvas
    rgba = np.zeros((*canvas.shape, 4), np.uint8)
    rgba[..., 3] = canvas  # black strokes, alpha = ink, transparent elsewhere
    white_rgba = np.full((*canvas.shape, 4), 255, np.uint8)
    white_rgba[..., 3] = canvas  # white strokes on a transparent canvas
    grey_paper = 200 - (canvas.astype(float) * 0.7) + rng.normal(0, 8, canvas.shape)
    gradient = np.linspace(-30, 30, canvas.shape[1])[None, :]
    small = on_canvas(upscale(digit, 0.6), (120, 90), rng)
    rgb = np.stack([255 - canvas, 255 - canvas // 2, 255 - canvas // 3], axis=-1)
    palette = Image.fromarray(255 - canvas).convert("P")
    return {
        "shifted": Image.fromarray(on_canvas(digit[4:24, 4:24], (28, 28), rng)),
        "scaled": Image.fromarray(on_canvas(upscale(digit, rng.uniform(0.5, 2)), (64, 64), rng)),
        "inverted": Image.fromarray(dark_on_white),
        "rgb": Image.fromarray(rgb.astype(np.uint8)),
        "rgba-transparent": Image.fromarray(rgba),
        "white-on-transparent": Image.fromarray(white_rgba),
        "palette": palette,
        "thick": Image.fromarray(255 - on_canvas(thicker(np.pad(big, 8), 15), (400, 600), rng)),
        "thin": Image.fromarray(255 - on_canvas(thinner(big, 9), (400, 600), rng)),
        "noisy-uneven-paper": Image.fromarray(
            np.clip(grey_paper + gradient, 0, 255).astype(np.uint8)
        ),
        "small-in-corner": Image.fromarray(255 - small),
    }


def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(name, size)
    except OSError:
        if os.environ.get("CI"):
            raise RuntimeError(f"CI must install the font {name}: {FONT_PACKAGES}") from None
        pytest.skip(f"font {name} not installed (apt-get install {FONT_PACKAGES})")


FONT_PACKAGES = "fonts-dejavu-core fonts-liberation"
FONTS = [
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "LiberationSans-Regular.ttf",
    "LiberationSans-Bold.ttf",
]


def printed(name: str, digit: int | str, bold: int = 0) -> Image.Image:
    """A digit (or any short text: a letter) printed 200 px tall on a 280x280 white
    card, made ``bold`` px bolder."""
    card = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(card).text(
        (140, 140),
        str(digit),
        font=font(name, 200),
        fill=0,
        anchor="mm",
        stroke_width=bold,
        stroke_fill=0,
    )
    return card
