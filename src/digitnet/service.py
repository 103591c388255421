"""One training run from settings to a recorded network: train, evaluate on the test
set, build the record (``config.record``), and, for the callers that keep a file,
save it atomically.

``train`` is what ``digitnet train`` (and ``serve``'s first training), the page's
worker and the sweep all call; it writes nothing.  ``save`` writes the model file of
a finished run, once: the command line and the sweep call it, the worker hands the
weights to the server instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .config import Epoch, History, TrainConfig, record
from .files.data import Dataset
from .files.modelfile import save as save_model
from .learn.network import Network
from .train import Evaluation, evaluate, fit, resolve_kernel, seeded_generators

if TYPE_CHECKING:
    from .train import TrainState


@dataclass
class Run:
    """A run's outcome: the network (the best epoch's weights), its history, the loop
    that trained it, the training time in seconds and, once at least one epoch has
    finished (and the run was kept), the test set's evaluation and the record a model
    file keeps (``info``)."""

    net: Network
    history: History
    loop: str
    seconds: float
    evaluation: Evaluation | None = None
    info: dict | None = None

    @property
    def kept(self) -> bool:
        """Whether the run has a model worth keeping (it was evaluated and recorded)."""
        return self.info is not None


def train(
    config: TrainConfig,
    data: Dataset,
    *,
    loop: str | None = None,
    resume: TrainState | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[Epoch], None] | None = None,
    on_state: Callable[[TrainState], None] | None = None,
    keep_interrupted: bool = True,
    data_name: str = "MNIST",
) -> Run:
    """Train a new network as ``config`` says (or continue ``resume``) on ``data``'s
    training images, then evaluate the kept weights on its test images and record it.

    ``loop`` is the loop that trains (default: ``resolve_kernel(config)``); the
    callbacks are ``fit``'s.  Ctrl-C (KeyboardInterrupt inside ``fit``) ends training
    with the best weights so far; such a run is evaluated and recorded only when
    ``keep_interrupted``.  A run stopped before its first epoch ended is never
    recorded.  Nothing is written to disk."""
    loop = resolve_kernel(config, build=True) if loop is None else loop
    init_rng, data_rng = seeded_generators(config.seed)
    net = Network(config.sizes, config.activation, config.output, rng=init_rng)
    start = time.perf_counter()
    history = fit(
        net,
        data.train_images,
        data.train_labels,
        replace(config, kernel=loop),
        data_rng,
        on_batch=on_batch,
        on_epoch=on_epoch,
        on_state=on_state,
        resume=resume,
    )
    run = Run(net, history, loop, time.perf_counter() - start)
    if not history.epochs or (history.stopped == "interrupted" and not keep_interrupted):
        return run
    run.evaluation = evaluate(net, data.test_images, data.test_labels)
    run.info = record(
        config,
        history,
        test_accuracy=run.evaluation.accuracy,
        seconds=run.seconds,
        kernel=loop,
        data=data_name,
    )
    return run


def save(path: str | os.PathLike, run: Run) -> None:
    """Write a kept run's model file at ``path``, atomically (``modelfile.save``)."""
    if run.info is None:
        raise ValueError("this run has no model to save: it stopped before it was kept")
    save_model(path, run.net, run.info)
