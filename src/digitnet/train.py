"""Learning the weights: mini-batch gradient descent, the epoch loop, metrics.

Training minimises the mean cost over mini-batches by gradient descent, as chapter 2
of the video describes.  Images stay uint8 in memory and become floats a batch at a
time; mini-batches are drawn in an order set by a seeded ``np.random.Generator``, so
one seed gives one set of weights, bit for bit, on each loop.  An optional
validation split, carved out of the training images, picks the best epoch; the test
set is never looked at here.

``loop.train_batches`` is the loop over mini-batches, written once in whole-array
NumPy; ``fit`` runs it an epoch at a time as plain Python (``kernel="numpy"``) or
compiled by numba from the same source (``kernel="compiled"``, ``digitnet.learn.kernel``).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
from threadpoolctl import threadpool_limits

from .config import Epoch, History, TrainConfig, TrainingDiverged
from .learn import distort, kernel
from .learn.activations import ACTIVATIONS, LOSSES, OUTPUTS, lookup
from .learn.loop import batch_input, train_batches
from .learn.network import Network
from .learn.optimizers import OPTIMIZERS, Optimizer

Array = np.ndarray
#: Most weight-touches, P·(B + 4) a batch, between two looks at ``on_batch`` (about
#: 40 ms of the NumPy loop on one core: 4 batches of 4 hidden layers of 256 at batch 1).
PIECE_WORK = 10_000_000


# -- pieces of the loop ------------------------------------------------------------------


def seeded_generators(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Two independent generators from one seed: one draws the initial weights,
    the other splits and shuffles the data."""
    init, data = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(init), np.random.default_rng(data)


def one_hot(labels: Array, n: int, dtype: type = np.float32) -> Array:
    """Labels (N,) -> rows of the n×n identity (N, n): the target output for each."""
    return np.eye(n, dtype=dtype)[labels]


def lr_at(config: TrainConfig, step: int, total: int) -> float:
    """η at a step: constant, or ½ η (1 + cos(π step / total))."""
    if config.schedule == "cosine":
        return 0.5 * config.lr * (1 + math.cos(math.pi * step / total))
    return config.lr


def input_transform(images: Array) -> tuple[float, float]:
    """(scale, shift) so that scale·x + shift has mean 0 and std 1 over these uint8
    images, x being the pixels in [0, 1]."""
    x = images.astype(np.float64) / 255
    mean, std = float(x.mean()), float(x.std())
    return 1 / max(std, 1e-8), -mean / max(std, 1e-8)


def shifts(k: int) -> list[tuple[int, int]]:
    """The moves of augmentation: none, or up to k pixels along one axis."""
    return (
        [(0, 0)] + [(d, 0) for d in range(-k, k + 1) if d] + [(0, d) for d in range(-k, k + 1) if d]
    )


def _batched_cost(net: Network, images: Array, y: Array, loss_name: str, scale, shift,
                  buffer: Array) -> tuple[float, float]:
    """(mean cost, accuracy) of ``net`` on uint8 images (N, n_0), each taken as
    scale·pixel + shift, with one-hot targets y (N, n_L): ``len(buffer)`` images at a
    time, converted into ``buffer``, so no float copy of them all is ever made."""
    loss = LOSSES[(loss_name, net.output_name)]
    cost = acc = 0.0
    step = len(buffer)
    for s in range(0, len(images), step):
        rows = np.arange(s, min(s + step, len(images)))
        x = batch_input(images, rows, 0, 0, scale, shift, buffer[: len(rows)])
        ys = y[s : s + len(rows)]
        activations, z = net._layers(x)
        cost += loss.value(z, activations[-1], ys) * len(rows)
        acc += np.count_nonzero(activations[-1].argmax(1) == ys.argmax(1))
    return float(cost / len(images)), float(acc / len(images))


#: The background compiles this process started (``compile_in_background``), by what
#: the loop is built for: one each, however many runs ask.
BACKGROUND: dict[str, subprocess.Popen] = {}
#: The environment variable that, set to "0", keeps ``auto`` from starting background
#: compiles (a test suite or a timed job that must not share its cores with one).
BUILD_ENV = "DIGITNET_BACKGROUND_BUILD"


def resolve_kernel(config: TrainConfig, dtype: type = np.float32, *, build: bool = False) -> str:
    """Which loop trains: "compiled" or "numpy".  ValueError at once for "compiled"
    without numba, before any long work.

    "auto" decides without waiting for a compiler and without timing anything:

    1. numba is missing, or the weights are not float32 (the compiled loop is built
       for float32): "numpy".
    2. The compiled loop for this configuration's functions (activation, output, cost,
       optimiser) is built, in this process or in numba's cache on disk: "compiled".
       Warm, it is the faster loop for every configuration the registries make
       (measured per activation in ``benchmarks/results/bench.md``), so nothing
       else is asked.
    3. Otherwise "numpy", and with ``build`` a compile starts in a process of its own
       (``compile_in_background``): detached from this one and from any terminal, at
       low priority, it writes numba's cache and exits, so the next run (from a
       terminal, a script or a notebook alike) finds the loop built.  ``fit`` builds;
       asking which loop would run does not; nor does a process whose environment
       sets ``BUILD_ENV`` to "0".
    """
    if config.kernel == "compiled" and not kernel.AVAILABLE:
        raise ValueError("the compiled kernel needs numba: pip install 'digitnet[fast]'")
    if config.kernel != "auto":
        return config.kernel
    if not (kernel.AVAILABLE and dtype is np.float32):
        return "numpy"
    if is_compiled(config):
        return "compiled"
    # the loop is built for the functions and the number of layers, not sizes or values
    key = repr(([f.__qualname__ for f in math_of(config)], len(config.sizes)))
    for started in BACKGROUND.values():
        started.poll()  # a finished build leaves no zombie behind
    if build and key not in BACKGROUND and os.environ.get(BUILD_ENV) != "0":
        started = compile_in_background(config)
        if started is not None:
            BACKGROUND[key] = started
    return "numpy"


def is_compiled(config: TrainConfig) -> bool:
    """Whether the compiled loop for ``config`` is built (in memory or in numba's
    cache on disk), so that running it starts at once."""
    return kernel.is_compiled(train_batches, math_of(config), example_arguments(config))


def example_arguments(config: TrainConfig) -> tuple:
    """Arguments of the types a run of ``config`` hands ``train_batches``, for two
    4x4 images: enough to compile the loop for it, or to ask whether it is compiled."""
    sizes = (16,) + (2,) * (len(config.sizes) - 2) + (config.sizes[-1],)
    tiny = replace(config, sizes=sizes, validation=0, augment=min(config.augment, 1), distort=0)
    net = Network(sizes, config.activation, config.output)
    images, labels = np.zeros((2, 16), np.uint8), np.zeros(2, np.int64)
    run = _Run(net, images, labels, tiny, np.random.default_rng(0), None, None)
    return run.loop_args(run.train_idx, run.moves[:1], np.zeros(1))


def compile_loop(config: TrainConfig, *, wait: bool = True) -> None:
    """Compile (and cache on disk) the loop for ``config``, by running it once on
    ``example_arguments``.  One process at a time builds a configuration: with
    ``wait=False`` this returns at once where another is building it."""
    functions, args = math_of(config), example_arguments(config)
    with kernel.building(train_batches, functions, args, wait=wait) as mine:
        if mine:
            kernel.run(train_batches, functions, args)


def compile_in_background(config: TrainConfig) -> subprocess.Popen | None:
    """Start ``compile_loop(config)`` in a process of its own, at low priority, which
    goes on after this one ends (None where it cannot start).  Where that
    configuration is already being built by another such process, it stops at once."""
    settings = json.dumps(config.to_dict())
    code = (
        "import json, sys; from digitnet.config import TrainConfig; "
        "from digitnet.train import compile_loop; "
        "compile_loop(TrainConfig.from_dict(json.loads(sys.argv[1])), wait=False)"
    )
    try:
        return subprocess.Popen(
            [sys.executable, "-c", code, settings],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal is for the training
            preexec_fn=(lambda: os.nice(10)) if hasattr(os, "nice") else None,
        )
    except OSError:
        return None


def math_of(config: TrainConfig) -> tuple:
    """The functions a run of ``config`` calls, from the registries: the optimiser's
    rule and constants, f, f', the output layer, the cost and its δ_L."""
    activation = lookup(ACTIVATIONS, config.activation, "activation")
    loss = lookup(LOSSES, (config.loss, config.output), "loss/output pair")
    output = lookup(OUTPUTS, config.output, "output")
    optimizer = lookup(OPTIMIZERS, config.optimizer, "optimizer")
    return (optimizer.rule_of_one, optimizer.constants, activation.f, activation.prime, output,
            loss.value, loss.delta)


def _check(net: Network, images: Array, labels: Array, config: TrainConfig) -> None:
    if images.ndim != 2 or images.shape[1] != net.sizes[0] or len(images) != len(labels):
        raise ValueError(
            f"expected images (N, {net.sizes[0]}) and labels (N,), "
            f"got {images.shape} and {labels.shape}"
        )
    side = math.isqrt(images.shape[1])
    for name in ("augment", "distort"):
        if getattr(config, name) and side**2 != images.shape[1]:
            raise ValueError(f"{name} needs square images, got {images.shape[1]} pixels")
    if config.augment >= max(side, 1):
        raise ValueError(
            f"augment moves {side}x{side} pictures by at most {side - 1} pixels, "
            f"got {config.augment}"
        )
    if config.validation >= len(images):
        raise ValueError(
            f"validation split of {config.validation} leaves no training images "
            f"out of {len(images)}"
        )
    if tuple(config.sizes) != net.sizes:
        raise ValueError(f"config sizes {config.sizes} do not match the network's {net.sizes}")
    if (config.activation, config.output) != (net.activation_name, net.output_name):
        raise ValueError(
            f"config says {config.activation}/{config.output} but the network is "
            f"{net.activation_name}/{net.output_name}"
        )

# -- the epoch loop ------------------------------------------------------------------


@dataclass
class TrainState:
    """Everything needed to continue a run exactly where it stopped: after ``epoch``
    epochs and ``step`` optimiser steps, the current and the best weights (in the
    coordinates training uses, before the input transform is folded in), the
    optimiser's running averages, the shuffling generator's state and the history."""

    epoch: int
    step: int
    params: Array
    best_params: Array
    best_score: float
    since_best: int
    optimizer: dict[str, Array]
    optimizer_steps: int
    rng: dict
    history: History



class _Run:
    """One training run's moving parts: the split, the optimiser, the loop's arguments,
    the best weights so far and the history.  ``fit`` drives it an epoch at a time."""

    def __init__(self, net, images, labels, config, rng, targets, resume) -> None:
        dtype = net.params.dtype.type
        targets = one_hot(labels, net.sizes[-1], dtype) if targets is None else targets
        self.net, self.config, self.rng = net, config, rng
        order = rng.permutation(len(images))
        self.train_idx, val_idx = order[config.validation :], order[: config.validation]
        self.twin_base = len(images)  # twin j of train_idx[j] is row twin_base + j
        if config.distort:
            images, targets, labels = _with_twins(images, targets, labels, self.train_idx, rng)
        self.scale, self.shift = (
            input_transform(images[self.train_idx]) if config.normalize else (1.0, 0.0)
        )
        x_scale, x_shift = dtype(self.scale / 255), dtype(self.shift)
        self.val_images, self.val_y = images[val_idx], targets[val_idx]
        self.optimizer: Optimizer = OPTIMIZERS[config.optimizer](
            net.params.size, dtype, momentum=config.momentum
        )
        self.history = History()
        if resume is None:
            # Learn on transformed inputs: fold the inverse into layer 1 of the starting
            # weights, so the network computes the same function as before.
            if config.normalize:
                inverse = net.fold_input_transform(1 / self.scale, -self.shift / self.scale)
                net.params[...] = inverse.params
            self.best_params, self.best_score = net.params.copy(), -1.0
            self.since_best, self.step, self.first = 0, 0, 1
        else:
            net.params[...] = resume.params
            self.best_params, self.best_score = resume.best_params.copy(), resume.best_score
            self.since_best, self.step = resume.since_best, resume.step
            self.first = resume.epoch + 1
            self.optimizer.load_state(resume.optimizer, resume.optimizer_steps)
            rng.bit_generator.state = resume.rng
            self.history = History.from_dict(resume.history.to_dict())
        decay = net.weight_mask() * dtype(config.weight_decay)
        views = (tuple(net.W), tuple(net.b), tuple(net.dW), tuple(net.db))
        self.net_args = (net.params, net.grad, *views, decay)
        frozen = [_read_only(a) for a in (images, targets, labels.astype(np.int64))]
        buffer = np.empty((config.batch_size, net.sizes[0]), dtype)
        self.chunk = np.empty((min(len(val_idx), 2_000), net.sizes[0]), dtype)  # validation's
        self.data_args = (*frozen, x_scale, x_shift, buffer)
        self.moves = np.array(shifts(config.augment) if config.augment else [(0, 0)])
        self.batches = math.ceil(len(self.train_idx) / config.batch_size)
        self.math = math_of(config)

    def loop_args(self, rows: Array, moves: Array, lrs: Array) -> tuple:
        """The arguments of ``train_batches`` (without the functions) for these batches."""
        state, hyper = self.optimizer.workings()
        plan = (rows, moves, lrs, self.config.batch_size)
        return self.net_args, self.data_args, plan, state, hyper

    def train_epoch(self, compiled: bool, on_batch) -> tuple[float, int, float]:
        """One pass over the training images in a fresh order, in pieces of at most a
        tenth of the epoch and at most ``PIECE_WORK`` weight-touches P·(B + 4) (for
        progress, and so that Ctrl-C or a stop is felt within a few hundredths of a
        second): (Σ cost, correct guesses, last η)."""
        n, B, k = len(self.train_idx), self.config.batch_size, self.batches
        order = self.rng.permutation(n)
        rows = self.train_idx[order]
        if self.config.distort:  # some images seen as their distorted twin
            rows = np.where(self.rng.random(n) < self.config.distort, self.twin_base + order, rows)
        moves = self.moves[self.rng.integers(len(self.moves), size=k)]
        total = k * self.config.epochs
        lrs = np.array([lr_at(self.config, self.step + i, total) for i in range(k)])
        per_batch = self.net.params.size * (B + 4)
        piece = max(1, min(math.ceil(k / 10), PIECE_WORK // per_batch))
        cost_sum, correct = 0.0, 0
        for s in range(0, k, piece):
            batches = slice(s, s + piece)
            args = self.loop_args(rows[s * B : (s + piece) * B], moves[batches], lrs[batches])
            if compiled:
                cost, right, taken = kernel.run(train_batches, self.math, args)
            else:
                cost, right, taken = train_batches(*args, *self.math)
            cost_sum, correct, self.step = cost_sum + cost, correct + right, self.step + taken
            if not math.isfinite(cost_sum):
                raise self.diverged()
            if on_batch is not None:
                on_batch(min((s + piece) * B, n), n)
        return cost_sum, int(correct), float(lrs[-1])

    def record(self, epoch: int, cost_sum: float, correct: int, lr: float, seconds: float) -> Epoch:
        """Validate, and keep the weights if they are the best so far."""
        if not np.isfinite(self.net.params).all():
            raise self.diverged()
        val_loss = val_acc = None
        if len(self.val_images):
            scale, shift = self.data_args[3:5]
            val_loss, val_acc = _batched_cost(
                self.net, self.val_images, self.val_y, self.config.loss, scale, shift, self.chunk
            )
        n = len(self.train_idx)
        record = Epoch(epoch, cost_sum / n, correct / n, val_loss, val_acc, lr, seconds)
        self.history.epochs.append(record)
        score = val_acc if val_acc is not None else epoch
        if score > self.best_score:
            self.best_params[...] = self.net.params
            self.best_score, self.history.best_epoch, self.since_best = score, epoch, 0
        else:
            self.since_best += 1
        if self.config.patience and self.since_best >= self.config.patience:
            self.history.stopped = "early-stopped"
        return record

    def state(self, epoch: int) -> TrainState:
        """A copy of everything needed to continue after ``epoch``."""
        return TrainState(
            epoch,
            self.step,
            self.net.params.copy(),
            self.best_params.copy(),
            self.best_score,
            self.since_best,
            self.optimizer.save_state(),
            self.optimizer.steps,
            self.rng.bit_generator.state,
            History.from_dict(self.history.to_dict()),
        )

    def diverged(self) -> TrainingDiverged:
        self.net.params[...] = self.best_params
        config = self.config
        where = (
            f"training diverged at epoch {len(self.history.epochs) + 1}: the cost or the "
            "weights became NaN or infinite. "
        )
        # λ ≥ 1 pulls W by at least its own size per unit of η (λ W alone overflows
        # float32 from λ ≈ 1e38): the decay, not the learning rate, is then the cause
        if config.weight_decay >= 1:
            default = TrainConfig.weight_decay
            return TrainingDiverged(
                f"{where}The weight decay {config.weight_decay:g} is probably too large "
                f"(useful values are about 1e-5 to 1e-2); try --weight-decay {default:g}"
            )
        return TrainingDiverged(
            f"{where}The learning rate {config.lr:g} is probably too large for "
            f"{config.optimizer}; try --lr {config.lr / 10:g}"
        )

    def finish(self) -> History:
        """Put the best weights back, acting on raw pixels in [0, 1]."""
        self.net.params[...] = self.best_params
        if self.config.normalize:
            self.net.params[...] = self.net.fold_input_transform(self.scale, self.shift).params
        return self.history


def _with_twins(images: Array, targets: Array, labels: Array, train_idx: Array,
                rng: np.random.Generator) -> tuple[Array, Array, Array]:
    """images (N, n_0), targets (N, n_L), labels (N,) with a distorted twin of each
    training image appended (``learn.distort.twins``; row N + j is the twin of
    train_idx[j]), drawn from a generator seeded by ``rng``.  The twins are written
    straight into the longer array: no copy of the images is made on the way."""
    n = len(images)
    both = np.empty((n + len(train_idx), images.shape[1]), images.dtype)
    both[:n] = images
    distort.twins(images, np.random.default_rng(rng.integers(2**63)), train_idx, both[n:])
    return (
        both,
        np.concatenate([targets, targets[train_idx]]),
        np.concatenate([labels, labels[train_idx]]),
    )


def _read_only(a: Array) -> Array:
    """A read-only view: the compiled loop is compiled for read-only data, whatever
    the caller passed, so one compiled version serves every caller."""
    view = a.view()
    view.flags.writeable = False
    return view


def fit(
    net: Network,
    images: Array,
    labels: Array,
    config: TrainConfig,
    rng: np.random.Generator,
    *,
    on_batch: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[Epoch], None] | None = None,
    on_state: Callable[[TrainState], None] | None = None,
    targets: Array | None = None,
    resume: TrainState | None = None,
) -> History:
    """Train ``net`` in place on uint8 images (N, n_0) with labels (N,).

    Holds out ``config.validation`` images (drawn with ``rng``), trains for
    ``config.epochs`` epochs and keeps the weights of the epoch with the best
    validation accuracy (the last epoch without a split).  The weights that come
    back act on pixels in [0, 1].  Ctrl-C ends training early with the best weights
    so far (``History.stopped == "interrupted"``).

    ``on_batch(done, total)`` reports progress within an epoch, ``on_epoch(record)``
    each finished epoch, ``on_state(state)`` hands over a ``TrainState`` after each
    epoch (for checkpoints); ``resume`` continues from such a state, giving the same
    weights as a run that was never interrupted.  ``targets`` (N, n_L) replace the
    one-hot labels, e.g. with a teacher's soft targets.
    """
    _check(net, images, labels, config)
    run = _Run(net, images, labels, config, rng, targets, resume)
    compiled = resolve_kernel(config, net.params.dtype.type, build=True) == "compiled"
    if compiled:  # loads SciPy's BLAS before its threads are limited below
        kernel.compiled(train_batches, run.math)
    try:  # one BLAS thread: measured as fast as two here, and not slowed by a busy core
        with threadpool_limits(1, "blas"), np.errstate(over="ignore", invalid="ignore"):
            for epoch in range(run.first, config.epochs + 1):
                start = time.perf_counter()
                cost, correct, lr = run.train_epoch(compiled, on_batch)
                record = run.record(epoch, cost, correct, lr, time.perf_counter() - start)
                if on_state is not None:
                    on_state(run.state(epoch))
                if on_epoch is not None:
                    on_epoch(record)
                if run.history.stopped == "early-stopped":
                    break
    except KeyboardInterrupt:
        run.history.stopped = "interrupted"
    return run.finish()


def train_network(
    images: Array,
    labels: Array,
    config: TrainConfig | None = None,
    *,
    on_batch: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[Epoch], None] | None = None,
    on_state: Callable[[TrainState], None] | None = None,
) -> tuple[Network, History]:
    """A new network as ``config`` (default: ``TrainConfig()``) describes, trained on
    uint8 images (N, n_0)."""
    config = TrainConfig() if config is None else config
    init_rng, data_rng = seeded_generators(config.seed)
    net = Network(config.sizes, config.activation, config.output, rng=init_rng)
    callbacks = {"on_batch": on_batch, "on_epoch": on_epoch, "on_state": on_state}
    history = fit(net, images, labels, config, data_rng, **callbacks)
    return net, history


# -- metrics ----------------------------------------------------------------------------


@dataclass
class Evaluation:
    """accuracy: fraction right; per_digit[d]: fraction of true d's recognised;
    confusion[t, p]: how many images of digit t were read as p."""

    accuracy: float
    per_digit: list[float]
    confusion: list[list[int]]
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(net: Network, images: Array, labels: Array) -> Evaluation:
    """Score ``net`` on uint8 images (N, n_0) with labels (N,)."""
    k = net.sizes[-1]
    step = 2_000  # images converted to floats at a time: 6 MB, not 31 for the test set
    guesses = np.concatenate(
        [net.predict(images[s : s + step]) for s in range(0, len(images), step)]
    )
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, guesses), 1)
    totals = confusion.sum(axis=1)
    per_digit = [float(confusion[d, d] / totals[d]) if totals[d] else 0.0 for d in range(k)]
    return Evaluation(
        float(np.trace(confusion) / max(len(labels), 1)),
        per_digit,
        confusion.tolist(),
        int(len(labels)),
    )
