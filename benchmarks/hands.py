"""How well a model reads hands it never saw: held-out sets made here, scored.

    .venv/bin/python benchmarks/hands.py MODEL [MODEL ...] [--names before,after]
                                  [--count 50] [--most N] [--out benchmarks/results/hands.md]

Every set is built from seed 0, the same pictures on every run, and none comes from
MNIST: each picture is a whole picture as a person makes it (a 280x280 pad, a photo of
paper, a scan), and goes through ``vision.preprocess.to_mnist`` as the page's and the
CLI's pictures do, so a set scores the preprocessing and the network together.

- **canvas**: digits drawn with strokes on the page's 280x280 pad with its normal pen
  (20 px, about MNIST's stroke width): several ways of writing each digit, every one
  bent by a smooth random warp, a slant, a turn and a squeeze, as hands differ.
- **thick**: the same drawings with a marker 1.5-3x MNIST's stroke width (30-60 px).
- **thin**: a fine pen (4-9 px).
- **slanted**: strongly slanted (shear 0.35-0.6 either way) and turned up to 20°.
- **small-corner**: drawn 45-90 px tall somewhere near a corner of the pad.
- **photo**: dark ink on grey paper under a shadow gradient, blurred and noisy, 400x300.
- **printed**: the installed TrueType fonts' digits, slightly turned.
- **other writers**: scikit-learn's bundled ``load_digits`` (1,797 digits by 43 people,
  UCI, 8x8 at 17 grey levels), drawn 80x80 as a person's picture would be.

``--count`` is the drawings per digit of each drawn set (50: 500 pictures a set).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from digitnet import load, load_mnist
from digitnet.vision.preprocess import PictureError, to_mnist

Points = list[tuple[float, float]]


def arc(
    cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int = 24
) -> Points:
    """Points along an ellipse from angle start to end (degrees, y pointing down)."""
    t = np.radians(np.linspace(start, end, n + 1))
    return list(zip(cx + rx * np.cos(t), cy + ry * np.sin(t), strict=True))


#: Ways of writing each digit on the 280x280 pad, each a list of strokes of points.
STYLES: dict[int, list[list[Points]]] = {
    0: [[arc(140, 140, 65, 100, -90, 275, 40)], [arc(140, 140, 80, 95, -100, 265, 40)]],
    1: [
        [[(145, 40), (140, 140), (135, 240)]],
        [[(110, 80), (150, 40), (148, 240)]],
        [[(115, 75), (150, 40), (148, 240)], [(105, 240), (195, 240)]],
    ],
    2: [
        [arc(140, 95, 65, 55, 180, 360, 16) + [(200, 110), (75, 235), (215, 235)]],
        [arc(135, 100, 60, 60, 200, 380, 16) + [(80, 235), (120, 215), (215, 230)]],
    ],
    3: [
        [arc(135, 85, 60, 45, 200, 450, 20) + arc(135, 180, 70, 55, -90, 160, 20)],
        [[(80, 45), (200, 45), (130, 120)] + arc(135, 180, 70, 58, -80, 160, 20)],
    ],
    4: [
        [[(170, 240), (170, 40), (70, 170), (220, 170)]],
        [[(90, 40), (80, 160), (210, 160)], [(180, 60), (175, 245)]],
    ],
    5: [
        [[(200, 45), (90, 45), (80, 125)] + arc(135, 170, 70, 65, -125, 150, 24)],
        [[(90, 45), (80, 125)] + arc(135, 170, 70, 65, -125, 150, 24), [(90, 45), (205, 45)]],
    ],
    6: [
        [[(190, 40), (120, 90), (80, 175)] + arc(140, 180, 62, 58, 180, -180, 30)],
        [arc(200, 150, 115, 110, 235, 180, 10) + arc(140, 185, 60, 55, 180, -180, 30)],
    ],
    7: [
        [[(60, 50), (220, 50), (170, 130), (110, 245)]],
        [[(70, 45), (215, 45), (130, 245)], [(110, 145), (190, 145)]],
        [[(70, 80), (80, 50), (215, 50), (120, 245)]],
    ],
    8: [
        [arc(140, 85, 50, 45, 90, 450, 24) + arc(140, 180, 65, 58, -90, 270, 30)],
        [arc(140, 90, 55, 50, 60, -240, 24) + arc(140, 185, 60, 55, -60, 250, 30)],
    ],
    9: [
        [arc(140, 95, 55, 52, 0, 360, 28) + [(195, 95), (185, 170), (160, 245)]],
        [arc(135, 95, 55, 52, 10, 370, 28) + [(190, 95), (190, 245)]],
        [
            arc(140, 95, 55, 52, 0, 360, 28)
            + [(195, 95), (190, 190)]
            + arc(150, 195, 40, 45, 0, 120, 8)
        ],
    ],
}

#: The pens of the page's pad (``static/pad.js``), px: normal is about MNIST's stroke.
NORMAL_PEN = 20


def warp(
    strokes: list[Points],
    rng: np.random.Generator,
    *,
    slant: float,
    turn: float,
    squeeze: float,
    wobble: float,
) -> list[np.ndarray]:
    """Strokes (as points around the pad's centre) bent as one hand writes: a smooth
    random displacement of up to ``wobble`` px (two low sine waves per axis), then
    x' = squeeze·x - slant·y, rotated by ``turn`` degrees.  Returns (n, 2) arrays."""
    k = rng.uniform(0.5, 2.0, size=(2, 2))
    phase = rng.uniform(0, 2 * math.pi, size=(2, 2))
    amp = rng.uniform(-wobble, wobble, size=(2, 2))
    c, s = math.cos(math.radians(turn)), math.sin(math.radians(turn))
    out = []
    for points in strokes:
        p = np.asarray(points, dtype=float) - 140
        u = p / 140
        for axis in range(2):
            p[:, axis] += sum(
                amp[axis, j] * np.sin(k[axis, j] * math.pi * u[:, 1 - axis] + phase[axis, j])
                for j in range(2)
            )
        x, y = p[:, 0] * squeeze - slant * p[:, 1], p[:, 1]
        out.append(np.stack([c * x - s * y, s * x + c * y], axis=1))
    return out


def render(
    strokes: list[np.ndarray],
    size: tuple[int, int],
    height: float,
    centre: tuple[float, float],
    pen: float,
) -> Image.Image:
    """Dark strokes with a round pen on white paper (W, H): the drawing scaled so it
    spans ``height`` px (from the pad's 280) and centred at ``centre``."""
    scale = height / 220
    paper = Image.new("L", size, 255)
    draw = ImageDraw.Draw(paper)
    r = pen / 2
    for s in strokes:
        points = [(centre[0] + x * scale, centre[1] + y * scale) for x, y in s]
        draw.line(points, fill=0, width=max(1, round(pen)), joint="curve")
        for x, y in (points[0], points[-1]):
            draw.ellipse([x - r, y - r, x + r, y + r], fill=0)
    return paper


def drawn_set(kind: str, count: int, rng: np.random.Generator) -> tuple[list, np.ndarray]:
    """``count`` drawings of each digit for one of the drawn sets: (pictures, labels)."""
    pictures, labels = [], []
    for digit in range(10):
        for i in range(count):
            style = STYLES[digit][i % len(STYLES[digit])]
            slant, turn = rng.uniform(-0.2, 0.3), rng.uniform(-8, 8)
            if kind == "slanted":
                slant = rng.choice([-1, 1]) * rng.uniform(0.35, 0.6)
                turn = rng.uniform(-20, 20)
            strokes = warp(
                style,
                rng,
                slant=slant,
                turn=turn,
                squeeze=rng.uniform(0.7, 1.1),
                wobble=rng.uniform(4, 14),
            )
            height, pen = rng.uniform(170, 230), rng.uniform(16, 24)
            centre = (140 + rng.uniform(-15, 15), 140 + rng.uniform(-10, 10))
            if kind == "thick":
                pen = NORMAL_PEN * rng.uniform(1.5, 3.0)
            elif kind == "thin":
                pen = rng.uniform(4, 9)
            elif kind == "small-corner":
                height = rng.uniform(45, 90)
                pen = height / 200 * rng.uniform(16, 24) * rng.uniform(1, 2)
                edge = height / 2 + 12
                centre = (
                    rng.choice([edge, 280 - edge]) + rng.uniform(-8, 8),
                    rng.choice([edge, 280 - edge]) + rng.uniform(-8, 8),
                )
            if kind == "photo":
                pictures.append(photo(strokes, height * 1.2, pen * 1.2, rng))
            else:
                pictures.append(render(strokes, (280, 280), height, centre, pen))
            labels.append(digit)
    return pictures, np.array(labels)


def photo(
    strokes: list[np.ndarray], height: float, pen: float, rng: np.random.Generator
) -> np.ndarray:
    """A drawing as a phone photo of paper, (300, 400) uint8: grey paper lit unevenly
    (a linear shadow and a darker corner), ink not quite black, blur and sensor noise."""
    ink = np.asarray(render(strokes, (400, 300), height, (200 + rng.uniform(-30, 30), 150), pen))
    ink = np.asarray(Image.fromarray(ink).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2))))
    yy, xx = np.mgrid[0:300, 0:400] / 400.0
    angle = rng.uniform(0, 2 * math.pi)
    light = rng.uniform(150, 215) + rng.uniform(30, 70) * (
        math.cos(angle) * xx + math.sin(angle) * yy - 0.5
    )
    corner = rng.uniform(0, 50) * np.exp(
        -((xx - rng.choice([0, 1])) ** 2 + (yy - rng.choice([0, 0.75])) ** 2) / 0.1
    )
    paper = light - corner
    dark = rng.uniform(20, 80)
    picture = (
        paper * (ink / 255) + dark * (1 - ink / 255) + rng.normal(0, rng.uniform(2, 8), paper.shape)
    )
    return np.clip(picture, 0, 255).astype(np.uint8)


def printed_set(rng: np.random.Generator) -> tuple[list, np.ndarray]:
    """Each installed TrueType font's ten digits, 150-220 px tall, turned up to 6°."""
    fonts = sorted({p for p in _font_files() if p.suffix.lower() == ".ttf"})
    pictures, labels = [], []
    for path in fonts:
        for digit in range(10):
            card = Image.new("L", (280, 280), 255)
            font = ImageFont.truetype(str(path), int(rng.uniform(150, 220)))
            ImageDraw.Draw(card).text((140, 140), str(digit), font=font, fill=0, anchor="mm")
            pictures.append(card.rotate(rng.uniform(-6, 6), fillcolor=255))
            labels.append(digit)
    return pictures, np.array(labels)


def _font_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["fc-list", "--format", "%{file}\n"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [Path(line) for line in out.splitlines() if line]


def other_writers() -> tuple[list, np.ndarray]:
    """scikit-learn's 1,797 UCI digits, 8x8 at 17 grey levels, drawn 80x80."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pictures = [
        np.asarray(
            Image.fromarray((im / 16 * 255).astype(np.uint8)).resize(
                (80, 80), Image.Resampling.BICUBIC
            )
        )
        for im in digits.images
    ]
    return pictures, digits.target.astype(np.int64)


def build(
    count: int, seed: int = 0, most: int | None = None
) -> dict[str, tuple[list, np.ndarray]]:
    """Every held-out set: name -> (pictures, labels (N,)), at most ``most`` pictures
    each (every one when None); the same for one seed."""
    sets: dict[str, Callable[[np.random.Generator], tuple[list, np.ndarray]]] = {
        kind: (lambda rng, kind=kind: drawn_set(kind, count, rng))
        for kind in ("canvas", "thick", "thin", "slanted", "small-corner", "photo")
    }
    sets["printed"] = printed_set
    sets["other writers"] = lambda rng: other_writers()
    out = {}
    for i, (name, make) in enumerate(sets.items()):
        pictures, labels = make(np.random.default_rng([seed, i]))
        out[name] = pictures[:most], labels[:most]
    return out


def inputs(pictures: list) -> np.ndarray:
    """Every picture through ``to_mnist``: (N, 784) float32 (a picture with no ink
    found is an all-zero input, which the network then gets wrong or right by luck)."""
    out = np.zeros((len(pictures), 784), np.float32)
    for i, picture in enumerate(pictures):
        try:
            out[i] = to_mnist(picture).reshape(-1)
        except PictureError:
            pass
    return out


def score(
    models: list[Path], count: int, most: int | None = None
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Accuracy of each model on each set (name -> one per model), with MNIST's test
    set first; and each set's size."""
    nets = [load(m).network for m in models]
    mnist = load_mnist()
    table = {
        "MNIST test": [
            float(np.mean(n.predict(mnist.test_images) == mnist.test_labels)) for n in nets
        ]
    }
    sizes = {"MNIST test": len(mnist.test_labels)}
    for name, (pictures, labels) in build(count, most=most).items():
        x = inputs(pictures)
        table[name] = [float(np.mean(n.predict(x) == labels)) for n in nets]
        sizes[name] = len(labels)
    return table, sizes


def report(table: dict[str, list[float]], sizes: dict[str, int], names: list[str]) -> str:
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# Hands it never saw",
        "",
        f"`benchmarks/hands.py`, {date.today()}, {platform.machine()}, load average {load1:.1f}. "
        "Accuracy on each held-out set (see the script's docstring for how each is made; "
        "none comes from MNIST), every picture through `to_mnist`.",
        "",
        "| set | pictures | " + " | ".join(names) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    for name, scores in table.items():
        lines.append(
            f"| {name} | {sizes[name]:,} | " + " | ".join(f"{s:.1%}" for s in scores) + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--names", help="column names, comma-separated (default: the files)")
    parser.add_argument("--count", type=int, default=50, help="drawings per digit per set")
    parser.add_argument("--most", type=int, help="at most this many pictures a set (a smoke run)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/hands.md"))
    args = parser.parse_args()
    names = args.names.split(",") if args.names else [m.name for m in args.models]
    if len(names) != len(args.models):
        parser.error(f"--names gives {len(names)} names for {len(args.models)} models")
    table, sizes = score(args.models, args.count, args.most)
    text = report(table, sizes, names)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
