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

from .primitives import row_max, row_sum

Array = np.ndarray


#: Constants as float32, so that float32 arrays stay float32 in compiled code too
#: (compiled code would promote them to float64 next to a Python float).
ZERO, HALF, ONE, CAP = np.float32(0), np.float32(0.5), np.float32(1), np.float32(80)


def sigmoid(z: Array) -> Array:
    """σ(z) = 1 / (1 + e^(-z)).  -z is capped at 80 so that e^(-z) never overflows
    float32; below z = -80, σ is 1.8e-35 instead of smaller, which nothing can tell
    from 0.  (½ tanh(z/2) + ½ is the same function, but compiled it costs 27 ns an
    element here against 4.5 for e^z.)"""
    return ONE / (ONE + np.exp(np.minimum(-z, CAP)))


def sigmoid_prime(a: Array) -> Array:
    """σ'(z) = σ(z) (1 - σ(z)), from a = σ(z)."""
    return a * (ONE - a)


def relu(z: Array) -> Array:
    """ReLU(z) = max(0, z)."""
    return np.maximum(z, ZERO)


def relu_prime(a: Array) -> Array:
    """ReLU'(z) = 1 where z > 0 else 0: the sign of a = ReLU(z) ≥ 0, a > 0 exactly when
    z > 0.  (Not ``np.where(a > 0, 1, 0)``: compiled on one number, numba's ``np.where``
    builds a 0-d array each time, 170 µs a batch-32 layer here against 0.5 for this;
    that made ReLU's compiled epoch 3.7 times the sigmoid's.)"""
    return np.sign(a)


def tanh(z: Array) -> Array:
    """tanh(z) = (1 - e^(-2z)) / (1 + e^(-2z)), the sigmoid stretched to (-1, 1): one e^x,
    as the sigmoid (compiled, the C library's tanhf costs 40 ns an element here, e^x
    and a division 6-12).  -2z is capped at 80 as in ``sigmoid``, so e^(-2z) stays finite;
    near z = 0 the result is off by at most a float32 rounding of 1 (6e-8) in absolute
    terms, which no weight can tell."""
    e = np.exp(np.minimum(-(z + z), CAP))
    return (ONE - e) / (ONE + e)


def tanh_prime(a: Array) -> Array:
    """tanh'(z) = 1 - tanh(z)², from a = tanh(z)."""
    return ONE - a * a


def softmax(z: Array) -> Array:
    """softmax(z)_j = e^(z_j) / Σ_k e^(z_k), row by row; the row maximum is
    subtracted first so that e^(...) never overflows."""
    e = np.exp(z - row_max(z))
    return e / row_sum(e)


def log_softmax(z: Array) -> Array:
    """log softmax(z), row by row, by the log-sum-exp trick: z - max - log Σ e^(z - max)."""
    shifted = z - row_max(z)
    return shifted - np.log(row_sum(np.exp(shifted)))


def log_sigmoid(z: Array) -> Array:
    """log σ(z) = -softplus(-z) = min(z, 0) - log(1 + e^(-|z|)), finite for every z."""
    return np.minimum(z, ZERO) - np.log1p(np.exp(-np.abs(z)))


@dataclass(frozen=True)
class Activation:
    """A hidden-layer squashing function f and its derivative f'(z) written in a = f(z).

    Both are written in whole-array NumPy that numba can compile too, as every function
    the training loop calls: one definition serves the plain and the compiled loop."""

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
    return float(np.sum((a - y) * (a - y))) * 0.5 / len(a)


def quadratic_delta_sigmoid(z: Array, a: Array, y: Array) -> Array:
    """δ_L = (a - y) ⊙ σ'(z_L)."""
    return (a - y) * a * (ONE - a)


def quadratic_delta_softmax(z: Array, a: Array, y: Array) -> Array:
    """δ_L = J_softmax (a - y) = a ⊙ (g - (g · a)) with g = a - y."""
    g = a - y
    return a * (g - row_sum(g * a))


def cross_entropy_value_softmax(z: Array, a: Array, y: Array) -> float:
    """C = -Σ_j y_j log a_j with a = softmax(z), averaged over the batch.

    log a_j = z_j - log Σ_k e^(z_k), taken as (z_j - max z) + log(max a): the softmax's
    largest entry is e⁰ / Σ_k e^(z_k - max z), so one logarithm a row gives every
    entry's, exact however small a_j is (no floor, no underflow to log 0) and finite
    wherever z is.  (The logarithm of each a_j cost a batch-32 step 3 µs compiled.)"""
    log_a = (z - row_max(z)) + np.log(row_max(a))
    return -float(np.sum(y * log_a)) / len(a)


def cross_entropy_value_sigmoid(z: Array, a: Array, y: Array) -> float:
    """C = -Σ_j [y_j log a_j + (1 - y_j) log(1 - a_j)] with a = σ(z), from z."""
    return -float(np.sum(y * log_sigmoid(z) + (ONE - y) * log_sigmoid(-z))) / len(z)


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
