"""Named training recipes: more than one ``TrainConfig``, for the best a fixed shape can do.

A recipe trains the network its ``student`` config describes (for ``best``, the video's
784-16-16-10) on MNIST's training images only, in up to three stages (``best`` skips
the second: measured on the held-out images, the teacher did not help this student):

1. **Distort.** ``copies`` new pictures of every training image, each moved by an
   elastic distortion (Simard et al. 2003: a random displacement field smoothed by a
   Gaussian of width σ and scaled by α) after a small random rotation, scaling and
   shear.  A 7 bent a little is still a 7, so the network sees many more 7s.
2. **Teach.** A wider ``teacher`` network learns the originals and the copies from their
   labels; its outputs at temperature T, ``softmax(z / T)``, become soft targets
   (Hinton et al. 2015): a 7 that looks a little like a 1 says so, which one-hot labels
   cannot.
3. **Learn.** The student trains on the same pictures against the targets
   ``(1 - w) · onehot + w · softmax(z_teacher / T)``, or the one-hot labels without a
   teacher.

``validation`` training images are held out before any of this and never trained on:
they score each stage (``RecipeRun.validation``), and chose the recipe's settings.  The
test set is scored once, at the end, by the caller.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from . import service
from .config import Epoch, History, TrainConfig, record
from .files.data import Dataset
from .learn.activations import softmax
from .learn.network import Network
from .train import evaluate, fit, one_hot, resolve_kernel, seeded_generators

Array = np.ndarray


@dataclass(frozen=True)
class Distortion:
    """How the new pictures are drawn: ``copies`` per training image; an elastic field
    of strength ``alpha`` (pixels) smoothed over ``sigma`` pixels; a rotation of up to
    ``rotate`` degrees, a scaling by up to a factor e^±``scale`` and a shear of up to
    ``shear`` (all uniform)."""

    copies: int = 4
    alpha: float = 8.0
    sigma: float = 3.0
    rotate: float = 12.0
    scale: float = 0.1
    shear: float = 0.15


@dataclass(frozen=True)
class Recipe:
    """A named way to train: the student's settings, an optional teacher's, the soft
    targets' temperature and weight, the distortion, and the images held out."""

    name: str
    student: TrainConfig
    teacher: TrainConfig | None = None
    temperature: float = 2.0
    soft_weight: float = 0.5
    distortion: Distortion | None = field(default_factory=Distortion)
    validation: int = 5000
    summary: str = ""

    def to_dict(self) -> dict:
        """The recipe as plain JSON values, as a model file records it."""
        return {
            "name": self.name,
            "summary": self.summary,
            "student": self.student.to_dict(),
            "teacher": None if self.teacher is None else self.teacher.to_dict(),
            "temperature": self.temperature,
            "soft_weight": self.soft_weight,
            "distortion": None if self.distortion is None else asdict(self.distortion),
            "validation": self.validation,
        }


# -- distortions ---------------------------------------------------------------------------


def smoothing_matrix(side: int, sigma: float) -> Array:
    """G (side, side) with G[i, j] ∝ exp(-(i - j)² / 2σ²), rows summing to 1: G f Gᵀ is
    the field f (side, side) smoothed by a Gaussian of width σ (edges renormalised)."""
    i = np.arange(side, dtype=np.float32)
    g = np.exp(-((i[:, None] - i[None, :]) ** 2) / (2 * sigma**2))
    return (g / g.sum(axis=1, keepdims=True)).astype(np.float32)


def _sample(images: Array, sy: Array, sx: Array) -> Array:
    """Bilinear samples of uint8 square images (n, side²) at source coordinates sy, sx
    (n, side, side) (row, column; outside the picture reads as 0): uint8 (n, side²)."""
    n, side = len(images), sy.shape[-1]
    padded = np.zeros((n, side + 3, side + 3), np.float32)  # one pixel before, two after
    padded[:, 1 : side + 1, 1 : side + 1] = images.reshape(n, side, side)
    sy, sx = np.clip(sy, -1, side), np.clip(sx, -1, side)
    y0, x0 = np.floor(sy), np.floor(sx)
    wy, wx = sy - y0, sx - x0
    flat = padded.reshape(n, -1)
    base = ((y0 + 1) * (side + 3) + x0 + 1).astype(np.int64).reshape(n, -1)
    rows = np.arange(n)[:, None]

    def at(offset: int) -> Array:
        return flat[rows, base + offset].reshape(n, side, side)

    top = at(0) * (1 - wx) + at(1) * wx
    bottom = at(side + 3) * (1 - wx) + at(side + 4) * wx
    out = top * (1 - wy) + bottom * wy
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(n, side * side)


def distort(images: Array, rng: np.random.Generator, d: Distortion, chunk: int = 5000) -> Array:
    """One distorted copy of every square uint8 image (N, side²): uint8 (N, side²).

    Output pixel p (row, column, centred at c) reads the input at
    A (p - c) + c + α · (G u G)(p), where A is a random rotation · scaling · shear, u
    two fields (row and column) of uniform noise in [-1, 1] and G the Gaussian
    smoothing of ``smoothing_matrix``; the reading is bilinear."""
    side = math.isqrt(images.shape[1])
    if images.ndim != 2 or side * side != images.shape[1]:
        raise ValueError(f"expected square uint8 images (N, side²), got shape {images.shape}")
    g = smoothing_matrix(side, d.sigma)
    c = (side - 1) / 2
    gy, gx = (a.astype(np.float32) - c for a in np.mgrid[0:side, 0:side])
    out = np.empty_like(images)
    for s in range(0, len(images), chunk):
        n = len(images[s : s + chunk])
        u = rng.uniform(-1, 1, (2, n, side, side)).astype(np.float32)
        dy, dx = (d.alpha * (g @ field @ g.T) for field in u)  # (n, side, side) each
        angle = np.radians(rng.uniform(-d.rotate, d.rotate, n))
        zoom = np.exp(rng.uniform(-d.scale, d.scale, n))
        shear = rng.uniform(-d.shear, d.shear, n)
        cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
        # A = rotation/zoom · [[1, shear], [0, 1]], applied to (row, column) offsets
        a00, a01, a10, a11 = (v.astype(np.float32)[:, None, None]
                              for v in (cos, cos * shear - sin, sin, sin * shear + cos))
        sy = a00 * gy + a01 * gx + c + dy
        sx = a10 * gy + a11 * gx + c + dx
        out[s : s + n] = _sample(images[s : s + n], sy, sx)
    return out


# -- the stages ----------------------------------------------------------------------------


def soft_targets(teacher: Network, images: Array, labels: Array, temperature: float,
                 weight: float, chunk: int = 5000) -> Array:
    """Targets (N, n_L) float32 for uint8 images (N, n_0) with labels (N,):
    (1 - w) · onehot(label) + w · softmax(z / T), z being the teacher's last weighted
    input for each image.  Each row sums to 1, so cross-entropy against it is the
    student's distance from the blend (its gradient at the output stays a - y)."""
    n_out = teacher.sizes[-1]
    targets = one_hot(labels, n_out, np.float32) * np.float32(1 - weight)
    for s in range(0, len(images), chunk):
        _, z = teacher._layers(teacher.as_input(images[s : s + chunk]))
        targets[s : s + chunk] += np.float32(weight) * softmax(z / np.float32(temperature))
    return targets


@dataclass
class RecipeRun:
    """What a recipe did: the student (its kept weights), its history, the accuracy of
    the teacher and the student on the held-out images (none without any), each
    stage's seconds."""

    net: Network
    history: History
    validation: dict[str, float]
    seconds: dict[str, float]


def split(n: int, held_out: int, rng: np.random.Generator) -> tuple[Array, Array]:
    """(training rows, held-out rows) of n images, the held-out ones drawn with ``rng``."""
    if not 0 <= held_out < n:
        raise ValueError(f"expected 0 <= validation < {n} training images, got {held_out}")
    order = rng.permutation(n)
    return order[held_out:], order[:held_out]


def run_recipe(
    recipe: Recipe,
    images: Array,
    labels: Array,
    seed: int,
    *,
    on_stage: Callable[[str], None] | None = None,
    on_epoch: Callable[[Epoch, int], None] | None = None,
) -> RecipeRun:
    """Train ``recipe``'s student on uint8 images (N, n_0) with labels (N,): distort,
    teach, learn (the module's docstring), all from ``seed``.  Only these images are
    read; ``recipe.validation`` of them are held out and scored, never trained on.
    ``on_stage(line)`` says what each stage does; ``on_epoch(record, epochs)`` reports
    each epoch of the teacher and the student, with that stage's number of epochs."""
    say = on_stage or (lambda _: None)

    def report(epochs: int) -> Callable[[Epoch], None] | None:
        return None if on_epoch is None else (lambda record: on_epoch(record, epochs))

    split_rng, distort_rng, teacher_seed = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, 1]).spawn(3)
    )
    train_rows, held_rows = split(len(images), recipe.validation, split_rng)
    x, y = images[train_rows], labels[train_rows]
    seconds, scores = {}, {}
    start = time.perf_counter()
    if recipe.distortion is not None and recipe.distortion.copies:
        say(f"distorting: {recipe.distortion.copies} copies of {len(x):,} images")
        x = np.concatenate([x] + [distort(x, distort_rng, recipe.distortion)
                                  for _ in range(recipe.distortion.copies)])
        y = np.tile(y, recipe.distortion.copies + 1)
    seconds["distort"] = time.perf_counter() - start
    targets = None
    if recipe.teacher is not None:
        start = time.perf_counter()
        t = recipe.teacher
        say(f"teaching: {'-'.join(map(str, t.sizes))} {t.activation}, {t.epochs} epochs "
            f"on {len(x):,} images")
        init_rng, data_rng = seeded_generators(int(teacher_seed.integers(2**31)))
        teacher = Network(t.sizes, t.activation, t.output, rng=init_rng)
        taught = fit(teacher, x, y, replace(t, validation=0), data_rng,
                     on_epoch=report(t.epochs))
        if taught.stopped == "interrupted":
            raise KeyboardInterrupt
        _score(scores, "teacher", teacher, images[held_rows], labels[held_rows])
        targets = soft_targets(teacher, x, y, recipe.temperature, recipe.soft_weight)
        seconds["teacher"] = time.perf_counter() - start
    start = time.perf_counter()
    s = recipe.student
    say(f"learning: {'-'.join(map(str, s.sizes))} {s.activation}, {s.epochs} epochs "
        f"on {len(x):,} images")
    init_rng, data_rng = seeded_generators(seed)
    net = Network(s.sizes, s.activation, s.output, rng=init_rng)
    history = fit(net, x, y, replace(s, validation=0, seed=seed), data_rng,
                  on_epoch=report(s.epochs), targets=targets)
    _score(scores, "student", net, images[held_rows], labels[held_rows])
    seconds["student"] = time.perf_counter() - start
    return RecipeRun(net, history, scores, {k: round(v, 1) for k, v in seconds.items()})


def _score(scores: dict[str, float], name: str, net: Network, images: Array,
           labels: Array) -> None:
    """scores[name] = the accuracy on the held-out images, where there are any."""
    if len(images):
        scores[name] = evaluate(net, images, labels).accuracy


# -- the named recipes and the run to a model file -----------------------------------------

#: The recipes ``digitnet train --recipe NAME`` runs, by name.
RECIPES: dict[str, Recipe] = {
    "best": Recipe(
        "best",
        # 60 passes over the originals and 8 copies each: 540 passes of 55,000 pictures
        # (its own copies stand in for the default run's distorted twins: distort 0)
        student=TrainConfig(epochs=60, distort=0.0),
        # A 784-256-256-10 teacher (2 passes, T = 2, weight 0.5) scored 96.57% on the held-out
        # images over seeds 0-3 against 96.68% without it: the recipe goes without.
        teacher=None,
        distortion=Distortion(copies=8),
        summary="the video's 784-16-16-10 sigmoid network, 60 epochs over the training "
        "images and 8 elastically distorted copies of each",
    ),
}


def train(
    recipe: Recipe,
    data: Dataset,
    seed: int = 0,
    *,
    on_stage: Callable[[str], None] | None = None,
    on_epoch: Callable[[Epoch, int], None] | None = None,
    data_name: str = "MNIST",
) -> service.Run:
    """Run ``recipe`` on ``data``'s training images from ``seed``, then score the student
    on its test images once and record it as ``service.train`` does, with the recipe,
    the held-out accuracies and each stage's seconds under ``info["recipe"]``.
    KeyboardInterrupt in the teacher's stage is raised again (there is no student yet);
    in the student's, the run keeps its last weights, as ``fit`` does."""
    start = time.perf_counter()
    done = run_recipe(recipe, data.train_images, data.train_labels, seed,
                      on_stage=on_stage, on_epoch=on_epoch)
    config = replace(recipe.student, seed=seed, validation=0)
    run = service.Run(done.net, done.history, resolve_kernel(config),
                      time.perf_counter() - start)
    if not done.history.epochs:
        return run
    run.evaluation = evaluate(done.net, data.test_images, data.test_labels)
    run.info = record(config, done.history, test_accuracy=run.evaluation.accuracy,
                      seconds=run.seconds, kernel=run.loop, data=data_name)
    run.info["recipe"] = {**recipe.to_dict(), "held_out_accuracy": done.validation,
                          "stage_seconds": done.seconds}
    return run
