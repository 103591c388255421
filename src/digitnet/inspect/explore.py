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

import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from threading import Event, Lock

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
#: Images per forward pass over a set: between two passes, work can be stopped.
CHUNK = 2_000
#: Nudges: the L2 length of one step (pixels in [0, 1]) and the most steps taken.
NUDGE_STEP, NUDGE_STEPS = 0.02, 1000


class NudgeFailed(ValueError):
    """No nudge within the budget made the network answer the target."""


# -- stopping long work -------------------------------------------------------------------


class Stopped(Exception):
    """Work given up because whoever asked for it stopped waiting (``stoppable``)."""


_STOP: ContextVar[tuple[Event, ...]] = ContextVar("digitnet_stop", default=())


@contextmanager
def stoppable(*events: Event) -> Iterator[None]:
    """Within this context (in this thread), ``checkpoint`` raises ``Stopped`` once any
    of ``events`` is set: the slow loops here (and in ``learning``, ``landscape``) call
    it between chunks, so a server can give up work its client no longer waits for."""
    token = _STOP.set(_STOP.get() + events)
    try:
        yield
    finally:
        _STOP.reset(token)


def checkpoint() -> None:
    """Raise ``Stopped`` if the surrounding ``stoppable`` was told to stop."""
    if any(event.is_set() for event in _STOP.get()):
        raise Stopped("the work was stopped: its client left or the server is stopping")


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


def top_images(net: Network, images: Array, k: int = TOP, batch: int = CHUNK) -> list[tuple]:
    """For every layer l = 1..L: (indices (n_l, k), activations (n_l, k)), each neuron's
    k images (rows of ``images``, (N, 784)) with the highest activation, highest first
    (ties: the lower index first)."""
    keys, acts = [], []
    for s in range(0, len(images), batch):
        checkpoint()
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
        checkpoint()
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


def chunked_forward(net: Network, images: Array, batch: int = CHUNK) -> Pass:
    """``forward(net, images)`` ``batch`` rows at a time (a ``checkpoint`` between
    them), the parts joined: the same a[l] (N, n_l) and z[l]."""
    parts = []
    for s in range(0, len(images), batch):
        checkpoint()
        parts.append(forward(net, images[s : s + batch]))
    join = lambda arrays: None if arrays[0] is None else np.concatenate(arrays)  # noqa: E731
    return Pass(
        [join([p.a[l] for p in parts]) for l in range(len(parts[0].a))],
        [join([p.z[l] for p in parts]) for l in range(len(parts[0].z))],
    )


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
    whole = chunked_forward(net, images)  # each knock-out reruns only the layers after it
    base = whole.a[-1].argmax(axis=1)
    accuracy, per_digit = np.zeros(len(neurons)), np.zeros((len(neurons), k))
    for r, (l, j) in enumerate(neurons):
        checkpoint()
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
        checkpoint()
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


def nbytes(value) -> int:
    """About how many bytes ``value`` holds: arrays by their buffers, containers by
    their items (a long list of numbers at 40 bytes an item), anything else 64."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, dict):
        return 64 + sum(nbytes(k) + nbytes(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        ends = value[:1] + value[-1:]
        if len(value) > 16 and all(isinstance(v, (int, float)) for v in ends):
            return 56 + 40 * len(value)  # a long list of numbers, without a look at each
        return 56 + 8 * len(value) + sum(nbytes(v) for v in value)
    if isinstance(value, KnockoutTable):
        return nbytes([value.accuracy, value.per_digit, value.neurons])
    return 64


class Atlas:
    """The slow parts for one network on one image set, each computed on first use and
    kept: the top images of every neuron, the knock-out table, every layer's "wants".
    Safe to share between threads (each part is computed once; a part already made is
    read without waiting for another being made).  It holds the network weakly, so that
    a cache of atlases never keeps a network alive (``net`` is None once it is gone).
    A network that does not read these images (n_0 is not their width) has what needs
    no images: its "wants"; no top images ((n_l, 0) each) and no knock-out table (None)."""

    def __init__(self, net: Network, images: Array, labels: Array) -> None:
        if images.shape[1] != net.sizes[0]:  # not its inputs: no images to rank or score
            images, labels = images[:0, :0].reshape(0, net.sizes[0]), labels[:0]
        self._net = weakref.ref(net)
        self.images, self.labels = images, labels
        self._lock = Lock()
        self._top: list[tuple] | None = None
        self._table: KnockoutTable | None = None
        self._wants: dict[int, Array] = {}

    @property
    def net(self) -> Network | None:
        return self._net()

    def _made(self, compute):
        net = self.net
        if net is None:
            raise Stopped("the network was let go")
        return compute(net)

    def top(self) -> list[tuple]:
        if self._top is None:
            with self._lock:
                if self._top is None:
                    self._top = self._made(self._top_images)
        return self._top

    def _top_images(self, net: Network) -> list[tuple]:
        if not len(self.images):
            return [(np.zeros((n, 0), np.intp), np.zeros((n, 0), np.float32))
                    for n in net.sizes[1:]]  # fmt: skip
        return top_images(net, self.images)

    def table(self) -> KnockoutTable | None:
        if not len(self.images):
            return None
        if self._table is None:
            with self._lock:
                if self._table is None:
                    self._table = self._made(
                        lambda net: knockout_table(net, self.images, self.labels)
                    )
        return self._table

    def wants(self, layer: int) -> Array:
        if layer not in self._wants:
            with self._lock:
                if layer not in self._wants:
                    self._wants[layer] = self._made(lambda net: wants(net, layer))
        return self._wants[layer]

    def ready(self, layer: int) -> bool:
        """Whether everything ``GET /api/neuron`` shows of a neuron of ``layer`` is made."""
        net = self.net
        hidden = net is not None and layer < len(net.W)
        return self._top is not None and layer in self._wants and (
            self._table is not None or not hidden or not len(self.images)
        )

    @property
    def nbytes(self) -> int:
        """About how many bytes the parts made so far hold."""
        return nbytes([self._top or [], self._table, list(self._wants.values())])


#: Most multiply-adds one explorer request may cost the first time: about 15 s of one
#: core on a busy 2-core machine (784-128-128-10 on 10,000 images: 3.4e10, 14.6 s at a
#: load average of 15; 784-16-16-10: 3.5e8).
MAX_EXPLORE_COST = 5e10


def check_cost(what: str, net: Network, cost: float) -> None:
    """Refuse (ValueError) work on ``net`` that would cost over ``MAX_EXPLORE_COST``."""
    if cost > MAX_EXPLORE_COST:
        shape = "-".join(map(str, net.sizes))
        raise ValueError(
            f"{what} of a {shape} network takes about {cost:.1e} multiply-adds, over the "
            f"explorer's bound of {MAX_EXPLORE_COST:.0e}; explore a smaller network"
        )


def nudge_cost(net: Network, steps: int = NUDGE_STEPS) -> float:
    """About how many multiply-adds ``nudge`` may cost: ``steps`` forward and backward
    passes of one input, 3 per parameter each."""
    return float(3 * steps * net.n_parameters)


def explore_cost(net: Network, n_images: int) -> float:
    """About how many multiply-adds a first ``GET /api/neuron`` costs for ``net`` on
    ``n_images`` images, from the sizes n_0..n_L: the knock-out table reruns, for each
    hidden neuron of layer l, the layers after it, n_images · Σ_{m>l} n_{m-1} n_m; the
    "wants" of a layer run ``WANTS_STEPS`` forward and backward passes for each of its
    n_l neurons, 2 · n_l · Σ_{m<=l} n_{m-1} n_m each."""
    n = net.sizes
    after = [sum(n[m - 1] * n[m] for m in range(l + 1, len(n))) for l in range(len(n))]
    upto = [sum(n[m - 1] * n[m] for m in range(1, l + 1)) for l in range(len(n))]
    table = sum(n[l] * n_images * after[l] for l in range(1, len(n) - 1))
    wanted = max(2 * WANTS_STEPS * n[l] * upto[l] for l in range(1, len(n)))
    return float(table + wanted + n_images * upto[-1])
