"""The explorer's and the learning endpoints' work, off the event loop, bounded and fair.

- Work that is answered from a cache (a neuron whose atlas parts are made, a gradient
  of one example) runs on ``WARM_WORKERS`` threads of its own, so it never waits
  behind work that is not (``COLD_WORKERS`` threads: first-time neuron tables,
  nudges, mini-batches, landscapes).
- One client (``middleware.client_key``: its address and cookie) has at most
  ``PER_CLIENT`` cold requests running or waiting at once (429 past that; warm ones,
  quick by definition, are not counted), and at most ``COLD_QUEUE`` cold requests
  wait in all (503 past that).
- When the client disconnects, its work is cancelled: a request still waiting never
  starts, and one running stops at its next ``explore.checkpoint`` (every batch of
  images, every knocked-out neuron, every gradient step).  At server shutdown every
  piece of work stops the same way, so a SIGTERM is never held up by it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from fastapi import HTTPException, Request

from ..inspect.explore import Stopped, stoppable
from .middleware import client_key

T = TypeVar("T")

#: Threads for work answered from caches, and for work that computes (2 cores).
WARM_WORKERS, COLD_WORKERS = 2, 1
#: Cold explorer and learning requests one client may have running or waiting at once
#: (the page has at most three: a neuron, a nudge or a mini-batch, a landscape).
PER_CLIENT = 3
#: Cold requests that may wait in all; more at once get a 503.
COLD_QUEUE = 32


class Work:
    """The two pools, the count of requests per client, and the stop of all work."""

    def __init__(self, per_client: int = PER_CLIENT, cold_queue: int = COLD_QUEUE) -> None:
        self.per_client, self.cold_queue = per_client, cold_queue
        self.by_client: dict[str, int] = {}
        self.cold_waiting = 0
        self.stopping = threading.Event()
        self.pools: dict[bool, ThreadPoolExecutor] = {}  # cold or not -> pool, made on use

    async def run(self, request: Request, work: Callable[[], T], *, cold: bool) -> T:
        """``work()`` on the warm or cold pool for this request's client; cancelled if
        the client disconnects first (its result is then dropped)."""
        stop = threading.Event()
        if not cold:
            return await self._until_gone(request, work, stop, self._pool(False))
        who = client_key(request.scope)
        if self.by_client.get(who, 0) >= self.per_client:
            raise HTTPException(
                429, f"at most {self.per_client} explorer requests that compute at once "
                "per client; wait for one to finish"
            )  # fmt: skip
        if self.cold_waiting >= self.cold_queue:
            raise HTTPException(503, "the explorer is busy; try again in a moment")
        self.by_client[who] = self.by_client.get(who, 0) + 1
        self.cold_waiting += 1
        try:
            return await self._until_gone(request, work, stop, self._pool(True))
        finally:
            stop.set()  # a disconnect, or the server stopping, cancelled the request
            self.cold_waiting -= 1
            self.by_client[who] -= 1
            if not self.by_client[who]:
                del self.by_client[who]

    async def _until_gone(self, request: Request, work, stop: threading.Event, pool) -> T:
        def guarded():
            with stoppable(stop, self.stopping):
                return work()

        future = asyncio.get_running_loop().run_in_executor(pool, guarded)
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({future, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not future.done():  # the client left: nobody reads the answer
            stop.set()
            future.cancel()
            raise Stopped("the client left")
        return future.result()

    def _pool(self, cold: bool) -> ThreadPoolExecutor:
        if cold not in self.pools:
            workers, name = (COLD_WORKERS, "cold") if cold else (WARM_WORKERS, "warm")
            self.pools[cold] = ThreadPoolExecutor(workers, thread_name_prefix=name)
        return self.pools[cold]

    def open(self) -> None:
        """Accept work again (an app started after it was stopped, as tests do)."""
        self.stopping.clear()

    def close(self) -> None:
        """Stop all work at its next checkpoint and let the threads go (at shutdown;
        ``protocol.serve`` sets ``stopping`` as soon as the server is told to stop)."""
        self.stopping.set()
        pools, self.pools = self.pools, {}
        for pool in pools.values():
            pool.shutdown(wait=False, cancel_futures=True)


async def _disconnected(request: Request) -> None:
    """Return when the request's client has disconnected."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
