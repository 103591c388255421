"""What the hidden neurons do: what excites them, what they want, what breaks without
them, and how little it takes to fool the network.

Neurons are named as in ``GET /api/neuron``: ``layer`` counts weight layers from 1
(1 = the first hidden layer, ``L = len(net.W)`` = the outputs) and ``index`` from 0,
so neuron (l, j) computes ``a_l[j] = f(W[l-1][j] · a_{l-1} + b[l-1][j])``.

Everything here is built from ``knockout.forward`` (``network.feedforward`` one layer
at a time, so that a layer's activations can be switched off before the next one reads
them) and the chain rule of ``network.backprop`` run down to the input:

    ∂J/∂a_{l-1} = δ_l W[l-1],   δ_{l-1} = ∂J/∂a_{l-1} ⊙ f'(a_{l-1}),   ∂J/∂x = δ_1 W[0]

where δ_l = ∂J/∂z_l.  Batches are rows, as in ``network``: x is (B, 784).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from threading import Lock

import numpy as np

from ..learn.activations import LOSSES, log_softmax
from ..learn.knockout import Knockout, Pass, check_neuron, forward, keep_masks
from ..learn.network import Network
from ..learn.primitives import times_each

Array = np.ndarray

#: How many top images a neuron shows.
TOP = 9
#: "Wants": L2 penalty λ in J(x) = g(x) - ½ λ ‖x‖², step size and steps of the ascent.
WANTS_L2, WANTS_RATE, WANTS_STEPS = 0.2, 1.0, 300
#: Nudges: the L2 length of one step (pixels in [0, 1]) and the most steps taken.
NUDGE_STEP, NUDGE_STEPS = 0.02, 1000


class NudgeFailed(ValueError):
    """No nudge within the budget made the network answer the target."""


def check_digit(net: Network, value: int, name: str = "target") -> int:
    """``value`` as an int if it names one of the network's outputs (a digit 0-9 for
    MNIST's ten), else a ValueError naming ``name`` and the digits there are."""
    k = net.sizes[-1]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < k:
        raise ValueError(f"{name} must be a digit 0-{k - 1}, got {value!r}")
    return int(value)


def input_gradient(
    net: Network, run: Pass, layer: int, delta: Array, knockout: Knockout = ()
) -> Array:
    """∂J/∂x (B, 784) for a J whose gradient at layer ``layer``'s weighted input is
    ``delta`` = ∂J/∂z_layer (B, n_layer), from a forward ``run``: backpropagation's
    δ_{l-1} = (δ_l W[l-1]) ⊙ f'(a_{l-1}), with knocked-out neurons passing nothing back,
    down to ∂J/∂x = δ_1 W[0]."""
    keep = keep_masks(net, knockout)
    for l in range(layer - 1, 0, -1):
        delta = times_each(delta @ net.W[l], net.activation.prime, run.a[l]) * keep[l]
    return delta @ net.W[0]


def _objective_delta(net: Network, run: Pass, layer: int, index: Array) -> Array:
    """δ = ∂J/∂z_layer for each row's neuron ``index[r]``: J = z_j for hidden neurons
    (and sigmoid outputs), J = log a_j for softmax outputs (∂/∂z = e_j - a).  Both rise
    exactly when a_j does, and neither stops pulling where a_j saturates."""
    e = np.zeros_like(run.a[layer])
    e[np.arange(len(e)), index] = 1
    if layer == len(net.W) and net.output_name == "softmax":
        return e - run.a[layer]
    return e


def neuron_gradient(
    net: Network, x: Array, layer: int, index: int, knockout: Knockout = ()
) -> tuple[Array, Array]:
    """For x (B, 784): J (B,), the quantity "wants" raises for neuron (layer, index)
    (z_j, or log a_j for a softmax output), and ∂J/∂x (B, 784)."""
    check_neuron(net, layer, index)
    run = forward(net, x, knockout)
    rows = np.full(len(run.a[0]), index)
    if layer == len(net.W) and net.output_name == "softmax":
        J = log_softmax(run.z[layer])[:, index]
    else:
        J = run.z[layer][:, index]
    return J, input_gradient(net, run, layer, _objective_delta(net, run, layer, rows), knockout)


# -- what excites a neuron ----------------------------------------------------------------


def _rank_keys(net: Network, run: Pass) -> list[Array]:
    """Per layer l = 1..L, a key (B, n_l) that orders images as a_l does: z_l (f rises
    with z, and z has no float ties where σ saturates at 1), log softmax(z_L) for a
    softmax output."""
    keys = run.z[1:]
    if net.output_name == "softmax":
        keys = [*keys[:-1], log_softmax(run.z[-1])]
    return keys


def top_images(net: Network, images: Array, k: int = TOP, batch: int = 10_000) -> list[tuple]:
    """For every layer l = 1..L: (indices (n_l, k), activations (n_l, k)), each neuron's
    k images (rows of ``images``, (N, 784)) with the highest activation, highest first
    (ties: the lower index first)."""
    keys, acts = [], []
    for s in range(0, len(images), batch):
        run = forward(net, images[s : s + batch])
        keys.append(_rank_keys(net, run))
        acts.append(run.a[1:])
    out = []
    for l in range(len(net.W)):
        key = np.concatenate([part[l] for part in keys])  # (N, n_l)
        a = np.concatenate([part[l] for part in acts])
        order = np.argsort(-key, axis=0, kind="stable")[:k].T  # (n_l, k)
        out.append((order, np.take_along_axis(a.T, order, axis=1)))
    return out


# -- what a neuron wants ------------------------------------------------------------------


def wants(
    net: Network,
    layer: int,
    index: int | Sequence[int] | None = None,
    *,
    l2: float = WANTS_L2,
    rate: float = WANTS_RATE,
    steps: int = WANTS_STEPS,
    start: float = 0.0,
) -> Array:
    """The input x in [0, 1]^784 that maximises J(x) - ½ λ ‖x‖² (J = z_j, or log a_j
    for a softmax output; λ = ``l2``), by projected gradient ascent from a flat picture
    of value ``start`` (0: blank):  x ← clip(x + η (∂J/∂x - λ x), 0, 1).

    ``index`` is one neuron ((784,) back), several, or None for the whole layer
    ((n, 784) back).  For layer 1, J = w·x + b is linear and the answer is exactly
    clip(w / λ, 0, 1): the positive part of the weights picture, and no more."""
    one = isinstance(index, (int, np.integer))
    rows = np.arange(net.sizes[layer]) if index is None else np.atleast_1d(index)
    for j in rows:
        check_neuron(net, layer, int(j))
    x = np.full((len(rows), net.sizes[0]), start, dtype=net.params.dtype)
    lam, eta = net.params.dtype.type(l2), net.params.dtype.type(rate)
    for _ in range(steps):
        run = forward(net, x)
        g = input_gradient(net, run, layer, _objective_delta(net, run, layer, rows))
        x = np.clip(x + eta * (g - lam * x), 0, 1)
    return x[0] if one else x


# -- knock-outs ---------------------------------------------------------------------------


def per_digit_accuracy(guesses: Array, labels: Array, k: int) -> Array:
    """(k,) fraction of each digit's images guessed right (0 where a digit has none)."""
    right = np.bincount(labels[guesses == labels], minlength=k)[:k]
    total = np.bincount(labels, minlength=k)[:k]
    return np.divide(right, total, out=np.zeros(k), where=total > 0)


@dataclass
class KnockoutTable:
    """Test accuracy with one hidden neuron switched off at a time.

    ``neurons[r]`` = (layer, index) of row r; ``accuracy`` (R,) and ``per_digit``
    (R, k) with it knocked out; ``base_accuracy`` and ``base_per_digit`` (k,) with
    nothing knocked out.  ``lost = base_per_digit - per_digit``: which digits need it."""

    neurons: list[tuple[int, int]]
    accuracy: Array
    per_digit: Array
    base_accuracy: float
    base_per_digit: Array

    @property
    def lost(self) -> Array:
        return self.base_per_digit[None, :] - self.per_digit


def guesses(net: Network, images: Array, knockout: Knockout = (), batch: int = 10_000) -> Array:
    """The network's answers (N,) for images (N, 784), with the knock-outs applied."""
    parts = [
        forward(net, images[s : s + batch], knockout).a[-1] for s in range(0, len(images), batch)
    ]
    return np.concatenate(parts).argmax(axis=1)


def knockout_table(net: Network, images: Array, labels: Array, on_neuron=None) -> KnockoutTable:
    """``KnockoutTable`` for every hidden neuron on images (N, 784) (all in one batch:
    4 bytes a pixel) with labels (N,);
    ``on_neuron(done, total)`` is called after each neuron (for progress)."""
    if len(net.W) < 2:
        raise ValueError(
            f"a {'-'.join(map(str, net.sizes))} network has no hidden neurons to knock out"
        )
    k = net.sizes[-1]
    neurons = [(l, j) for l in range(1, len(net.W)) for j in range(net.sizes[l])]
    whole = forward(net, images)  # then each knock-out reruns only the layers after it
    base = whole.a[-1].argmax(axis=1)
    accuracy, per_digit = np.zeros(len(neurons)), np.zeros((len(neurons), k))
    for r, (l, j) in enumerate(neurons):
        a_l = whole.a[l].copy()
        a_l[:, j] = 0
        guess = forward(net, a_l, start=l).a[-1].argmax(axis=1)
        accuracy[r] = np.mean(guess == labels)
        per_digit[r] = per_digit_accuracy(guess, labels, k)
        if on_neuron is not None:
            on_neuron(r + 1, len(neurons))
    return KnockoutTable(
        neurons,
        accuracy,
        per_digit,
        float(np.mean(base == labels)),
        per_digit_accuracy(base, labels, k),
    )


# -- nudges -------------------------------------------------------------------------------


def cost_gradient(
    net: Network, x: Array, target: int, knockout: Knockout = ()
) -> tuple[Pass, Array, Array]:
    """For x (B, 784): the forward pass, the cross-entropy C (B,) of answering ``target``
    (-log a_target for a softmax output) and ∂C/∂x (B, 784), from δ_L of ``LOSSES``."""
    check_digit(net, target)
    k = net.sizes[-1]
    run = forward(net, x, knockout)
    y = np.zeros((len(run.a[0]), k), dtype=run.a[0].dtype)
    y[:, target] = 1
    loss = LOSSES[("cross-entropy", net.output_name)]
    a, z = run.a[-1], run.z[-1]
    C = np.array([loss.value(z[i : i + 1], a[i : i + 1], y[i : i + 1]) for i in range(len(y))])
    return run, C, input_gradient(net, run, len(net.W), loss.delta(z, a, y), knockout)


@dataclass
class Nudge:
    """A changed input: ``pixels`` (784,) in [0, 1], the network's answer ``digit`` and
    ``probabilities`` (k,) for it, the change's size ``linf`` = max |Δx| and ``l2`` = ‖Δx‖,
    and the gradient ``steps`` it took."""

    pixels: Array
    digit: int
    probabilities: Array
    linf: float
    l2: float
    steps: int


def nudge(
    net: Network,
    x: Array,
    target: int,
    *,
    step: float = NUDGE_STEP,
    max_steps: int = NUDGE_STEPS,
    knockout: Knockout = (),
    until: float | None = None,
) -> Nudge:
    """The first input along steepest descent of the cross-entropy C = -log a_target
    that the network reads as ``target``:  x ← clip(x - s ∂C/∂x / ‖∂C/∂x‖, 0, 1), steps
    of L2 length s = ``step``, stopping at the first step whose guess is the target
    (and, given ``until`` in (0, 1), whose probability for it is at least ``until``:
    the network's confident answer, not a near tie).

    x is (784,) in [0, 1].  NudgeFailed if ``max_steps`` steps do not get there."""
    check_digit(net, target)
    if until is not None and not 0 < until < 1:
        raise ValueError(f"until: expected a probability between 0 and 1, got {until!r}")
    x0 = net.as_input(np.asarray(x)).reshape(1, -1)
    if x0.min() < 0 or x0.max() > 1:
        raise ValueError("the input's pixels must lie in [0, 1]")
    s = x0.dtype.type(step)
    x = x0.copy()
    for n in range(max_steps + 1):
        run, _, g = cost_gradient(net, x, target, knockout)
        p = run.a[-1][0] / run.a[-1][0].sum()
        if int(p.argmax()) == target and (until is None or p[target] >= until):
            change = (x - x0)[0].astype(np.float64)
            return Nudge(
                x[0],
                target,
                p,
                float(np.abs(change).max()),
                float(np.linalg.norm(change)),
                n,
            )
        if n == max_steps:
            break
        norm = np.linalg.norm(g)
        if not norm > 0:
            break
        x = np.clip(x - s * g / norm, 0, 1)
    sure = "" if until is None else f", {100 * until:g}% sure"
    raise NudgeFailed(
        f"no nudge within the budget of {max_steps} steps of L2 length {step:g} made the "
        f"network answer {target}{sure}"
    )


# -- all of it for one model, computed once -------------------------------------------------


class Atlas:
    """The slow parts for one network on one image set, each computed on first use and
    kept: the top images of every neuron, the knock-out table, every layer's "wants".
    Safe to share between threads (each part is computed once)."""

    def __init__(self, net: Network, images: Array, labels: Array) -> None:
        self.net, self.images, self.labels = net, images, labels
        self._lock = Lock()
        self._top: list[tuple] | None = None
        self._table: KnockoutTable | None = None
        self._wants: dict[int, Array] = {}

    def top(self) -> list[tuple]:
        with self._lock:
            if self._top is None:
                self._top = top_images(self.net, self.images)
            return self._top

    def table(self) -> KnockoutTable:
        with self._lock:
            if self._table is None:
                self._table = knockout_table(self.net, self.images, self.labels)
            return self._table

    def wants(self, layer: int) -> Array:
        with self._lock:
            if layer not in self._wants:
                self._wants[layer] = wants(self.net, layer)
            return self._wants[layer]
