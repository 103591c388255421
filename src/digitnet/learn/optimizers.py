"""Optimisers: each takes a step downhill on the flat parameter vector, in place.

An optimiser is its rule for one parameter, ``rule(θ, g, m, v, c) -> (θ, m, v)`` with
m and v its running averages and c the step's constants (from ``constants(lr, t,
hyper)``), written so that it works on a number and on a whole array alike.  The
class in ``OPTIMIZERS`` owns the state (a step counter, m, v) and the constants
``hyper``.  Code calls ``optimizer.step(params, grad, lr)``; the training loop,
compiled or not, takes ``optimizer.workings()`` once and calls ``update`` with them,
without knowing which optimiser it is.
"""

from __future__ import annotations

import math

import numpy as np

from .primitives import each_parameter

Array = np.ndarray


def sgd_constants(lr: float, t: int, hyper: tuple) -> tuple:
    return (np.float32(lr), np.float32(0), np.float32(0))


def sgd_rule(p, g, m, v, c):
    """Plain gradient descent: θ ← θ - η g."""
    return p - c[0] * g, m, v


def momentum_constants(lr: float, t: int, hyper: tuple) -> tuple:
    return (np.float32(lr), hyper[0], np.float32(0))


def momentum_rule(p, g, m, v, c):
    """Gradient descent with momentum μ, m the velocity: m ← μ m - η g;  θ ← θ + m."""
    m = c[1] * m - c[0] * g
    return p + m, m, v


def adam_constants(lr: float, t: int, hyper: tuple) -> tuple:
    """Adam's bias corrections folded into the step size and ε:
    θ -= η·√(1-β2ᵗ)/(1-β1ᵗ) · m / (√v + ε·√(1-β2ᵗ)), the same step as with m̂ and v̂."""
    beta1, beta2, eps = hyper
    c2 = math.sqrt(1 - float(beta2) ** t)
    rate = np.float32(lr * c2 / (1 - float(beta1) ** t))
    return rate, np.float32(float(eps) * c2), beta1, beta2


def adam_rule(p, g, m, v, c):
    """Adam (Kingma & Ba): running means m of g and v of g², bias-corrected,
    θ ← θ - η m̂ / (√v̂ + ε)."""
    rate, floor, beta1, beta2 = c
    m = m + (g - m) * (np.float32(1) - beta1)  # β1 m + (1 - β1) g
    v = v + (g * g - v) * (np.float32(1) - beta2)  # β2 v + (1 - β2) g²
    return p - rate * m / (np.sqrt(v) + floor), m, v


def update(params, grad, decay, lr: float, state: tuple, hyper: tuple, rule, constants) -> None:
    """One step of ``rule`` on every parameter, with L2 weight decay ``decay`` (λ for
    each parameter), counted in state = (steps, m, v)."""
    steps, m, v = state
    steps[0] += 1
    each_parameter(rule, params, grad, decay, m, v, constants(lr, steps[0], hyper))


class Optimizer:
    """Owns an update rule's state: the step count, then the running averages named by
    ``names``, each like ``params``; ``step`` applies the rule once."""

    rule_of_one = staticmethod(sgd_rule)
    constants = staticmethod(sgd_constants)
    names: tuple[str, ...] = ()  # what m and v hold, for those the rule uses

    def __init__(self, n: int, dtype: type, momentum: float = 0.9) -> None:
        self._state = (np.zeros(1, np.int64), np.zeros(n, dtype), np.zeros(n, dtype))
        self._hyper: tuple = ()

    def step(self, params: Array, grad: Array, lr: float, decay: Array | float = 0.0) -> None:
        """One step downhill along ``grad``, at learning rate ``lr``, with L2 weight
        decay ``decay`` (λ, one for all or one per parameter)."""
        decay = np.broadcast_to(np.asarray(decay, params.dtype), params.shape)
        state, hyper = self._state, self._hyper
        update(params, grad, decay, lr, state, hyper, self.rule_of_one, self.constants)

    def workings(self) -> tuple:
        """(state, hyper): what ``update(params, grad, decay, lr, state, hyper,
        rule_of_one, constants)`` works on, for a loop that calls it itself."""
        return self._state, self._hyper

    @property
    def steps(self) -> int:
        """How many steps have been taken."""
        return int(self._state[0][0])

    def averages(self) -> tuple[Array, ...]:
        """The running averages this rule uses, one per name in ``names``: m and v are
        always held (the loop takes both), but SGD uses neither and momentum only m."""
        return self._state[1 : 1 + len(self.names)]

    def save_state(self) -> dict[str, Array]:
        """The running averages by name, copied (for checkpoints)."""
        return {name: a.copy() for name, a in zip(self.names, self.averages(), strict=True)}

    def load_state(self, state: dict[str, Array], steps: int) -> None:
        """Continue from ``save_state()``'s averages after ``steps`` steps."""
        for name, mine in zip(self.names, self.averages(), strict=True):
            if name not in state or state[name].shape != mine.shape:
                raise ValueError(f"optimizer state lacks a matching {name!r}")
            mine[...] = state[name]
        self._state[0][0] = steps


class SGD(Optimizer):
    """Plain gradient descent: θ ← θ - η g."""


class Momentum(Optimizer):
    """Gradient descent with momentum μ: v ← μ v - η g;  θ ← θ + v."""

    rule_of_one = staticmethod(momentum_rule)
    constants = staticmethod(momentum_constants)
    names = ("velocity",)

    def __init__(self, n: int, dtype: type, momentum: float = 0.9) -> None:
        super().__init__(n, dtype)
        self._hyper = (np.float32(momentum),)


class Adam(Optimizer):
    """Adam with β1 = ``momentum``, β2 = 0.999 and ε = 1e-8."""

    rule_of_one = staticmethod(adam_rule)
    constants = staticmethod(adam_constants)
    names = ("m", "v")

    def __init__(
        self, n: int, dtype: type, momentum: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
    ) -> None:
        super().__init__(n, dtype)
        self._hyper = (np.float32(momentum), np.float32(beta2), np.float32(eps))


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "momentum": Momentum, "adam": Adam}
