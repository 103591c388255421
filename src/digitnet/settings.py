"""Every training setting, declared once: the fields of ``TrainConfig``.

Each field says its type (the annotation), its default, the values it may take (a
registry's names, or a range), one line of help and, where the page's
``POST /api/train`` may ask for less than the library allows, the page's bound
(``Page``, ``PageSizes``) in the same declaration.  Everything else is derived from
these declarations, so that adding a setting is one field here:

- ``TrainConfig``'s own checks (``check_settings``);
- the ``digitnet train`` flags and their ``--help``, and the sweep's flags that are
  the same settings (``cli.parser``);
- the page's request checks, their 422 messages and ``GET /api/train``'s defaults,
  limits and choices (``jobs``);
- the schema of a config in model files and checkpoints (``metadata.CONFIG``);
- the sweep's checks (``sweep.Sweep``).
"""

from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from typing import Any

import numpy as np

from .learn.activations import ACTIVATIONS, LOSS_NAMES, LOSSES, OUTPUTS, lookup
from .learn.network import DEFAULT_SIZES, check_sizes
from .learn.optimizers import OPTIMIZERS
from .limits import MAX_COUNT, MAX_EPOCHS, MAX_SETTING, check_layer_count, check_network_size

SCHEDULES = ("cosine", "constant")
KERNELS = ("auto", "compiled", "numpy")
#: Largest count (batch, validation split, shift) a setting may hold: a C int.
MAX_INT = 2**31 - 1

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict = 2, 4, 4
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 40


def short(value: object, limit: int = 60) -> str:
    """``repr(value)``, abridged to ``limit`` characters: a bad value may be megabytes."""
    if isinstance(value, (list, dict)) and len(value) > 8:
        kind = "a list" if isinstance(value, list) else "an object"
        return f"{kind} of {len(value):,} entries"
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def layer_sizes(value: object) -> tuple[int, ...]:
    """Valid layer sizes, as a tuple: at least two whole numbers >= 1 (input, hidden
    layers, output) within ``limits``; ValueError (or ``SizeError``) saying what is
    wrong.  A list of a million sizes is refused before it is read."""
    if isinstance(value, (list, tuple)):
        check_layer_count(len(value))
    sizes = check_sizes(value)
    check_network_size(sizes)
    return sizes


# -- the page's bounds -------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """A setting the page may ask for: within the library's range, or at most ``high``
    where the page allows less; ``limit`` names that bound in ``GET /api/train``."""

    high: int | None = None
    limit: str | None = None

    def limits(self) -> dict[str, int]:
        return {} if self.limit is None or self.high is None else {self.limit: self.high}


@dataclass(frozen=True)
class PageSizes:
    """The page's networks: MNIST's ends (``inputs`` pixels in, ``outputs`` digits out)
    and at most ``hidden_layers`` hidden layers of 1 to ``hidden_width`` neurons."""

    inputs: int = 784
    outputs: int = 10
    hidden_layers: int = 4
    hidden_width: int = 256

    def limits(self) -> dict[str, int]:
        return {"hidden_layers": self.hidden_layers, "hidden_width": self.hidden_width}

    def check(self, value: object) -> tuple[int, ...]:
        """A JSON list of layer sizes the page may train; ValueError otherwise."""
        if type(value) is not list or not all(type(n) is int for n in value):
            raise ValueError(f"expected a list of whole numbers, got {short(value)}")
        if len(value) < 2 or value[0] != self.inputs or value[-1] != self.outputs:
            raise ValueError(
                f"expected {self.inputs}, the hidden layers, then {self.outputs}; "
                f"got {short(value)}"
            )
        hidden = value[1:-1]
        if len(hidden) > self.hidden_layers:
            raise ValueError(f"at most {self.hidden_layers} hidden layers, got {len(hidden)}")
        if any(not 1 <= n <= self.hidden_width for n in hidden):
            raise ValueError(
                f"hidden layers of 1-{self.hidden_width} neurons, got {short(hidden)}"
            )
        return tuple(value)


# -- one setting -------------------------------------------------------------------------

#: A field's annotation -> the kind of setting it declares.
KINDS = {"tuple[int, ...]": "sizes", "str": "str", "bool": "bool", "int": "int", "float": "float"}


@dataclass(frozen=True)
class Setting:
    """One training setting: ``kind`` is sizes, str, bool, int or float; a str takes
    one of ``choices`` (a registry, read when asked, so that a name added to it is
    taken at once; or a tuple of names); a number lies in [low, high], with
    ``above``/``below`` leaving out low/high themselves; ``page`` is None where the
    page cannot set it."""

    name: str
    kind: str
    default: object
    help: str
    choices: Mapping[str, object] | tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    above: bool = False
    below: bool = False
    page: Page | PageSizes | None = None

    @property
    def names(self) -> tuple[str, ...] | None:
        """The names a str setting may take: a registry's sorted, a tuple's in order."""
        if isinstance(self.choices, Mapping):
            return tuple(sorted(self.choices))
        return self.choices

    @property
    def flag(self) -> str:
        """The command-line option: ``batch_size`` -> ``--batch-size``."""
        return "--" + self.name.replace("_", "-")

    def bounds(self, page: bool = False) -> tuple[float, float]:
        """(low, high), the page's high where it has one and ``page`` is asked for."""
        low = -math.inf if self.low is None else self.low
        high = math.inf if self.high is None else self.high
        if page and isinstance(self.page, Page) and self.page.high is not None:
            high = self.page.high
        return low, high

    def in_range(self, value: float, page: bool = False) -> bool:
        low, high = self.bounds(page)
        above = value > low if self.above else value >= low
        below = value < high if self.below else value <= high
        finite = isinstance(value, int) or math.isfinite(value)  # an int of 400 digits too
        return finite and above and below

    def expected(self, page: bool = False) -> str:
        """What a JSON value must be, as the page's and the schema's messages say it."""
        if self.choices is not None:
            return "one of " + ", ".join(self.names)
        if self.kind == "bool":
            return "true or false"
        if self.kind == "sizes":
            return "a list of layer sizes"
        low, high = self.bounds(page)
        if self.kind == "int":
            return f"a whole number {low:.0f}-{high:.0f}"
        if low == 0 and high == MAX_SETTING and not self.below:
            return "a positive number" if self.above else "a number, zero or more"
        return f"a number in [{low:g}, {high:g}{')' if self.below else ']'}"

    def accepts(self, value: object, page: bool = False) -> bool:
        """Whether a JSON value (no bool for a number, no 3.0 for a whole number) fits."""
        if self.choices is not None:
            return type(value) is str and value in self.names
        if self.kind == "bool":
            return type(value) is bool
        kinds = (int,) if self.kind == "int" else (int, float)
        return type(value) in kinds and self.in_range(value, page)

    def check(self, value: object) -> object:
        """``value`` as ``TrainConfig`` keeps it, or ValueError in the library's words."""
        if self.kind == "sizes":
            return layer_sizes(value)
        if self.choices is not None:
            if not isinstance(value, str) or value not in self.names:
                known = ", ".join(sorted(self.names))
                raise ValueError(f"unknown {self.name} {value!r}; expected one of: {known}")
            return value
        if self.kind == "bool":
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{self.name} must be true or false, got {value!r}")
            return value
        whole = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
        number = whole or (self.kind == "float" and isinstance(value, numbers.Real))
        if number and self.in_range(value):
            return value
        if number and math.isfinite(value) and value > self.bounds()[1] and not self.below:
            high = f"{self.high:,}" if self.kind == "int" else f"{self.high:g}"
            raise ValueError(f"{self.name} must be at most {high}, got {value!r}")
        raise ValueError(f"{self.name} must be {self._words()}, got {value!r}")

    def _words(self) -> str:
        if self.below:
            return f"in [{self.low:g}, {self.high:g})"
        whole = " whole" if self.kind == "int" else ""
        if self.above or self.low == 1:
            return f"a positive{whole} number"
        return f"a{whole} number, zero or more"


def setting(default: Any, help: str, **bounds) -> Any:
    """A ``TrainConfig`` field: its default, one line of help, and the ``Setting``
    keywords (choices, low, high, above, below, page)."""
    return field(default=default, metadata={"setting": {"help": help, **bounds}})


@cache
def spec_of(cls: type) -> dict[str, Setting]:
    """The settings a dataclass declares with ``setting(...)``, by name, in order."""
    spec = {}
    for f in fields(cls):
        annotation = f.type.__name__ if isinstance(f.type, type) else str(f.type)
        kind = KINDS.get(annotation)
        if kind is None or "setting" not in f.metadata:
            raise TypeError(f"{cls.__name__}.{f.name}: not a setting of a known type ({f.type})")
        spec[f.name] = Setting(f.name, kind, f.default, **f.metadata["setting"])
    return spec


def check_settings(config: object) -> None:
    """Check every setting of a frozen dataclass built from ``setting`` fields, keeping
    each as its check returns it (sizes as a tuple)."""
    for s in spec_of(type(config)).values():
        value = s.check(getattr(config, s.name))
        if value is not getattr(config, s.name):
            object.__setattr__(config, s.name, value)


# -- the settings ------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """Every choice that shapes a training run.  The defaults train the video's
    784-16-16-10 sigmoid network to its best measured test accuracy."""

    # Each field: its default, one line of help, what it may be (a registry's names or
    # a range), and page=... where the page may ask for it (with the page's own bound
    # where it allows less than the library).
    sizes: tuple[int, ...] = setting(
        DEFAULT_SIZES, "layer sizes, input first",
        page=PageSizes(inputs=784, outputs=10, hidden_layers=4, hidden_width=256),
    )
    activation: str = setting(
        "sigmoid",
        "hidden-layer squashing function: sigmoid (the video's, any sum into 0 to 1), relu "
        "(keeps a positive sum, turns a negative one into 0) or tanh (any sum into -1 to 1)",
        choices=ACTIVATIONS, page=Page(),
    )
    # softmax gives probabilities; sigmoid is the video's
    output: str = setting(
        "softmax",
        "output layer: softmax (ten probabilities that add up to 1) or sigmoid (the "
        "video's: each output squashed into 0 to 1 on its own)",
        choices=OUTPUTS, page=Page(),
    )
    # quadratic is the video's cost ½‖a - y‖²
    loss: str = setting(
        "cross-entropy",
        "cost function: cross-entropy (minus the log of the right digit's output) or "
        "quadratic (the video's: the sum of the squared differences from the right answer)",
        choices=LOSS_NAMES, page=Page(),
    )
    optimizer: str = setting(
        "adam",
        "how each step moves the weights: sgd (plain steps downhill, learning rate times "
        "the gradient, as in the video), momentum (each step keeps part of the last one's "
        "speed) or adam (a step size of its own for each weight)",
        choices=OPTIMIZERS, page=Page(),
    )
    # the measured best of 0.001-0.03 for the default network
    lr: float = setting(
        0.02, "peak learning rate: how far each step goes downhill",
        low=0, above=True, high=MAX_SETTING, page=Page(),
    )
    momentum: float = setting(0.9, "momentum, or Adam's beta1", low=0, high=1, below=True)
    batch_size: int = setting(
        32, "images per step: each step follows their average gradient", low=1, high=MAX_INT,
        page=Page(high=1024, limit="batch_size"),  # a batch of 55,000 takes gigabytes
    )
    # with augment=1: 96.5-96.8% for seeds 0-2 (30 epochs: 96.5%)
    epochs: int = setting(
        40, "passes over the training images (one pass: an epoch)", low=1, high=MAX_EPOCHS,
        page=Page(high=100, limit="epochs"),
    )
    # adds λ W to ∂C/∂W (not to the biases' gradient)
    weight_decay: float = setting(
        1e-4, "L2 penalty on weights", low=0, high=MAX_SETTING, page=Page(),
    )
    # η decays to 0 along a half cosine, or stays constant
    schedule: str = setting("cosine", "learning-rate schedule", choices=SCHEDULES)
    augment: int = setting(
        1,
        "shift each batch by up to this many pixels up, down, left or right, new pictures "
        "of the same digits; 0 turns it off",
        low=0, high=MAX_INT,
        page=Page(high=4, limit="augment"),
    )
    # each epoch shows this share of the images as their distorted twin
    # (learn/distort.py: turned, slanted, scaled); 0.25 measured best of 0, 0.25 and 0.5
    # over seeds 0-3 on benchmarks/hands.py's sets
    distort: float = setting(
        0.25, "share of each epoch's images seen as a distorted twin; 0 turns it off",
        low=0, high=1,
    )
    # measured 0.5-1 point worse on the test set for the default network, so off
    normalize: bool = setting(False, "train on standardised pixels (folded into the saved model)")
    validation: int = setting(
        5000, "training images held out to pick the best epoch", low=0, high=MAX_INT,
    )
    patience: int = setting(
        0, "stop after this many epochs without improvement; 0 never stops early",
        low=0, high=MAX_EPOCHS,
    )
    seed: int = setting(
        0, "seed of the first weights, the split and the batches", low=0, high=MAX_COUNT,
        page=Page(high=2**32 - 1),
    )
    kernel: str = setting(
        "auto",
        "the training loop: numpy, compiled (the same loop compiled by numba; needs "
        "digitnet[fast]), or auto: compiled when it is already built, else numpy (and the "
        "compiled loop is built in the background for later runs)",
        choices=KERNELS,
    )

    def __post_init__(self) -> None:
        check_settings(self)
        lookup(LOSSES, (self.loss, self.output), "loss/output pair")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sizes"] = list(self.sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """The config from a dict such as a model file's, ignoring unknown keys."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


#: Every training setting, by name, in TrainConfig's order.
SETTINGS: dict[str, Setting] = spec_of(TrainConfig)


def page_settings(spec: dict[str, Setting] = SETTINGS) -> dict[str, Setting]:
    """The settings the page may ask for."""
    return {name: s for name, s in spec.items() if s.page is not None}
