"""A compiled training epoch, used by ``fit`` when numba is installed.

It does exactly what one epoch of ``fit`` does with ``Network.backprop`` and the
optimisers (the same equations, the same mini-batches, the same shifts), fused
into one compiled loop.  For 784-16-16-10 a mini-batch of 32 costs about 60 NumPy
calls in the readable path, and at a microsecond each that overhead, not the
arithmetic, sets the pace; here it is gone.  The two paths agree to float32
rounding (tests/test_kernel.py); ``network.py`` stays the reference.

Install with ``pip install digitnet[fast]`` (numba, and SciPy for its BLAS).
"""

from __future__ import annotations

import importlib.util
import math
from functools import cache

import numpy as np

#: numba (and SciPy, whose BLAS numba's np.dot calls) are installed.  They are only
#: imported when a compiled epoch first runs, so other commands start quickly.
AVAILABLE = all(importlib.util.find_spec(name) is not None for name in ("numba", "scipy"))

#: Codes for the compiled loop; names are looked up here, never passed through.
ACTIVATION_CODES = {"sigmoid": 0, "relu": 1, "tanh": 2}
OUTPUT_CODES = {"sigmoid": 0, "softmax": 1}
LOSS_CODES = {"quadratic": 0, "cross-entropy": 1}
OPTIMIZER_CODES = {"sgd": 0, "momentum": 1, "adam": 2}


def _epoch(params, grad, sizes, codes, data, batch, lrs, decay, hyper, states, step0):
    """One epoch: the images (N, n_0) uint8 visited in ``order``, each mini-batch moved
    by its row of ``moves`` and scaled by x·scale + shift, with the targets (N, n_L),
    ``lrs`` the learning rate of each step and ``decay`` λ on each weight (0 on
    biases).  Updates params and the optimiser's ``states`` in place; returns (summed
    cost, correct count, steps taken), stopping early if the cost stops being finite.
    """
    act, out, loss, opt = codes
    images, targets, labels, order, moves, x_scale, x_shift = data
    momentum, beta2, eps = hyper
    state1, state2 = states
    n = order.shape[0]
    n0 = sizes[0]
    side = int(math.sqrt(n0))
    n_layers = sizes.shape[0] - 1
    k = sizes[n_layers]
    offsets = np.zeros(n_layers + 1, np.int64)  # where layer l starts in params
    starts = np.zeros(n_layers + 2, np.int64)  # where a_l starts in the activation buffer
    for l in range(n_layers):
        offsets[l + 1] = offsets[l] + sizes[l + 1] * sizes[l] + sizes[l + 1]
    for l in range(n_layers + 1):
        starts[l + 1] = starts[l] + batch * sizes[l]
    acts = np.empty(starts[n_layers + 1], np.float32)  # a_0 ... a_L, (m, n_l) each
    deltas = np.empty(2 * batch * max(sizes[1:].max(), 1), np.float32)
    zs = np.empty(batch * k, np.float32)
    cost_sum = 0.0
    correct = 0
    t = step0
    touched = 0
    for i in range((n + batch - 1) // batch):
        s = i * batch
        m = min(batch, n - s)
        # Ask for the next batch's rows now: the loads overlap with this batch's work
        # instead of stalling one after another when their turn comes.
        for r in range(s + batch, min(s + 2 * batch, n)):
            for p in range(0, n0, 64):  # one load per cache line of the row
                touched += images[order[r], p]
        # a_0: the batch moved by (dy, dx), vacated pixels 0, scaled to floats
        x = acts[: m * n0].reshape((m, n0))
        dy, dx = moves[i, 0], moves[i, 1]
        if dy == 0 and dx == 0:
            for r in range(m):
                image = images[order[s + r]]
                for p in range(n0):
                    x[r, p] = np.float32(image[p]) * x_scale + x_shift
        else:
            x[:] = x_shift
            rows = range(max(dy, 0), side + min(dy, 0))
            cols = range(max(dx, 0), side + min(dx, 0))
            for r in range(m):
                image = images[order[s + r]]
                for py in rows:
                    for px in cols:
                        x[r, py * side + px] += image[(py - dy) * side + px - dx] * x_scale
        # forward: a_{l+1} = f(a_l W_lᵀ + b_l)
        for l in range(n_layers):
            no, ni = sizes[l + 1], sizes[l]
            W = params[offsets[l] : offsets[l] + no * ni].reshape((no, ni))
            b = params[offsets[l] + no * ni : offsets[l + 1]]
            prev = acts[starts[l] : starts[l] + m * ni].reshape((m, ni))
            z = (zs if l == n_layers - 1 else acts[starts[l + 1] :])[: m * no].reshape((m, no))
            np.dot(prev, W.T, z)
            for r in range(m):
                for j in range(no):
                    z[r, j] += b[j]
            if l < n_layers - 1:
                for r in range(m):
                    for j in range(no):
                        v = z[r, j]
                        if act == 0:
                            z[r, j] = 1 / (1 + math.exp(-v))  # inf for v < -88: gives 0
                        elif act == 1:
                            z[r, j] = v if v > 0 else 0.0
                        else:
                            z[r, j] = math.tanh(v)
        z = zs[: m * k].reshape((m, k))
        a = acts[starts[n_layers] : starts[n_layers] + m * k].reshape((m, k))
        delta = deltas[: m * k].reshape((m, k))
        for r in range(m):
            y = targets[order[s + r]]
            if out == 1:  # softmax
                top = z[r, 0]
                for j in range(1, k):
                    top = max(top, z[r, j])
                total = 0.0
                for j in range(k):
                    a[r, j] = math.exp(z[r, j] - top)
                    total += a[r, j]
                for j in range(k):
                    a[r, j] /= total
            else:
                for j in range(k):
                    a[r, j] = 1 / (1 + math.exp(-z[r, j]))
            best = 0
            for j in range(1, k):
                if a[r, j] > a[r, best]:
                    best = j
            if best == labels[order[s + r]]:
                correct += 1
            if loss == 0:  # quadratic: C = ½‖a - y‖²
                for j in range(k):
                    cost_sum += 0.5 * (a[r, j] - y[j]) ** 2
                if out == 1:
                    ga = 0.0
                    for j in range(k):
                        ga += (a[r, j] - y[j]) * a[r, j]
                    for j in range(k):
                        delta[r, j] = a[r, j] * ((a[r, j] - y[j]) - ga) / m
                else:
                    for j in range(k):
                        delta[r, j] = (a[r, j] - y[j]) * a[r, j] * (1 - a[r, j]) / m
            else:  # cross-entropy: δ = a - y
                for j in range(k):
                    if out == 1:
                        cost_sum -= y[j] * math.log(max(a[r, j], 1.1754944e-38))
                    else:
                        zz = z[r, j]  # -[y log σ(z) + (1 - y) log σ(-z)], from z
                        cost_sum += max(zz, 0.0) - y[j] * zz + math.log1p(math.exp(-abs(zz)))
                    delta[r, j] = (a[r, j] - y[j]) / m
        # backward: ∂C/∂W = δᵀ a_prev, ∂C/∂b = Σ δ, δ_prev = (δ W) ⊙ f'
        flip = 0
        for l in range(n_layers - 1, -1, -1):
            no, ni = sizes[l + 1], sizes[l]
            prev = acts[starts[l] : starts[l] + m * ni].reshape((m, ni))
            np.dot(delta.T, prev, grad[offsets[l] : offsets[l] + no * ni].reshape((no, ni)))
            for j in range(no):
                total = 0.0
                for r in range(m):
                    total += delta[r, j]
                grad[offsets[l] + no * ni + j] = total
            if l > 0:
                W = params[offsets[l] : offsets[l] + no * ni].reshape((no, ni))
                flip = 1 - flip
                half = deltas.shape[0] // 2
                back = deltas[flip * half : flip * half + m * ni].reshape((m, ni))
                np.dot(delta, W, back)
                for r in range(m):
                    for j in range(ni):
                        v = prev[r, j]
                        if act == 0:
                            back[r, j] *= v * (1 - v)
                        elif act == 1:
                            back[r, j] *= 1.0 if v > 0 else 0.0
                        else:
                            back[r, j] *= 1 - v * v
                delta = back
        # L2 on the weights, then the optimiser, over the flat vector
        lr = lrs[i]
        t += 1
        if opt == 0:
            for p in range(params.shape[0]):
                params[p] -= lr * (grad[p] + decay[p] * params[p])
        elif opt == 1:
            for p in range(params.shape[0]):
                state1[p] = momentum * state1[p] - lr * (grad[p] + decay[p] * params[p])
                params[p] += state1[p]
        else:  # in float32, as the NumPy path computes it
            c2 = math.sqrt(1 - beta2**t)
            rate = np.float32(lr * c2 / (1 - momentum**t))
            floor = np.float32(eps * c2)
            b1, b2 = np.float32(1 - momentum), np.float32(1 - beta2)
            for p in range(params.shape[0]):
                g = grad[p] + decay[p] * params[p]
                state1[p] += b1 * (g - state1[p])
                state2[p] += b2 * (g * g - state2[p])
                params[p] -= rate * state1[p] / (np.sqrt(state2[p]) + floor)
        if not math.isfinite(cost_sum):
            return cost_sum + 0.0 * touched, correct, t - step0
    return cost_sum + 0.0 * touched, correct, t - step0


@cache
def _compiled():
    import numba
    import scipy.linalg.cython_blas  # noqa: F401  the BLAS behind numba's np.dot

    # error_model="numpy": x / 0 gives inf as in NumPy instead of a check on every
    # division, which is what lets the optimiser's loop run as vector instructions.
    return numba.njit(cache=True, nogil=True, error_model="numpy")(_epoch)


def epoch(params, grad, sizes, codes, data, batch, lrs, decay, hyper, states, step0):
    """The compiled ``_epoch`` (compiled on first use, then cached on disk)."""
    return _compiled()(params, grad, sizes, codes, data, batch, lrs, decay, hyper, states, step0)
