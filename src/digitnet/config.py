"""What a training run is asked to do and what it did: ``TrainConfig`` (declared,
setting by setting, in ``settings``), ``Epoch``, ``History``, and ``record``, which
puts them together as a model file keeps them.  Plain records, read and written as
JSON in model files and checkpoints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .settings import KERNELS, SCHEDULES, TrainConfig

__all__ = ["KERNELS", "SCHEDULES", "Epoch", "History", "TrainConfig", "TrainingDiverged", "record"]


# -- records -----------------------------------------------------------------------------


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
