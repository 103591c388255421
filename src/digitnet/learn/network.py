"""The network of the video: layers of neurons, each layer ``a' = σ(W a + b)``.

A batch is a matrix whose **rows** are samples: the input ``x`` has shape
``(B, 784)`` and layer ``l`` maps ``a`` of shape ``(B, n_in)`` to
``a' = σ(a Wᵀ + b)`` of shape ``(B, n_out)``, the row-wise form of the video's
column equation ``a' = σ(W a + b)``.  ``W[l]`` has shape ``(n_out, n_in)`` (as in
PyTorch's ``nn.Linear``) and ``b[l]`` has shape ``(n_out,)``.

All weights and biases live in one flat vector ``params``; ``W[l]`` and ``b[l]`` are
views into it, and ``grad``, ``dW[l]``, ``db[l]`` are the same for the gradient.  An
optimiser therefore updates all 13,002 numbers of the default network with a few
whole-vector operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from .activations import ACTIVATIONS, LOSSES, OUTPUTS, Activation, Loss, lookup
from .primitives import each, times_each, times_transposed, transposed_times

Array = np.ndarray

DEFAULT_SIZES: tuple[int, ...] = (784, 16, 16, 10)


def _views(flat: Array, sizes: Sequence[int]) -> tuple[list[Array], list[Array]]:
    """Cut ``flat`` into per-layer views: W[l] (n_out, n_in), then b[l] (n_out,)."""
    weights, biases, start = [], [], 0
    for n_in, n_out in pairwise(sizes):
        weights.append(flat[start : start + n_out * n_in].reshape(n_out, n_in))
        start += n_out * n_in
        biases.append(flat[start : start + n_out])
        start += n_out
    return weights, biases


def _all_finite(x: Array) -> bool:
    """No NaN or inf in x.  For big arrays a sum decides (it is finite exactly when
    every value is, unless it overflows), which is quicker than a mask of the size."""
    if x.size < 65_536:
        return bool(np.isfinite(x).all())
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(x, axis=None)):
            return True
    return bool(np.isfinite(x).all())


def count_parameters(sizes: Sequence[int]) -> int:
    """Σ_l n_out·n_in + n_out: 784·16+16 + 16·16+16 + 16·10+10 = 13,002 for the default."""
    return sum(n_out * n_in + n_out for n_in, n_out in pairwise(sizes))


def check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    """Return sizes as a tuple of ints, or raise ValueError saying what is wrong."""
    try:
        sizes = tuple(int(n) for n in sizes)
    except (TypeError, ValueError):
        raise ValueError(f"sizes must be whole numbers, got {sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"sizes needs an input and an output layer, got {sizes!r}")
    if min(sizes) < 1:
        raise ValueError(f"every layer needs at least one neuron, got sizes {sizes!r}")
    return sizes


def feedforward(W, b, x: Array, f, output) -> tuple[list[Array], Array]:
    """Every layer's activation [a_0 = x, a_1, ..., a_L] for the batch x (B, n_0), and
    z_L (B, n_L): a_{l+1} = f(a_l W[l]ᵀ + b[l]), with ``output`` in place of f last.

    ``W`` and ``b`` are sequences of W[l] (n_out, n_in) and b[l] (n_out,)."""
    activations = [x]
    for l in range(len(W) - 1):
        activations.append(each(f, times_transposed(activations[l], W[l]), b[l]))  # W a + b
    z = times_transposed(activations[-1], W[-1]) + b[-1]
    activations.append(output(z))
    return activations, z


def backprop(W, b, dW, db, x: Array, y: Array, f, f_prime, output, cost, cost_delta):
    """Fill dW[l] (n_out, n_in) and db[l] (n_out,) with ∂C/∂W[l] and ∂C/∂b[l] for the
    batch x (B, n_0) with targets y (B, n_L); return the mean cost C and a_L (B, n_L).

    Starting from δ_L = ∂C/∂z_L, each layer gives ∂C/∂W = δᵀ a_prev and ∂C/∂b = Σ δ,
    and passes back δ_prev = (δ W) ⊙ f'(z_prev): the chain rule, a layer at a time.
    The training loop calls this too, compiled or not: it is the one definition.
    """
    activations, z = feedforward(W, b, x, f, output)
    a = activations[-1]
    delta = cost_delta(z, a, y) / np.float32(len(x))  # (B, n_L), for the mean cost
    for l in range(len(W) - 1, -1, -1):
        transposed_times(delta, activations[l], dW[l])  # δᵀ a_prev: (n_out, n_in)
        np.dot(np.ones(len(x), delta.dtype), delta, db[l])  # Σ over the batch: (n_out,)
        if l:
            delta = times_each(delta @ W[l], f_prime, activations[l])  # (B, n_in)
    return cost(z, a, y), a


class Network:
    """A fully connected network ``a_{l+1} = f(W[l] a_l + b[l])``.

    ``activation`` (sigmoid, relu, tanh) squashes the hidden layers and ``output``
    (softmax or sigmoid) the last one.  Weights start as N(0, g²/n_in) with g = 1 for
    sigmoid and tanh (LeCun) and g = √2 for ReLU (He), biases at zero; ``rng`` makes
    that start reproducible.
    """

    def __init__(
        self,
        sizes: Sequence[int] = DEFAULT_SIZES,
        activation: str = "sigmoid",
        output: str = "softmax",
        *,
        rng: np.random.Generator | None = None,
        dtype: type = np.float32,
    ) -> None:
        self.sizes = check_sizes(sizes)
        self.activation: Activation = lookup(ACTIVATIONS, activation, "activation")
        self.output_name = output
        self.output = lookup(OUTPUTS, output, "output")
        self.params = np.zeros(count_parameters(self.sizes), dtype=dtype)
        self.grad = np.zeros_like(self.params)
        self.W, self.b = _views(self.params, self.sizes)
        self.dW, self.db = _views(self.grad, self.sizes)
        rng = np.random.default_rng(0) if rng is None else rng
        gain = 2.0 if activation == "relu" else 1.0
        for W in self.W:
            W[...] = rng.standard_normal(W.shape) * np.sqrt(gain / W.shape[1])

    @classmethod
    def from_arrays(
        cls,
        weights: Sequence[Array],
        biases: Sequence[Array],
        activation: str = "sigmoid",
        output: str = "softmax",
    ) -> Network:
        """Build a network from given W[l] (n_out, n_in) and b[l] (n_out,)."""
        if len(weights) != len(biases) or not weights:
            raise ValueError(
                f"need one bias per weight matrix, got {len(weights)} weights "
                f"and {len(biases)} biases"
            )
        sizes = [weights[0].shape[1]] + [W.shape[0] for W in weights]
        dtype = np.result_type(*weights, *biases)
        net = cls(sizes, activation, output, dtype=dtype)
        for l, (W, b) in enumerate(zip(weights, biases, strict=True)):
            if W.shape != net.W[l].shape or b.shape != net.b[l].shape:
                raise ValueError(
                    f"layer {l}: expected weight {net.W[l].shape} and bias "
                    f"{net.b[l].shape} to chain with sizes {net.sizes}, got {W.shape} and {b.shape}"
                )
            net.W[l][...] = W
            net.b[l][...] = b
        return net

    @property
    def activation_name(self) -> str:
        return self.activation.name

    @property
    def n_parameters(self) -> int:
        """How many weights and biases: 13,002 for 784-16-16-10."""
        return self.params.size

    def __repr__(self) -> str:
        shape = "-".join(map(str, self.sizes))
        return (
            f"Network({shape}, activation={self.activation.name!r}, "
            f"output={self.output_name!r}, {self.n_parameters} parameters)"
        )

    def copy(self) -> Network:
        """An independent network with the same weights."""
        net = Network(self.sizes, self.activation.name, self.output_name, dtype=self.params.dtype)
        net.params[...] = self.params
        return net

    # -- the function ------------------------------------------------------------

    def as_input(self, x: Array) -> Array:
        """Check and shape an input batch: (B, 784) or one sample (784,), or images
        (B, 28, 28) / (28, 28).  uint8 pixels are scaled to [0, 1] by 1/255."""
        n = self.sizes[0]
        if not (type(x) is np.ndarray and x.dtype == self.params.dtype and x.shape[-1:] == (n,)):
            x = np.asarray(x)
            if x.dtype == np.uint8:
                x = x.astype(self.params.dtype)
                x /= 255  # in place: one array of floats, not two
            elif x.dtype.kind not in "fiub":
                raise TypeError(f"input must hold numbers, got dtype {x.dtype}")
            if x.shape[-1:] != (n,) and x.ndim >= 2 and int(np.prod(x.shape[-2:])) == n:
                x = x.reshape(*x.shape[:-2], n)
        if x.ndim not in (1, 2) or x.shape[-1] != n:
            raise ValueError(f"expected input of shape ({n},) or (B, {n}), got {x.shape}")
        if not _all_finite(x):
            raise ValueError("input holds NaN or infinite values")
        return x.astype(self.params.dtype, copy=False)

    def _layers(self, x: Array) -> tuple[list[Array], Array]:
        """Run the batch x (B, n_0) forward: every layer's activation and z_L."""
        return feedforward(self.W, self.b, x, self.activation.f, self.output)

    def forward(self, x: Array) -> Array:
        """The network's output a_L: (B, 784) -> (B, 10), or (784,) -> (10,)."""
        x = self.as_input(x)
        return self._layers(np.atleast_2d(x))[0][-1].reshape(*x.shape[:-1], self.sizes[-1])

    __call__ = forward

    def trace(self, x: Array) -> list[Array]:
        """Every layer's activations [a_0 = x, a_1, ..., a_L], each (B, n_l) (or (n_l,)
        for one sample): what lights up, layer by layer."""
        x = self.as_input(x)
        layers = self._layers(np.atleast_2d(x))[0]
        return [a.reshape(*x.shape[:-1], a.shape[-1]) for a in layers]

    def predict(self, x: Array) -> Array:
        """The guess: the index of the brightest output neuron, (B,) ints (or one int)."""
        return np.argmax(self.forward(x), axis=-1)

    # -- learning ----------------------------------------------------------------

    def backprop(self, x: Array, y: Array, loss: Loss | str) -> tuple[float, Array]:
        """Fill ``grad`` with ∂C/∂params for the batch x (B, n_0) with targets y (B, n_L)
        (one-hot rows for labels); return the mean cost C and the output a_L (B, n_L).
        See ``backprop`` above for the equations."""
        if isinstance(loss, str):
            loss = lookup(LOSSES, (loss, self.output_name), "loss/output pair")
        f = self.activation
        W, b, dW, db = self.W, self.b, self.dW, self.db
        return backprop(W, b, dW, db, x, y, f.f, f.prime, self.output, loss.value, loss.delta)

    def weight_mask(self) -> Array:
        """A vector like ``params``: 1 where it holds a weight, 0 where a bias."""
        mask = np.zeros_like(self.params)
        for W in _views(mask, self.sizes)[0]:
            W[...] = 1
        return mask

    def fold_input_transform(self, scale: float, shift: float) -> Network:
        """The same function on raw inputs x, for a network trained on x' = scale·x + shift.

        W (scale·x + shift) + b = (scale·W) x + (b + shift·Σ_j W_:j), so only the first
        layer changes.
        """
        net = self.copy()
        W, b = net.W[0], net.b[0]
        b += shift * self.W[0].sum(axis=1, dtype=np.float64).astype(b.dtype)
        W *= scale
        return net
