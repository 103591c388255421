"""``digitnet plot KIND``: a picture of what the network does, as PNG or SVG."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ..files.data import load_split
from ..files.modelfile import load
from ..files.paths import check_output
from ..train import evaluate
from .base import UsageError, check_fits, check_pictures, option

#: Which plot kinds each plot option applies to.
PLOT_OPTIONS = {
    "image": {"network", "nudge", "gradient"},
    "index": {"network", "nudge", "gradient"},
    "count": {"mistakes", "noise"},
    "seed": {"noise", "minibatch", "landscape"},
    "label": {"gradient"},
    "data": {"network", "confusion", "mistakes", "neurons", "knockout", "nudge"},
    "layer": {"neurons"},
    "target": {"nudge"},
}


def _check_plot_options(args: argparse.Namespace) -> None:
    """An option given for a kind it does not apply to is an error, not ignored."""
    for dest, kinds in PLOT_OPTIONS.items():
        if dest in args.given and args.kind not in kinds:
            raise UsageError(
                f"{option(dest)} does not apply to {args.kind} plots "
                f"(only to {', '.join(sorted(kinds))})"
            )
    if args.image is not None and args.data is not None:
        raise UsageError("--data does not apply with --image (the picture is the input)")


def _test_images(args: argparse.Namespace, net) -> tuple[np.ndarray, np.ndarray]:
    """The test images (N, n_0) and labels (N,) of --data, checked against the model."""
    images, labels = load_split(args.data, "test")
    check_fits(args.model, net, images, labels)
    return images, labels


def one_input(args: argparse.Namespace, net) -> tuple[np.ndarray, int | None]:
    """The input the network and nudge plots show: the picture of --image, or the test
    image --index (default 0); (its pixels in [0, 1], its label or None)."""
    if args.image is not None:
        from ..vision.recognise import predict_image

        check_pictures(args.model, net)
        return predict_image(net, args.image).input.reshape(-1), None
    images, labels = _test_images(args, net)
    index = 0 if args.index is None else args.index
    if not 0 <= index < len(images):
        raise UsageError(f"--index must be 0-{len(images) - 1}, got {index}")
    return images[index] / 255, int(labels[index])


def cmd_plot(args: argparse.Namespace) -> int:
    from io import BytesIO

    from ..files.paths import atomic_write

    kind = args.out.suffix.lower().lstrip(".")
    if kind not in ("png", "svg"):
        raise UsageError(f"--out must end in .png or .svg, got {args.out.name!r}")
    _check_plot_options(args)
    if args.count is not None and not 1 <= args.count <= 200:
        raise UsageError(f"--count must be 1-200, got {args.count}")
    check_output(args.out, inputs=[args.model, *([args.image] if args.image else [])], what="--out")
    model = load(args.model)
    if args.kind in ("neurons", "knockout", "nudge"):
        figure = _explore_figure(args, model.network)
    elif args.kind in ("gradient", "minibatch", "landscape"):
        figure = _learning_figure(args, model)
    else:
        figure = _figure(args, model)
    buffer = BytesIO()
    figure.savefig(buffer, format=kind, dpi=110)
    atomic_write(args.out, buffer.getvalue())
    print(f"wrote {args.out}")
    return 0


def _figure(args: argparse.Namespace, model):
    """The plots of the network and its training: network, weights, curves,
    confusion, mistakes, noise."""
    from ..config import History
    from ..inspect import plots

    net = model.network
    if args.kind == "network":
        x, label = one_input(args, net)
        return plots.network_figure(net, x, label=label)
    if args.kind == "weights":
        return plots.weights_figure(net)
    if args.kind == "curves":
        record = model.info.get("history")
        if not record or not record.get("epochs"):
            raise UsageError(f"{args.model} holds no training history to plot")
        return plots.curves_figure(History.from_dict(record))
    if args.kind == "noise":
        return plots.noise_figure(net, np.random.default_rng(args.seed), count=args.count or 4)
    images, labels = _test_images(args, net)
    if args.kind == "confusion":
        return plots.confusion_figure(np.array(evaluate(net, images, labels).confusion))
    return plots.mistakes_figure(net, images, labels, count=args.count or 24)


def _explore_figure(args: argparse.Namespace, net):
    """The neuron explorer's plots: neurons, knockout, nudge."""
    from ..inspect import explore, plots

    if args.kind == "nudge":
        if args.target is None:
            raise UsageError("nudge plots need --target D, the digit to make the network say")
        explore.check_digit(net, args.target)
        x, label = one_input(args, net)
        return plots.nudge_figure(net, x, explore.nudge(net, x, args.target), label=label)
    images, labels = _test_images(args, net)
    if args.kind == "neurons":
        layer = 1 if args.layer is None else args.layer
        if not 1 <= layer < len(net.sizes):
            raise UsageError(
                f"--layer must be 1-{len(net.sizes) - 1} (1 = the first hidden layer, "
                f"{len(net.sizes) - 1} = the outputs), got {layer}"
            )
        print(f"ranking {len(images):,} test images and finding what each neuron wants", flush=True)
        top = explore.top_images(net, images)[layer - 1]
        return plots.neurons_figure(net, layer, top, explore.wants(net, layer), images)
    from tqdm import tqdm

    hidden = sum(net.sizes[1:-1])
    with tqdm(total=hidden, desc="knocking out", unit="neuron", file=sys.stderr) as bar:
        table = explore.knockout_table(net, images, labels, on_neuron=lambda done, _: bar.update())
    return plots.knockout_figure(table)


#: The mini-batch sizes ``plot minibatch`` draws, from one image to all 60,000.
MINIBATCH_SIZES = (1, 10, 100, 1000, 10_000, 60_000)


def _learning_figure(args: argparse.Namespace, model):
    """How the network learns: gradient (what one example with --label asks of each
    weight), minibatch (cosine and cost against batch size, ``MINIBATCH_SIZES``) and
    landscape (the cost around the network, at the library's default grid), from the
    same calls as the API's ``/api/gradient``, ``/api/minibatch`` and ``/api/landscape``
    under the same loss (``learning.model_loss``)."""
    from ..inspect import explore, landscape, learning, learning_plots

    net = model.network
    loss = learning.model_loss(net, model.info)
    if args.kind == "gradient":
        if args.label is None:
            raise UsageError("gradient plots need --label D, the digit the picture is")
        explore.check_digit(net, args.label, "label")
        x, _ = one_input(args, net)
        return learning_plots.gradient_figure(x, learning.wishes(net, x, args.label, loss))
    train = learning.Cache(*load_split(None, "train"))
    if args.kind == "minibatch":
        print("averaging gradients over the 60,000 training images", flush=True)
        batches = learning.minibatches(net, train, loss, MINIBATCH_SIZES, args.seed)
        return learning_plots.minibatch_figure(batches, seeds=[args.seed])
    print("computing the cost over the landscape's grid", flush=True)
    return learning_plots.landscape_figure(landscape.landscape(net, train, loss, seed=args.seed))
