"""The ``digitnet`` command: a thin layer over the library.

This is the only module that prints or exits.  Library errors (bad files, bad
arguments) become one line on stderr and exit code 2; a training run that diverges
exits 1; Ctrl-C exits 130 after keeping what can be kept.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from . import __version__, kernel
from .activations import ACTIVATIONS, LOSS_NAMES, OUTPUTS
from .config import KERNELS, SCHEDULES, Epoch, TrainConfig, TrainingDiverged, record
from .data import DataError, load_mnist, load_split
from .modelfile import ModelFileError, load, save
from .optimizers import OPTIMIZERS
from .preprocess import PictureError
from .train import evaluate, is_compiled, resolve_kernel, seeded_generators

DEFAULTS = TrainConfig()
PLOT_KINDS = ("network", "weights", "curves", "confusion", "mistakes", "noise")
EXIT_DIVERGED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class UsageError(ValueError):
    """Arguments that do not fit together."""


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(n) for n in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer sizes such as 784,16,16,10, got {text!r}"
        ) from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"need at least two positive sizes, got {text!r}")
    return sizes


def _number(kind: type, *, allow_zero: bool):
    """An argparse type: a finite number of ``kind`` above zero (or at least zero)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if (
            value is None
            or not math.isfinite(value)
            or value < 0
            or (value == 0 and not allow_zero)
        ):
            wanted = "a number >= 0" if allow_zero else f"a positive {kind.__name__}"
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


def _positive(kind: type):
    return _number(kind, allow_zero=False)


def _non_negative(kind: type):
    return _number(kind, allow_zero=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digitnet",
        description="Train, evaluate and inspect the 784-16-16-10 network of the video.",
    )
    parser.add_argument("--version", action="version", version=f"digitnet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = commands.add_parser("train", help="train a network on MNIST and save it")
    t.add_argument(
        "--out",
        type=Path,
        default=Path("model.safetensors"),
        help="where to save the model (default: %(default)s)",
    )
    t.add_argument(
        "--sizes",
        type=_sizes,
        default=DEFAULTS.sizes,
        help="layer sizes, input first (default: 784,16,16,10)",
    )
    t.add_argument(
        "--activation",
        choices=sorted(ACTIVATIONS),
        default=DEFAULTS.activation,
        help="hidden-layer squashing function (default: %(default)s)",
    )
    t.add_argument(
        "--output",
        choices=sorted(OUTPUTS),
        default=DEFAULTS.output,
        help="output layer (default: %(default)s)",
    )
    t.add_argument(
        "--loss",
        choices=LOSS_NAMES,
        default=DEFAULTS.loss,
        help="cost function (default: %(default)s)",
    )
    t.add_argument(
        "--optimizer",
        choices=sorted(OPTIMIZERS),
        default=DEFAULTS.optimizer,
        help="(default: %(default)s)",
    )
    t.add_argument(
        "--lr",
        type=_positive(float),
        default=DEFAULTS.lr,
        help="peak learning rate (default: %(default)s)",
    )
    t.add_argument(
        "--momentum",
        type=_non_negative(float),
        default=DEFAULTS.momentum,
        help="momentum, or Adam's beta1 (default: %(default)s)",
    )
    t.add_argument(
        "--batch-size",
        type=_positive(int),
        default=DEFAULTS.batch_size,
        help="(default: %(default)s)",
    )
    t.add_argument(
        "--epochs", type=_positive(int), default=DEFAULTS.epochs, help="(default: %(default)s)"
    )
    t.add_argument(
        "--weight-decay",
        type=_non_negative(float),
        default=DEFAULTS.weight_decay,
        help="L2 penalty on weights (default: %(default)s)",
    )
    t.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=DEFAULTS.schedule,
        help="learning-rate schedule (default: %(default)s)",
    )
    t.add_argument(
        "--augment",
        type=_non_negative(int),
        default=DEFAULTS.augment,
        help="shift each batch by up to this many pixels; 0 turns it off (default: %(default)s)",
    )
    t.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.normalize,
        help="train on standardised pixels (folded into the saved model)",
    )
    t.add_argument(
        "--validation",
        type=_non_negative(int),
        default=DEFAULTS.validation,
        help="training images held out to pick the best epoch (default: %(default)s)",
    )
    t.add_argument(
        "--patience",
        type=_non_negative(int),
        default=DEFAULTS.patience,
        help="stop after this many epochs without improvement; 0 never stops early",
    )
    t.add_argument("--seed", type=int, default=DEFAULTS.seed, help="(default: %(default)s)")
    t.add_argument(
        "--kernel",
        choices=KERNELS,
        default=DEFAULTS.kernel,
        help="the training loop: numpy, compiled (the same loop compiled by numba; needs "
        "digitnet[fast]), or auto: compiled when it is already built, else numpy (and, in "
        "a terminal, the compiled loop is built in the background for later runs) "
        "(default: %(default)s)",
    )
    t.add_argument("--data", type=Path, help="folder of MNIST-style IDX files (default: MNIST)")
    t.add_argument("--quiet", action="store_true", help="print only the final result")
    t.add_argument(
        "--checkpoint-every",
        type=_non_negative(int),
        default=0,
        metavar="N",
        help="save a checkpoint every N epochs (default: 0, never)",
    )
    t.add_argument(
        "--checkpoint",
        type=Path,
        help="checkpoint file (default: OUT with .ckpt.safetensors)",
    )
    t.add_argument(
        "--resume",
        type=Path,
        metavar="PATH",
        help="continue the run saved in this checkpoint, with its settings",
    )

    e = commands.add_parser("evaluate", help="score a model on the test set")
    e.add_argument("model", type=Path, metavar="PATH")
    e.add_argument("--data", type=Path, help="folder of MNIST-style IDX files (default: MNIST)")
    e.add_argument("--json", action="store_true", help="print one JSON object")

    p = commands.add_parser("predict", help="read the digit in each picture")
    p.add_argument("model", type=Path, metavar="MODEL")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per file")
    p.add_argument(
        "--save-input",
        type=Path,
        metavar="DIR",
        help="save the 28x28 picture the network saw for each file, as DIR/NAME.png",
    )

    v = commands.add_parser("serve", help="serve the draw-a-digit page")
    v.add_argument(
        "model",
        type=Path,
        nargs="?",
        default=Path("model.safetensors"),
        metavar="MODEL",
        help="model file; trained with the defaults first if it does not exist "
        "(default: %(default)s)",
    )
    v.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    v.add_argument(
        "--port", type=int, default=8000, help="0 picks a free port (default: %(default)s)"
    )

    g = commands.add_parser("plot", help="draw a picture of what the network does")
    g.add_argument(
        "kind", choices=PLOT_KINDS, metavar="KIND", help="one of: " + ", ".join(PLOT_KINDS)
    )
    g.add_argument("model", type=Path, metavar="MODEL")
    g.add_argument("--out", type=Path, required=True, help="FILE.png or FILE.svg")
    source = g.add_mutually_exclusive_group()
    source.add_argument("--image", type=Path, help="network: a picture of a digit")
    source.add_argument("--index", type=int, help="network: an MNIST test image (default 0)")
    g.add_argument(
        "--count",
        type=int,
        default=None,
        help="mistakes: how many (default 24); noise: how many inputs (default 4)",
    )
    g.add_argument("--seed", type=int, default=0, help="noise: random seed (default: 0)")
    g.add_argument("--data", type=Path, help="folder of MNIST-style IDX files (default: MNIST)")

    i = commands.add_parser("info", help="show a model's architecture and training record")
    i.add_argument("model", type=Path, metavar="PATH")
    i.add_argument("--json", action="store_true", help="print the model's metadata as JSON")
    return parser


# -- train ------------------------------------------------------------------------------


def _epoch_line(record: Epoch, epochs: int) -> str:
    val = "" if record.val_accuracy is None else f"  val {record.val_accuracy:7.2%}"
    return (
        f"epoch {record.epoch:>{len(str(epochs))}}/{epochs}  loss {record.loss:.4f}  "
        f"train {record.accuracy:7.2%}{val}  lr {record.lr:.2e}  {record.seconds:.2f}s"
    )


def cmd_train(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint

    resume = None
    if args.resume is not None:
        resume, config = load_checkpoint(args.resume)
        if not args.quiet:
            print(
                f"resuming {args.resume} after epoch {resume.epoch} of {config.epochs}, "
                "with the settings it was started with"
            )
    else:
        config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    checkpoint = None
    if args.checkpoint_every:
        checkpoint = args.checkpoint or args.out.with_name(args.out.stem + ".ckpt.safetensors")
    return train_and_save(
        config,
        args.out,
        args.data,
        args.quiet,
        resume=resume,
        checkpoint=checkpoint,
        checkpoint_every=args.checkpoint_every,
    )


def _choose_loop(config: TrainConfig, say) -> str:
    """The loop that trains, said in a line when it is not the obvious one: the
    compiled loop is compiled in the foreground when asked for, or, under ``auto`` in
    a terminal, in the background for the next run while this one trains with NumPy
    (a script gets only the work it asked for)."""
    from .train import compile_in_background

    loop = resolve_kernel(config)
    if loop == "compiled" and config.kernel == "compiled" and not is_compiled(config):
        say("compiling the training loop for this configuration (numba; once, about a minute)")
    elif loop == "numpy" and config.kernel == "auto" and kernel.AVAILABLE and sys.stdout.isatty():
        if compile_in_background(config):
            say(
                "training with NumPy; the compiled loop is being built in the background "
                "(numba, about a minute), for the runs after this one"
            )
    return loop


def train_and_save(
    config: TrainConfig,
    out: Path,
    data_dir: Path | None,
    quiet: bool,
    *,
    resume=None,
    checkpoint: Path | None = None,
    checkpoint_every: int = 0,
) -> int:
    """Train as ``config`` says, report each epoch, save to ``out``; an exit code."""
    from tqdm import tqdm

    from .checkpoint import TrainState, save_checkpoint
    from .network import Network
    from .train import fit

    data = load_mnist(data_dir)
    if config.sizes[0] != data.train_images.shape[1]:
        raise UsageError(
            f"--sizes starts with {config.sizes[0]} inputs but the images have "
            f"{data.train_images.shape[1]} pixels"
        )
    n_classes = int(data.train_labels.max()) + 1
    if config.sizes[-1] < n_classes:
        raise UsageError(f"--sizes ends with {config.sizes[-1]} outputs for {n_classes} classes")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: folder {out.parent} does not exist")

    say = (lambda *a, **k: None) if quiet else print
    say(
        f"training {'-'.join(map(str, config.sizes))} ({config.activation} hidden, "
        f"{config.output} output, {config.loss}, {config.optimizer} lr {config.lr:g}, "
        f"batch {config.batch_size}, {config.epochs} epochs, seed {config.seed}) on "
        f"{len(data.train_images) - config.validation:,} images, "
        f"validating on {config.validation:,}"
    )
    bar = None

    def on_batch(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(
                total=total,
                unit="img",
                unit_scale=True,
                leave=False,
                disable=True if quiet else None,
                file=sys.stderr,
            )
        bar.update(done - bar.n)

    def on_epoch(record: Epoch) -> None:
        nonlocal bar
        if bar is not None:
            bar.close()
            bar = None
        say(_epoch_line(record, config.epochs), flush=True)

    def on_state(state: TrainState) -> None:
        if checkpoint is not None and (
            state.epoch % checkpoint_every == 0 or state.epoch == config.epochs
        ):
            save_checkpoint(checkpoint, state, config)

    loop = _choose_loop(config, say)
    init_rng, data_rng = seeded_generators(config.seed)
    net = Network(config.sizes, config.activation, config.output, rng=init_rng)
    start = time.perf_counter()
    try:
        history = fit(
            net,
            data.train_images,
            data.train_labels,
            replace(config, kernel=loop),
            data_rng,
            on_batch=on_batch,
            on_epoch=on_epoch,
            on_state=on_state if checkpoint is not None else None,
            resume=resume,
        )
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    if not history.epochs:
        print("interrupted before the first epoch ended: no model saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    result = evaluate(net, data.test_images, data.test_labels)
    info = record(
        config,
        history,
        test_accuracy=result.accuracy,
        seconds=seconds,
        kernel=loop,
        data="MNIST" if data_dir is None else str(data_dir),
    )
    save(out, net, info)
    if history.stopped == "interrupted":
        print(
            f"interrupted: kept the best model so far (epoch {history.best_epoch})", file=sys.stderr
        )
    elif history.stopped == "early-stopped":
        say(f"stopped early: no better validation accuracy for {config.patience} epochs")
    print(
        f"test accuracy {result.accuracy:.2%} ({round(result.accuracy * result.n)}/{result.n}) "
        f"with the weights of epoch {history.best_epoch}; trained in {seconds:.1f}s; "
        f"saved {out}"
    )
    return EXIT_INTERRUPTED if history.stopped == "interrupted" else 0


# -- evaluate and info ------------------------------------------------------------------


def _table(confusion: np.ndarray) -> str:
    k = len(confusion)
    lines = ["true\\guess " + "".join(f"{d:>6}" for d in range(k))]
    for t in range(k):
        lines.append(f"{t:>10} " + "".join(f"{n:>6}" for n in confusion[t]))
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    model = load(args.model)
    images, labels = load_split(args.data, "test")
    if images.shape[1] != model.network.sizes[0]:
        raise UsageError(
            f"{args.model} takes {model.network.sizes[0]} inputs but the test images "
            f"have {images.shape[1]} pixels"
        )
    result = evaluate(model.network, images, labels)
    if args.json:
        print(json.dumps({"model": str(args.model), **result.to_dict()}))
        return 0
    correct = round(result.accuracy * result.n)
    print(f"{args.model}: test accuracy {result.accuracy:.2%} ({correct}/{result.n})")
    print("per digit: " + "  ".join(f"{d}: {a:.1%}" for d, a in enumerate(result.per_digit)))
    print("confusion matrix (rows: true digit, columns: the network's guess)")
    print(_table(np.array(result.confusion)))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    model = load(args.model)
    info, net = model.info, model.network
    if args.json:
        print(json.dumps({**info, "n_parameters": net.n_parameters}))
        return 0
    print(f"{args.model}")
    print(
        f"  architecture  {'-'.join(map(str, net.sizes))}: {net.activation_name} hidden "
        f"layers, {net.output_name} output"
    )
    print(f"  parameters    {net.n_parameters:,}")
    config = info.get("config") or {}
    if config:
        print(
            f"  trained with  {config.get('loss')} cost, {config.get('optimizer')} "
            f"lr {config.get('lr')} ({config.get('schedule')}), batch "
            f"{config.get('batch_size')}, weight decay {config.get('weight_decay')}, "
            f"seed {config.get('seed')}"
        )
    if info.get("test_accuracy") is not None:
        print(f"  test accuracy {info['test_accuracy']:.2%}")
    history = info.get("history") or {}
    epochs = history.get("epochs") or []
    if epochs:
        print(
            f"  training      {len(epochs)} epochs ({history.get('stopped')}), kept epoch "
            f"{history.get('best_epoch')}, {info.get('train_seconds', '?')}s"
        )
        print("  epoch   loss    train     val")
        for e in epochs:
            val = "     -" if e.get("val_accuracy") is None else f"{e['val_accuracy']:7.2%}"
            print(f"  {e['epoch']:>5} {e['loss']:.4f} {e['accuracy']:7.2%} {val}")
    return 0


def _input_png(pixels: np.ndarray) -> bytes:
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def cmd_predict(args: argparse.Namespace) -> int:
    from .modelfile import atomic_write
    from .preprocess import PictureError
    from .recognise import predict_image

    net = load(args.model).network
    if net.sizes[0] != 784:
        raise UsageError(f"{args.model} takes {net.sizes[0]} inputs; pictures give 784")
    if args.save_input is not None:
        if args.save_input.exists() and not args.save_input.is_dir():
            raise UsageError(f"--save-input {args.save_input}: exists and is not a folder")
        args.save_input.mkdir(parents=True, exist_ok=True)
    results, failed, used = [], 0, set()
    for path in args.images:
        try:
            prediction = predict_image(net, path)
        except PictureError as e:
            failed += 1
            results.append({"file": str(path), "error": str(e)})
            print(f"digitnet predict: error: {e}", file=sys.stderr)
            continue
        result = {
            "file": str(path),
            "digit": prediction.digit,
            "confidence": prediction.confidence,
            "probabilities": prediction.probabilities,
            "top3": [{"digit": d, "probability": p} for d, p in prediction.top(3)],
        }
        if args.save_input is not None:
            name, n = f"{path.stem}.png", 1
            while name in used:
                n += 1
                name = f"{path.stem}-{n}.png"
            used.add(name)
            atomic_write(args.save_input / name, _input_png(prediction.input))
            result["input_file"] = str(args.save_input / name)
        results.append(result)
        if not args.json:
            top = ", ".join(f"{d} {p:.1%}" for d, p in prediction.top(3))
            print(f"{path}: {prediction.digit} ({prediction.confidence:.1%})   top 3: {top}")
    if args.json:
        print(json.dumps(results))
    return EXIT_USAGE if failed else 0


def cmd_plot(args: argparse.Namespace) -> int:
    from . import plots
    from .config import History
    from .modelfile import atomic_write

    kind = args.out.suffix.lower().lstrip(".")
    if kind not in ("png", "svg"):
        raise UsageError(f"--out must end in .png or .svg, got {args.out.name!r}")
    if not args.out.parent.is_dir():
        raise UsageError(f"--out {args.out}: folder {args.out.parent} does not exist")
    if args.count is not None and not 1 <= args.count <= 200:
        raise UsageError(f"--count must be 1-200, got {args.count}")
    model = load(args.model)
    net = model.network
    if args.kind == "network":
        if args.image is not None:
            from .recognise import predict_image

            figure = plots.network_figure(net, predict_image(net, args.image).input)
        else:
            images, labels = load_split(args.data, "test")
            index = 0 if args.index is None else args.index
            if not 0 <= index < len(images):
                raise UsageError(f"--index must be 0-{len(images) - 1}, got {index}")
            figure = plots.network_figure(net, images[index] / 255, label=int(labels[index]))
    elif args.kind == "weights":
        figure = plots.weights_figure(net)
    elif args.kind == "curves":
        record = model.info.get("history")
        if not record or not record.get("epochs"):
            raise UsageError(f"{args.model} holds no training history to plot")
        figure = plots.curves_figure(History.from_dict(record))
    elif args.kind == "confusion":
        images, labels = load_split(args.data, "test")
        figure = plots.confusion_figure(np.array(evaluate(net, images, labels).confusion))
    elif args.kind == "mistakes":
        images, labels = load_split(args.data, "test")
        figure = plots.mistakes_figure(net, images, labels, count=args.count or 24)
    else:
        figure = plots.noise_figure(net, np.random.default_rng(args.seed), count=args.count or 4)
    from io import BytesIO

    buffer = BytesIO()
    figure.savefig(buffer, format=kind, dpi=110)
    atomic_write(args.out, buffer.getvalue())
    print(f"wrote {args.out}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import bind, create_app, is_loopback, serve

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0-65535, got {args.port}")
    if not args.model.exists():
        print(f"no model at {args.model}: training one with the defaults first", flush=True)
        code = train_and_save(TrainConfig(), args.model, None, quiet=False)
        if code:
            return code
    app = create_app(load(args.model))
    try:
        sock = bind(args.host, args.port)
    except OSError as e:
        raise UsageError(f"cannot listen on {args.host}:{args.port} ({e.strerror})") from None
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    if not is_loopback(args.host):
        print(
            f"WARNING: listening on {args.host}, not loopback: other machines on your network "
            "can reach this page and its API.",
            file=sys.stderr,
        )
    print(f"serving {args.model} at http://{shown}:{port}/  (Ctrl-C stops)", flush=True)
    serve(app, sock)
    return 0


COMMANDS = {
    "plot": cmd_plot,
    "serve": cmd_serve,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "info": cmd_info,
    "predict": cmd_predict,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (UsageError, DataError, ModelFileError, PictureError) as e:
        print(f"digitnet {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDiverged as e:
        print(f"digitnet {args.command}: error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except ValueError as e:
        print(f"digitnet {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
