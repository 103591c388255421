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

The matrix products of a layer go to BLAS a block of rows at a time
(``block_rows``): OpenBLAS multiplies small matrices (M·N·K up to about 10⁶) with
kernels of their own and larger ones by packing them first, which for a layer of 16
neurons on 784 inputs was the slower: (128, 784) by (784, 16) took 42 µs in one call
and 29 in two of 64 rows, the weight gradient 60 against 33.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray


def block_rows(n_in: int, n_out: int) -> int:
    """Rows of a (B, n_in) by (n_in, n_out) product that BLAS takes at a time: at least
    64, else the largest power of two keeping rows·n_in·n_out within 2²⁰ (64 for a
    784-input layer of 16, 4096 for 16 by 16)."""
    rows = 64
    while rows * 2 * n_in * n_out <= 2**20:
        rows *= 2
    return rows


def times_transposed(a: Array, W: Array) -> Array:
    """z = a Wᵀ (B, n_out) for a (B, n_in) and W (n_out, n_in): a layer's weighted
    input, the row form of W a, ``block_rows`` rows at a time."""
    if a.shape[0] <= 64:  # one block, whatever the layer: one call
        return a @ W.T
    out = np.empty((a.shape[0], W.shape[0]), np.result_type(a, W))
    rows = block_rows(W.shape[1], W.shape[0])
    for s in range(0, a.shape[0], rows):
        np.dot(a[s : s + rows], W.T, out[s : s + rows])
    return out


def transposed_times(d: Array, a: Array, out: Array) -> None:
    """out (n_out, n_in) = dᵀ a = Σ_i d_iᵀ a_i for d (B, n_out) and a (B, n_in): a
    layer's weight gradient, summed over the batch ``block_rows`` rows at a time."""
    rows = block_rows(a.shape[1], d.shape[1])
    np.dot(d[:rows].T, a[:rows], out)
    if a.shape[0] > rows:
        part = np.empty_like(out)
        for s in range(rows, a.shape[0], rows):
            np.dot(d[s : s + rows].T, a[s : s + rows], part)
            out += part


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
