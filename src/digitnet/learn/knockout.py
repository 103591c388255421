"""The network with some hidden neurons switched off: a knock-out forces a neuron's
activation to 0 before the next layer reads it, as if it were cut out.

Neurons are named as in ``GET /api/neuron``: ``layer`` counts weight layers from 1
(1 = the first hidden layer, ``L = len(net.W)`` = the outputs) and ``index`` from 0,
so neuron (l, j) computes ``a_l[j] = f(W[l-1][j] · a_{l-1} + b[l-1][j])``.  Batches
are rows, as in ``network``: x is (B, 784).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .network import Network, feedforward

Array = np.ndarray
#: Knocked-out neurons: (layer, index) pairs of hidden neurons, named as above.
Knockout = Sequence[tuple[int, int]]


def check_neuron(net: Network, layer: int, index: int) -> None:
    """Refuse a (layer, index) that names no neuron after the input, saying what exists."""
    L = len(net.W)
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 1 <= layer <= L:
        raise ValueError(
            f"layer must be 1-{L} (1 = the first hidden layer, {L} = the outputs), got {layer!r}"
        )
    n = net.sizes[layer]
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < n:
        raise ValueError(f"index must be 0-{n - 1} for layer {layer}, got {index!r}")


def keep_masks(net: Network, knockout: Knockout = ()) -> list[Array]:
    """One mask per layer of neurons, m_l (n_l,): 0 for a knocked-out neuron, else 1.
    Only hidden neurons (layers 1 to L-1) can be knocked out."""
    masks = [np.ones(n, dtype=net.params.dtype) for n in net.sizes]
    L = len(net.W)
    for pair in knockout:
        if len(pair) != 2:
            raise ValueError(f"a knock-out is a [layer, index] pair, got {list(pair)!r}")
        layer, index = pair
        if L < 2:
            raise ValueError("this network has no hidden neurons to knock out")
        integer = isinstance(layer, (int, np.integer)) and not isinstance(layer, bool)
        if not integer or not 1 <= layer < L:
            raise ValueError(
                f"only hidden neurons can be knocked out: layer must be 1-{L - 1}, got {layer!r}"
            )
        check_neuron(net, layer, index)
        masks[layer][index] = 0
    return masks


@dataclass
class Pass:
    """One forward pass: a[l] (B, n_l) for l = 0..L (knocked-out neurons at 0) and the
    weighted inputs z[l] (B, n_l) for l = 1..L (z[0] is None)."""

    a: list[Array]
    z: list[Array | None]


def forward(net: Network, x: Array, knockout: Knockout = (), start: int = 0) -> Pass:
    """The network on x (B, 784) with the knocked-out neurons' activations forced to 0
    before the next layer reads them: a_l = m_l ⊙ f(W[l-1] a_{l-1} + b[l-1]).

    With ``start`` = s > 0, x is a_s (B, n_s), already computed, and the pass runs on
    from there (a[l] and z[l] for l < s are None)."""
    x = np.atleast_2d(net.as_input(x) if start == 0 else x)
    keep = keep_masks(net, knockout)
    f, L = net.activation.f, len(net.W)
    a, z = [None] * start + [x], [None] * (start + 1)
    for l in range(start, L):
        last = l == L - 1
        step, z_l = feedforward(
            net.W[l : l + 1], net.b[l : l + 1], a[-1], f, net.output if last else f
        )
        a.append(step[-1] if last else step[-1] * keep[l + 1])
        z.append(z_l)
    return Pass(a, z)


def trace(net: Network, x: Array, knockout: Knockout = ()) -> list[Array]:
    """Every layer's activations [a_0, ..., a_L] for x (784,) or (B, 784), shaped like
    ``Network.trace``, with the knock-outs applied."""
    one = np.ndim(x) == 1
    a = forward(net, x, knockout).a
    return [layer[0] for layer in a] if one else a
