"""The ``digitnet`` command: a thin layer over the library.

This is the only module that prints or exits.  Library errors (bad files, bad
arguments, an output that cannot be written) become one line on stderr and exit
code 2; a training run that diverges exits 1; Ctrl-C exits 130 and SIGTERM 143,
both after keeping what can be kept.
"""

from __future__ import annotations

import sys

# Ctrl-C while the libraries load (NumPy, numba; under a second) is held until they
# have loaded, then handled as everywhere else: one line.  Raised inside NumPy's own
# import, it would surface as a misleading ImportError with a traceback.
try:
    import signal

    _hold = hasattr(signal, "pthread_sigmask")
    if _hold:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        import argparse
        import json
        import math
        import threading
        import time
        from collections.abc import Sequence
        from dataclasses import fields, replace
        from pathlib import Path

        import numpy as np

        from . import __version__, kernel
        from .activations import ACTIVATIONS, LOSS_NAMES, OUTPUTS
        from .config import KERNELS, SCHEDULES, Epoch, TrainConfig, TrainingDiverged, record
        from .data import FILES, DataError, load_mnist, load_split
        from .files import InputError, OutputError, check_output, same_file
        from .limits import (
            MAX_EPOCHS,
            MAX_SETTING,
            SizeError,
            check_network_size,
            check_training_size,
        )
        from .modelfile import ModelFileError, expected_bytes, load, save
        from .optimizers import OPTIMIZERS
        from .preprocess import PictureError
        from .train import evaluate, is_compiled, resolve_kernel, seeded_generators

        if _hold and signal.SIGINT in signal.sigpending():
            signal.sigtimedwait({signal.SIGINT}, 0)  # taken, so it is not raised again
            raise KeyboardInterrupt
    finally:
        if _hold:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    raise SystemExit(130) from None

DEFAULTS = TrainConfig()
DEFAULT_MODEL = Path("model.safetensors")
PLOT_KINDS = (
    "network",
    "weights",
    "curves",
    "confusion",
    "mistakes",
    "noise",
    "neurons",
    "knockout",
    "nudge",
)
EXIT_DIVERGED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class UsageError(ValueError):
    """Arguments that do not fit together."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its errors as one line (``digitnet train: error: ...``), exit
    code 2, and no usage block: ``--help`` shows that."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(n) for n in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer sizes such as 784,16,16,10, got {text!r}"
        ) from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"need at least two positive sizes, got {text!r}")
    try:
        check_network_size(sizes)
    except SizeError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
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
            or value > MAX_SETTING
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
    parser = ArgumentParser(
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
        help="checkpoint file (default: OUT with .ckpt.safetensors); given alone, "
        "a checkpoint is saved every epoch",
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
        help="model file (default: %(default)s, trained with the defaults first "
        "when it does not exist)",
    )
    v.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    v.add_argument(
        "--port", type=int, default=8000, help="0 picks a free port (default: %(default)s)"
    )
    v.add_argument(
        "--models",
        type=Path,
        metavar="DIR",
        help="folder where networks trained in the page are saved, and read from at the "
        "start (default: kept in memory only)",
    )

    g = commands.add_parser("plot", help="draw a picture of what the network does")
    g.add_argument(
        "kind", choices=PLOT_KINDS, metavar="KIND", help="one of: " + ", ".join(PLOT_KINDS)
    )
    g.add_argument("model", type=Path, metavar="MODEL")
    g.add_argument("--out", type=Path, required=True, help="FILE.png or FILE.svg")
    source = g.add_mutually_exclusive_group()
    source.add_argument("--image", type=Path, help="network, nudge: a picture of a digit")
    source.add_argument("--index", type=int, help="network, nudge: an MNIST test image (default 0)")
    g.add_argument(
        "--count",
        type=int,
        default=None,
        help="mistakes: how many (default 24); noise: how many inputs (default 4)",
    )
    g.add_argument("--seed", type=int, default=0, help="noise: random seed (default: 0)")
    g.add_argument(
        "--layer", type=int, default=None, help="neurons: 1 = first hidden layer (default 1)"
    )
    g.add_argument("--target", type=int, default=None, help="nudge: the digit to make it say")
    g.add_argument("--data", type=Path, help="folder of MNIST-style IDX files (default: MNIST)")

    i = commands.add_parser("info", help="show a model's architecture and training record")
    i.add_argument("model", type=Path, metavar="PATH")
    i.add_argument("--json", action="store_true", help="print the model's metadata as JSON")

    x = commands.add_parser("export", help="write a model in a format other runtimes read")
    x.add_argument("model", type=Path, metavar="MODEL")
    x.add_argument("--format", choices=("onnx",), default="onnx", help="(default: %(default)s)")
    x.add_argument("--out", type=Path, required=True, help="FILE.onnx")

    w = commands.add_parser("sweep", help="train many architectures and compare them (Optuna)")
    w.add_argument(
        "--sizes",
        type=_sizes,
        nargs="+",
        required=True,
        metavar="SIZES",
        help="layer sizes of each architecture, e.g. 784,16,16,10 784,32,10",
    )
    w.add_argument(
        "--activation",
        choices=sorted(ACTIVATIONS),
        nargs="+",
        default=["sigmoid"],
        help="hidden activations to try (default: sigmoid)",
    )
    w.add_argument(
        "--lr",
        type=_positive(float),
        nargs="+",
        default=[DEFAULTS.lr],
        help="peak learning rates to try (default: %(default)s)",
    )
    w.add_argument(
        "--seeds",
        type=_positive(int),
        default=1,
        metavar="N",
        help="train each configuration with seeds 0..N-1 (default: 1)",
    )
    w.add_argument("--epochs", type=_positive(int), default=10, help="(default: %(default)s)")
    w.add_argument(
        "--sampler",
        choices=("grid", "tpe", "random"),
        default="grid",
        help="grid: every combination; tpe or random: --trials configurations drawn "
        "from the choices, maximising validation accuracy (default: %(default)s)",
    )
    w.add_argument("--trials", type=_positive(int), help="how many trials tpe or random run")
    w.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage as an SQLAlchemy URL (postgresql://user@host/db, "
        "sqlite:///sweep.db) that other machines join (default: a journal file in --out)",
    )
    w.add_argument("--study", default="digitnet-sweep", help="study name (default: %(default)s)")
    w.add_argument(
        "--workers",
        type=_positive(int),
        default=1,
        metavar="K",
        help="worker processes on this machine, one core each (default: 1)",
    )
    w.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder for the model files, the plot and (by default) the study",
    )
    w.add_argument("--json", action="store_true", help="print one JSON object per trial")
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
        _refuse_changes_on_resume(args.given)
        resume, config = load_checkpoint(args.resume)
        if "kernel" in args.given:  # the same arithmetic either way, to float32 rounding
            config = replace(config, kernel=args.kernel)
        if not args.quiet:
            print(
                f"resuming {args.resume} after epoch {resume.epoch} of {config.epochs}, "
                "with the settings it was started with"
            )
    else:
        config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    checkpoint, every = _checkpoint_plan(args)
    return train_and_save(
        config,
        args.out,
        args.data,
        args.quiet,
        resume=resume,
        checkpoint=checkpoint,
        checkpoint_every=every,
        inputs=[args.resume] if args.resume is not None else [],
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


def _option(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _refuse_changes_on_resume(given: set[str]) -> None:
    """--resume continues a run exactly: the settings that shape it come from the
    checkpoint, so flags that would change them are refused, not ignored.  (--kernel
    may change: both loops compute the same steps.)"""
    shaping = {f.name for f in fields(TrainConfig)} - {"kernel"}
    changed = sorted(given & shaping)
    if changed:
        flags = ", ".join(_option(name) for name in changed)
        raise UsageError(
            f"--resume continues the run with the settings it was started with; "
            f"{flags} cannot change them (start a new run to train differently)"
        )


def _checkpoint_plan(args: argparse.Namespace) -> tuple[Path | None, int]:
    """(checkpoint path or None, every how many epochs): --checkpoint alone means
    every epoch; --checkpoint with an explicit --checkpoint-every 0 is a contradiction."""
    every = args.checkpoint_every
    if args.checkpoint is not None and every == 0:
        if "checkpoint_every" in args.given:
            raise UsageError(
                "--checkpoint with --checkpoint-every 0 would save nothing; "
                "give N >= 1 or leave out --checkpoint"
            )
        every = 1
    if not every:
        return None, 0
    return args.checkpoint or args.out.with_name(args.out.stem + ".ckpt.safetensors"), every


def _check_train_outputs(
    config: TrainConfig,
    out: Path,
    checkpoint: Path | None,
    data_dir: Path | None,
    inputs: Sequence[Path],
) -> None:
    """Before any work: the model's and the checkpoint's paths can be written, hold
    no input of the run, and the sizes fit (``files.check_output``, ``limits``)."""
    from .checkpoint import checkpoint_bytes

    if config.epochs > MAX_EPOCHS:
        raise UsageError(f"--epochs {config.epochs}: at most {MAX_EPOCHS:,}")
    check_network_size(config.sizes)
    data_files = []
    if data_dir is not None:
        data_files = [data_dir / f"{name}{gz}" for name in FILES.values() for gz in ("", ".gz")]
    check_output(
        out, inputs=[*inputs, *data_files], size=expected_bytes(config.sizes), what="--out"
    )
    if checkpoint is not None:
        if same_file(out, checkpoint):
            raise UsageError(f"--checkpoint {checkpoint} and --out {out} are the same file")
        # (a resumed run may go on saving to the checkpoint it started from)
        check_output(
            checkpoint, inputs=data_files, size=checkpoint_bytes(config), what="--checkpoint"
        )


def train_and_save(
    config: TrainConfig,
    out: Path,
    data_dir: Path | None,
    quiet: bool,
    *,
    resume=None,
    checkpoint: Path | None = None,
    checkpoint_every: int = 0,
    inputs: Sequence[Path] = (),
    keep_interrupted: bool = True,
) -> int:
    """Train as ``config`` says, report each epoch, save to ``out``; an exit code.

    Output paths and sizes are checked before anything is loaded; a checkpoint that
    cannot be written is a warning, not the end of the run; an interrupted run saves
    the best model so far unless ``keep_interrupted`` is False."""
    from tqdm import tqdm

    from .checkpoint import TrainState, save_checkpoint
    from .network import Network
    from .train import fit

    _check_train_outputs(config, out, checkpoint, data_dir, inputs)
    data = load_mnist(data_dir)
    if config.sizes[0] != data.train_images.shape[1]:
        raise UsageError(
            f"--sizes starts with {config.sizes[0]} inputs but the images have "
            f"{data.train_images.shape[1]} pixels"
        )
    n_classes = int(data.train_labels.max()) + 1
    if config.sizes[-1] < n_classes:
        raise UsageError(f"--sizes ends with {config.sizes[-1]} outputs for {n_classes} classes")
    n_train = len(data.train_images) - config.validation
    if n_train > 0:
        check_training_size(config.sizes, config.batch_size, n_train, config.validation)

    say = (lambda *a, **k: None) if quiet else print
    say(
        f"training {'-'.join(map(str, config.sizes))} ({config.activation} hidden, "
        f"{config.output} output, {config.loss}, {config.optimizer} lr {config.lr:g}, "
        f"batch {config.batch_size}, {config.epochs} epochs, seed {config.seed}) on "
        f"{len(data.train_images) - config.validation:,} images, "
        f"validating on {config.validation:,}"
    )
    bar = None
    unsaved: list[int] = []  # epochs whose checkpoint could not be written

    def close_bar() -> None:
        nonlocal bar
        if bar is not None:
            bar.close()
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

    def on_epoch(epoch: Epoch) -> None:
        close_bar()
        say(_epoch_line(epoch, config.epochs), flush=True)

    def on_state(state: TrainState) -> None:
        if checkpoint is not None and (
            state.epoch % checkpoint_every == 0 or state.epoch == config.epochs
        ):
            _save_checkpoint_or_warn(save_checkpoint, checkpoint, state, config, unsaved, close_bar)

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
        close_bar()
    seconds = time.perf_counter() - start
    if unsaved:
        print(
            f"warning: {len(unsaved)} checkpoint(s) not saved (epochs "
            f"{', '.join(map(str, unsaved[:5]))}{', ...' if len(unsaved) > 5 else ''})",
            file=sys.stderr,
        )
    if not history.epochs:
        print("interrupted before the first epoch ended: no model saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    if history.stopped == "interrupted" and not keep_interrupted:
        print(
            f"interrupted after {len(history.epochs)} of {config.epochs} epochs: no model saved",
            file=sys.stderr,
        )
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
    try:
        save(out, net, info)
    except OutputError as e:
        kept = (
            ""
            if checkpoint is None or unsaved
            else (
                f"; the run is in {checkpoint}: digitnet train --resume {checkpoint} "
                "--out ANOTHER.safetensors saves it"
            )
        )
        raise UsageError(f"{e}{kept}") from None
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


def _save_checkpoint_or_warn(save_checkpoint, path, state, config, unsaved, close_bar) -> None:
    """Save a checkpoint; if the disk is full or the folder gone, say so once and let
    training go on (the model is still saved at the end)."""
    try:
        save_checkpoint(path, state, config)
    except (OutputError, OSError) as e:
        if not unsaved:
            close_bar()
            print(f"warning: checkpoint not saved ({e}); training goes on", file=sys.stderr)
        unsaved.append(state.epoch)


# -- evaluate and info ------------------------------------------------------------------


def _table(confusion: np.ndarray) -> str:
    k = len(confusion)
    lines = ["true\\guess " + "".join(f"{d:>6}" for d in range(k))]
    for t in range(k):
        lines.append(f"{t:>10} " + "".join(f"{n:>6}" for n in confusion[t]))
    return "\n".join(lines)


def _check_fits(model_path: Path, net, images: np.ndarray, labels: np.ndarray) -> None:
    """The model reads these images and has an output for each of their labels."""
    if images.shape[1] != net.sizes[0]:
        raise UsageError(
            f"{model_path} takes {net.sizes[0]} inputs but the test images "
            f"have {images.shape[1]} pixels"
        )
    classes = int(labels.max()) + 1 if len(labels) else 0
    if net.sizes[-1] < classes:
        raise UsageError(
            f"{model_path} has {net.sizes[-1]} outputs but the test labels run from 0 to "
            f"{classes - 1}"
        )


def cmd_evaluate(args: argparse.Namespace) -> int:
    model = load(args.model)
    images, labels = load_split(args.data, "test")
    _check_fits(args.model, model.network, images, labels)
    result = evaluate(model.network, images, labels)
    if args.json:
        print(json.dumps({"model": str(args.model), **result.to_dict()}, allow_nan=False))
        return 0
    correct = round(result.accuracy * result.n)
    print(f"{args.model}: test accuracy {result.accuracy:.2%} ({correct}/{result.n})")
    print("per digit: " + "  ".join(f"{d}: {a:.1%}" for d, a in enumerate(result.per_digit)))
    print("confusion matrix (rows: true digit, columns: the network's guess)")
    print(_table(np.array(result.confusion)))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    model = load(args.model)  # every field checked against metadata.MODEL
    info, net = model.info, model.network
    if args.json:
        print(json.dumps({**info, "n_parameters": net.n_parameters}, allow_nan=False))
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
        seconds = info.get("train_seconds")
        print(
            f"  training      {len(epochs)} epochs ({history.get('stopped')}), kept epoch "
            f"{history.get('best_epoch')}, {'?' if seconds is None else seconds}s"
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


def _save_input_plan(args: argparse.Namespace) -> dict[int, Path]:
    """Where --save-input puts each picture's 28x28 input (DIR/NAME.png, NAME-2.png
    for a repeated name), every path checked before any picture is read: none may be
    one of this command's inputs (the pictures themselves, the model)."""
    folder = args.save_input
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--save-input {folder}: exists and is not a folder")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--save-input {folder}: cannot make the folder ({e.strerror})") from None
    plan, used = {}, set()
    try:
        for i, path in enumerate(args.images):
            name, n = f"{path.stem}.png", 1
            while name in used:
                n += 1
                name = f"{path.stem}-{n}.png"
            used.add(name)
            plan[i] = check_output(
                folder / name, inputs=[args.model, *args.images], what="--save-input"
            )
    except OutputError:
        if created:
            folder.rmdir()
        raise
    return plan


def cmd_predict(args: argparse.Namespace) -> int:
    from .files import atomic_write
    from .recognise import predict_image

    net = load(args.model).network
    if net.sizes[0] != 784:
        raise UsageError(f"{args.model} takes {net.sizes[0]} inputs; pictures give 784")
    saved = _save_input_plan(args) if args.save_input is not None else {}
    results, failed = [], 0
    for i, path in enumerate(args.images):
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
        if i in saved:
            atomic_write(saved[i], _input_png(prediction.input))
            result["input_file"] = str(saved[i])
        results.append(result)
        if not args.json:
            top = ", ".join(f"{d} {p:.1%}" for d, p in prediction.top(3))
            print(f"{path}: {prediction.digit} ({prediction.confidence:.1%})   top 3: {top}")
    if args.json:
        print(json.dumps(results, allow_nan=False))
    return EXIT_USAGE if failed else 0


#: Which plot kinds each plot option applies to.
PLOT_OPTIONS = {
    "image": {"network", "nudge"},
    "index": {"network", "nudge"},
    "count": {"mistakes", "noise"},
    "seed": {"noise"},
    "data": {"network", "confusion", "mistakes", "neurons", "knockout", "nudge"},
    "layer": {"neurons"},
    "target": {"nudge"},
}


def _check_plot_options(args: argparse.Namespace) -> None:
    """An option given for a kind it does not apply to is an error, not ignored."""
    for dest, kinds in PLOT_OPTIONS.items():
        if dest in args.given and args.kind not in kinds:
            raise UsageError(
                f"{_option(dest)} does not apply to {args.kind} plots "
                f"(only to {', '.join(sorted(kinds))})"
            )
    if args.image is not None and args.data is not None:
        raise UsageError("--data does not apply with --image (the picture is the input)")


def cmd_plot(args: argparse.Namespace) -> int:
    from . import plots
    from .config import History
    from .files import atomic_write

    kind = args.out.suffix.lower().lstrip(".")
    if kind not in ("png", "svg"):
        raise UsageError(f"--out must end in .png or .svg, got {args.out.name!r}")
    _check_plot_options(args)
    if args.count is not None and not 1 <= args.count <= 200:
        raise UsageError(f"--count must be 1-200, got {args.count}")
    check_output(args.out, inputs=[args.model, *([args.image] if args.image else [])], what="--out")
    model = load(args.model)
    net = model.network
    if args.kind == "network":
        if args.image is not None:
            from .recognise import predict_image

            if net.sizes[0] != 784:
                raise UsageError(f"{args.model} takes {net.sizes[0]} inputs; pictures give 784")
            figure = plots.network_figure(net, predict_image(net, args.image).input)
        else:
            images, labels = load_split(args.data, "test")
            _check_fits(args.model, net, images, labels)
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
        _check_fits(args.model, net, images, labels)
        figure = plots.confusion_figure(np.array(evaluate(net, images, labels).confusion))
    elif args.kind == "mistakes":
        images, labels = load_split(args.data, "test")
        _check_fits(args.model, net, images, labels)
        figure = plots.mistakes_figure(net, images, labels, count=args.count or 24)
    elif args.kind == "noise":
        figure = plots.noise_figure(net, np.random.default_rng(args.seed), count=args.count or 4)
    else:
        figure = _explore_figure(args, net)
    from io import BytesIO

    buffer = BytesIO()
    figure.savefig(buffer, format=kind, dpi=110)
    atomic_write(args.out, buffer.getvalue())
    print(f"wrote {args.out}")
    return 0


def _explore_figure(args: argparse.Namespace, net):
    """The neuron explorer's plots: neurons, knockout, nudge."""
    from . import explore, plots

    if args.kind == "nudge":
        if args.target is None:
            raise UsageError("nudge plots need --target D, the digit to make the network say")
        explore.check_target(net, args.target)
        if args.image is not None:
            from .recognise import predict_image

            if net.sizes[0] != 784:
                raise UsageError(f"{args.model} takes {net.sizes[0]} inputs; pictures give 784")
            x, label = predict_image(net, args.image).input.reshape(-1), None
        else:
            images, labels = load_split(args.data, "test")
            _check_fits(args.model, net, images, labels)
            index = 0 if args.index is None else args.index
            if not 0 <= index < len(images):
                raise UsageError(f"--index must be 0-{len(images) - 1}, got {index}")
            x, label = images[index] / 255, int(labels[index])
        nudged = explore.nudge(net, x, args.target)
        return plots.nudge_figure(net, x, nudged, label=label)
    images, labels = load_split(args.data, "test")
    _check_fits(args.model, net, images, labels)
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


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import bind, create_app, is_loopback, loopback_names, serve

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0-65535, got {args.port}")
    missing = not args.model.exists()
    if missing and args.model != DEFAULT_MODEL:
        raise UsageError(
            f"no model at {args.model}; train one with `digitnet train --out {args.model}`, "
            f"or run `digitnet serve` alone to train and serve {DEFAULT_MODEL}"
        )
    if args.models is not None:
        from .models import check_folder

        check_folder(args.models)
    try:  # listen first: a port in use is an error before the training, not after
        sock = bind(args.host, args.port)
    except OSError as e:
        raise UsageError(f"cannot listen on {args.host}:{args.port} ({e.strerror})") from None
    with sock:
        if missing:
            print(f"no model at {args.model}: training one with the defaults first", flush=True)
            # an interrupted first training saves nothing: a later serve would otherwise
            # pick up a half-trained model without a word
            code = train_and_save(
                TrainConfig(), args.model, None, quiet=False, keep_interrupted=False
            )
            if code:
                return code
        model = load(args.model)
        history = model.info.get("history") or {}
        if history.get("stopped") == "interrupted":
            epochs = len(history.get("epochs") or [])
            planned = (model.info.get("config") or {}).get("epochs", "?")
            print(
                f"note: {args.model} is from a run interrupted after {epochs} of {planned} epochs",
                file=sys.stderr,
            )
        loopback = is_loopback(args.host)
        app = create_app(
            model, hosts=loopback_names(args.host) if loopback else None, models_dir=args.models
        )
        for problem in app.state.models.skipped:
            print(f"warning: not offered: {problem}", file=sys.stderr)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        if not loopback:
            print(
                f"WARNING: listening on {args.host}, not loopback: other machines on your "
                "network can reach this page and its API.",
                file=sys.stderr,
            )
        print(f"serving {args.model} at http://{shown}:{port}/  (Ctrl-C stops)", flush=True)
        serve(app, sock)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export

    check_output(args.out, inputs=[args.model], what="--out")
    model = load(args.model)
    export(args.out, model.network, model.info, format=args.format)
    print(f"wrote {args.out} ({args.format}, input 'pixels' (N, {model.network.sizes[0]}))")
    return 0


def _trial_line(t) -> str:
    return (
        f"{'-'.join(map(str, t.sizes)):<18} {t.activation:<8} lr {t.lr:<6g} seed {t.seed:<3} "
        f"{t.n_parameters:>9,} params  test {t.test_accuracy:7.2%}  {t.seconds:7.1f}s"
    )


def _sweep_table(trials) -> str:
    head = f"{'sizes':<18} {'activation':<10} {'lr':>6} {'seed':>4} {'params':>9} {'test':>7} "
    lines = [head + f"{'seconds':>8}  model"]
    for t in trials:
        lines.append(
            f"{'-'.join(map(str, t.sizes)):<18} {t.activation:<10} {t.lr:>6g} {t.seed:>4} "
            f"{t.n_parameters:>9,} {t.test_accuracy:>7.2%} {t.seconds:>8.1f}  {t.model}"
        )
    return "\n".join(lines)


def cmd_sweep(args: argparse.Namespace) -> int:
    from io import BytesIO

    from tqdm import tqdm

    from . import plots
    from . import sweep as sweeps
    from .files import atomic_write

    plan = sweeps.Sweep(
        tuple(args.sizes),
        tuple(args.activation),
        tuple(args.lr),
        args.seeds,
        args.epochs,
        args.sampler,
        args.trials,
    )
    job = sweeps.Job(plan, str(args.out), args.storage, args.study)
    study = sweeps.prepare(job, args.workers)
    say = (lambda *a, **k: print(*a, **k, file=sys.stderr)) if args.json else print
    before = sweeps.results(study)
    left, total = sweeps.remaining(study, plan), plan.size()
    where = args.storage or args.out / sweeps.JOURNAL
    say(
        f"sweep {args.study!r} ({where}): {total} trials, {len(before)} finished already, "
        f"{left} to train with {args.workers} worker(s), {args.epochs} epochs each; "
        f"models in {args.out}",
        flush=True,
    )
    shown = {t.number for t in before}
    bar = tqdm(total=total, initial=len(before), unit="trial", file=sys.stderr, leave=False)

    def on_change(finished, training) -> None:
        for t in finished:
            if t.number not in shown:
                shown.add(t.number)
                bar.write(_trial_line(t), file=sys.stderr if args.json else sys.stdout)
        bar.n = len(finished)
        names = [f"{p.get('sizes')} {p.get('activation')}" for p in training]
        bar.set_postfix_str(("training " + ", ".join(names)) if names else "", refresh=False)
        bar.refresh()

    started, interrupted = [], False
    try:
        if left:
            started = sweeps.start_workers(job, args.workers)
            sweeps.watch(study, started, on_change)
    except KeyboardInterrupt:
        interrupted = True
        bar.write("interrupted: stopping the workers; finished trials are kept", file=sys.stderr)
        sweeps.stop_workers(started)
    finally:
        bar.close()
    sweeps.release_stale(study)
    errors = sweeps.worker_errors(started)
    for error in errors:
        print(f"digitnet sweep: error in a worker: {error}", file=sys.stderr)
    trials = sweeps.results(study)
    if trials:
        buffer = BytesIO()
        plots.sweep_figure(trials).savefig(buffer, format="png", dpi=110)
        atomic_write(args.out / sweeps.PLOT, buffer.getvalue())
    if args.json:
        for t in trials:
            print(json.dumps(t.to_json(), allow_nan=False))
    else:
        print(_sweep_table(trials))
    say(f"{len(trials)} of {total} trials finished; plot in {args.out / sweeps.PLOT}")
    if interrupted:
        say("run the same command again to train the rest")
        return EXIT_INTERRUPTED
    return EXIT_USAGE if errors else 0


def sweep_worker(job: str) -> int:
    """A sweep's worker process (``sweep.start_workers`` starts it): trains trials
    until none is left; its one line of error, if any, goes to stderr."""
    from .sweep import Job, work

    try:
        work(Job.from_json(job))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as e:  # reported by the command that started the worker
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_USAGE
    return 0


COMMANDS = {
    "export": cmd_export,
    "sweep": cmd_sweep,
    "plot": cmd_plot,
    "serve": cmd_serve,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "info": cmd_info,
    "predict": cmd_predict,
}


def given_options(argv: Sequence[str] | None) -> set[str]:
    """The options the command line sets explicitly (argparse ``dest`` names): parsed
    again with every default suppressed, so that a value equal to its default still
    counts as given."""
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                for option in sub._actions:
                    if option.dest != "help":
                        option.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv))) - {"command"}


def _os_error(e: OSError) -> str:
    """An OSError as one line: the file, and what went wrong."""
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{e.strerror or type(e).__name__}"


def _catch_sigterm(received: list[int]):
    """SIGTERM as Ctrl-C: the run stops the same way and keeps what it would keep.
    The previous handler back, or None when not on the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    received: list[int] = []
    previous = _catch_sigterm(received)
    command = "digitnet"
    try:
        args = build_parser().parse_args(argv)
        command = f"digitnet {args.command}"
        args.given = given_options(argv)
        code = COMMANDS[args.command](args)
        return 128 + received[0] if code == EXIT_INTERRUPTED and received else code
    except TrainingDiverged as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except (UsageError, DataError, ModelFileError, PictureError, OutputError, InputError) as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as e:  # SizeError and the library's other checks of values
        print(f"{command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print(f"{command}: error: out of memory", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted" if not received else "stopped by SIGTERM", file=sys.stderr)
        return 128 + (received[0] if received else signal.SIGINT)
    except BrokenPipeError:
        return 0
    except OSError as e:  # a disk that fills up, a folder that vanishes, ...
        print(f"{command}: error: {_os_error(e)}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
