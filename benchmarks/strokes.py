"""Digits drawn as on the page's pad: strokes growing point by point, every state of
the 280x280 pad as the page would send it (``png_body``: ``pad.toDataURL``;
``grey_body``: ``pad.js greyPicture``), for ``class_load.py``."""

from __future__ import annotations

import base64
import io
import json
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

#: Pointer events while a stroke is drawn: one a frame.
POINT_EVERY = 1 / 60
#: The pad's side and its pens (static/pad.js PENS), in pad pixels.
PAD, PENS = 280, {"thin": 10, "normal": 20, "thick": 36}
#: How fast a hand draws on the pad, pad pixels a second (a 7's two strokes: ~0.7 s).
SPEED = (350.0, 650.0)
#: Each digit as strokes through points on the 280x280 pad, as people draw them.
DIGITS: dict[int, list[list[tuple[float, float]]]] = {
    0: [[(140, 40), (95, 60), (75, 140), (95, 220), (140, 240), (185, 220), (205, 140),
         (185, 60), (140, 40)]],
    1: [[(120, 70), (150, 40), (145, 140), (140, 240)]],
    2: [[(80, 80), (110, 45), (170, 45), (195, 90), (170, 150), (80, 235), (210, 235)]],
    3: [[(80, 60), (140, 40), (195, 75), (175, 125), (125, 140), (185, 160), (200, 210),
         (140, 245), (75, 220)]],
    4: [[(170, 40), (70, 170), (215, 170)], [(170, 90), (165, 245)]],
    5: [[(200, 45), (95, 45), (85, 130), (150, 120), (200, 165), (185, 225), (135, 245),
         (80, 225)]],
    6: [[(185, 45), (120, 80), (85, 160), (100, 225), (150, 240), (195, 200), (180, 150),
         (125, 145), (90, 180)]],
    7: [[(60, 50), (220, 50), (170, 130), (110, 245)]],
    8: [[(185, 70), (140, 40), (95, 70), (140, 135), (195, 190), (140, 245), (85, 190),
         (140, 135), (185, 70)]],
    9: [[(190, 80), (140, 45), (90, 80), (110, 130), (175, 120), (190, 80), (175, 170),
         (160, 245)]],
}


# -- drawings: every state of the pad as a stroke grows, as the page would send it ------


def hand(points: list[tuple[float, float]], rng: np.random.Generator) -> list[tuple[float, float]]:
    """A stroke through ``points`` as a hand draws it: one point a frame at a speed
    from ``SPEED``, wobbling a little (pad pixels)."""
    step = rng.uniform(*SPEED) * POINT_EVERY
    out = [points[0]]
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:], strict=True):
        n = max(1, int(np.hypot(x1 - x0, y1 - y0) / step))
        for k in range(1, n + 1):
            out.append((x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n))
    wobble = rng.normal(0, 1.5, (len(out), 2))
    return [(x + dx, y + dy) for (x, y), (dx, dy) in zip(out, wobble, strict=True)]


def variant(digit: int, rng: np.random.Generator) -> list[list[tuple[float, float]]]:
    """The digit's strokes scaled, moved and slanted as one student draws it."""
    scale, slant = rng.uniform(0.75, 1.05), rng.uniform(-0.15, 0.15)
    dx, dy = rng.uniform(-25, 25, 2)
    return [
        [(140 + (x - 140) * scale + slant * (140 - y) + dx, 140 + (y - 140) * scale + dy)
         for x, y in stroke]
        for stroke in DIGITS[digit]
    ]  # fmt: skip


def png_body(grey: np.ndarray) -> bytes:
    """The pad as ``pad.toDataURL("image/png")`` sends it: an opaque RGBA PNG."""
    buffer = io.BytesIO()
    Image.fromarray(grey).convert("RGBA").save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return json.dumps({"image": url}).encode()


def grey_body(grey: np.ndarray) -> bytes:
    """The pad as ``greyPicture`` sends it: its grey bytes, deflated, in base64."""
    data = base64.b64encode(zlib.compress(grey.tobytes())).decode()
    picture = {"width": grey.shape[1], "height": grey.shape[0], "data": data}
    return json.dumps({"grey": picture}).encode()


BODIES = {"png": png_body, "grey": grey_body}


def render(strokes: list[list[tuple[float, float]]], width: int) -> list[list[np.ndarray]]:
    """Every state of the pad (uint8 (280, 280), black ink on white) as the strokes
    grow point by point: [stroke][k] is the pad once point k of that stroke is down.
    Drawn at 4x and averaged down: antialiased, as the canvas draws."""
    big = Image.new("L", (4 * PAD, 4 * PAD), 255)
    draw = ImageDraw.Draw(big)
    r = 2 * width
    out = []
    for points in strokes:
        frames, last = [], None
        for x, y in points:
            x, y = 4 * x, 4 * y
            if last is not None:
                draw.line([last, (x, y)], fill=0, width=4 * width)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=0)  # round caps and joins
            last = (x, y)
            frames.append(np.asarray(big.resize((PAD, PAD), Image.Resampling.BOX)))
        out.append(frames)
    return out


@dataclass
class Drawing:
    """One drawing as the page sends it: ``frames[s][k]`` the request body once point
    k of stroke s is down."""

    digit: int
    frames: list[list[bytes]]


def drawings(n: int, send: str, seed: int = 0) -> list[Drawing]:
    """n drawings (every digit in turn), each a student's variant with its own pen."""
    rng = np.random.default_rng(seed)
    pens = rng.choice(list(PENS.values()), n, p=[0.2, 0.6, 0.2])
    out = []
    for i in range(n):
        strokes = [hand(s, rng) for s in variant(i % 10, rng)]
        pads = render(strokes, int(pens[i]))
        out.append(Drawing(i % 10, [[BODIES[send](p) for p in frames] for frames in pads]))
    return out
