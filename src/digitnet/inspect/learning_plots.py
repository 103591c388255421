"""Pictures of how the network learns, as matplotlib Figures (never through pyplot):
what one example asks of the weights (``learning.wishes``), how well mini-batches point
the way of the whole training set (``learning.minibatches``), and the cost landscape
around the network (``landscape.landscape``).  Colours as in ``plots``: red up (a
positive nudge), blue down.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.ticker
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from .landscape import Landscape
from .learning import Batches, Wishes
from .plots import NEGATIVE, POSITIVE, WEIGHTS_CMAP, _picture, _plain_log_label

Array = np.ndarray
#: First-layer nudge pictures per row.
PER_ROW = 8


def _signed_bars(ax, values: Array, labels: Sequence[str], title: str) -> None:
    """One bar per value, red up and blue down, on a symmetric axis."""
    values = np.asarray(values, dtype=float)
    colours = [POSITIVE if v > 0 else NEGATIVE for v in values]
    ax.bar(range(len(values)), values, color=colours, width=0.8)
    ax.axhline(0, color="#666666", linewidth=0.6)
    s = max(float(np.abs(values).max()), 1e-12) * 1.1
    ax.set_ylim(-s, s)
    ax.set_xticks(range(len(values)), labels, fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(title, fontsize=9)


def gradient_figure(pixels: Array, wishes: Wishes) -> Figure:
    """What one example asks: the picture; each output's wish −∂C/∂z_L as a signed bar
    (``wishes.deltas[-1]``, for softmax with cross-entropy y − a: the label up, the rest
    down); each hidden layer's wants −∂C/∂a_l (``wishes.wants``); and the first layer's
    weight nudges −∂C/∂W_1 (``wishes.weight_nudges[0]``), one 28×28 picture per neuron
    on one shared symmetric colour scale, red up and blue down."""
    x = np.asarray(pixels, dtype=float).reshape(-1)
    nudges = wishes.weight_nudges[0]  # (n_1, 784)
    hidden = len(wishes.wants)
    rows = -(-len(nudges) // PER_ROW)
    fig = Figure(figsize=(13, 3.2 + 1.7 * rows), layout="constrained")
    grid = fig.add_gridspec(1 + rows, PER_ROW, height_ratios=[2.2] + [1] * rows)
    top = grid[0, :].subgridspec(1, 2 + hidden, width_ratios=[1, 2.2] + [2.2] * hidden)
    ax = fig.add_subplot(top[0])
    _picture(ax, x, cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"label {wishes.label}, read as {wishes.digit}", fontsize=9)
    outputs = wishes.deltas[-1]
    _signed_bars(fig.add_subplot(top[1]), outputs, [str(d) for d in range(len(outputs))],
                 "what each output wants: −∂C/∂z")  # fmt: skip
    for l, want in enumerate(wishes.wants, start=1):
        _signed_bars(fig.add_subplot(top[1 + l]), want, [str(j + 1) for j in range(len(want))],
                     f"what layer {l} is asked for: −∂C/∂a")  # fmt: skip
    s = max(float(np.abs(nudges).max()), 1e-12)
    for j, nudge in enumerate(nudges):
        ax = fig.add_subplot(grid[1 + j // PER_ROW, j % PER_ROW])
        _picture(ax, nudge, cmap=WEIGHTS_CMAP, vmin=-s, vmax=s)
        ax.set_title(f"neuron {j + 1}", fontsize=7)
    fig.suptitle(
        f"One example's wishes ({wishes.loss} cost {wishes.cost:.3f}); below, how each "
        f"first-layer neuron's 784 weights would change (red up, blue down, ±{s:.2g})",
        fontsize=11,
    )
    return fig


def minibatch_figure(results: Batches | Sequence[Batches], seeds: Sequence[int] = ()) -> Figure:
    """Against the mini-batch size (log axis): the cosine between each batch's mean
    gradient and the whole set's (left) and each batch's mean cost, with the whole set's
    as a dashed line (right); one line per result (e.g. per seed, named by ``seeds``)."""
    results = [results] if isinstance(results, Batches) else list(results)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    by_cosine, by_cost = fig.subplots(1, 2, sharex=True)
    for r, result in enumerate(results):
        sizes = [b["size"] for b in result.batches]
        name = f"seed {seeds[r]}" if r < len(seeds) else None
        by_cosine.plot(sizes, [b["cosine"] for b in result.batches], "o-", label=name)
        by_cost.plot(sizes, [b["cost"] for b in result.batches], "o-", label=name)
    by_cost.axhline(results[0].full["cost"], color="#444444", linestyle="--",
                    label="all training images")  # fmt: skip
    by_cosine.axhline(1, color="#444444", linewidth=0.6)
    low = min(0.0, by_cosine.get_ylim()[0])
    by_cosine.set(ylabel="cosine to the full gradient", ylim=(low, 1.05))
    by_cost.set(ylabel="mean cost of the batch")
    for ax in (by_cosine, by_cost):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_plain_log_label))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("mini-batch size (log scale)")
        ax.grid(alpha=0.3, which="both")
    if seeds or len(results) > 1:
        by_cost.legend(fontsize=8)
    fig.suptitle("How well a mini-batch's gradient points the way of all the training images")
    return fig


def landscape_figure(land: Landscape) -> Figure:
    """The cost over the plane θ + α·d₁ + β·d₂ as a contour map (log colour scale when
    every cost is positive), the network at (0, 0) and the projected path, if any."""
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    cost = land.cost
    positive = float(cost.min()) > 0
    levels = (np.geomspace(cost.min(), cost.max(), 24) if positive
              else np.linspace(cost.min(), cost.max(), 24))  # fmt: skip
    if not levels[-1] > levels[0]:
        levels = np.array([levels[0] - 1e-9, levels[0] + 1e-9])
    norm = LogNorm(levels[0], levels[-1]) if positive and levels[0] > 0 else None
    filled = ax.contourf(land.alphas, land.betas, cost, levels=levels, cmap="viridis", norm=norm)
    ax.contour(land.alphas, land.betas, cost, levels=levels[::3], colors="white",
               linewidths=0.5, alpha=0.6)  # fmt: skip
    bar = fig.colorbar(filled, ax=ax, label="mean training cost", ticks=levels[::4])
    bar.ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.3g"))
    bar.ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.plot(0, 0, marker="*", markersize=16, color="#f5b700", markeredgecolor="black",
            linestyle="none", label="the network")  # fmt: skip
    if land.path is not None and len(land.path):
        ax.plot(land.path[:, 0], land.path[:, 1], "o-", color="white", markersize=3,
                linewidth=1, label="its training path")  # fmt: skip
    ax.set(xlabel="α: along −∇C (filter-normalised)", ylabel="β: a random direction ⊥ d₁")
    ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(f"The cost around the network (centre {cost[len(cost) // 2, len(cost) // 2]:.3f})")
    return fig
