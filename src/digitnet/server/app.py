"""``create_app``: the app for one model, wired from the routers in ``routes`` over one
``ServerState``, with JSON error handlers, the static files and the middleware."""

from __future__ import annotations

import threading
from collections.abc import Collection
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
from fastapi import FastAPI

from ..files.modelfile import Model
from ..vision.recognise import mnist_shapes
from . import jobs
from .classroom import Classroom, ClientCookie
from .errors import add_handlers
from .middleware import (
    BODY_TIMEOUT,
    MAX_BODY_BYTES,
    BodyLimit,
    EventStreams,
    HeadAsGet,
    HostCheck,
    SameOrigin,
    StreamCount,
)
from .models import Models
from .pictures import PICTURE_QUEUE, PICTURE_WORKERS, Pictures
from .routes import ROUTERS
from .routes.page import static_files
from .routes.predict import describe
from .state import ServerState


@asynccontextmanager
async def lifespan(app: FastAPI):
    """At start, let a stop signal stop training at once, and open the explorer's
    work, which may have been stopped before (the picture pool and the explorer's
    pools start with their first use); at shutdown, stop any training and the pools."""
    app.state.server.trainer.stop_on_signals()
    app.state.server.work.open()
    yield
    await app.state.server.close()


def create_app(
    model: Model,
    samples: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    hosts: Collection[str] | None = None,
    body_timeout: float = BODY_TIMEOUT,
    picture_workers: int = PICTURE_WORKERS,
    picture_queue: int = PICTURE_QUEUE,
    models_dir: Path | None = None,
    classroom: Classroom | None = None,
) -> FastAPI:
    """The app for one model.  ``samples`` are (images (N, 784) uint8, labels (N,))
    for /api/sample; the MNIST test set when not given.  ``hosts``: the Host names
    answered (all when None; ``serve`` on loopback passes ``loopback_names``).
    ``models_dir``: where models trained from the page are saved and read from at the
    start (``serve --models DIR``); in memory only when None.  ``classroom``: the
    class settings of ``serve --class`` (addresses, teacher's key); none by default."""
    if samples is None:
        from ..files.data import load_split

        samples = load_split(None, "test")
    images, labels = samples
    models = Models(model, models_dir)
    app = FastAPI(
        title="digitnet",
        version="1",
        summary="Draw a digit and watch the 784-16-16-10 network think.",
        docs_url=None,  # Swagger UI would load from a CDN; /openapi.json documents the API
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.server = ServerState(
        served_answer=describe(model),
        models=models,
        trainer=jobs.Trainer(models),
        images=images,
        labels=labels,
        pictures=Pictures(picture_workers, picture_queue),
    )
    app.state.models = models  # what `digitnet serve` warns of: models.skipped
    app.state.classroom = classroom or Classroom()
    app.state.stopping = app.state.server.work.stopping  # set by ``serve`` at SIGTERM
    add_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", static_files(), name="static")
    app.add_middleware(ClientCookie)  # each browser's id, for its training runs
    app.state.streams = StreamCount()  # which ``serve``'s connection count leaves out
    app.add_middleware(EventStreams, count=app.state.streams)
    app.add_middleware(HeadAsGet)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES, timeout=body_timeout)
    app.add_middleware(SameOrigin)  # before the body is read
    if hosts is not None:
        app.add_middleware(HostCheck, hosts=hosts)  # outermost: checked before the body
    # made now, beside the start, so the first prediction does not wait for it
    threading.Thread(target=mnist_shapes, name="mnist-shapes", daemon=True).start()
    return app
