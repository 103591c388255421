"""One epoch of mini-batch gradient descent: the loop over batches, written once in
whole-array NumPy.  It runs as plain Python (``kernel="numpy"``) or compiled by numba
from the same source (``kernel="compiled"``, ``digitnet.learn.kernel``); ``train.fit``
drives it an epoch at a time.
"""

from __future__ import annotations

import math

import numpy as np

from .network import backprop
from .optimizers import update
from .primitives import correct_guesses, prefetch_rows, rows_of, scaled_rows

Array = np.ndarray


def batch_input(images, rows, dy: int, dx: int, scale, shift, out: Array) -> Array:
    """out (m, side²) = the square uint8 images[rows] moved dy rows down and dx columns
    right, as scale·pixel + shift, the vacated pixels as a 0 pixel would be.

    Moving a digit by a pixel leaves it the same digit, so each move shows the network
    a new picture of it: a cheap guard against learning the exact pixel positions of
    the training set.  On the flat picture a move is one offset; the pixels a
    sideways move carries across a row's end land in the vacated columns, which are
    then blanked."""
    n = out.shape[1]
    side = int(math.sqrt(n))
    offset = dy * side + dx
    first, last = max(offset, 0), n + min(offset, 0)
    out[:, :first] = shift
    out[:, last:] = shift
    scaled_rows(images, rows, first - offset, last - offset, scale, shift, out, first)
    if dx != 0:
        blank_from, blank_to = (0, dx) if dx > 0 else (side + dx, side)
        out.reshape(-1, side, side)[:, :, blank_from:blank_to] = shift
    return out


def train_batches(net, data, plan, state, hyper, rule, constants, f, f_prime, output, cost, delta):
    """Mini-batch gradient descent over the batches ``plan`` lists: for each, the
    input, backpropagation, and one step of the optimiser's rule with L2 on the weights.
    Returns (Σ cost × batch size, correct guesses, batches taken), stopping after a
    batch whose cost is not finite.

    net = (params, grad, W, b, dW, db, λ): the flat vectors, their per-layer views,
    and the weight decay of each parameter (0 on biases).
    data = (images (N, n_0) uint8, targets (N, n_L), labels (N,), scale, shift, buffer).
    plan = (rows, moves (k, 2), lrs (k,), B): batch i is rows[i B : (i+1) B], moved by
    moves[i], at learning rate lrs[i].  state and hyper are ``Optimizer.workings()``;
    the optimiser's rule and constants, f, f', the output layer, the cost and its δ_L
    are the registries' functions (``math_of``).
    """
    params, grad, W, b, dW, db, decay = net
    images, targets, labels, scale, shift, buffer = data
    rows, moves, lrs, batch = plan
    cost_sum, correct = 0.0, 0
    for i in range(len(lrs)):
        batch_rows = rows[i * batch : (i + 1) * batch]
        prefetch_rows(images, rows[(i + 1) * batch : (i + 2) * batch])  # the next batch's
        m = len(batch_rows)
        x = batch_input(images, batch_rows, moves[i, 0], moves[i, 1], scale, shift, buffer[:m])
        y = rows_of(targets, batch_rows)
        c, a = backprop(W, b, dW, db, x, y, f, f_prime, output, cost, delta)
        cost_sum += c * m
        if not math.isfinite(c):
            return cost_sum, correct, i + 1
        correct += correct_guesses(a, rows_of(labels, batch_rows))
        update(params, grad, decay, lrs[i], state, hyper, rule, constants)
    return cost_sum, correct, len(lrs)
