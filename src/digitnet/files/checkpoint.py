"""Checkpoints: the state of a training run, saved so that it can continue exactly.

A checkpoint is a safetensors file: tensors ``params``, ``best_params`` and
``optimizer.NAME``, metadata ``digitnet_checkpoint`` (JSON, checked on load against
``metadata.CHECKPOINT``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from safetensors.numpy import save as safetensors_bytes

from ..config import History, TrainConfig
from ..learn.network import count_parameters
from ..learn.optimizers import OPTIMIZERS
from ..train import TrainState
from .metadata import MetadataError, checkpoint_record, parse_json
from .modelfile import ModelFileError, _read
from .paths import atomic_write

Array = np.ndarray


CHECKPOINT_VERSION = 1


def checkpoint_bytes(config: TrainConfig) -> int:
    """About how many bytes a checkpoint of this run takes: the weights, the best
    weights and the optimiser's arrays as float32, and the record."""
    arrays = 2 + len(OPTIMIZERS[config.optimizer].names)
    return arrays * 4 * count_parameters(config.sizes) + 200 * config.epochs + 4096


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
    metadata = {"digitnet_checkpoint": json.dumps(record, allow_nan=False)}
    atomic_write(path, safetensors_bytes(tensors, metadata=metadata))


def load_checkpoint(path: str | os.PathLike):
    """(TrainState, TrainConfig) from a checkpoint file, every field checked
    (``metadata.CHECKPOINT``) before the tensors are compared with it."""
    path = Path(path)
    metadata, tensors = _read(path)
    if "digitnet_checkpoint" not in metadata:
        raise ModelFileError(f"{path}: not a digitnet checkpoint (no 'digitnet_checkpoint')")
    try:
        raw = parse_json(metadata["digitnet_checkpoint"], "checkpoint metadata")
        if not isinstance(raw, dict) or raw.get("format_version") != CHECKPOINT_VERSION:
            version = raw.get("format_version") if isinstance(raw, dict) else None
            raise MetadataError(f"unknown checkpoint version {version!r}")
        record = checkpoint_record(raw)
        # a checkpoint from before distorted twins existed continues without them
        config = TrainConfig.from_dict({"distort": 0, **record["config"]})
        history = History.from_dict(record["history"])
        n = count_parameters(config.sizes)
        names = {"params", "best_params"} | {
            f"optimizer.{name}" for name in OPTIMIZERS[config.optimizer].names
        }
        if set(tensors) != names:
            raise MetadataError(f"expected tensors {sorted(names)}, found {sorted(tensors)[:6]}")
        for name, tensor in tensors.items():
            if tensor.shape != (n,) or tensor.dtype != np.float32:
                raise MetadataError(
                    f"tensor {name!r} is {tensor.dtype} {tensor.shape}, not float32 ({n},)"
                )
            if not np.isfinite(tensor).all():
                raise MetadataError(f"tensor {name!r} holds NaN or infinite values")
        np.random.default_rng().bit_generator.state = record["rng"]  # numpy checks it too
    except (MetadataError, ValueError, TypeError) as e:
        raise ModelFileError(f"{path}: bad checkpoint ({e})") from None
    state = TrainState(
        epoch=record["epoch"],
        step=record["step"],
        params=tensors["params"],
        best_params=tensors["best_params"],
        best_score=record["best_score"],
        since_best=record["since_best"],
        optimizer={k.split(".", 1)[1]: v for k, v in tensors.items() if "." in k},
        optimizer_steps=record["optimizer_steps"],
        rng=record["rng"],
        history=history,
    )
    return state, config
