"""Optimisers: each takes a step downhill on the flat parameter vector, in place.

An optimiser owns its running averages; a training loop only calls
``step(params, grad, lr)``.  Looked up by name in ``OPTIMIZERS``.
"""

from __future__ import annotations

import math

import numpy as np

Array = np.ndarray


class Optimizer:
    """Updates the flat parameter vector in place, one mini-batch at a time.  Its
    running averages are ``state()`` (named arrays) and ``steps``, for checkpoints."""

    steps = 0
    names: tuple[str, ...] = ()

    def state(self) -> dict[str, Array]:
        return {name: getattr(self, name).copy() for name in self.names}

    def load_state(self, state: dict[str, Array], steps: int) -> None:
        for name in self.names:
            if name not in state or state[name].shape != getattr(self, name).shape:
                raise ValueError(f"optimizer state lacks a matching {name!r}")
            getattr(self, name)[...] = state[name]
        self.steps = steps


class SGD(Optimizer):
    """Plain gradient descent: θ ← θ - η g."""

    def __init__(self, n: int, dtype: type, momentum: float = 0.0) -> None:
        self.step_buffer = np.zeros(n, dtype)

    def step(self, params: Array, grad: Array, lr: float) -> None:
        np.multiply(grad, lr, out=self.step_buffer)
        params -= self.step_buffer


class Momentum(Optimizer):
    """Gradient descent with momentum μ: v ← μ v - η g;  θ ← θ + v."""

    names = ("velocity",)

    def __init__(self, n: int, dtype: type, momentum: float = 0.9) -> None:
        self.momentum = momentum
        self.velocity = np.zeros(n, dtype)
        self.step_buffer = np.zeros(n, dtype)

    def step(self, params: Array, grad: Array, lr: float) -> None:
        self.velocity *= self.momentum
        np.multiply(grad, lr, out=self.step_buffer)
        self.velocity -= self.step_buffer
        params += self.velocity


class Adam(Optimizer):
    """Adam (Kingma & Ba): running means of g and g², bias-corrected,
    θ ← θ - η m̂ / (√v̂ + ε)."""

    names = ("m", "v")

    def __init__(
        self, n: int, dtype: type, momentum: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
    ) -> None:
        self.beta1, self.beta2, self.eps = momentum, beta2, eps
        self.m = np.zeros(n, dtype)
        self.v = np.zeros(n, dtype)
        self.buffer = np.zeros(n, dtype)

    def step(self, params: Array, grad: Array, lr: float) -> None:
        self.steps += 1
        b1, b2, buf = self.beta1, self.beta2, self.buffer
        self.m *= b1
        np.multiply(grad, 1 - b1, out=buf)
        self.m += buf
        self.v *= b2
        np.multiply(grad, grad, out=buf)
        buf *= 1 - b2
        self.v += buf
        # θ -= η·√(1-β2ᵗ)/(1-β1ᵗ) · m / (√v + ε·√(1-β2ᵗ)): the bias corrections folded
        # into the step size, so the update is four whole-vector operations.
        c2 = math.sqrt(1 - b2**self.steps)
        np.sqrt(self.v, out=buf)
        buf += self.eps * c2
        np.divide(self.m, buf, out=buf)
        buf *= lr * c2 / (1 - b1**self.steps)
        params -= buf


OPTIMIZERS: dict[str, type] = {"sgd": SGD, "momentum": Momentum, "adam": Adam}
