"""``ServerState``: everything the endpoints share, made once by ``create_app`` and
kept in ``app.state.server``.  An endpoint asks for it with a parameter typed
``State`` (a FastAPI dependency), so each router reads only what it names and can be
tested with a state of its own."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

import numpy as np
from fastapi import Depends, Request

from ..inspect import explore, learning
from ..learn.network import Network
from . import jobs
from .models import Models
from .pictures import Pictures


def mnist_train() -> tuple[np.ndarray, np.ndarray]:
    """The 60,000 MNIST training images (N, 784) uint8 and labels (N,) that ship with
    the package."""
    from ..files.data import load_split

    return load_split(None, "train")


def atlases(images: np.ndarray, labels: np.ndarray) -> Callable[[Network], explore.Atlas]:
    """``atlas(net)``: the ``explore.Atlas`` of ``net`` on these images, made on first use
    and kept as long as the network lives, so every served model has its own cache."""
    made: weakref.WeakKeyDictionary[Network, explore.Atlas] = weakref.WeakKeyDictionary()

    def atlas(net: Network) -> explore.Atlas:
        if net not in made:
            made[net] = explore.Atlas(net, images, labels)
        return made[net]

    return atlas


@dataclass
class ServerState:
    """What the endpoints work on.

    ``served_answer`` is ``GET /api/model``'s answer for the served model, made once;
    ``images`` (N, 784) uint8 and ``labels`` (N,) are the samples of ``/api/sample``
    and the explorer's test digits; ``atlas(net)`` the explorer's cache per network;
    ``training()`` loads the training set the learning endpoints average over (read on
    first use by ``learning_cache``, which keeps one ``learning.Cache`` per server)."""

    served_answer: dict
    models: Models  # every model by id, the served one first
    trainer: jobs.Trainer  # training runs, one at a time, putting their models in models
    images: np.ndarray
    labels: np.ndarray
    pictures: Pictures = field(default_factory=Pictures)  # the bounded decoding pool
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    atlas: Callable[[Network], explore.Atlas] | None = None
    training: Callable[[], tuple[np.ndarray, np.ndarray]] = mnist_train
    steps_made: int = 0  # models made by /api/step: step-1, step-2, ..., never reused
    _cache: learning.Cache | None = field(default=None, init=False, repr=False)
    _cache_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.atlas is None:
            self.atlas = atlases(self.images, self.labels)

    def learning_cache(self) -> learning.Cache:
        """The server's one ``learning.Cache`` over the training set, made (and the set
        loaded) on first use; call it off the event loop, as loading takes a second."""
        with self._cache_lock:
            if self._cache is None:
                self._cache = learning.Cache(*self.training())
            return self._cache

    async def close(self) -> None:
        """Stop any training and the picture pool, at server shutdown."""
        await self.trainer.close()
        self.pictures.close()


async def server_state(request: Request) -> ServerState:
    """The app's ``ServerState`` (async: FastAPI would run a plain function on a thread)."""
    return request.app.state.server


#: An endpoint parameter typed ``State`` receives the app's ``ServerState``.
State = Annotated[ServerState, Depends(server_state)]
