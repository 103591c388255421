"""The cost landscape around a network (Li et al., 2018, "Visualizing the Loss Landscape
of Neural Nets"): the mean training cost over a plane of parameters θ + α·d₁ + β·d₂.

d₁ points down the gradient, d₂ is random and orthogonal to it, and both are scaled
*filter by filter*: each neuron's incoming weights and bias (a row of W[l] with b[l]'s
entry) get the norm of that neuron's own weights and bias, so that a step of 1 along
either direction changes every neuron by as much as it already holds.  Vectors are laid
out as ``Network.params`` (W[0], b[0], W[1], b[1], ...) unless said otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..learn.network import Network, feedforward
from ..learn.primitives import each
from ..train import one_hot
from .explore import checkpoint
from .learning import (
    LANDSCAPE_IMAGES,
    LANDSCAPE_SIZE,
    LANDSCAPE_SIZES,
    LANDSCAPE_SPAN,
    Cache,
    api_order,
    check_loss,
    check_positive,
    check_set,
    check_whole,
    fingerprint,
    mean_gradient,
    one_blas_thread,
    split,
)

Array = np.ndarray


def filters(net: Network, flat: Array) -> Array:
    """The filters of a vector laid out as ``net.params``: one row per neuron after the
    input, (Σ_l n_l, n_in + 1) padded with zeros to the widest: its incoming weights
    W[l][j] then its bias b[l][j].  ``unfilter`` is the inverse."""
    W, b = split(net, flat)
    width = max(w.shape[1] for w in W) + 1
    rows = []
    for w, bias in zip(W, b, strict=True):
        block = np.zeros((w.shape[0], width), dtype=flat.dtype)
        block[:, : w.shape[1]], block[:, -1] = w, bias
        rows.append(block)
    return np.concatenate(rows)


def unfilter(net: Network, rows: Array) -> Array:
    """The vector laid out as ``net.params`` whose ``filters`` are ``rows``."""
    holder = net.copy()
    holder.params[...] = 0
    start = 0
    for w, bias in zip(holder.W, holder.b, strict=True):
        block = rows[start : start + w.shape[0]]
        w[...], bias[...] = block[:, : w.shape[1]], block[:, -1]
        start += w.shape[0]
    return holder.params.astype(np.float64)


def directions(net: Network, grad: Array, rng: np.random.Generator) -> tuple[Array, Array]:
    """d₁ and d₂ (float64, laid out as ``net.params``), filter-normalised:

        d₁_f = −g_f · ‖θ_f‖ / ‖g_f‖,   d₂_f = r_f' · ‖θ_f‖ / ‖r_f'‖,   r_f' = r_f − (r_f·ĝ_f) ĝ_f

    for each filter f (a neuron's weights and bias), g = ∇C, r ~ N(0, 1).  Each filter
    of d₂ is made orthogonal to that filter of d₁ before scaling, so d₁ ⊥ d₂ holds for
    the whole vectors too (scaling a filter keeps it orthogonal).  A filter whose g or θ
    is 0 stays 0."""
    theta = filters(net, net.params.astype(np.float64))
    g = filters(net, np.asarray(grad, dtype=np.float64))
    r = filters(net, rng.standard_normal(net.params.size))
    size = np.linalg.norm(theta, axis=1, keepdims=True)  # (filters, 1)

    def unit(v: Array) -> Array:
        n = np.linalg.norm(v, axis=1, keepdims=True)
        return np.divide(v, n, out=np.zeros_like(v), where=n > 0)

    g_hat = unit(g)
    r = r - np.sum(r * g_hat, axis=1, keepdims=True) * g_hat
    return unfilter(net, -g_hat * size), unfilter(net, unit(r) * size)


@dataclass
class Landscape:
    """The mean cost ``cost`` (size, size) at θ + α·d₁ + β·d₂, rows β and columns α
    (``betas``, ``alphas`` (size,), the middle ones exactly 0); the ``directions`` d₁,
    d₂ (n_params,) in ``/api/model``'s order (``learning.api_order``); ``path`` (T, 2)
    the (α, β) of each given set of weights projected onto the plane (None if none)."""

    alphas: Array
    betas: Array
    cost: Array
    directions: list[Array]
    path: Array | None = None

    def to_json(self) -> dict:
        out = {
            "alphas": self.alphas.tolist(),
            "betas": self.betas.tolist(),
            "cost": self.cost.tolist(),
            "directions": [d.tolist() for d in self.directions],
        }
        if self.path is not None:
            out["path"] = self.path.tolist()
        return out


def grid_costs(
    net: Network, images: Array, labels: Array, loss: str, d: tuple[Array, Array], steps: Array
) -> Array:
    """The mean cost over images (N, n_0) uint8 with labels (N,) at θ + α d₁ + β d₂ for
    α, β in ``steps``: (len(steps), len(steps)), rows β, columns α.

    The first layer is linear in its weights, so its weighted input for the whole grid
    comes from three products computed once: X(W + αD₁ + βD₂)ᵀ = XWᵀ + αXD₁ᵀ + βXD₂ᵀ,
    each (N, n_1); each grid point then runs only the small layers after it
    (``network.feedforward``)."""
    rule, dtype = check_loss(net, loss), net.params.dtype
    x = net.as_input(images)  # (N, n_0) in [0, 1]
    y = one_hot(labels, net.sizes[-1], dtype)
    layers = [split(net, v.astype(dtype)) for v in (net.params, *d)]  # (W, b) of θ, d₁, d₂
    products = [x @ W[0].T for W, _ in layers]  # XWᵀ, XD₁ᵀ, XD₂ᵀ: (N, n_1) each
    cost = np.zeros((len(steps), len(steps)))
    with one_blas_thread():
        _walk_grid(net, rule, y, layers, products, steps.astype(dtype), cost)
    return cost


def _walk_grid(net: Network, rule, y: Array, layers, products, steps: Array, cost: Array) -> None:
    """``grid_costs``'s loop: fill cost[i, j] with the mean cost at α = steps[j],
    β = steps[i], from the first layer's three products (each (N, n_1))."""
    f, out = net.activation.f, net.output
    (W0, b0), (W1, b1), (W2, b2) = layers
    for i, beta in enumerate(steps):
        for j, alpha in enumerate(steps):
            checkpoint()
            # the layers after the first at this point; the first is in the products
            W = [w + alpha * u + beta * v for w, u, v in zip(W0[1:], W1[1:], W2[1:], strict=True)]
            b = [c + alpha * u + beta * v for c, u, v in zip(b0, b1, b2, strict=True)]
            first = products[0] + alpha * products[1] + beta * products[2]  # (N, n_1)
            if not W:  # a network of one layer: the first is the output
                z = first + b[0]
                a = out(z)
            else:
                a, z = feedforward(W, b[1:], each(f, first, b[0]), f, out)
                a = a[-1]
            cost[i, j] = rule.value(z, a, y)


def project(net: Network, d: tuple[Array, Array], path: Sequence[Array]) -> Array:
    """(T, 2): for each θ_t (laid out as ``net.params``) the (α, β) minimising
    ‖θ + α d₁ + β d₂ − θ_t‖, by least squares."""
    A = np.stack(d, axis=1)  # (n_params, 2)
    out = []
    for theta_t in path:
        theta_t = np.asarray(theta_t, dtype=np.float64)
        if theta_t.shape != net.params.shape:
            raise ValueError(
                f"each path point must hold {net.params.size} parameters, got {theta_t.shape}"
            )
        out.append(np.linalg.lstsq(A, theta_t - net.params, rcond=None)[0])
    return np.array(out).reshape(-1, 2)


def landscape(
    net: Network,
    cache: Cache,
    loss: str,
    size: int = LANDSCAPE_SIZE,
    span: float = LANDSCAPE_SPAN,
    seed: int = 0,
    path: Sequence[Array] | None = None,
) -> Landscape:
    """The mean cost on the first ``LANDSCAPE_IMAGES`` training images of ``cache`` over
    θ + α·d₁ + β·d₂, α and β on a ``size``×``size`` grid in [−span, span]; d₁ along
    −∇C of those same images and d₂ drawn from ``np.random.default_rng(seed)`` (see
    ``directions``).  ``path``: weights (laid out as ``net.params``), e.g. one per
    epoch, projected onto the plane.  Computed once per network and question."""
    low, high = LANDSCAPE_SIZES
    integer = isinstance(size, (int, np.integer)) and not isinstance(size, bool)
    if not (integer and low <= size <= high and size % 2 == 1):  # odd: the grid has a middle
        raise ValueError(f"size must be an odd whole number {low}-{high}, got {size!r}")
    span = check_positive(span, "span")
    seed = check_whole(seed, "seed", 0, 2**63 - 1)
    check_set(net, cache.images, cache.labels)
    check_loss(net, loss)

    def compute() -> tuple[Array, Array, Array]:
        images = cache.images[:LANDSCAPE_IMAGES]
        labels = cache.labels[:LANDSCAPE_IMAGES]
        _, grad = mean_gradient(net, images, labels, loss)
        d = directions(net, grad, np.random.default_rng(seed))
        k = size // 2
        steps = span * np.arange(-k, k + 1) / k  # the middle is exactly 0
        return steps, grid_costs(net, images, labels, loss, d, steps), d

    key = fingerprint(net, "landscape", loss, size, span, seed)
    steps, cost, d = cache.get(key, compute, owner=net)
    return Landscape(
        alphas=steps.copy(),
        betas=steps.copy(),
        cost=cost.copy(),
        directions=[api_order(net, v) for v in d],
        path=None if path is None else project(net, d, path),
    )
