"""Checkpoints: the state of a training run, saved so that it can continue exactly.

A checkpoint is a safetensors file: tensors ``params``, ``best_params`` and
``optimizer.NAME``, metadata ``digitnet_checkpoint`` (JSON).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import save as safetensors_bytes

from .config import History, TrainConfig
from .modelfile import ModelFileError, _read, atomic_write
from .network import count_parameters
from .optimizers import OPTIMIZERS

Array = np.ndarray


@dataclass
class TrainState:
    """Everything needed to continue a run exactly where it stopped: after ``epoch``
    epochs and ``step`` optimiser steps, the current and the best weights (in the
    coordinates training uses, before the input transform is folded in), the
    optimiser's running averages, the shuffling generator's state and the history."""

    epoch: int
    step: int
    params: Array
    best_params: Array
    best_score: float
    since_best: int
    optimizer: dict[str, Array]
    optimizer_steps: int
    rng: dict
    history: History


CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, state, config) -> None:
    """Save a ``TrainState`` and its ``TrainConfig`` atomically, so that
    ``fit(..., resume=state)`` continues the run exactly.  A checkpoint is a
    safetensors file too: tensors ``params``, ``best_params`` and ``optimizer.NAME``,
    metadata ``digitnet_checkpoint`` (JSON)."""
    tensors = {"params": state.params, "best_params": state.best_params}
    tensors.update({f"optimizer.{name}": a for name, a in state.optimizer.items()})
    record = {
        "format_version": CHECKPOINT_VERSION,
        "config": config.to_dict(),
        "epoch": state.epoch,
        "step": state.step,
        "best_score": state.best_score,
        "since_best": state.since_best,
        "optimizer_steps": state.optimizer_steps,
        "rng": state.rng,
        "history": state.history.to_dict(),
    }
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    data = safetensors_bytes(tensors, metadata={"digitnet_checkpoint": json.dumps(record)})
    atomic_write(path, data)


def load_checkpoint(path: str | os.PathLike):
    """(TrainState, TrainConfig) from a checkpoint file, every field checked."""
    path = Path(path)
    metadata, tensors = _read(path)
    if "digitnet_checkpoint" not in metadata:
        raise ModelFileError(f"{path}: not a digitnet checkpoint (no 'digitnet_checkpoint')")
    try:
        record = json.loads(metadata["digitnet_checkpoint"])
        if record.get("format_version") != CHECKPOINT_VERSION:
            raise ValueError(f"unknown checkpoint version {record.get('format_version')!r}")
        config = TrainConfig.from_dict(record["config"])
        history = History.from_dict(record["history"])
        n = count_parameters(config.sizes)
        names = {"params", "best_params"} | {
            f"optimizer.{name}" for name in OPTIMIZERS[config.optimizer].names
        }
        if set(tensors) != names:
            raise ValueError(f"expected tensors {sorted(names)}, found {sorted(tensors)}")
        for name, tensor in tensors.items():
            if tensor.shape != (n,) or tensor.dtype != np.float32:
                raise ValueError(
                    f"tensor {name!r} is {tensor.dtype} {tensor.shape}, not float32 ({n},)"
                )
            if not np.isfinite(tensor).all():
                raise ValueError(f"tensor {name!r} holds NaN or infinite values")
        np.random.default_rng().bit_generator.state = record["rng"]  # checks it
        state = TrainState(
            epoch=int(record["epoch"]),
            step=int(record["step"]),
            params=tensors["params"],
            best_params=tensors["best_params"],
            best_score=float(record["best_score"]),
            since_best=int(record["since_best"]),
            optimizer={k.split(".", 1)[1]: v for k, v in tensors.items() if "." in k},
            optimizer_steps=int(record["optimizer_steps"]),
            rng=record["rng"],
            history=history,
        )
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        reason = str(e) if not isinstance(e, KeyError) else f"missing {e}"
        raise ModelFileError(f"{path}: bad checkpoint ({reason})") from None
    if not 0 <= state.epoch <= config.epochs:
        raise ModelFileError(f"{path}: checkpoint epoch {state.epoch} outside 0-{config.epochs}")
    return state, config
