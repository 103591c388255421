"""Distorted twins of training digits: the same digit as another hand would write it.

People slant, turn, squeeze and stretch their digits more than MNIST's writers did.
``twins`` makes, for each training image, one picture of the same digit drawn that
other way: a random affine map about the picture's centre (a turn, a slant, a scale
per axis).  Training then shows each image either as itself or as its twin
(``train._Run``), so an epoch costs what it did and the network learns that these
changes leave the digit what it is.  (Thicker and thinner pens are left to the
preprocessing, which brings every stroke to MNIST's width: twins with thickened or
thinned strokes, measured over three seeds, read thin-pen drawings 1-2 points worse.)
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray

#: The largest turn (degrees), slant (x moved per row, as a fraction of a row) and
#: change of scale of a twin.
TURN, SLANT, SCALE = 12.0, 0.3, 0.12
_CHUNK = 256


def affine(images: Array, maps: Array) -> Array:
    """Square uint8 images (N, side²), each resampled through its own 2x2 map
    (N, 2, 2) about the centre: the output pixel at (r, c) takes the input at
    centre + maps[n] @ ((r, c) - centre), bilinearly, 0 outside.  (N, side²) uint8."""
    n, pixels = images.shape
    side = int(round(np.sqrt(pixels)))
    centre = (side - 1) / 2
    r, c = np.indices((side, side), dtype=np.float32).reshape(2, -1) - centre  # (2, P)
    src = np.einsum("nij,jp->nip", maps.astype(np.float32), np.stack([r, c])) + centre
    r0, c0 = np.floor(src[:, 0]), np.floor(src[:, 1])
    fr, fc = src[:, 0] - r0, src[:, 1] - c0
    width = side + 3
    padded = np.pad(images.reshape(n, side, side), ((0, 0), (1, 2), (1, 2))).astype(np.float32)
    flat = padded.reshape(-1)
    # indices into the padded pictures, clipped into their zero border when outside
    ri = np.clip(r0 + 1, 0, side + 1).astype(np.int64)
    ci = np.clip(c0 + 1, 0, side + 1).astype(np.int64)
    outside = (r0 < -1) | (r0 > side - 1) | (c0 < -1) | (c0 > side - 1)
    at = ri * width + ci + (np.arange(n) * width * width)[:, None]
    top = flat[at] * (1 - fc) + flat[at + 1] * fc
    bottom = flat[at + width] * (1 - fc) + flat[at + width + 1] * fc
    out = top * (1 - fr) + bottom * fr
    out[outside] = 0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def random_maps(n: int, rng: np.random.Generator) -> Array:
    """n random 2x2 maps (N, 2, 2) from output to input coordinates (row, column):
    a turn of up to ``TURN`` degrees, a slant of up to ``SLANT``, each axis scaled by
    up to ``SCALE`` either way."""
    theta = np.radians(rng.uniform(-TURN, TURN, n))
    slant = rng.uniform(-SLANT, SLANT, n)
    sy, sx = rng.uniform(1 - SCALE, 1 + SCALE, (2, n))
    cos, sin = np.cos(theta), np.sin(theta)
    turn = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (N, 2, 2)
    shear = np.zeros((n, 2, 2))
    shear[:, 0, 0], shear[:, 1, 1], shear[:, 1, 0] = 1 / sy, 1 / sx, slant
    return turn @ shear


def twins(
    images: Array, rng: np.random.Generator, rows: Array | None = None, out: Array | None = None
) -> Array:
    """One distorted twin of each square uint8 image images[rows] (all of them when
    ``rows`` is None) -> out (len(rows), side²) uint8, made if not given, through a
    random affine map (``random_maps``).  The same generator state gives the same
    twins.  Worked a few hundred images at a time, so that the memory it needs beyond
    ``out`` is a few MB whatever the number of images."""
    rows = np.arange(len(images)) if rows is None else rows
    maps = random_maps(len(rows), rng)
    out = np.empty((len(rows), images.shape[1]), np.uint8) if out is None else out
    for s in range(0, len(rows), _CHUNK):
        part = slice(s, s + _CHUNK)
        out[part] = affine(images[rows[part]], maps[part])
    return out
