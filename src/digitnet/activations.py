"""Squashing functions, output layers and costs, each beside its derivative.

Every function works on a batch whose rows are samples: ``z`` and ``a`` have shape
``(B, n)``.  Derivatives of hidden activations are written in terms of the
activation ``a = f(z)`` itself (``σ'(z) = a (1 - a)``), so backpropagation needs to
keep only the activations it already computed on the way forward.

Names read from the command line or from a model file are looked up in the dicts
at the bottom (``ACTIVATIONS``, ``OUTPUTS``, ``LOSSES``), never with ``getattr``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Array = np.ndarray


def sigmoid(z: Array, out: Array | None = None) -> Array:
    """σ(z) = 1 / (1 + e^(-z)), computed as ½ tanh(z/2) + ½ so it never overflows.
    ``out`` may be z itself."""
    a = np.multiply(z, 0.5, out=out)
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


def sigmoid_prime(a: Array) -> Array:
    """σ'(z) = σ(z) (1 - σ(z)), from a = σ(z)."""
    return a * (1 - a)


def relu(z: Array, out: Array | None = None) -> Array:
    """ReLU(z) = max(0, z)."""
    return np.maximum(z, 0, out=out)


def relu_prime(a: Array) -> Array:
    """ReLU'(z) = 1 where z > 0 else 0; a > 0 exactly when z > 0."""
    return (a > 0).astype(a.dtype)


def tanh(z: Array, out: Array | None = None) -> Array:
    """tanh(z), the sigmoid stretched to (-1, 1)."""
    return np.tanh(z, out=out)


def tanh_prime(a: Array) -> Array:
    """tanh'(z) = 1 - tanh(z)², from a = tanh(z)."""
    return 1 - a * a


def softmax(z: Array) -> Array:
    """softmax(z)_j = e^(z_j) / Σ_k e^(z_k), row by row; the row maximum is
    subtracted first so that e^(...) never overflows."""
    e = z - np.maximum.reduce(z, axis=1, keepdims=True)
    np.exp(e, out=e)
    e /= np.add.reduce(e, axis=1, keepdims=True)
    return e


def log_softmax(z: Array) -> Array:
    """log softmax(z), row by row, by the log-sum-exp trick: z - max - log Σ e^(z - max)."""
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def log_sigmoid(z: Array) -> Array:
    """log σ(z) = -softplus(-z) = min(z, 0) - log(1 + e^(-|z|)), finite for every z."""
    return np.minimum(z, 0) - np.log1p(np.exp(-np.abs(z)))


@dataclass(frozen=True)
class Activation:
    """A hidden-layer squashing function f (``f(z, out=None)``) and its derivative
    f'(z) written in a = f(z)."""

    name: str
    f: Callable[..., Array]
    prime: Callable[[Array], Array]


ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation("sigmoid", sigmoid, sigmoid_prime),
    "relu": Activation("relu", relu, relu_prime),
    "tanh": Activation("tanh", tanh, tanh_prime),
}

#: Output layers: the last layer's squashing function, applied to z_L.
OUTPUTS: dict[str, Callable[[Array], Array]] = {
    "sigmoid": sigmoid,
    "softmax": softmax,
}


# Costs.  Each takes the output layer's weighted input z (B, k), its activation
# a = output(z) (B, k) and the targets y (B, k), rows of probabilities (one-hot for
# plain labels).  ``value`` is the mean cost over the batch; ``delta`` is ∂C/∂z,
# the error δ_L that backpropagation starts from, for the mean cost.


def quadratic_value(z: Array, a: Array, y: Array) -> float:
    """C = ½ ‖a - y‖², the video's cost, averaged over the batch."""
    return float(0.5 * np.sum((a - y) ** 2) / len(a))


def quadratic_delta_sigmoid(z: Array, a: Array, y: Array) -> Array:
    """δ_L = (a - y) ⊙ σ'(z_L)."""
    return (a - y) * a * (1 - a)


def quadratic_delta_softmax(z: Array, a: Array, y: Array) -> Array:
    """δ_L = J_softmax (a - y) = a ⊙ (g - (g · a)) with g = a - y."""
    g = a - y
    return a * (g - np.sum(g * a, axis=1, keepdims=True))


def cross_entropy_value_softmax(z: Array, a: Array, y: Array) -> float:
    """C = -Σ_j y_j log a_j with a = softmax(z).

    a comes from the max-shifted softmax, so it is exact wherever it is above the
    smallest normal float; below that (a neuron wrong by more than about 87 in z for
    float32) log a is floored there, giving a large finite cost instead of inf."""
    tiny = np.finfo(a.dtype).tiny
    return float(-np.vdot(y, np.log(np.maximum(a, tiny))) / len(a))


def cross_entropy_value_sigmoid(z: Array, a: Array, y: Array) -> float:
    """C = -Σ_j [y_j log a_j + (1 - y_j) log(1 - a_j)] with a = σ(z), from z."""
    return float(-np.sum(y * log_sigmoid(z) + (1 - y) * log_sigmoid(-z)) / len(z))


def cross_entropy_delta(z: Array, a: Array, y: Array) -> Array:
    """δ_L = a - y: for softmax with cross-entropy and for sigmoid with binary
    cross-entropy the output's derivative cancels, which is why these pairs learn
    fast even when the output saturates."""
    return a - y


@dataclass(frozen=True)
class Loss:
    """A cost for one kind of output layer: its mean value and δ_L = ∂C/∂z_L."""

    value: Callable[[Array, Array, Array], float]
    delta: Callable[[Array, Array, Array], Array]


#: (loss name, output name) -> Loss.
LOSSES: dict[tuple[str, str], Loss] = {
    ("quadratic", "sigmoid"): Loss(quadratic_value, quadratic_delta_sigmoid),
    ("quadratic", "softmax"): Loss(quadratic_value, quadratic_delta_softmax),
    ("cross-entropy", "sigmoid"): Loss(cross_entropy_value_sigmoid, cross_entropy_delta),
    ("cross-entropy", "softmax"): Loss(cross_entropy_value_softmax, cross_entropy_delta),
}

LOSS_NAMES: tuple[str, ...] = ("quadratic", "cross-entropy")


def lookup(table: dict, name: str, what: str):
    """``table[name]``, or a ValueError that names what was asked for and what exists."""
    try:
        return table[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(str(k) for k in table))
        raise ValueError(f"unknown {what} {name!r}; expected one of: {known}") from None
