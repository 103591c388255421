"""A compiled training epoch, used by ``fit`` when numba is installed.

It does exactly what one epoch of ``fit`` does with ``Network.backprop`` and the
optimisers (the same equations, the same mini-batches, the same shifts), fused
into one compiled loop.  For 784-16-16-10 a mini-batch of 32 costs about 60 NumPy
calls in the readable path, and at a microsecond each that overhead, not the
arithmetic, sets the pace; here it is gone.  The two paths agree to float32
rounding (tests/test_kernel.py); ``network.py`` stays the reference.

What made it fast, each measured with a cycle counter around the parts of a batch-32
epoch on a 2-core AMD EPYC (milliseconds per epoch, before → after):

- Subnormal floats are flushed to zero while the loop runs (``digitnet._mxcsr``).
  Adam's moments for rarely inked pixels decay into the subnormal range, where
  x86 arithmetic is up to 100 times slower: the optimiser's pass, 24.7 → 7.9.
- The optimiser's five arrays are copied into rows that start on 64-byte lines.
  Depending on where NumPy happened to allocate them, the same pass took 7 or 20.
- The 784-wide products go to BLAS at most ``ROWS_PER_PRODUCT`` rows at a time.
  At batch 128, OpenBLAS's forward products took 19.7, in blocks of 64 rows 13.7;
  the gradient's, 28.1 → 14.8.
- A shifted batch is one offset on the flat picture, then a blank column or row;
  a loop over 2-D indices cost 35, the offset 5.
- The next batch's pixels and targets are asked for a batch ahead, and log a_j is
  taken only where y_j ≠ 0: the output layer's part, 15.6 → 6.8.

Install with ``pip install digitnet[fast]`` (numba, and SciPy for its BLAS).
"""

from __future__ import annotations

import importlib.util
import math
import platform
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

#: The most rows of a mini-batch multiplied by a 784-wide layer in one BLAS call.
ROWS_PER_PRODUCT = 64


def _epoch(params, grad, sizes, codes, data, batch, lrs, decay, hyper, states, step0):
    """One epoch: the images (N, n_0) uint8 visited in ``order``, each mini-batch moved
    by its row of ``moves`` and scaled by x·scale + shift, with the targets (N, n_L),
    ``lrs`` the learning rate of each step and ``decay`` λ on each weight (0 on
    biases).  Updates params, grad (to the last batch's) and the optimiser's
    ``states`` in place; returns (summed cost, correct count, steps taken), stopping
    early if the cost stops being finite.
    """
    act, out, loss, opt = codes
    images, targets, labels, order, moves, x_scale, x_shift = data
    momentum, beta2, eps = hyper
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
    partial = np.empty(sizes[1:].max() * sizes[:-1].max(), np.float32)  # one block's ∂C/∂W
    zs = np.empty(batch * k, np.float32)
    # The loop works on its own copies of the parameters, gradient, λ and optimiser
    # state, each starting on a 64-byte boundary: the optimiser's pass over them ran at
    # a third of the speed when NumPy's allocations fell out of step with each other.
    size = params.shape[0]
    stride = (size + 15) // 16 * 16  # 16 float32 to a 64-byte line
    block = np.zeros(5 * stride + 16, np.float32)
    skip = (64 - block.ctypes.data % 64) % 64 // 4  # floats before the first boundary
    rows = block[skip : skip + 5 * stride].reshape((5, stride))
    w, g, lam = rows[0, :size], rows[1, :size], rows[2, :size]
    m1, m2 = rows[3, :size], rows[4, :size]
    w[:], lam[:] = params, decay
    if opt >= 1:
        m1[:] = states[0]
    if opt == 2:
        m2[:] = states[1]
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
            touched += targets[order[r], 0] > 0
        # a_0: the batch moved by (dy, dx), vacated pixels 0, scaled to floats.  On the
        # flat picture the move is one offset; the pixels it carries across a row's end
        # land in the vacated columns, which are then blanked.
        x = acts[: m * n0].reshape((m, n0))
        dy, dx = moves[i, 0], moves[i, 1]
        offset = dy * side + dx
        first, last = max(offset, 0), n0 + min(offset, 0)
        blank_from, blank_to = (0, dx) if dx > 0 else (side + dx, side)
        for r in range(m):
            source = images[order[s + r], first - offset : last - offset]
            target = x[r, first:last]
            for p in range(last - first):
                target[p] = np.float32(source[p]) * x_scale + x_shift
            x[r, :first] = x_shift
            x[r, last:] = x_shift
            for py in range(side if dx != 0 else 0):
                x[r, py * side + blank_from : py * side + blank_to] = x_shift
        # forward: a_{l+1} = f(a_l W_lᵀ + b_l)
        for l in range(n_layers):
            no, ni = sizes[l + 1], sizes[l]
            W = w[offsets[l] : offsets[l] + no * ni].reshape((no, ni))
            b = w[offsets[l] + no * ni : offsets[l + 1]]
            prev = acts[starts[l] : starts[l] + m * ni].reshape((m, ni))
            z = (zs if l == n_layers - 1 else acts[starts[l + 1] :])[: m * no].reshape((m, no))
            for c in range(0, m, ROWS_PER_PRODUCT):
                np.dot(prev[c : c + ROWS_PER_PRODUCT], W.T, z[c : c + ROWS_PER_PRODUCT])
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
                        if y[j] != 0:  # log a_j is floored, so a term with y_j = 0 is 0
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
            gW = g[offsets[l] : offsets[l] + no * ni].reshape((no, ni))
            np.dot(delta[:ROWS_PER_PRODUCT].T, prev[:ROWS_PER_PRODUCT], gW)
            block = partial[: no * ni].reshape((no, ni))
            for c in range(ROWS_PER_PRODUCT, m, ROWS_PER_PRODUCT):
                np.dot(delta[c : c + ROWS_PER_PRODUCT].T, prev[c : c + ROWS_PER_PRODUCT], block)
                gW += block
            for j in range(no):
                total = 0.0
                for r in range(m):
                    total += delta[r, j]
                g[offsets[l] + no * ni + j] = total
            if l > 0:
                W = w[offsets[l] : offsets[l] + no * ni].reshape((no, ni))
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
            for p in range(w.shape[0]):
                w[p] -= lr * (g[p] + lam[p] * w[p])
        elif opt == 1:
            for p in range(w.shape[0]):
                m1[p] = momentum * m1[p] - lr * (g[p] + lam[p] * w[p])
                w[p] += m1[p]
        else:  # in float32, as the NumPy path computes it
            c2 = math.sqrt(1 - beta2**t)
            rate = np.float32(lr * c2 / (1 - momentum**t))
            floor = np.float32(eps * c2)
            b1, b2 = np.float32(1 - momentum), np.float32(1 - beta2)
            for p in range(w.shape[0]):
                gp = g[p] + lam[p] * w[p]
                m1[p] += b1 * (gp - m1[p])
                m2[p] += b2 * (gp * gp - m2[p])
                w[p] -= rate * m1[p] / (np.sqrt(m2[p]) + floor)
        if not math.isfinite(cost_sum):
            break
    params[:], grad[:] = w, g
    if opt >= 1:
        states[0][:] = m1
    if opt == 2:
        states[1][:] = m2
    return cost_sum + 0.0 * touched, correct, t - step0


@cache
def _compiled():
    """The compiled ``_epoch``, and ``digitnet._mxcsr`` where the CPU has MXCSR."""
    import numba
    import scipy.linalg.cython_blas  # noqa: F401  the BLAS behind numba's np.dot

    mxcsr = None
    if platform.machine().lower() in ("x86_64", "amd64"):
        from . import _mxcsr as mxcsr
    # error_model="numpy": x / 0 gives inf as in NumPy instead of a check on every
    # division, which is what lets the optimiser's loop run as vector instructions.
    return numba.njit(cache=True, nogil=True, error_model="numpy")(_epoch), mxcsr


def epoch(params, grad, sizes, codes, data, batch, lrs, decay, hyper, states, step0):
    """The compiled ``_epoch`` (compiled on first use, then cached on disk), run with
    subnormal floats flushed to zero on x86 and the CPU's setting restored after."""
    run, mxcsr = _compiled()
    old = mxcsr.flush_subnormals() if mxcsr else None
    try:
        return run(params, grad, sizes, codes, data, batch, lrs, decay, hyper, states, step0)
    finally:
        if mxcsr:
            mxcsr.restore(old)
