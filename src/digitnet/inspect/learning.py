"""How the network learns: what one example asks of each weight and bias, one step of
gradient descent, mini-batches against the whole training set, and the cost landscape.

Signs are those of the video: a *nudge* is the negative gradient −∂C/∂θ, the change
that lowers the cost.  Every gradient here comes from ``network.backprop`` (the chain
rule written once, the one the training loop runs); for one example x with target y
(one-hot) and δ_l = ∂C/∂z_l it gives ∂C/∂b_l = δ_l and ∂C/∂W_l = δ_l a_{l-1}ᵀ.

Layers are numbered as in ``GET /api/neuron``: layer l = 1..L names the neurons after
the input (1 = the first hidden layer, L = the outputs) and the weights ``W[l-1]``
(n_l, n_{l-1}) and biases ``b[l-1]`` (n_l,) that feed them.  Batches are rows, as in
``network``: images are (N, 784).
"""

from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from threading import RLock

import numpy as np
from threadpoolctl import threadpool_limits

from ..learn.activations import LOSSES, Loss, lookup
from ..learn.network import Network
from ..train import one_hot
from ..vision.recognise import probabilities
from .explore import check_digit, checkpoint, nbytes

Array = np.ndarray

#: How many of the strongest connections ``Wishes.top`` lists.
TOP = 10
#: Images per forward and backward pass over a big set (10,000 float32 rows: 31 MB).
CHUNK = 10_000
#: The landscape's images: the first 10,000 of the training set.
LANDSCAPE_IMAGES = 10_000
#: The landscape's grid: odd sizes from 5 to 41 points a side; defaults.
LANDSCAPE_SIZES, LANDSCAPE_SIZE, LANDSCAPE_SPAN = (5, 41), 21, 1.0


# -- checks -------------------------------------------------------------------------------


def check_loss(net: Network, loss: str) -> Loss:
    """The ``LOSSES`` entry for (loss, the network's output), as training looks it up."""
    return lookup(LOSSES, (loss, net.output_name), "loss/output pair")


def model_loss(net: Network, info: dict | None = None) -> str:
    """The loss a model's gradients are taken under: the one its record names
    (``info["loss"]``, else ``info["config"]["loss"]``, as a model file keeps it), or
    when it names none, cross-entropy for a softmax output and quadratic for a sigmoid
    one (the pairs the video and Nielsen's book use)."""
    info = info or {}
    config = info.get("config")
    named = info.get("loss") or (config.get("loss") if isinstance(config, dict) else None)
    if named:
        check_loss(net, named)
        return named
    return "cross-entropy" if net.output_name == "softmax" else "quadratic"


def check_pixels(net: Network, pixels) -> Array:
    """One input as (n_0,) in the network's dtype: any array of n_0 = 784 numbers in
    [0, 1] (a (28, 28) picture too), else a ValueError naming what arrived."""
    n = net.sizes[0]
    try:
        x = np.asarray(pixels, dtype=np.float64)
    except (TypeError, ValueError):
        what = type(pixels).__name__
        raise ValueError(f"pixels must be {n} numbers in [0, 1], got {what}") from None
    if x.size != n:
        raise ValueError(f"pixels must be {n} numbers in [0, 1], got {x.size} (shape {x.shape})")
    if not np.isfinite(x).all():
        raise ValueError(f"pixels must be {n} finite numbers in [0, 1], got NaN or infinity")
    if x.min() < 0 or x.max() > 1:
        raise ValueError(
            f"pixels must lie in [0, 1], got values from {x.min():g} to {x.max():g}"
        )
    return x.reshape(n).astype(net.params.dtype)


def check_set(net: Network, images: Array, labels: Array) -> None:
    """Refuse a training set that is not uint8 images (N, n_0) with N labels 0..k-1."""
    n, k = net.sizes[0], net.sizes[-1]
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 2):
        what = getattr(images, "dtype", type(images).__name__)
        raise ValueError(f"images must be uint8 (N, {n}), got {what} {np.shape(images)}")
    if images.shape[1] != n or len(images) == 0:
        raise ValueError(f"images must be uint8 (N, {n}) with N >= 1, got {images.shape}")
    labels = np.asarray(labels)
    if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
        raise ValueError(
            f"labels must be {len(images)} integers, got {labels.dtype} {labels.shape}"
        )
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"labels must be digits 0-{k - 1}, got {labels.min()}-{labels.max()}")


def check_whole(value, name: str, low: int, high: int) -> int:
    """value as an int in [low, high], or a ValueError naming ``name`` and the range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a whole number {low}-{high}, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be {low}-{high}, got {value}")
    return int(value)


def check_positive(value, name: str) -> float:
    """value as a positive finite float, or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


# -- the gradient, from the library's backpropagation --------------------------------------


def gradient(net: Network, x: Array, y: Array, loss: Loss | str) -> tuple[float, Array, Array]:
    """The mean cost C of the batch x (B, n_0) with targets y (B, n_L), the output a_L
    (B, n_L) and ∂C/∂params, a new vector laid out as ``net.params``.

    ``network.backprop`` runs on a copy, so ``net`` (maybe shared between threads)
    keeps its own ``grad`` untouched."""
    scratch = net.copy()
    cost, a = scratch.backprop(x, y, loss)
    return cost, a, scratch.grad


def split(net: Network, flat: Array) -> tuple[list[Array], list[Array]]:
    """A vector laid out as ``net.params`` cut into W[l] (n_out, n_in) and b[l] (n_out,)."""
    holder = net.copy()
    holder.params[...] = flat
    return holder.W, holder.b


def api_order(net: Network, flat: Array) -> Array:
    """A vector laid out as ``net.params`` (W[0], b[0], W[1], b[1], ...) in the order of
    ``GET /api/model``'s ``weights`` then ``biases``: every weight matrix row by row,
    layer by layer (W[0][0, 0], W[0][0, 1], ..., W[L-1][-1, -1]), then every bias,
    layer by layer (b[0][0], ..., b[L-1][-1])."""
    W, b = split(net, flat)
    return np.concatenate([w.ravel() for w in W] + list(b))


@dataclass
class Wishes:
    """What one example x with label y asks of every parameter: nudges −∂C/∂θ.

    ``deltas[l-1]`` (n_l,) = −∂C/∂z_l for layers l = 1..L, which are also the bias
    nudges −∂C/∂b_l; ``wants[l-1]`` (n_l,) = −∂C/∂a_l = W_{l+1}ᵀ(−∂C/∂z_{l+1}) for the
    hidden layers l = 1..L-1, what the next layer's neurons together want from each;
    ``weight_nudges[l-1]`` (n_l, n_{l-1}) = −∂C/∂W_l = deltas[l-1] a_{l-1}ᵀ, shaped as
    ``net.W[l-1]``; ``grad`` the whole ∂C/∂θ laid out as ``net.params``.

    ``top`` lists the ``TOP`` weights with the largest |∂C/∂w|, largest first (ties:
    the earlier in ``net.params`` first), each {"layer", "to", "from", "nudge"}: the
    weight ``W[layer-1][to, from]``, layer 1 being the weights into the first hidden
    layer, as in ``GET /api/neuron``; ``to`` a neuron of layer ``layer``, ``from`` one
    of layer ``layer - 1`` (0 = the pixels)."""

    loss: str
    label: int
    cost: float
    digit: int
    probabilities: list[float]
    deltas: list[Array]
    wants: list[Array]
    weight_nudges: list[Array]
    top: list[dict]
    grad: Array

    def to_json(self) -> dict:
        """Plain lists and numbers, for JSON."""
        return {
            "loss": self.loss,
            "label": self.label,
            "cost": self.cost,
            "digit": self.digit,
            "probabilities": self.probabilities,
            "deltas": [d.tolist() for d in self.deltas],
            "wants": [w.tolist() for w in self.wants],
            "weight_nudges": [w.tolist() for w in self.weight_nudges],
            "top": self.top,
        }


def top_weights(nudges: Sequence[Array], count: int = TOP) -> list[dict]:
    """The ``count`` weights with the largest |nudge| over all layers, largest first;
    see ``Wishes.top`` for the numbering."""
    flat = np.concatenate([n.ravel() for n in nudges])
    order = np.argsort(-np.abs(flat), kind="stable")[:count]
    starts = np.cumsum([0] + [n.size for n in nudges])
    out = []
    for i in order:
        l = int(np.searchsorted(starts, i, side="right")) - 1
        to, frm = divmod(int(i - starts[l]), nudges[l].shape[1])
        out.append({"layer": l + 1, "to": to, "from": frm, "nudge": float(flat[i])})
    return out


def wishes(net: Network, pixels, label: int, loss: str) -> Wishes:
    """What the example ``pixels`` (784 numbers in [0, 1]) with ``label`` asks of each of
    the network's weights and biases under its ``loss`` ("cross-entropy" or
    "quadratic"): its cost, the guess, and the nudges of ``Wishes``."""
    x = check_pixels(net, pixels)[None, :]  # (1, n_0)
    label = check_digit(net, label, "label")
    rule = check_loss(net, loss)
    y = one_hot(np.array([label]), net.sizes[-1], net.params.dtype)  # (1, n_L)
    cost, a, grad = gradient(net, x, y, rule)
    dW, db = split(net, -grad)  # nudges; for one example db[l] = -δ_{l+1} itself
    deltas = [d.copy() for d in db]
    wants = [W.T @ d for W, d in zip(net.W[1:], deltas[1:], strict=True)]  # (n_l,)
    p = probabilities(a[0])
    return Wishes(
        loss=loss,
        label=label,
        cost=float(cost),
        digit=int(np.argmax(p)),
        probabilities=p.tolist(),
        deltas=deltas,
        wants=wants,
        weight_nudges=[w.copy() for w in dW],
        top=top_weights(dW),
        grad=grad,
    )


# -- one step of gradient descent ----------------------------------------------------------


def descend(net: Network, grad: Array, lr: float) -> Network:
    """A new network with params θ − lr·∇C (plain gradient descent: no momentum, no
    weight decay), in the network's dtype; ``net`` is left as it was."""
    lr = check_positive(lr, "lr")
    stepped = net.copy()
    stepped.params[...] = net.params - lr * grad
    return stepped


@dataclass
class Step:
    """One step on one example: the new ``network`` and the cost and guess before and
    after, with the probabilities after."""

    network: Network
    cost_before: float
    cost_after: float
    digit_before: int
    digit_after: int
    probabilities_after: list[float]


def step(net: Network, pixels, label: int, loss: str, lr: float = 1.0) -> Step:
    """θ ← θ − lr·∇C for the example ``pixels`` with ``label`` (see ``wishes``) in a new
    network; steps chain: ``step(step(net, ...).network, ...)``."""
    before = wishes(net, pixels, label, loss)
    stepped = descend(net, before.grad, lr)
    x = check_pixels(stepped, pixels)[None, :]
    y = one_hot(np.array([before.label]), net.sizes[-1], net.params.dtype)
    cost_after, a, _ = gradient(stepped, x, y, check_loss(net, loss))
    p = probabilities(a[0])
    return Step(stepped, before.cost, float(cost_after), before.digit, int(np.argmax(p)),
                p.tolist())  # fmt: skip


# -- many examples --------------------------------------------------------------------------


def mean_gradient(
    net: Network, images: Array, labels: Array, loss: Loss | str, rows: Array | None = None
) -> tuple[float, Array]:
    """The mean cost over the chosen ``rows`` of uint8 images (N, n_0) (all when None),
    pixels scaled to [0, 1], and its gradient laid out as ``net.params`` (float64):

        C = (1/m) Σ_i C_i,   ∇C = Σ_chunks (m_chunk/m) ∇C_chunk,

    ``CHUNK`` images at a time through ``network.backprop`` (batched GEMMs, no loop
    over images)."""
    rows = np.arange(len(images)) if rows is None else np.asarray(rows)
    if isinstance(loss, str):
        loss = check_loss(net, loss)
    scratch, k, m = net.copy(), net.sizes[-1], len(rows)
    total_cost, total = 0.0, np.zeros(net.params.size)
    with one_blas_thread():
        for s in range(0, m, CHUNK):
            checkpoint()
            chunk = rows[s : s + CHUNK]
            x = scratch.as_input(images[chunk])  # uint8 -> [0, 1] in the network's dtype
            cost, _ = scratch.backprop(x, one_hot(labels[chunk], k, net.params.dtype), loss)
            total_cost += cost * len(chunk) / m
            total += scratch.grad * (len(chunk) / m)
    return total_cost, total


def one_blas_thread():
    """A context in which BLAS runs on one thread, as training does: the products here
    are tall and thin ((10,000, 16) by (16, 16)), and OpenBLAS's threads, on a
    machine whose cores are busy, made each 40 times slower (3.3 ms against 0.08)."""
    return threadpool_limits(1, "blas")


def fingerprint(net: Network, *extra) -> str:
    """A digest of the network (shape, functions, dtype, every parameter) and ``extra``:
    two networks with the same fingerprint compute the same function."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((net.sizes, net.activation_name, net.output_name, str(net.params.dtype),
                   extra)).encode())  # fmt: skip
    h.update(np.ascontiguousarray(net.params).tobytes())
    return h.hexdigest()


#: Bytes one ``Cache`` may hold in all; past that the least recently used answers go.
CACHE_BYTES = 128 * 2**20


class Cache:
    """What is slow to compute on one training set (uint8 images (N, n_0), labels (N,),
    kept by reference and never changed), kept per network and question: the full-set
    gradient, landscapes.  Keyed by ``fingerprint`` (so a network changed in place is a
    new key); the least recently used answers go once they hold over ``max_bytes``
    (``explore.nbytes``), and an answer given an ``owner`` network goes when that
    network is collected.  Safe to share between threads: each answer is computed once
    (under a lock of its own key, so an answer already kept never waits behind one
    being computed)."""

    def __init__(self, images: Array, labels: Array, max_bytes: int = CACHE_BYTES) -> None:
        self.images, self.labels, self.max_bytes = images, np.asarray(labels), max_bytes
        self._kept: OrderedDict[str, tuple[object, int]] = OrderedDict()  # answer, bytes
        self._lock = RLock()  # re-entrant: an answer kept may be built from another
        self._making: dict[str, RLock] = {}
        self._gone: deque[str] = deque()  # keys whose owner was collected

    def get(self, key: str, compute: Callable[[], object], owner: Network | None = None):
        """The answer kept under ``key``, or ``compute()``'s, then kept."""
        with self._lock:
            self._let_go()
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key][0]
            making = self._making.setdefault(key, RLock())
        with making:
            with self._lock:
                if key in self._kept:
                    return self._kept[key][0]
            try:
                value = compute()
            finally:
                with self._lock:
                    self._making.pop(key, None)
            with self._lock:
                self._kept[key] = (value, nbytes(value))
                if owner is not None:
                    weakref.finalize(owner, self._gone.append, key)
                self._trim(key)
            return value

    def _let_go(self) -> None:
        while self._gone:
            self._kept.pop(self._gone.popleft(), None)

    def _trim(self, newest: str) -> None:
        total = sum(size for _, size in self._kept.values())
        while total > self.max_bytes and len(self._kept) > 1:
            key = next(iter(self._kept))
            if key == newest:
                break
            total -= self._kept.pop(key)[1]

    @property
    def nbytes(self) -> int:
        """About how many bytes the answers kept hold."""
        with self._lock:
            self._let_go()
            return sum(size for _, size in self._kept.values())

    def full(self, net: Network, loss: str) -> tuple[float, Array]:
        """``mean_gradient`` over the whole set, computed once per network and loss."""
        check_set(net, self.images, self.labels)
        rule = check_loss(net, loss)
        key = fingerprint(net, "full", loss)
        return self.get(
            key, lambda: mean_gradient(net, self.images, self.labels, rule), owner=net
        )


def _cosine(u: Array, v: Array) -> float:
    """u·v / (‖u‖ ‖v‖), 0 where either is 0."""
    norms = float(np.linalg.norm(u) * np.linalg.norm(v))
    return float(u @ v) / norms if norms > 0 else 0.0


@dataclass
class Batches:
    """``full`` = {"cost", "norm"}: the mean cost over all N training images and
    ‖∇C‖; ``batches``, one per size: {"size", "indices" (0-based rows of the training
    set), "cost", "norm", "cosine"} (the cosine of the angle between that batch's mean
    gradient and the full one)."""

    full: dict
    batches: list[dict]

    def to_json(self) -> dict:
        return {"full": self.full, "batches": self.batches}


def minibatches(
    net: Network, cache: Cache, loss: str, sizes: Sequence[int], seed: int = 0
) -> Batches:
    """For each of ``sizes`` (1..N) a mini-batch drawn without replacement from the
    training set of ``cache``, all from one ``np.random.default_rng(seed)`` in the order
    given: its mean cost, gradient norm and cosine to the full-set gradient (loss
    without weight decay, no augmentation, pixels in [0, 1])."""
    N = len(cache.images)
    if isinstance(sizes, (str, bytes)) or np.ndim(sizes) != 1 or len(sizes) == 0:
        raise ValueError(f"sizes must be a non-empty list of batch sizes 1-{N}, got {sizes!r}")
    sizes = [check_whole(s, "each batch size", 1, N) for s in sizes]
    rng = np.random.default_rng(check_whole(seed, "seed", 0, 2**63 - 1))
    full_cost, full = cache.full(net, loss)
    out = []
    for size in sizes:
        rows = rng.choice(N, size, replace=False)
        cost, g = mean_gradient(net, cache.images, cache.labels, loss, rows)
        out.append({"size": size, "indices": rows.tolist(), "cost": cost,
                    "norm": float(np.linalg.norm(g)), "cosine": _cosine(g, full)})  # fmt: skip
    return Batches({"cost": full_cost, "norm": float(np.linalg.norm(full))}, out)
