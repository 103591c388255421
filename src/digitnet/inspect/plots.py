"""Pictures of what the network does, as matplotlib Figures.

Every function takes the library's own objects (a ``Network``, a ``History``, arrays)
and returns a ``Figure`` (never through pyplot, and never calling ``show``), so they
work in scripts and servers without a display, in
notebooks (inline) and in ``digitnet plot``.  Colours follow the video: weights on a
diverging map, blue negative, white zero, red positive; activations in grey, black 0
and white 1.
"""

from __future__ import annotations

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.colors import LogNorm, TwoSlopeNorm
from matplotlib.figure import Figure

from ..config import History
from ..learn.network import Network

Array = np.ndarray
POSITIVE, NEGATIVE = "#d1495b", "#2e6fdb"
WEIGHTS_CMAP = "RdBu_r"  # blue negative, white zero, red positive


def _grey(value: float) -> tuple[float, float, float]:
    v = float(np.clip(value, 0, 1))
    return (v, v, v)


def _shade(values: Array, activation: str) -> Array:
    """Activations -> [0, 1] for shading: sigmoid as is, tanh from [-1, 1], ReLU by max."""
    if activation == "tanh":
        return (values + 1) / 2
    if activation == "relu":
        return values / max(float(values.max()), 1e-9)
    return values


#: The network figure's colours: the video's look, light on black.
INK, DIM, DARK, GUESS = "#f0f2f5", "#a0a8b5", "#0f1216", "#f5b700"


def _row(n: int, i: int) -> float:
    """The height of neuron i of a layer of n, top to bottom in (0, 1)."""
    return 1 - (i + 0.5) / n


def network_figure(net: Network, x: Array, *, label: int | None = None, links: int = 40) -> Figure:
    """The activation cascade for one input x (784,) in [0, 1]: the picture, the 784
    input neurons as a column, each layer's neurons shaded by activation, the strongest
    contributions w·a as lines (colour for sign, width for size), the ten outputs
    labelled with their values and the guess marked."""
    layers = net.trace(np.asarray(x, dtype=np.float32).reshape(-1))
    guess = int(np.argmax(layers[-1]))
    fig = Figure(figsize=(12, 6.6), layout="constrained", facecolor=DARK)
    grid = fig.add_gridspec(1, 2, width_ratios=[1, 3.2])
    _input_picture(fig.add_subplot(grid[0]), layers[0], label)
    ax = fig.add_subplot(grid[1])
    _input_column(ax, net.sizes, layers[0])
    _links(ax, net, layers, links)
    for l in range(1, len(net.sizes)):
        _neurons(ax, net, l, layers[l], guess)
    fig.suptitle(
        f"the network's guess: {guess}  (output {layers[-1][guess]:.2f})", fontsize=14, color=INK
    )
    return fig


def _input_picture(ax, a0: Array, label: int | None) -> None:
    """The input a_0 (784,) as the 28x28 picture it is."""
    side = int(round(np.sqrt(a0.size)))
    ax.imshow(a0.reshape(side, side), cmap="gray", vmin=0, vmax=1)
    title = "input: 28×28 pixels" if label is None else f"input (MNIST label {label})"
    ax.set_title(title, color=INK)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color(DIM)


def _input_column(ax, sizes: tuple[int, ...], a0: Array) -> None:
    """The cascade's axes, and the 784 inputs as one column of grey cells."""
    ax.set_facecolor(DARK)
    ax.set_xlim(-0.6, len(sizes) - 0.2)
    ax.set_ylim(-0.06, 1.08)
    ax.axis("off")
    ax.imshow(a0.reshape(-1, 1), cmap="gray", vmin=0, vmax=1, aspect="auto",
              extent=(-0.08, 0.08, 0, 1))  # fmt: skip
    ax.text(0, 1.03, f"{sizes[0]} inputs", ha="center", fontsize=11, color=INK)
    ax.text(
        0, -0.02, "one row per pixel,\ntop-left first", ha="center", va="top", fontsize=8, color=DIM
    )


def _links(ax, net: Network, layers: list[Array], links: int) -> None:
    """The ``links`` strongest contributions w_jk·a_k into each layer, as lines."""
    sizes = net.sizes
    for l, W in enumerate(net.W):
        contributions = W * layers[l][None, :]  # (n_out, n_in)
        flat = np.abs(contributions).ravel()
        top = np.argsort(flat)[::-1][:links]
        peak = max(float(flat[top[0]]), 1e-9)
        for index in top:
            j, k = divmod(int(index), W.shape[1])
            if flat[index] == 0:
                continue
            strength = flat[index] / peak
            ax.plot(
                [0.08 if l == 0 else l, l + 1],
                [_row(sizes[l], k), _row(sizes[l + 1], j)],
                color=POSITIVE if W[j, k] > 0 else NEGATIVE,
                linewidth=0.3 + 2.6 * strength,
                alpha=0.3 + 0.6 * strength,
                zorder=1,
            )


def _neurons(ax, net: Network, l: int, a: Array, guess: int) -> None:
    """Layer l's neurons shaded by their activations a (n_l,); the outputs labelled
    with their values, the guess marked."""
    n, last = net.sizes[l], l == len(net.sizes) - 1
    shades = a if last else _shade(a, net.activation_name)
    chosen = [last and i == guess for i in range(n)]
    ax.scatter(
        np.full(n, l),
        [_row(n, i) for i in range(n)],
        s=260 if last else 170,
        c=[_grey(v) for v in shades],
        edgecolors=[GUESS if c else "#7a8290" for c in chosen],
        zorder=3,
        linewidths=[3 if c else 1.2 for c in chosen],
    )
    if last:
        for i in range(n):
            ax.text(l + 0.08, _row(n, i), f"{i}   {a[i]:.2f}", va="center", fontsize=11,
                    fontweight="bold" if chosen[i] else "normal",
                    color=GUESS if chosen[i] else INK)  # fmt: skip
    name = "output" if last else f"layer {l}: {n} neurons"
    ax.text(l, 1.03, name, ha="center", fontsize=11, color=INK)


def weights_figure(net: Network) -> Figure:
    """Each first-layer neuron's weights as a 28×28 picture of what it looks for (blue
    negative, red positive, centred at zero), with its bias; then the later layers'
    weight matrices as heat maps."""
    W0 = net.W[0]
    side = int(round(np.sqrt(W0.shape[1])))
    n = W0.shape[0]
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    later = len(net.W) - 1
    fig = Figure(figsize=(3.0 * cols + 4.2 * later, 3.1 * rows), layout="constrained")
    outer = fig.add_gridspec(
        1, 2 if later else 1, width_ratios=[3.0 * cols, 4.2 * later] if later else None
    )
    first = outer[0].subgridspec(rows, cols)
    scale = float(np.abs(W0).max()) or 1.0
    for j in range(n):
        ax = fig.add_subplot(first[j // cols, j % cols])
        image = ax.imshow(W0[j].reshape(side, side), cmap=WEIGHTS_CMAP, vmin=-scale, vmax=scale)
        ax.set_title(f"neuron {j + 1}, bias {net.b[0][j]:+.2f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=fig.axes[:n], shrink=0.6, label="layer 1 weight")
    if later:
        right = outer[1].subgridspec(later, 1)
        for l in range(1, len(net.W)):
            ax = fig.add_subplot(right[l - 1])
            W = net.W[l]
            s = float(np.abs(W).max()) or 1.0
            im = ax.imshow(W, cmap=WEIGHTS_CMAP, norm=TwoSlopeNorm(0, -s, s), aspect="auto")
            ax.set_title(f"layer {l + 1} weights W[{l}] {W.shape[0]}×{W.shape[1]}", fontsize=10)
            ax.set_xlabel(f"from layer {l} neuron")
            ax.set_ylabel("to output digit" if l == len(net.W) - 1 else f"to layer {l + 1} neuron")
            ax.set_xticks(range(W.shape[1]), [str(i + 1) for i in range(W.shape[1])], fontsize=7)
            labels = range(W.shape[0]) if l == len(net.W) - 1 else range(1, W.shape[0] + 1)
            ax.set_yticks(range(W.shape[0]), [str(i) for i in labels], fontsize=7)
            fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle("What each neuron looks for: its incoming weights", fontsize=14)
    return fig


def curves_figure(history: History) -> Figure:
    """Training and validation cost and accuracy per epoch, the kept epoch marked."""
    epochs = [e.epoch for e in history.epochs]
    if not epochs:
        raise ValueError("the history has no epochs to plot")
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [e.loss for e in history.epochs], label="training (mean over the epoch)")
    val_loss = [e.val_loss for e in history.epochs]
    if all(v is not None for v in val_loss):
        ax_loss.plot(epochs, val_loss, label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cost", title="Cost")
    ax_acc.plot(
        epochs,
        [100 * e.accuracy for e in history.epochs],
        label="training (running, on the shifted pictures)",
    )
    val_acc = [e.val_accuracy for e in history.epochs]
    if all(v is not None for v in val_acc):
        ax_acc.plot(epochs, [100 * v for v in val_acc], label="validation")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        if history.best_epoch:
            ax.axvline(
                history.best_epoch,
                color="#888888",
                linestyle=":",
                label=f"kept: epoch {history.best_epoch}",
            )
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def confusion_figure(confusion: Array, title: str = "Confusion matrix on the test set") -> Figure:
    """A (k, k) matrix of counts, rows the true digit and columns the guess."""
    confusion = np.asarray(confusion)
    k = len(confusion)
    fig = Figure(figsize=(7.6, 6.4), layout="constrained")
    ax = fig.subplots()
    cmap = matplotlib.colormaps["Blues"].with_extremes(bad="white")  # zero counts
    norm = LogNorm(vmin=1, vmax=max(int(confusion.max()), 2))
    image = ax.imshow(np.ma.masked_equal(confusion, 0), cmap=cmap, norm=norm)
    for t in range(k):
        for p in range(k):
            dark = confusion[t, p] > 0 and norm(confusion[t, p]) > 0.6
            ax.text(
                p,
                t,
                str(confusion[t, p]),
                ha="center",
                va="center",
                fontsize=9,
                color="white" if dark else "black",
            )
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set(xlabel="the network's guess", ylabel="true digit")
    accuracy = np.trace(confusion) / max(confusion.sum(), 1)
    ax.set_title(f"{title}: {accuracy:.2%} right")
    fig.colorbar(image, ax=ax, shrink=0.8, label="images (log scale)")
    return fig


def mistakes_figure(net: Network, images: Array, labels: Array, count: int = 24) -> Figure:
    """The misclassified images (uint8 (N, 784)), worst first: the most confident
    wrong answers, each with its true label, the guess and the confidence."""
    outputs = np.concatenate(
        [net.forward(images[s : s + 10_000]) for s in range(0, len(images), 10_000)]
    )
    guesses = outputs.argmax(axis=1)
    wrong = np.flatnonzero(guesses != labels)
    wrong = wrong[np.argsort(-outputs[wrong, guesses[wrong]])][:count]
    cols = 8
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig = Figure(figsize=(cols * 1.55, rows * 1.85 + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    side = int(round(np.sqrt(images.shape[1])))
    for ax in axes:
        ax.axis("off")
    for ax, i in zip(axes, wrong, strict=False):
        ax.imshow(images[i].reshape(side, side), cmap="gray", vmin=0, vmax=255)
        ax.set_title(
            f"true {labels[i]} → {guesses[i]}\n{outputs[i, guesses[i]]:.0%} sure", fontsize=9
        )
    fig.suptitle(
        f"{len(np.flatnonzero(guesses != labels))} of {len(labels)} test digits read "
        f"wrong; the {len(wrong)} most confident mistakes",
        fontsize=12,
    )
    return fig


def noise_figure(net: Network, rng: np.random.Generator, count: int = 4) -> Figure:
    """What the network answers for pure random noise: often a confident digit, which
    shows what it does not know (it was only ever shown digits)."""
    side = int(round(np.sqrt(net.sizes[0])))
    noise = rng.random((count, net.sizes[0]), dtype=np.float32)
    outputs = net.forward(noise)
    fig = Figure(figsize=(3.0 * count, 5.2), layout="constrained")
    axes = fig.subplots(2, count, squeeze=False)
    for i in range(count):
        axes[0, i].imshow(noise[i].reshape(side, side), cmap="gray", vmin=0, vmax=1)
        axes[0, i].set_xticks([])
        axes[0, i].set_yticks([])
        guess = int(outputs[i].argmax())
        axes[0, i].set_title(f"noise {i + 1}: says {guess} ({outputs[i, guess]:.0%})")
        colours = ["#f5b700" if d == guess else "#8a8f98" for d in range(len(outputs[i]))]
        axes[1, i].bar(range(len(outputs[i])), outputs[i], color=colours)
        axes[1, i].set_xticks(range(len(outputs[i])))
        axes[1, i].set_ylim(0, 1)
        axes[1, i].set_xlabel("output digit")
        if i == 0:
            axes[1, i].set_ylabel("output activation")
    fig.suptitle(
        "Random noise in, a digit out: the network never learned to say \u201cnot a digit\u201d",
        fontsize=12,
    )
    return fig


#: Marker and colour of each hidden activation in a sweep's plot.
ACTIVATION_STYLE = {"sigmoid": ("o", "#2e6fdb"), "relu": ("^", "#d1495b"), "tanh": ("s", "#3c9d5d")}


def _plain_log_label(value: float, _position) -> str:
    """Log-axis ticks as plain numbers (20,000, not 2×10⁴), at 1, 2, 3 and 5 of each decade."""
    if value <= 0:
        return ""
    lead = value / 10 ** np.floor(np.log10(value))
    return f"{value:,.0f}" if round(lead, 6) in (1, 2, 3, 5) else ""


def sweep_figure(trials, highlight: tuple[int, ...] = (784, 16, 16, 10)) -> Figure:
    """Test accuracy against parameter count (left, log scale) and training time
    (right), one point per trial, shaped and coloured by activation, each labelled
    with its hidden layer sizes; the ``highlight`` network (the video's) ringed.

    ``trials`` are records with ``sizes``, ``activation``, ``n_parameters``,
    ``test_accuracy`` and ``seconds`` (``sweep.TrialResult``)."""
    fig = Figure(figsize=(13, 5.4), layout="constrained")
    by_size, by_time = fig.subplots(1, 2, sharey=True)
    for ax, x_of, label in (
        (by_size, lambda t: t.n_parameters, "weights and biases (log scale)"),
        (by_time, lambda t: t.seconds, "training time, seconds"),
    ):
        for name in sorted({t.activation for t in trials}):
            mine = [t for t in trials if t.activation == name]
            marker, colour = ACTIVATION_STYLE.get(name, ("D", "#555555"))
            ax.scatter(
                [x_of(t) for t in mine],
                [100 * t.test_accuracy for t in mine],
                marker=marker,
                color=colour,
                label=name,
                alpha=0.85,
                zorder=3,
            )
        for t in trials:
            ax.annotate(
                "-".join(map(str, t.sizes[1:-1])) or "none",
                (x_of(t), 100 * t.test_accuracy),
                xytext=(8, -3),
                textcoords="offset points",
                fontsize=7,
                color="#444444",
            )
            if tuple(t.sizes) == tuple(highlight):
                ax.scatter(
                    x_of(t),
                    100 * t.test_accuracy,
                    s=260,
                    facecolors="none",
                    edgecolors="black",
                    linewidths=1.4,
                    zorder=4,
                )
        ax.set_xlabel(label)
        ax.grid(alpha=0.3, which="both")
    by_size.set_xscale("log")
    for set_formatter in (by_size.xaxis.set_major_formatter, by_size.xaxis.set_minor_formatter):
        set_formatter(matplotlib.ticker.FuncFormatter(_plain_log_label))
    by_size.set_ylabel("test accuracy, % of 10,000 images")
    by_size.legend(title="hidden activation")
    by_size.set_title("accuracy against size (labels: hidden layer sizes)")
    by_time.set_title(f"accuracy against training time (ringed: {'-'.join(map(str, highlight))})")
    return fig


# -- the neuron explorer (digitnet.inspect.explore) ------------------------------------------------


def _picture(ax, values: Array, **imshow) -> None:
    side = int(round(np.sqrt(values.size)))
    ax.imshow(values.reshape(side, side), **imshow)
    ax.set_xticks([])
    ax.set_yticks([])


def _incoming(ax, net: Network, layer: int, index: int) -> None:
    """Neuron (layer, index)'s incoming weights: a 28×28 picture from the pixels, else
    one bar per neuron of the layer below, in its order (a picture there would be fake)."""
    w = net.W[layer - 1][index]
    scale = float(np.abs(net.W[layer - 1]).max()) or 1.0
    if layer == 1 and int(round(np.sqrt(w.size))) ** 2 == w.size:
        _picture(ax, w, cmap=WEIGHTS_CMAP, vmin=-scale, vmax=scale)
        return
    ax.bar(range(w.size), w, color=[POSITIVE if v > 0 else NEGATIVE for v in w], width=0.8)
    ax.axhline(0, color="#666666", linewidth=0.6)
    ax.set_ylim(-scale, scale)
    ax.set_xticks(range(w.size), [str(i + 1) for i in range(w.size)], fontsize=5)
    ax.tick_params(axis="y", labelsize=6)


def neurons_figure(
    net: Network, layer: int, top: tuple[Array, Array], wanted: Array, images: Array
) -> Figure:
    """One row per neuron of ``layer`` (1 = the first hidden layer): its incoming
    weights (a picture for layer 1, bars for deeper layers), what it wants (``wanted``
    (n, 784) in [0, 1], from ``explore.wants``), and its top images (``top`` =
    (indices (n, k), activations (n, k)) from ``explore.top_images``; ``images`` the
    uint8 (N, 784) they index), each with its activation."""
    indices, acts = top
    n, k = indices.shape
    last = layer == len(net.W)
    fig = Figure(figsize=(1.25 * (k + 2.6), 1.45 * n + 0.8), layout="constrained")
    grid = fig.add_gridspec(n, k + 2, width_ratios=[2.2, 1.2] + [1] * k)
    for j in range(n):
        name = f"output {j}" if last else f"neuron {j + 1}"
        ax = fig.add_subplot(grid[j, 0])
        _incoming(ax, net, layer, j)
        ax.set_ylabel(f"{name}\nbias {net.b[layer - 1][j]:+.2f}", fontsize=8)
        ax = fig.add_subplot(grid[j, 1])
        _picture(ax, wanted[j], cmap="gray", vmin=0, vmax=1)
        for i in range(k):
            ax = fig.add_subplot(grid[j, i + 2])
            _picture(ax, images[indices[j, i]], cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"#{indices[j, i]}  {acts[j, i]:.3f}", fontsize=6)
        if j == 0:
            fig.axes[-k - 2].set_title("incoming weights", fontsize=9)
            fig.axes[-k - 1].set_title("wants", fontsize=9)
    where = "outputs" if last else f"layer {layer}"
    fig.suptitle(
        f"What excites each neuron of {where}: its weights (red +, blue −), the input it "
        f"wants, and the {k} test images it answers most",
        fontsize=11,
    )
    return fig


def knockout_figure(table) -> Figure:
    """Hidden neurons × digits: how many points of each digit's test accuracy are lost
    when that one neuron is switched off (``explore.KnockoutTable``)."""
    lost = 100 * table.lost
    names = [f"{l}.{j + 1}" for l, j in table.neurons]
    fig = Figure(figsize=(7.5, 0.26 * len(names) + 1.6), layout="constrained")
    ax = fig.subplots()
    s = max(float(np.abs(lost).max()), 1.0)
    image = ax.imshow(lost, cmap=WEIGHTS_CMAP, norm=TwoSlopeNorm(0, -s, s), aspect="auto")
    for r in range(lost.shape[0]):
        for d in range(lost.shape[1]):
            if abs(lost[r, d]) >= 1:
                dark = abs(lost[r, d]) > 0.6 * s
                ax.text(
                    d,
                    r,
                    f"{lost[r, d]:.0f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if dark else "black",
                )
    ax.set_xticks(range(lost.shape[1]))
    ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.set(xlabel="digit", ylabel="knocked-out neuron (layer.neuron)")
    ax.set_title(
        f"Points of per-digit test accuracy lost with one neuron off "
        f"(all on: {table.base_accuracy:.2%})",
        fontsize=10,
    )
    fig.colorbar(image, ax=ax, shrink=0.6, label="points lost (negative: gained)")
    return fig


def nudge_figure(net: Network, x: Array, nudged, label: int | None = None) -> Figure:
    """The input x (784,) in [0, 1], the nudged input (``explore.Nudge``), the change
    between them, and the ten outputs before and after."""
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    before = net.forward(x)
    change = nudged.pixels - x
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    axes = fig.subplots(1, 4, width_ratios=[1, 1, 1, 1.5])
    seen = (
        f"MNIST label {label}, read as {int(before.argmax())}"
        if label is not None
        else (f"read as {int(before.argmax())}")
    )
    _picture(axes[0], x, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"original: {seen}", fontsize=9)
    _picture(axes[1], nudged.pixels, cmap="gray", vmin=0, vmax=1)
    axes[1].set_title(f"nudged: read as {nudged.digit}", fontsize=9)
    s = max(float(np.abs(change).max()), 1e-6)
    _picture(axes[2], change, cmap=WEIGHTS_CMAP, vmin=-s, vmax=s)
    axes[2].set_title(f"the change (±{s:.2f})", fontsize=9)
    digits = np.arange(len(before))
    axes[3].bar(digits - 0.2, before / before.sum(), width=0.4, color="#8a8f98", label="original")
    axes[3].bar(digits + 0.2, nudged.probabilities, width=0.4, color="#f5b700", label="nudged")
    axes[3].set_xticks(digits)
    axes[3].set_ylim(0, 1)
    axes[3].set(xlabel="output digit", ylabel="probability")
    axes[3].legend(fontsize=8)
    fig.suptitle(
        f"A nudge of L∞ {nudged.linf:.3f} and L2 {nudged.l2:.2f} ({nudged.steps} steps) "
        f"makes the network answer {nudged.digit}",
        fontsize=12,
    )
    return fig
