"""The ``digitnet`` command line's parser.  The training flags, their types, choices and
``--help`` lines come from the settings' declarations (``settings.SETTINGS``), as do
the sweep's flags that are the same settings.

Every option is parsed with the default None and its real default filled in after
parsing, so that the options the command line gave are simply those not None
(``args.given``): a value equal to its default still counts as given.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..files.data import MAX_ADD_WEIGHT
from ..settings import MAX_INT, SETTINGS, Setting, layer_sizes
from .base import DEFAULT_MODEL, EXIT_USAGE

PLOT_KINDS = (
    "network", "weights", "curves", "confusion", "mistakes", "noise", "neurons", "knockout",
    "nudge", "gradient", "minibatch", "landscape",
)  # fmt: skip
DATA_HELP = "folder of MNIST-style IDX files (default: MNIST)"


def _shown(default: object) -> str:
    """A default as ``--help`` shows it: layer sizes as 784,16,16,10."""
    return ",".join(map(str, default)) if isinstance(default, tuple) else str(default)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its errors as one line (``digitnet train: error: ...``), exit
    code 2, and no usage block: ``--help`` shows that.  ``defaults`` holds each
    option's default, given to argparse as None (see ``parse``); ``commands`` holds
    the parser of each sub-command."""

    def __init__(self, *args, **kwargs) -> None:
        self.defaults: dict[str, object] = {}
        self.commands: dict[str, ArgumentParser] = {}
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def add_argument(self, *args, **kwargs) -> argparse.Action:
        if kwargs.get("action") in ("help", "version"):
            return super().add_argument(*args, **kwargs)
        default = kwargs.pop("default", False if kwargs.get("action") == "store_true" else None)
        if "help" in kwargs:
            kwargs["help"] = kwargs["help"].replace("%(default)s", _shown(default))
        action = super().add_argument(*args, default=None, **kwargs)
        self.defaults[action.dest] = default
        return action

    def command(self, commands, name: str, help: str) -> ArgumentParser:
        """A sub-command's parser, remembered under its name."""
        self.commands[name] = commands.add_parser(name, help=help)
        return self.commands[name]


# -- the settings as options -------------------------------------------------------------


def sizes_type(text: str) -> tuple[int, ...]:
    """``784,16,16,10`` -> (784, 16, 16, 10), valid layer sizes (``settings.layer_sizes``)."""
    try:
        sizes = tuple(int(n) for n in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer sizes such as 784,16,16,10, got {text!r}"
        ) from None
    try:
        return layer_sizes(sizes)
    except ValueError as e:  # SizeError among them
        raise argparse.ArgumentTypeError(str(e)) from None


def number_type(setting: Setting):
    """An argparse type: a whole number or a finite float in ``setting``'s range."""
    kind = int if setting.kind == "int" else float
    if setting.below:
        wanted = f"a number in [{setting.low:g}, {setting.high:g})"
    elif setting.above or setting.low == 1:
        wanted = f"a positive {kind.__name__}"
    else:
        wanted = "a number >= 0"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        too_big = value is not None and math.isfinite(value) and value > setting.bounds()[1]
        if too_big and kind is int:
            raise argparse.ArgumentTypeError(f"at most {setting.high:,}, got {text}")
        if value is None or not setting.in_range(value):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


def count_type(name: str, low: int):
    """An argparse type for a count that is not a training setting (``--workers``)."""
    return number_type(Setting(name, "int", low, "", low=low, high=MAX_INT))


def setting_option(setting: Setting, **overrides) -> dict:
    """``add_argument``'s keywords for a setting: its type or choices, its default and
    its help line; ``overrides`` for a flag that takes the setting differently."""
    option: dict = {"default": setting.default, "help": f"{setting.help} (default: %(default)s)"}
    if setting.kind == "sizes":
        option["type"] = sizes_type
    elif setting.choices is not None:
        option["choices"] = list(setting.names)
    elif setting.kind == "bool":
        option["action"] = argparse.BooleanOptionalAction
    else:
        option["type"] = number_type(setting)
    return {**option, **overrides}


def add_settings(parser: ArgumentParser, spec: dict[str, Setting] = SETTINGS) -> None:
    """One option per training setting: ``--batch-size N`` for ``batch_size``."""
    for setting in spec.values():
        parser.add_argument(setting.flag, **setting_option(setting))


# -- the commands ------------------------------------------------------------------------


def add_train(parser: ArgumentParser, commands, spec: dict[str, Setting] = SETTINGS) -> None:
    t = parser.command(commands, "train", "train a network on MNIST and save it")
    t.add_argument("--out", type=Path, default=DEFAULT_MODEL,
                   help="where to save the model (default: %(default)s)")  # fmt: skip
    add_settings(t, spec)
    t.add_argument("--data", type=Path, help=DATA_HELP)
    t.add_argument("--add", type=Path, metavar="DIR", help="also train on the "
                   "images-idx3-ubyte.gz and labels-idx1-ubyte.gz in DIR")  # fmt: skip
    add_weight = Setting("add_weight", "int", 1, "", low=1, high=MAX_ADD_WEIGHT)
    t.add_argument("--add-weight", type=number_type(add_weight), default=1, metavar="K",
                   help="show each added image K times an epoch (default: 1)")  # fmt: skip
    t.add_argument("--quiet", action="store_true", help="print only the final result")
    t.add_argument(
        "--checkpoint-every",
        type=count_type("checkpoint_every", 0),
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
    from ..recipes import RECIPES

    t.add_argument("--recipe", choices=sorted(RECIPES),
                   help="train the 784-16-16-10 network by a named recipe (best: 8 distorted "
                   "copies of every image, 60 epochs); other training settings are the recipe's")
    t.add_argument("--resume", type=Path, metavar="PATH",
                   help="continue the run saved in this checkpoint, with its settings")  # fmt: skip


def add_evaluate_predict(parser: ArgumentParser, commands) -> None:
    e = parser.command(commands, "evaluate", "score a model on the test set")
    e.add_argument("model", type=Path, metavar="PATH")
    e.add_argument("--data", type=Path, help=DATA_HELP + ", or a folder holding only "
                   "images-idx3-ubyte.gz and labels-idx1-ubyte.gz")  # fmt: skip
    e.add_argument("--json", action="store_true", help="print one JSON object")

    p = parser.command(commands, "predict", "read the digit in each picture")
    p.add_argument("model", type=Path, metavar="MODEL")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per file")
    p.add_argument(
        "--save-input",
        type=Path,
        metavar="DIR",
        help="save the 28x28 picture the network saw for each file, as DIR/NAME.png",
    )


def add_info_export(parser: ArgumentParser, commands) -> None:
    i = parser.command(commands, "info", "show a model's architecture and training record")
    i.add_argument("model", type=Path, metavar="PATH")
    i.add_argument("--json", action="store_true", help="print the model's metadata as JSON")

    x = parser.command(commands, "export", "write a model in a format other runtimes read")
    x.add_argument("model", type=Path, metavar="MODEL")
    x.add_argument("--format", choices=("onnx",), default="onnx", help="(default: %(default)s)")
    x.add_argument("--out", type=Path, required=True, help="FILE.onnx")


def add_serve(parser: ArgumentParser, commands) -> None:
    v = parser.command(commands, "serve", "serve the draw-a-digit page")
    v.add_argument(
        "model",
        type=Path,
        nargs="?",
        default=DEFAULT_MODEL,
        metavar="MODEL",
        help="model file (default: %(default)s, trained with the defaults first "
        "when it does not exist)",
    )
    v.add_argument("--host", default=None,
                   help="address to listen on (default: 127.0.0.1; 0.0.0.0, every "
                   "network, with --class)")  # fmt: skip
    v.add_argument("--port", type=int, default=8000,
                   help="0 picks a free port (default: %(default)s)")  # fmt: skip
    v.add_argument(
        "--models",
        type=Path,
        metavar="DIR",
        help="folder where networks trained in the page are saved, and read from at the "
        "start (default: kept in memory only)",
    )
    v.add_argument(
        "--class", dest="classroom", action="store_true",
        help="serve a class: listen on the network, print the addresses students can "
        "open, a QR code of the first and the teacher's link",
    )  # fmt: skip


def add_plot(parser: ArgumentParser, commands) -> None:
    g = parser.command(commands, "plot", "draw a picture of what the network does")
    g.add_argument(
        "kind", choices=PLOT_KINDS, metavar="KIND", help="one of: " + ", ".join(PLOT_KINDS)
    )
    g.add_argument("model", type=Path, metavar="MODEL")
    g.add_argument("--out", type=Path, required=True, help="FILE.png or FILE.svg")
    source = g.add_mutually_exclusive_group()
    source.add_argument(
        "--image", type=Path, help="network, nudge, gradient: a picture of a digit"
    )
    source.add_argument(
        "--index", type=int, help="network, nudge, gradient: an MNIST test image (default 0)"
    )
    g.add_argument(
        "--count",
        type=int,
        help="mistakes: how many (default 24); noise: how many inputs (default 4)",
    )
    g.add_argument(
        "--seed", type=int, default=0, help="noise, minibatch, landscape: random seed (default: 0)"
    )
    g.add_argument("--label", type=int, help="gradient: the digit the picture is (required)")
    g.add_argument("--layer", type=int, help="neurons: 1 = first hidden layer (default 1)")
    g.add_argument("--target", type=int, help="nudge: the digit to make it say")
    g.add_argument("--data", type=Path, help=DATA_HELP)


def add_sweep(parser: ArgumentParser, commands) -> None:
    from ..sweep import SAMPLERS, Sweep

    w = parser.command(commands, "sweep", "train many architectures and compare them (Optuna)")
    w.add_argument("--sizes", **setting_option(
        SETTINGS["sizes"], nargs="+", required=True, metavar="SIZES", default=None,
        help="layer sizes of each architecture, e.g. 784,16,16,10 784,32,10",
    ))  # fmt: skip
    w.add_argument("--activation", **setting_option(
        SETTINGS["activation"], nargs="+", default=list(Sweep.activations),
        help="hidden activations to try (default: sigmoid)",
    ))  # fmt: skip
    w.add_argument("--lr", **setting_option(
        SETTINGS["lr"], nargs="+", default=list(Sweep.lrs),
        help="peak learning rates to try (default: %(default)s)",
    ))  # fmt: skip
    w.add_argument("--seeds", type=count_type("seeds", 1), default=1, metavar="N",
                   help="train each configuration with seeds 0..N-1 (default: 1)")  # fmt: skip
    w.add_argument("--epochs", **setting_option(
        SETTINGS["epochs"], default=Sweep.epochs, help="(default: %(default)s)"
    ))  # fmt: skip
    w.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default="grid",
        help="grid: every combination; tpe or random: --trials configurations drawn "
        "from the choices, maximising validation accuracy (default: %(default)s)",
    )
    w.add_argument("--trials", type=count_type("trials", 1),
                   help="how many trials tpe or random run")  # fmt: skip
    w.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage as an SQLAlchemy URL (postgresql://user@host/db, "
        "sqlite:///sweep.db) that other machines join (default: a journal file in --out)",
    )
    w.add_argument("--study", default="digitnet-sweep", help="study name (default: %(default)s)")
    w.add_argument("--workers", type=count_type("workers", 1), default=1, metavar="K",
                   help="worker processes on this machine, one core each (default: 1)")  # fmt: skip
    w.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder for the model files, the plot and (by default) the study",
    )
    w.add_argument("--json", action="store_true", help="print one JSON object per trial")


def build_parser(spec: dict[str, Setting] = SETTINGS) -> ArgumentParser:
    """The whole command line; ``spec`` gives ``train`` its settings' options."""
    parser = ArgumentParser(
        prog="digitnet",
        description="Train, evaluate and inspect the 784-16-16-10 network of the video.",
    )
    parser.add_argument("--version", action="version", version=f"digitnet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train(parser, commands, spec)
    add_evaluate_predict(parser, commands)
    add_serve(parser, commands)
    add_plot(parser, commands)
    add_info_export(parser, commands)
    add_sweep(parser, commands)
    return parser


def parse(argv: Sequence[str] | None, spec: dict[str, Setting] = SETTINGS) -> argparse.Namespace:
    """The command line as a namespace with every default filled in, and ``given``:
    the ``dest`` names of the options it set."""
    parser = build_parser(spec)
    args = parser.parse_args(argv)
    values = vars(args)
    args.given = {dest for dest, value in values.items() if value is not None} - {"command"}
    for dest, default in parser.commands[args.command].defaults.items():
        if values.get(dest) is None:
            setattr(args, dest, default)
    return args
