"""The page and its JSON API: draw a digit, watch the network think.

``create_app(model)`` builds a FastAPI app (tests start their own); ``serve`` runs
it on uvicorn.  Endpoints (each router in ``routes/`` says more of its own):

- ``GET /`` (and ``HEAD /``): the page (static files shipped in the package; nothing
  from a CDN).
- ``GET /api/model``: sizes, activations, accuracy, and every weight and bias, which
  the page needs to draw connections and weight pictures.
- ``POST /api/predict``: ``{"image": "data:image/png;base64,..."}`` (a canvas), the
  same canvas as grey bytes (``{"grey": {"width", "height", "data"}}``, what the page
  sends) or ``{"pixels": [784 numbers in [0, 1]]}`` -> digit, probabilities, the 784 inputs
  the network saw and every layer's activations.
- ``GET /api/sample[?digit=7]``: a random MNIST test digit.
- ``POST /api/preprocess``: ``{"image": ...}`` as for predict -> every step from the
  canvas to the network's input (``preprocess.steps``), for the page to show.
- ``GET /api/models``: the models the page can use, the served one first
  (``digitnet.server.models``); ``GET /api/models/{id}/file`` downloads one as a model file.
  ``/api/model`` and ``/api/predict`` take an optional model id (``?model=`` and
  ``"model"``).
- ``POST /api/train`` (202: queued, its place said), ``GET /api/train/{id}/events``
  (server-sent events: ``queued``/``started`` while it waits, ``epoch``..., then
  ``done`` or ``error``), ``DELETE /api/train/{id}`` (its owner or the teacher):
  training in a worker process, one at a time, within a work budget
  (``digitnet.server.jobs``, ``budget``); ``GET /api/train``: the defaults, limits
  and choices a request may use, and the queue.
- ``GET /api/class``, ``/teacher`` and ``/api/teacher...``: a class on one server
  (``classroom``: each browser a client by a cookie, the addresses, the teacher's key).
- ``GET /api/neuron?layer=L&index=I``: what excites neuron (L, I), what it wants and
  what the test digits lose without it (``explore``); ``POST /api/predict`` takes an
  optional ``"knockout": [[layer, index], ...]``; ``POST /api/nudge``: the smallest
  change found that makes the network answer ``"target"``.

Every error is JSON, ``{"error": "..."}``, whoever sends it (the app, the
middleware, or the HTTP layer; ``errors``).  Against hostile and unlucky clients:

- bodies over ``MAX_BODY_BYTES`` are refused before they are read, and a body must
  arrive within ``BODY_TIMEOUT`` seconds (408);
- pictures over ``MAX_IMAGE_PIXELS`` are refused before they are decoded, and at
  most ``PICTURE_WORKERS`` are decoded at once (``PICTURE_QUEUE`` more wait; beyond
  that, 503), which bounds the memory pictures take to about
  ``PICTURE_WORKERS`` x ``PICTURE_BYTES`` (and one picture of at most ``SMALL_PIXELS``,
  which a prediction reads on the event loop itself);
- a connection must send its request line and headers within ``HEADER_TIMEOUT``
  seconds, and an idle keep-alive connection is closed after ``KEEP_ALIVE_TIMEOUT``;
- up to ``MAX_CONNECTIONS`` are held; when one more arrives, the connection idle
  longest makes room, so idle sockets cannot lock real requests out;
- bound to loopback, only requests whose Host is a loopback name are answered (421
  otherwise), so a web page cannot reach the API through DNS rebinding;
- a request that changes state (POST, PUT, PATCH, DELETE) from another origin gets a
  403 (``Origin`` not the request's Host, or ``Sec-Fetch-Site: cross-site``), and one
  with a body not declared JSON a 415, so no page elsewhere can start a training;
- explorer and learning work runs on bounded pools (``work``): at most ``PER_CLIENT``
  requests at once per client, a cached answer never behind an uncached one, work
  stopped when its client leaves or the server stops; its caches are bounded by bytes;
- event streams count apart from ``MAX_CONNECTIONS``, ``STREAMS_PER_CLIENT`` each;
- a 413 or 408 sent before the body has arrived closes lingering, so a client that
  writes first still reads it; Content-Length must be plain digits and never comes
  with Transfer-Encoding; JSON is nested at most ``MAX_NESTING`` deep;
- SIGTERM or Ctrl-C stop the server gracefully within ``SHUTDOWN_TIMEOUT`` seconds:
  no new connections, uploads still arriving are answered 503, requests already
  read get that long to finish.

Where each part lives:

- ``app``: ``create_app``, which makes one ``ServerState`` and wires the routers, the
  error handlers, the static files and the middleware;
- ``state``: ``ServerState``, everything the endpoints share (the models, the
  trainer, the samples, the picture pool, the explorer's atlases), which an endpoint
  receives through a parameter typed ``State``;
- ``routes/``: one router per area (``page``, ``models``, ``predict``, ``explorer``,
  ``training``, ``learning``, ``classroom``);
- ``schemas``: every request and response model;
- ``errors``: the JSON error body, and the HTTP status of each exception type;
- ``pictures``: PNG data URLs in and out, grey bytes in, and the bounded pool pictures
  are decoded on;
- ``classroom``: ``ClientCookie`` (each browser's id), the class's addresses, Host
  names and QR codes, and ``Classroom`` (the teacher's key);
- ``budget``: a training's estimated seconds from its FLOPs, against ``WORK_BUDGET``;
- ``middleware``: ``BodyLimit``, ``HostCheck``, ``SameOrigin``, ``HeadAsGet``,
  ``EventStreams``, ``JSONErrors``, and ``client_key`` (who a request comes from);
- ``work``: the explorer's bounded, cancellable pools;
- ``protocol``: ``GuardedProtocol``, ``bind``, ``serve`` and the loopback checks;
- ``memory``: giving a picture's memory back to the system.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

#: Where each name this package offers lives: imported on first use, so that a
#: training worker (``python -m digitnet.server.worker``) does not import the web
#: framework it never uses (half a second of CPU at each run's start).
_HOMES = {
    "create_app": "app",
    "BODY_TIMEOUT": "middleware",
    "MAX_BODY_BYTES": "middleware",
    "BodyLimit": "middleware",
    "HostCheck": "middleware",
    "JSONErrors": "middleware",
    "MAX_IMAGE_PIXELS": "pictures",
    "PICTURE_BYTES": "pictures",
    "PICTURE_QUEUE": "pictures",
    "PICTURE_WORKERS": "pictures",
    "HEADER_TIMEOUT": "protocol",
    "KEEP_ALIVE_TIMEOUT": "protocol",
    "MAX_CONNECTIONS": "protocol",
    "SHUTDOWN_TIMEOUT": "protocol",
    "GuardedProtocol": "protocol",
    "bind": "protocol",
    "is_loopback": "protocol",
    "loopback_names": "protocol",
    "serve": "protocol",
    "ServerState": "state",
    "atlases": "state",
}

if TYPE_CHECKING:
    from .app import create_app
    from .middleware import BODY_TIMEOUT, MAX_BODY_BYTES, BodyLimit, HostCheck, JSONErrors
    from .pictures import MAX_IMAGE_PIXELS, PICTURE_BYTES, PICTURE_QUEUE, PICTURE_WORKERS
    from .protocol import (
        HEADER_TIMEOUT,
        KEEP_ALIVE_TIMEOUT,
        MAX_CONNECTIONS,
        SHUTDOWN_TIMEOUT,
        GuardedProtocol,
        bind,
        is_loopback,
        loopback_names,
        serve,
    )
    from .state import ServerState, atlases


def __getattr__(name: str):
    """A name of ``__all__``, imported from its module on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(importlib.import_module(f".{home}", __name__), name)
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "BODY_TIMEOUT",
    "HEADER_TIMEOUT",
    "KEEP_ALIVE_TIMEOUT",
    "MAX_BODY_BYTES",
    "MAX_CONNECTIONS",
    "MAX_IMAGE_PIXELS",
    "PICTURE_BYTES",
    "PICTURE_QUEUE",
    "PICTURE_WORKERS",
    "SHUTDOWN_TIMEOUT",
    "BodyLimit",
    "GuardedProtocol",
    "HostCheck",
    "JSONErrors",
    "ServerState",
    "atlases",
    "bind",
    "create_app",
    "is_loopback",
    "loopback_names",
    "serve",
]
