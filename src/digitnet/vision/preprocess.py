"""Any picture of one digit -> the 28x28 input MNIST's digits look like.

MNIST digits are white ink on black, the ink scaled so its longer side fills a
20x20 box (keeping the aspect ratio) and placed so its centre of mass sits at the
centre of the 28x28 field.  A person's picture is dark ink on white paper, a phone
photo of any size, a canvas export with a transparent background, a digit drawn
small in a corner.  ``to_mnist`` walks such a picture through the same steps
(``steps`` returns every one of them, for showing):

1. **Greyscale, transparency composited.**  Transparent pixels take the colour that
   contrasts with the opaque ones, so dark strokes and light strokes on a
   transparent canvas both stay visible.
2. **Polarity from the background.**  The background is what fills the picture's
   border; if it is lighter than the ink, the picture is inverted, so ink is always
   the bright part, as in MNIST.
3. **Ink relative to the paper.**  Paper is rarely even: its own slowly varying
   shade, estimated from the paper around the strokes (never from the strokes, so
   a wide marker stroke stays solid instead of turning into its outline), is
   subtracted, and whatever stays below a noise threshold (a fraction of the
   strongest ink) becomes 0.
4. **Crop to the ink** and **fit its longer side into 20 px**, keeping the aspect
   ratio.  Strokes are brought to MNIST's width on the way: a hairline on a big
   canvas is thickened, a marker stroke thinned, and a dot or blob (wider than any
   MNIST stroke) is only scaled until it is as wide as MNIST's strokes, so a dot
   stays a dot instead of swelling into a disc that fills the box.
5. **Centre of mass to the centre** of the 28x28 field.

Every function here is pure: arrays in, arrays out.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

Array = np.ndarray

#: Pictures with more pixels than this are refused before they are decoded.
MAX_PIXELS = 50_000_000
#: The picture is worked on at most this many pixels on its longer side.
WORK_SIDE = 512
#: MNIST's box for the ink, and its field.
BOX, FIELD = 20, 28
#: Ink weaker than this fraction of the strongest ink is treated as noise.
NOISE = 0.25
#: The stroke width (in pixels of the 20x20 box) MNIST's digits typically have: the
#: median measured over its test digits (10-90%: 1.4-2.7).
STROKE = 1.8


class PictureError(ValueError):
    """A picture could not be read, or holds no digit."""


class PictureTooLarge(PictureError):
    """A picture has more pixels than the limit allows (refused before decoding)."""


def open_picture(source: str | os.PathLike | bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open an image file (a path or its bytes) with its size checked before decoding.

    Raises PictureError for a directory, a missing file, something that is not an
    image, a truncated file; PictureTooLarge (a PictureError) for a picture over
    ``max_pixels`` (a decompression bomb: a small file that would unpack into gigabytes).
    """
    name = "picture" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes) and Path(source).is_dir():
        raise PictureError(f"{name}: is a directory, expected an image file")
    try:
        with (
            io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as file,
            warnings.catch_warnings(),
        ):
            # Corrupt metadata (EXIF, TIFF tags) only costs the metadata: quiet.
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(file)
            width, height = image.size
            if width * height > max_pixels:
                raise PictureTooLarge(
                    f"{name}: {width}x{height} pixels is more than the {max_pixels:,}-pixel "
                    "limit (decompression-bomb guard); scale the picture down"
                )
            image.load()
            if image.format == "JPEG":  # phone photos: turn as the camera was held
                image = ImageOps.exif_transpose(image)
    except PictureError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PictureTooLarge(
            f"{name}: the picture is larger than the {MAX_PIXELS:,}-pixel limit "
            "(decompression-bomb guard); scale the picture down"
        ) from None
    except FileNotFoundError:
        raise PictureError(f"{name}: no such file") from None
    except UnidentifiedImageError:
        raise PictureError(f"{name}: not an image Pillow can read (PNG, JPEG, GIF, ...)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise PictureError(f"{name}: unreadable or truncated image ({e})") from None
    if width < 1 or height < 1:
        raise PictureError(f"{name}: empty picture ({width}x{height})")
    return image


def greyscale(image: Image.Image) -> Array:
    """The picture as luminance in [0, 1], shape (H, W), transparency composited.

    Transparent areas become white if the opaque pixels are mostly dark and black
    if they are mostly light, so strokes on a transparent canvas keep their contrast.
    """
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or ("transparency" in image.info)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        grey = np.asarray(image.convert("F"), dtype=np.float32)
        top = float(grey.max())
        return grey / top if top > 0 else grey
    if not has_alpha:
        return np.asarray(image.convert("L"), dtype=np.float32) / 255
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255
    alpha = rgba[..., 3]
    luma = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    opaque = alpha > 0.5
    ink_is_dark = not opaque.any() or float(np.mean(luma[opaque])) < 0.5
    backdrop = 1.0 if ink_is_dark else 0.0
    return luma * alpha + backdrop * (1 - alpha)


def _shrink(grey: Array, side: int) -> Array:
    """Area-average grey (H, W) so its longer side is at most ``side``."""
    h, w = grey.shape
    if max(h, w) <= side:
        return grey
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(grey.astype(np.float32)).resize(size, Image.Resampling.BOX))


def ink_map(grey: Array) -> Array:
    """Ink in [0, 1] (1 = strongest stroke), background 0, from greyscale (H, W).

    The border decides which way is ink: a light border means dark ink.  The paper's
    own shading is estimated from the paper alone (``_paper``) and subtracted; weak
    leftovers below ``NOISE`` are set to 0.
    """
    away = grey - _lighting(grey)  # ink is what stands out from the paper, darker or lighter
    marked = np.abs(away) > 0.15
    if marked.any() and away[marked].sum() < 0:
        grey = 1 - grey  # dark ink on light paper: make the ink the bright part
    background = _paper(grey, marked)
    ink = np.clip(grey - background, 0, None)
    top = float(np.percentile(ink[ink > 0], 99)) if (ink > 0).any() else 0.0
    if top <= 0.05:  # nothing stands out from the paper
        return np.zeros_like(ink)
    ink = np.clip(ink / top, 0, 1)
    # Noise is speckle, ink is strokes: a pixel counts only if it and its 3x3
    # neighbourhood on average are inked, which drops lone specks but keeps lines
    # one pixel thin.
    ink[(ink < NOISE) | (_mean3(ink) < NOISE / 2)] = 0
    return ink


def _axes(h: int, w: int) -> tuple[Array, Array]:
    """x (w,) and y (h,) running over [-0.5, 0.5] across an (h, w) grid (0 for a side
    of one pixel)."""
    x = np.linspace(-0.5, 0.5, w) if w > 1 else np.zeros(1)
    y = np.linspace(-0.5, 0.5, h) if h > 1 else np.zeros(1)
    return x, y


def _quadratic(coef: Array, h: int, w: int, dtype: type = np.float64) -> Array:
    """The surface c0 + c1 x + c2 y + c3 x² + c4 x y + c5 y² on an (h, w) grid, x and y
    running over [-0.5, 0.5] across it (``_axes``), as ``dtype``: the part in x alone,
    the part in y alone, and x y, summed in two passes over the grid."""
    x, y = _axes(h, w)
    c0, c1, c2, c3, c4, c5 = coef
    in_x = (c0 + c1 * x + c3 * x * x).astype(dtype)  # (w,)
    in_y = (c2 * y + c5 * y * y).astype(dtype)  # (h,)
    surface = np.add.outer(in_y, in_x)  # (h, w)
    if c4:
        surface += np.multiply.outer((c4 * y).astype(dtype), x.astype(dtype))
    return surface


@cache
def _terms(h: int, w: int) -> Array:
    """The quadratic's six terms 1, x, y, x², x y, y² at each pixel of an (h, w) grid,
    (h·w, 6), row by row: what ``_lighting`` fits to (made once per grid size)."""
    x, y = _axes(h, w)
    x, y = np.broadcast_to(x[None, :], (h, w)), np.broadcast_to(y[:, None], (h, w))
    terms = np.stack([np.ones((h, w)), x, y, x * x, x * y, y * y], axis=-1).reshape(-1, 6)
    terms.flags.writeable = False
    return terms


def _lighting(grey: Array, rounds: int = 3) -> Array:
    """The paper's brightness as a smooth surface over grey (H, W): a quadratic in x and
    y (``_quadratic``), fitted by least squares to the pixels near it and refitted
    ``rounds`` times (fewer once the pixels counted as paper stop changing: the fit
    would come out the same), starting from the border's median.  A photo's shadow or
    a lamp's falloff is such a surface; strokes, however wide, are not, so they stay
    off it.  Fitted on at most 64x64 pixels."""
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    small = _shrink(grey, 64).astype(np.float64)
    terms, small = _terms(*small.shape), small.reshape(-1)
    coef = np.array([float(np.median(border)), 0, 0, 0, 0, 0])
    before = None
    for _ in range(rounds):
        paper = np.abs(small - terms @ coef) <= 0.15
        if paper.sum() < 24:  # too little paper to fit a surface to: keep what we have
            break
        if before is not None and np.array_equal(paper, before):
            break
        a = terms[paper]
        normal = a.T @ a + 1e-9 * np.eye(6)  # (6, 6): a tiny ridge keeps it solvable
        coef, before = np.linalg.solve(normal, a.T @ small[paper]), paper
    return _quadratic(coef, *grey.shape, dtype=grey.dtype)


def _paper(grey: Array, marked: Array) -> Array:
    """The paper's own brightness under every pixel, (H, W), from grey (H, W) and the
    pixels that stand out from the paper (``marked``, bool (H, W)).

    The picture is cut into a coarse grid of cells; each cell's paper is the mean of
    its pixels that are neither marked nor next to a mark.  A cell with (almost) no
    paper in it, the inside of a marker stroke wider than a cell, takes the mean of
    the cells around it, and so on outwards, so the ink is never mistaken for
    paper: estimating the paper from everything in a cell (a min or max filter)
    calls the middle of a wide stroke paper and leaves only its outline, a hollow
    ring.  The grid is then smoothed and stretched back to (H, W).
    """
    h, w = grey.shape
    cells = max(4, min(16, min(h, w) // 8))
    clear = ~_grow(marked, 2)
    if clear.any() and not grey[clear].any():
        # Paper of exactly 0 everywhere it shows (a drawing pad's): every cell's mean,
        # every fill and every smoothing below would give exactly 0 too.
        return np.zeros_like(grey)
    paper = clear.astype(np.float32)

    def coarse(a: Array) -> Array:
        image = Image.fromarray(a.astype(np.float32))
        return np.asarray(image.resize((cells, cells), Image.Resampling.BOX), dtype=np.float64)

    share = coarse(paper)  # the fraction of each cell that is paper
    if share.max() <= 0:  # all ink, no paper to be seen: take the border's level
        level = float(np.median(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])))
        return np.full_like(grey, level)
    known = share >= 0.05
    level = np.where(known, coarse(grey * paper) / np.maximum(share, 1e-9), 0.0)
    while not known.all():  # fill cells without paper from their known neighbours
        total = _sum3(np.where(known, level, 0.0))
        count = _sum3(known.astype(np.float64))
        fill = ~known & (count > 0)
        level[fill] = total[fill] / count[fill]
        known = known | fill
    level = _sum3(level) / _sum3(np.ones_like(level))  # smoothed over 3x3 cells
    image = Image.fromarray(level.astype(np.float32))
    return np.asarray(image.resize((w, h), Image.Resampling.BILINEAR))


def _grow(mask: Array, r: int) -> Array:
    """mask (H, W) bool grown by r pixels: a (2r+1)x(2r+1) max filter, in two passes."""
    h, w = mask.shape
    padded = np.pad(mask, r)
    rows = np.zeros((h + 2 * r, w), bool)
    for j in range(2 * r + 1):
        rows |= padded[:, j : j + w]
    out = np.zeros((h, w), bool)
    for i in range(2 * r + 1):
        out |= rows[i : i + h]
    return out


def _sum3(a: Array) -> Array:
    """The sum of each cell's 3x3 neighbourhood (zero outside): three rows summed, then
    three columns of those sums."""
    padded = np.pad(a, 1)
    h, w = a.shape
    rows = padded[:, :w] + padded[:, 1 : w + 1] + padded[:, 2:]  # (h + 2, w)
    return rows[:h] + rows[1 : h + 1] + rows[2:]


def _mean3(a: Array) -> Array:
    """The mean of each pixel's 3x3 neighbourhood (zero outside the picture)."""
    return _sum3(a) / 9


def _stroke_width(ink: Array) -> float:
    """Mean stroke width in pixels: ink area over half the ink's perimeter."""
    solid = ink > 0.5
    area = solid.sum()
    if area == 0:
        return 0.0
    edges = (solid[1:, :] != solid[:-1, :]).sum() + (solid[:, 1:] != solid[:, :-1]).sum()
    edges += solid[0].sum() + solid[-1].sum() + solid[:, 0].sum() + solid[:, -1].sum()
    return float(2 * area / max(edges, 1))


def _place(box: Array) -> tuple[Array, tuple[int, int]]:
    """Place the fitted ink (h, w), h, w <= 20, in 28x28 so its centre of mass lands
    on pixel (14, 14), where MNIST's digits have theirs (measured: 13.99 and 14.00 on
    average, spread ±0.29, which is what whole-pixel moves give).  Returns the
    (28, 28) field and the (top, left) where the box went."""
    h, w = box.shape
    total = box.sum()
    rows, cols = np.indices(box.shape)
    cy = (rows * box).sum() / total if total > 0 else (h - 1) / 2
    cx = (cols * box).sum() / total if total > 0 else (w - 1) / 2
    top = int(np.clip(round(FIELD / 2 - cy), 0, FIELD - h))
    left = int(np.clip(round(FIELD / 2 - cx), 0, FIELD - w))
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    field[top : top + h, left : left + w] = box
    return field, (top, left)


def _odd(n: float) -> int:
    """The odd kernel size nearest to 1 + n: a max or min filter of size k moves each
    edge of a stroke by (k - 1) / 2 px, changing its width by k - 1."""
    return 2 * int(n / 2 + 0.5) + 1


#: Ink wider than this in the box (px) is no stroke but a dot or a blob: wider than
#: any MNIST digit's strokes (5.9 px at most over the 10,000 test digits, 99.9% under
#: 4.4; a round dot measures 7.9 whatever its size).
BLOB = 3.5 * STROKE
#: A stroke wider than this (MNIST's 90th percentile) is thinned, and a blob is shown
#: no wider.
THICK = 1.5 * STROKE


def _bounds(ink: Array) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the ink in (H, W), bottom and right exclusive."""
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _unit(a: Array) -> Array:
    top = float(a.max())
    return a / top if top > 0 else a


def _fit(crop: Array) -> tuple[Array, float, str]:
    """Cropped ink (h, w) -> the box (h', w'), max(h', w') = 20 unless it is a dot;
    the stroke width the ink would have had in the box as drawn (px); and what was
    done to the strokes: "kept", "thickened", "thinned" or "shrunk".

    A stroke that would end up thinner than ``STROKE`` px is thickened (a max
    filter), one wider than ``THICK`` thinned (a min filter), so a pen line and a
    marker read alike.  Ink wider than ``BLOB``, a dot or a blob, is not blown up to
    fill the box: it is scaled only until it is ``THICK`` wide, so a dot stays a
    small dot.  The filters run at four times the final size, where they are small
    and quick.
    """
    scale = BOX / max(crop.shape)
    width = _stroke_width(crop) * scale  # the stroke width it would have in the box
    drawn, done = width, "kept"
    if width > BLOB:
        scale, width, done = scale * THICK / width, THICK, "shrunk"
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    mid = _unit(_shrink(crop, 4 * BOX))
    mid_scale = max(size) / max(mid.shape)  # box pixels per mid pixel
    image = Image.fromarray(mid.astype(np.float32))
    if 0 < width < STROKE and scale < 1:
        k = _odd((STROKE - width) / mid_scale)
        if k > 1:
            image, done = image.filter(ImageFilter.MaxFilter(k)), "thickened"
    elif width > THICK and scale < 1:
        k = _odd((width - 1.25 * STROKE) / mid_scale)
        if k > 1:
            image, done = image.filter(ImageFilter.MinFilter(k)), "thinned"
    method = Image.Resampling.LANCZOS if scale > 1 else Image.Resampling.BOX
    box = np.clip(np.asarray(image.resize(size, method)), 0, None)
    return _unit(box), drawn, done


#: The slants MNIST's writers stay within: x moved per row down the digit, from the
#: ink's second moments (cov(row, column) / var(row)); the 1st and 99th percentiles
#: over its 60,000 training digits are -0.78 and 0.53 (median -0.10, leaning right).
SLANT = (-0.78, 0.53)


def slant(ink: Array) -> float:
    """How far the ink (H, W) leans: cov(r, c) / var(r) from its second moments, the
    columns it moves per row down (negative: the top leans right, as most writers')."""
    total = float(ink.sum())
    if total <= 0:
        return 0.0
    rows, cols = ink.sum(axis=1), ink.sum(axis=0)  # (H,), (W,)
    r, c = np.arange(len(rows)), np.arange(len(cols))
    cy, cx = (r @ rows) / total, (c @ cols) / total
    var = ((r - cy) ** 2 @ rows) / total
    cov = float((r - cy) @ ink @ (c - cx)) / total
    return cov / var if var > 0 else 0.0


def deskew(crop: Array) -> Array:
    """Cropped ink (h, w) sheared back, if it leans further than MNIST's writers ever do
    (``SLANT``), to the nearest slant they use, and cropped again: x' = x - e (y - ȳ),
    e the excess slant.  Ink within MNIST's range is returned as it is (deskewing
    every digit would change MNIST's own inputs, which the network was trained on)."""
    s = slant(crop)
    excess = s - float(np.clip(s, *SLANT))
    if excess == 0:
        return crop
    h, w = crop.shape
    pad = int(np.ceil(abs(excess) * h)) + 1
    cy = np.arange(h) @ crop.sum(axis=1) / crop.sum()
    image = Image.fromarray(crop.astype(np.float32))
    # output (x, y) takes the input at (x - pad / 2 + e (y - ȳ), y)
    sheared = image.transform(
        (w + pad, h), Image.Transform.AFFINE,
        (1, excess, -pad / 2 - excess * cy, 0, 1, 0), resample=Image.Resampling.BILINEAR,
    )
    out = np.asarray(sheared)
    top, left, bottom, right = _bounds(out > 0)
    return out[top:bottom, left:right]


def fit_box(ink: Array) -> Array:
    """Crop ink (H, W) to its bounding box and scale the longer side to 20 px, the
    strokes brought to MNIST's width (see ``_fit``)."""
    top, left, bottom, right = _bounds(ink)
    return _fit(ink[top:bottom, left:right])[0]


@dataclass(frozen=True)
class Steps:
    """Every stage of ``to_mnist`` for one picture.

    ``ink`` (H, W) in [0, 1] is the ink relative to the paper at the working size
    (the picture shrunk to at most ``WORK_SIDE`` px); ``bounds`` its (top, left,
    bottom, right), ends exclusive; ``stroke`` the width (px) the strokes would have
    had in the 20x20 box as drawn, and ``pen`` what was done to them ("kept",
    "thickened", "thinned", "shrunk"); ``box`` (h, w), the fitted ink, its longer
    side 20 px (less for a dot); ``offset`` the (top, left) where the box sits in
    the field so that its centre of mass is at (14, 14); ``field`` (28, 28), the
    network's input.
    """

    ink: Array
    bounds: tuple[int, int, int, int]
    stroke: float
    pen: str
    box: Array
    offset: tuple[int, int]
    field: Array


def steps(picture: Array | Image.Image) -> Steps:
    """Every step from a picture of one digit (as ``to_mnist`` takes it) to its input."""
    if isinstance(picture, Image.Image):
        grey = greyscale(picture)
    else:
        grey = _array_to_grey(np.asarray(picture))
    ink = ink_map(_shrink(grey, WORK_SIDE))
    if not (ink > 0).any():
        raise PictureError("no ink found: the picture looks empty (one flat colour)")
    bounds = _bounds(ink)
    top, left, bottom, right = bounds
    box, stroke, pen = _fit(deskew(ink[top:bottom, left:right]))
    field, offset = _place(box)
    return Steps(ink, bounds, stroke, pen, box.astype(np.float32), offset, field)


def to_mnist(picture: Array | Image.Image) -> Array:
    """Any picture of one digit -> (28, 28) float32 in [0, 1], white ink on black,
    the ink fitted into 20x20 and centred by its centre of mass, as in MNIST.

    ``picture`` is a Pillow image or an array: (H, W) grey, (H, W, 3) RGB or
    (H, W, 4) RGBA, as uint8 (0-255) or floats in [0, 1].  Raises PictureError if
    the picture holds no ink.
    """
    return steps(picture).field


def _array_to_grey(a: Array) -> Array:
    if a.dtype.kind not in "uif" or a.ndim not in (2, 3) or a.size == 0:
        raise PictureError(
            f"expected a picture array (H, W), (H, W, 3) or (H, W, 4) of numbers, "
            f"got {a.dtype} of shape {a.shape}"
        )
    if a.ndim == 3 and a.shape[2] not in (1, 3, 4):
        raise PictureError(f"expected 1, 3 or 4 colour channels, got shape {a.shape}")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise PictureError("picture holds NaN or infinite values")
        a = np.clip(a, 0, 1) * 255
    a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    return greyscale(Image.fromarray(a))


def read_digit(source: str | os.PathLike | bytes) -> Array:
    """An image file (path or bytes) -> its MNIST-style (28, 28) input."""
    image = open_picture(source)
    try:
        return to_mnist(image)
    except PictureError as e:
        name = "picture" if isinstance(source, bytes) else str(source)
        raise PictureError(f"{name}: {e}") from None
