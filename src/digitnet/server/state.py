"""``ServerState``: everything the endpoints share, made once by ``create_app`` and
kept in ``app.state.server``.  An endpoint asks for it with a parameter typed
``State`` (a FastAPI dependency), so each router reads only what it names and can be
tested with a state of its own."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict, deque
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
from .work import Work


def mnist_train() -> tuple[np.ndarray, np.ndarray]:
    """The 60,000 MNIST training images (N, 784) uint8 and labels (N,) that ship with
    the package."""
    from ..files.data import load_split

    return load_split(None, "train")


#: Bytes the explorer's atlases may hold in all; past that the least recently used
#: go first (the newest one always stays).
ATLAS_BYTES = 256 * 2**20


class Atlases:
    """``atlases(net)``: the ``explore.Atlas`` of ``net`` on these images, made on first
    use.  Kept least recently used first, at most ``max_bytes`` in all, and let go as
    soon as its network is (an atlas holds its network weakly, and its entry is removed
    when the network is collected): exploring a run epoch by epoch, where each epoch
    is a new network, keeps only what the models held still need."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, max_bytes: int = ATLAS_BYTES):
        self.images, self.labels, self.max_bytes = images, labels, max_bytes
        self._kept: OrderedDict[int, explore.Atlas] = OrderedDict()  # by id(network)
        self._lock = threading.Lock()
        self._gone: deque[tuple[int, weakref.ref]] = deque()

    def __call__(self, net: Network) -> explore.Atlas:
        with self._lock:
            self._let_go()
            atlas = self._kept.get(id(net))
            if atlas is not None and atlas.net is net:
                self._kept.move_to_end(id(net))
            else:
                atlas = self._kept[id(net)] = explore.Atlas(net, self.images, self.labels)
                weakref.finalize(net, self._gone.append, (id(net), weakref.ref(atlas)))
            self._trim()
            return atlas

    def _let_go(self) -> None:
        """Drop the atlases whose networks are gone (``_gone`` is filled by the networks'
        finalizers, which may run in any thread at any time, so they only append)."""
        while self._gone:
            key, atlas = self._gone.popleft()
            if key in self._kept and self._kept[key] is atlas():
                del self._kept[key]

    def _trim(self) -> None:
        total = sum(atlas.nbytes for atlas in self._kept.values())
        while total > self.max_bytes and len(self._kept) > 1:
            _, oldest = self._kept.popitem(last=False)
            total -= oldest.nbytes

    def __len__(self) -> int:
        with self._lock:
            self._let_go()
            return len(self._kept)

    @property
    def nbytes(self) -> int:
        """About how many bytes the atlases kept hold."""
        with self._lock:
            self._let_go()
            return sum(atlas.nbytes for atlas in self._kept.values())


def atlases(images: np.ndarray, labels: np.ndarray) -> Atlases:
    """``Atlases`` over these images (the server's, and a test's)."""
    return Atlases(images, labels)


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
    work: Work = field(default_factory=Work)  # the explorer's bounded pools
    # ``GET /api/model``'s encoded answer per network, let go with the network
    model_answers: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary)
    answers_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
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
        """Stop any training, the picture pool and the explorer's work, at shutdown."""
        await self.trainer.close()
        self.pictures.close()
        self.work.close()


async def server_state(request: Request) -> ServerState:
    """The app's ``ServerState`` (async: FastAPI would run a plain function on a thread)."""
    return request.app.state.server


#: An endpoint parameter typed ``State`` receives the app's ``ServerState``.
State = Annotated[ServerState, Depends(server_state)]
