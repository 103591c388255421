"""Learning the weights: optimisers, the epoch loop, metrics and the History.

Training minimises the mean cost over mini-batches by gradient descent.  Images stay
uint8 in memory and are scaled per batch; mini-batches are drawn in an order set by
a seeded ``np.random.Generator``, so one seed gives one set of weights, bit for bit.
An optional validation split, carved out of the training images, picks the best
epoch; the test set is never looked at here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from . import kernel
from .activations import LOSSES, lookup
from .checkpoint import TrainState
from .config import Epoch, History, TrainConfig, TrainingDiverged
from .network import Network
from .optimizers import OPTIMIZERS

Array = np.ndarray


# -- the loop ---------------------------------------------------------------------------


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


def scaled(
    images: Array, scale: float, shift: float, dtype: type = np.float32, out: Array | None = None
) -> Array:
    """uint8 images -> scale·(pixel/255) + shift as floats (into ``out`` if given)."""
    x = np.multiply(images, dtype(scale / 255), out=out, dtype=dtype)
    if shift:
        x += dtype(shift)
    return x


def shifts(k: int) -> list[tuple[int, int]]:
    """The moves of augmentation: none, or up to k pixels along one axis."""
    return (
        [(0, 0)] + [(d, 0) for d in range(-k, k + 1) if d] + [(0, d) for d in range(-k, k + 1) if d]
    )


def shifted(x: Array, dy: int, dx: int, out: Array) -> Array:
    """out = the square images x (m, side²) moved dy rows down and dx columns right,
    the vacated pixels set to 0.  Moving a digit by a pixel leaves it the same digit,
    so each move shows the network a new picture of it: a cheap guard against
    learning the exact pixel positions of the training set."""
    side = math.isqrt(x.shape[1])
    src = x.reshape(-1, side, side)
    dst = out.reshape(-1, side, side)
    dst[...] = 0
    rows = slice(max(dy, 0), side + min(dy, 0)), slice(max(-dy, 0), side + min(-dy, 0))
    cols = slice(max(dx, 0), side + min(dx, 0)), slice(max(-dx, 0), side + min(-dx, 0))
    dst[:, rows[0], cols[0]] = src[:, rows[1], cols[1]]
    return out


def _batched_cost(net: Network, x: Array, y: Array, loss_name: str) -> tuple[float, float]:
    """(mean cost, accuracy) of ``net`` on inputs x with one-hot targets y."""
    loss = LOSSES[(loss_name, net.output_name)]
    cost = acc = 0.0
    for s in range(0, len(x), 10_000):
        xs, ys = x[s : s + 10_000], y[s : s + 10_000]
        activations, z = net._layers(xs)
        cost += loss.value(z, activations[-1], ys) * len(xs)
        acc += np.count_nonzero(activations[-1].argmax(1) == ys.argmax(1))
    return float(cost / len(x)), float(acc / len(x))


def resolve_kernel(config: TrainConfig, dtype: type = np.float32) -> str:
    """Which loop trains: "compiled" (numba, float32 only) or "numpy"."""
    if config.kernel == "compiled" or (
        config.kernel == "auto" and kernel.AVAILABLE and dtype is np.float32
    ):
        return "compiled"
    return "numpy"


def _check(net: Network, images: Array, labels: Array, config: TrainConfig) -> None:
    if images.ndim != 2 or images.shape[1] != net.sizes[0] or len(images) != len(labels):
        raise ValueError(
            f"expected images (N, {net.sizes[0]}) and labels (N,), "
            f"got {images.shape} and {labels.shape}"
        )
    side = math.isqrt(images.shape[1])
    if config.augment and side**2 != images.shape[1]:
        raise ValueError(f"augment needs square images, got {images.shape[1]} pixels")
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
    back act on pixels in [0, 1]: input normalisation is folded into the first
    layer.  Ctrl-C ends training early with the best weights so far
    (``History.stopped == "interrupted"``).

    ``on_batch(done, total)`` reports progress within an epoch, ``on_epoch(record)``
    each finished epoch, ``on_state(state)`` hands over a ``TrainState`` after each
    epoch (for checkpoints); ``resume`` continues from such a state, giving the same
    weights as a run that was never interrupted.  ``targets`` (N, n_L) replace the
    one-hot labels, e.g. with a teacher's soft targets.
    """
    _check(net, images, labels, config)
    loss = lookup(LOSSES, (config.loss, net.output_name), "loss/output pair")
    dtype = net.params.dtype.type
    if targets is None:
        targets = one_hot(labels, net.sizes[-1], dtype)

    order = rng.permutation(len(images))
    train_idx, val_idx = order[config.validation :], order[: config.validation]
    scale, shift = input_transform(images[train_idx]) if config.normalize else (1.0, 0.0)
    val_x, val_y = scaled(images[val_idx], scale, shift, dtype), targets[val_idx]

    optimizer = OPTIMIZERS[config.optimizer](net.params.size, dtype, momentum=config.momentum)
    history = History()
    if resume is None:
        # Learn on transformed inputs: fold the inverse into layer 1 of the starting
        # weights, so the network computes the same function as before.
        if config.normalize:
            net.params[...] = net.fold_input_transform(1 / scale, -shift / scale).params
        best_params, best_score, since_best, step, first = net.params.copy(), -1.0, 0, 0, 1
    else:
        net.params[...] = resume.params
        best_params, best_score = resume.best_params.copy(), resume.best_score
        since_best, step, first = resume.since_best, resume.step, resume.epoch + 1
        optimizer.load_state(resume.optimizer, resume.optimizer_steps)
        rng.bit_generator.state = resume.rng
        history = History.from_dict(resume.history.to_dict())

    decay = net.weight_mask() * dtype(config.weight_decay)
    decay_term = np.zeros_like(net.params)
    n, B = len(train_idx), config.batch_size
    steps_per_epoch = math.ceil(n / B)
    total_steps = steps_per_epoch * config.epochs
    report_every = max(1, steps_per_epoch // 100)
    x_scale, x_shift = dtype(scale / 255), dtype(shift)
    x_buffer = np.empty((B, net.sizes[0]), dtype)
    moves = shifts(config.augment) if config.augment else [(0, 0)]
    shift_buffer = np.empty((B, net.sizes[0]), np.uint8)

    def diverged(where: str) -> TrainingDiverged:
        net.params[...] = best_params
        return TrainingDiverged(
            f"training diverged {where}: the cost or the weights became NaN or infinite. "
            f"The learning rate {config.lr:g} is probably too large for "
            f"{config.optimizer}; try --lr {config.lr / 10:g}"
        )

    def numpy_epoch(epoch: int, order: Array, move_of_batch: Array) -> tuple[float, int, float]:
        """One epoch, a mini-batch at a time: backprop, L2, the optimiser's step."""
        nonlocal step
        # this epoch's images in batch order, as one contiguous uint8 block
        epoch_x, epoch_y, epoch_labels = images[order], targets[order], labels[order]
        cost_sum, correct, lr = 0.0, 0, config.lr
        for i, s in enumerate(range(0, n, B)):
            batch = epoch_x[s : s + B]
            dy, dx = moves[move_of_batch[i]]
            if dy or dx:
                batch = shifted(batch, dy, dx, shift_buffer[: len(batch)])
            x = scaled(batch, scale, shift, dtype, out=x_buffer[: len(batch)])
            cost, a = net.backprop(x, epoch_y[s : s + B], loss)
            if not math.isfinite(cost):
                raise diverged(f"at epoch {epoch}, batch {i + 1}")
            cost_sum += cost * len(x)
            correct += int(np.count_nonzero(a.argmax(1) == epoch_labels[s : s + B]))
            if config.weight_decay:
                np.multiply(decay, net.params, out=decay_term)
                net.grad += decay_term
            lr = lr_at(config, step, total_steps)
            optimizer.step(net.params, net.grad, lr)
            step += 1
            if on_batch is not None and (i % report_every == 0 or s + B >= n):
                on_batch(min(s + B, n), n)
        return cost_sum, correct, lr

    # What the compiled loop needs besides each epoch's order: fixed for the run.
    codes = (
        kernel.ACTIVATION_CODES[config.activation],
        kernel.OUTPUT_CODES[config.output],
        kernel.LOSS_CODES[config.loss],
        kernel.OPTIMIZER_CODES[config.optimizer],
    )
    unused = np.zeros(1, dtype)
    states = (*(getattr(optimizer, name) for name in optimizer.names), unused, unused)[:2]
    hyper = (config.momentum, getattr(optimizer, "beta2", 0.0), getattr(optimizer, "eps", 0.0))
    sizes, move_table = np.array(net.sizes), np.array(moves)

    def compiled_epoch(epoch: int, order: Array, move_of_batch: Array) -> tuple[float, int, float]:
        """The same epoch as one compiled loop (``digitnet.kernel``)."""
        nonlocal step
        lrs = np.array([lr_at(config, step + i, total_steps) for i in range(steps_per_epoch)])
        data = (images, targets, labels, order, move_table[move_of_batch], x_scale, x_shift)
        cost_sum, correct, taken = kernel.epoch(
            net.params,
            net.grad,
            sizes,
            codes,
            data,
            B,
            lrs,
            decay,
            hyper,
            states,
            optimizer.steps,
        )
        optimizer.steps += taken
        step += taken
        if not math.isfinite(cost_sum):
            raise diverged(f"at epoch {epoch}")
        if on_batch is not None:
            on_batch(n, n)
        return cost_sum, correct, float(lrs[taken - 1])

    run_epoch = compiled_epoch if resolve_kernel(config, dtype) == "compiled" else numpy_epoch
    try:
        # Overflow shows up as a non-finite cost, caught below with a clear message.
        with (
            threadpool_limits(limits=1, user_api="blas"),
            np.errstate(over="ignore", invalid="ignore"),
        ):
            for epoch in range(first, config.epochs + 1):
                start = time.perf_counter()
                order = train_idx[rng.permutation(n)]
                move_of_batch = rng.integers(len(moves), size=steps_per_epoch)
                cost_sum, correct, lr = run_epoch(epoch, order, move_of_batch)
                if not np.isfinite(net.params).all():
                    raise diverged(f"at epoch {epoch}")
                val_loss = val_acc = None
                if len(val_x):
                    val_loss, val_acc = _batched_cost(net, val_x, val_y, config.loss)
                record = Epoch(
                    epoch,
                    cost_sum / n,
                    float(correct / n),
                    val_loss,
                    val_acc,
                    lr,
                    time.perf_counter() - start,
                )
                history.epochs.append(record)
                score = val_acc if val_acc is not None else epoch
                if score > best_score:
                    best_params[...] = net.params
                    best_score, history.best_epoch, since_best = score, epoch, 0
                else:
                    since_best += 1
                stop = bool(config.patience and since_best >= config.patience)
                if stop:
                    history.stopped = "early-stopped"
                if on_state is not None:
                    on_state(
                        TrainState(
                            epoch,
                            step,
                            net.params.copy(),
                            best_params.copy(),
                            best_score,
                            since_best,
                            optimizer.state(),
                            optimizer.steps,
                            rng.bit_generator.state,
                            History.from_dict(history.to_dict()),
                        )
                    )
                if on_epoch is not None:
                    on_epoch(record)
                if stop:
                    break
    except KeyboardInterrupt:
        history.stopped = "interrupted"
    net.params[...] = best_params
    if config.normalize:
        net.params[...] = net.fold_input_transform(scale, shift).params
    return history


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
    history = fit(
        net,
        images,
        labels,
        config,
        data_rng,
        on_batch=on_batch,
        on_epoch=on_epoch,
        on_state=on_state,
    )
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
