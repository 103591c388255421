"""Array operations the training loop is built from, as plain NumPy.

Activations and optimiser rules are written once, as expressions that work on a
number and on an array alike (``σ(z) = ½ tanh(z/2) + ½``).  Plain NumPy applies them
to whole arrays, which is what these functions do.  ``digitnet.learn.kernel`` gives numba
its own version of each: a loop that applies the same expression to one element at
a time, which the compiler fuses into one pass over memory.  (numba compiles the
whole-array form too, but measured 10 times slower than the loop on Adam's update.)
The row reductions and the count of right guesses get loops there as well: numba has
no ``np.max(z, axis=1)``, and its ``axis=`` reductions cost several seconds each to
compile.  So does picking a batch's rows out of the images: numba's ``images[rows,
a:b]`` and ``targets[rows]`` took tens of µs for a batch of 32, loops a few.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray


def each(f, z: Array, b: Array) -> Array:
    """f(z + b) for every element of z (B, n), the bias b (n,) added to every row:
    a layer's squashing of its weighted input."""
    return f(z + b)


def times_each(g: Array, f_prime, a: Array) -> Array:
    """g ⊙ f'(a), element by element (B, n): an error passed back through a layer's
    squashing."""
    return g * f_prime(a)


def each_parameter(
    rule, params: Array, grad: Array, decay: Array, m: Array, v: Array, constants: tuple
) -> None:
    """(θ, m, v) ← rule(θ, g + λθ, m, v, constants) for every parameter θ, in place: an
    optimiser's step on the gradient with L2 weight decay λ (``decay``, per parameter:
    ∂(½ λ θ²)/∂θ = λ θ), m and v being its running averages (unused ones are ignored)."""
    params[...], m[...], v[...] = rule(params, grad + decay * params, m, v, constants)


def rows_of(a: Array, rows: Array) -> Array:
    """a[rows]: the chosen rows of a (N, ...), in that order (m, ...)."""
    return a[rows]


def scaled_rows(images: Array, rows: Array, start: int, stop: int, scale, shift,
                out: Array, at: int) -> None:
    """out[:, at : at + stop - start] = scale · images[rows, start:stop] + shift: columns
    start to stop of the chosen rows of uint8 pictures (N, n), as floats (m, ·)."""
    out[:, at : at + stop - start] = images[rows, start:stop] * scale + shift


def prefetch_rows(images: Array, rows: Array) -> None:
    """Ask for these rows of the images (N, n) to be brought into the cache, to be read
    soon: a hint, which changes nothing that is computed.  Plain NumPy has no way to
    give it, so here nothing happens; compiled, each cache line of the rows is
    prefetched (``digitnet.learn.kernel``)."""


def row_max(z: Array) -> Array:
    """max_j z_ij for every row i, as a column (B, 1).  (The ufunc's own reduce: what
    ``np.max`` calls, without its 5 µs of wrapping, which a single image notices.)"""
    return np.maximum.reduce(z, axis=1, keepdims=True)


def row_sum(z: Array) -> Array:
    """Σ_j z_ij for every row i, as a column (B, 1)."""
    return np.add.reduce(z, axis=1, keepdims=True)


def correct_guesses(a: Array, labels: Array) -> int:
    """How many rows of the outputs a (B, k) have their largest entry at the label."""
    return int(np.count_nonzero(np.argmax(a, axis=1) == labels))
