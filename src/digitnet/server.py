"""The page and its JSON API: draw a digit, watch the network think.

``create_app(model)`` builds a FastAPI app (tests start their own); ``serve`` runs
it on uvicorn.  Endpoints:

- ``GET /`` (and ``HEAD /``): the page (static files shipped in the package; nothing
  from a CDN).
- ``GET /api/model``: sizes, activations, accuracy, and every weight and bias, which
  the page needs to draw connections and weight pictures.
- ``POST /api/predict``: ``{"image": "data:image/png;base64,..."}`` (a canvas) or
  ``{"pixels": [784 numbers in [0, 1]]}`` -> digit, probabilities, the 784 inputs
  the network saw and every layer's activations.
- ``GET /api/sample[?digit=7]``: a random MNIST test digit.
- ``POST /api/preprocess``: ``{"image": ...}`` as for predict -> every step from the
  canvas to the network's input (``preprocess.steps``), for the page to show.
- ``GET /api/models``: the models the page can use, the served one first
  (``digitnet.models``); ``GET /api/models/{id}/file`` downloads one as a model file.
  ``/api/model`` and ``/api/predict`` take an optional model id (``?model=`` and
  ``"model"``).
- ``POST /api/train`` (202, or 409 while one runs), ``GET /api/train/{id}/events``
  (server-sent events: ``epoch``..., then ``done`` or ``error``), ``DELETE
  /api/train/{id}``: training in a worker process (``digitnet.jobs``);
  ``GET /api/train``: the defaults, limits and choices a request may use.
- ``GET /api/neuron?layer=L&index=I``: what excites neuron (L, I), what it wants and
  what the test digits lose without it (``explore``); ``POST /api/predict`` takes an
  optional ``"knockout": [[layer, index], ...]``; ``POST /api/nudge``: the smallest
  change found that makes the network answer ``"target"``.

Every error is JSON, ``{"error": "..."}``, whoever sends it (the app, the request
checks below, or the HTTP layer).  Against hostile and unlucky clients:

- bodies over ``MAX_BODY_BYTES`` are refused before they are read, and a body must
  arrive within ``BODY_TIMEOUT`` seconds (408);
- pictures over ``MAX_IMAGE_PIXELS`` are refused before they are decoded, and at
  most ``PICTURE_WORKERS`` are decoded at once (``PICTURE_QUEUE`` more wait; beyond
  that, 503), which bounds the memory pictures take to about
  ``PICTURE_WORKERS`` x ``PICTURE_BYTES``;
- a connection must send its request line and headers within ``HEADER_TIMEOUT``
  seconds, and an idle keep-alive connection is closed after ``KEEP_ALIVE_TIMEOUT``;
- up to ``MAX_CONNECTIONS`` are held; when one more arrives, the connection idle
  longest makes room, so idle sockets cannot lock real requests out;
- bound to loopback, only requests whose Host is a loopback name are answered (421
  otherwise), so a web page cannot reach the API through DNS rebinding;
- SIGTERM or Ctrl-C stop the server gracefully within ``SHUTDOWN_TIMEOUT`` seconds:
  no new connections, uploads still arriving are answered 503, requests already
  read get that long to finish.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ctypes
import ctypes.util
import io
import json
import socket
import weakref
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated

import h11
import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

from . import explore, jobs
from .modelfile import Model, to_bytes
from .models import Models, UnknownModel
from .network import Network
from .preprocess import PictureError, open_picture, steps, to_mnist
from .recognise import predict_pixels

#: Largest request body accepted, in bytes.
MAX_BODY_BYTES = 2 * 1024 * 1024
#: Largest picture accepted by /api/predict, in pixels (width x height).
MAX_IMAGE_PIXELS = 4_000_000
#: Pictures decoded at once (one per core of the machine this was measured on).
PICTURE_WORKERS = 2
#: Pictures that may wait for a worker; more at once get a 503.
PICTURE_QUEUE = 64
#: Memory one picture of MAX_IMAGE_PIXELS takes while it is decoded and brought to
#: MNIST's form, at most (measured: 142 MiB for a 2000x2000 16-bit RGBA PNG, the
#: costliest kind; tests/test_redteam.py checks the bound).
PICTURE_BYTES = 160 * 1024 * 1024
#: Seconds a connection has to send its request line and headers.
HEADER_TIMEOUT = 10.0
#: Seconds a request's body has to arrive, once its headers have.
BODY_TIMEOUT = 20.0
#: Seconds an idle keep-alive connection is held open.
KEEP_ALIVE_TIMEOUT = 5
#: Seconds requests in progress get to finish once the server is told to stop.
SHUTDOWN_TIMEOUT = 5
#: Connections held at once.
MAX_CONNECTIONS = 1000
PNG_DATA_URL = "data:image/png;base64,"
DIGITS = frozenset("0123456789")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

STATIC = Path(str(resources.files("digitnet") / "static"))


#: Most knock-outs one request may list.
MAX_KNOCKOUTS = 1000
KnockoutField = Annotated[
    list[Annotated[list[Annotated[int, Field(strict=True)]], Field(min_length=2, max_length=2)]]
    | None,
    Field(
        None,
        max_length=MAX_KNOCKOUTS,
        description="hidden neurons switched off: [[layer, index], ...], layer from 1",
    ),
]


class PredictRequest(BaseModel):
    """Exactly one of ``image`` (a PNG data URL) or ``pixels`` (784 numbers)."""

    model_config = ConfigDict(extra="forbid")
    image: str | None = Field(
        None, description="a PNG as a data URL: data:image/png;base64,...", examples=[]
    )
    pixels: list[Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, strict=True)]] | None = (
        Field(None, min_length=784, max_length=784, description="784 pixels in [0, 1]")
    )
    model: str | None = Field(
        None, description="a model id from /api/models; the served one if left out"
    )
    knockout: KnockoutField = None


class PredictResponse(BaseModel):
    digit: int = Field(description="the guess: the brightest output neuron")
    probabilities: list[float] = Field(description="the ten outputs, summing to 1")
    input: list[float] = Field(description="the 784 values the network saw, row by row")
    activations: list[list[float]] = Field(description="every layer's activations, a_0 to a_L")


class ModelResponse(BaseModel):
    sizes: list[int]
    activation: str
    output: str
    n_parameters: int
    test_accuracy: float | None
    weights: list[list[list[float]]] = Field(description="W[l], each (n_out, n_in)")
    biases: list[list[float]] = Field(description="b[l], each (n_out,)")


class SampleResponse(BaseModel):
    label: int = Field(description="the digit MNIST says it is")
    index: int = Field(description="its index in the MNIST test set")
    pixels: list[float] = Field(description="784 values in [0, 1]")


class StepsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image: str = Field(description="a PNG as a data URL: data:image/png;base64,...")


class StepsResponse(BaseModel):
    size: list[int] = Field(description="[height, width] of the picture as worked on")
    ink: str = Field(description="the ink found, white on black, cropped: a PNG data URL")
    bounds: list[int] = Field(description="[top, left, bottom, right] of the ink (ends excluded)")
    stroke: float = Field(description="the stroke width (px) the ink would have in the 20x20 box")
    pen: str = Field(description="what was done to the strokes: kept, thickened, thinned, shrunk")
    box: list[list[float]] = Field(description="the ink fitted into the 20x20 box, (h, w)")
    offset: list[int] = Field(description="[top, left] of the box in the 28x28 input")
    input: list[float] = Field(description="the 784 values the network sees, row by row")


class TopImage(BaseModel):
    index: int = Field(description="its index in the MNIST test set")
    activation: float = Field(description="the neuron's activation for it")
    image: str = Field(description="the 28x28 picture as a PNG data URL")


class KnockoutScore(BaseModel):
    accuracy: float = Field(description="test accuracy with this neuron switched off")
    per_digit: list[float] = Field(description="per-digit test accuracy with it off")


class NeuronResponse(BaseModel):
    layer: int = Field(description="weight layer from 1 (1 = first hidden layer)")
    index: int = Field(description="the neuron in its layer, from 0")
    weights: list[float] = Field(description="its n_in incoming weights")
    bias: float
    top: list[TopImage] = Field(description="the test images it answers most, highest first")
    wants: list[float] = Field(description="784 values in [0, 1]: the input it wants")
    knockout: KnockoutScore | None = Field(None, description="hidden neurons only")


class NudgeRequest(PredictRequest):
    """What ``/api/predict`` takes, and the digit to make the network say."""

    target: int = Field(strict=True, description="the digit to make the network answer")


class NudgeResponse(BaseModel):
    pixels: list[float] = Field(description="the nudged 784 values in [0, 1]")
    digit: int = Field(description="what the network answers for pixels")
    probabilities: list[float] = Field(description="the ten outputs for pixels")
    linf: float = Field(description="the largest change of one pixel")
    l2: float = Field(description="the length of the change, sqrt(sum of squares)")
    steps: int = Field(description="gradient steps taken")


class ErrorResponse(BaseModel):
    error: str


class ModelSummary(BaseModel):
    id: str
    sizes: list[int]
    activation: str
    output: str
    test_accuracy: float | None


class TrainStarted(BaseModel):
    id: str = Field(description="the run's id, also the id of the model it makes")


class TrainStopped(BaseModel):
    id: str
    state: str = Field(description="stopping, or done/error when it had already ended")


class TrainOptions(BaseModel):
    defaults: dict = Field(description="the value of each setting a request may give")
    limits: dict = Field(description="the most each bounded setting may be")
    choices: dict = Field(description="the names each named setting may take")
    running: dict | None = Field(description="the run in progress, if any: its id and epochs")


ERRORS = {
    400: {"model": ErrorResponse},
    413: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
    503: {"model": ErrorResponse},
}


def error(status: int, message: str, *, close: bool = False) -> JSONResponse:
    """``{"error": message}`` with ``status``; ``close`` ends the connection after it."""
    headers = {"connection": "close"} if close else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def raw_error(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 error response as bytes, for the HTTP layer to write on a
    connection it then closes (no app is running for it)."""
    body = json.dumps({"error": message}).encode()
    reason = _REASONS.get(status, "Error").encode()
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n" % (status, reason, len(body))
    ) + body


_REASONS = {400: "Bad Request", 408: "Request Timeout", 503: "Service Unavailable"}


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with a 413, by
    the Content-Length header when there is one, else while the body streams in;
    a body that has not fully arrived ``timeout`` seconds after its headers gets a
    408 and the connection is closed (a client that stops sending cannot hold a
    request open)."""

    def __init__(self, app, limit: int, timeout: float = BODY_TIMEOUT) -> None:
        self.app, self.limit, self.timeout = app, limit, timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_big = error(413, f"request body over the {self.limit:,}-byte limit", close=True)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            if not length.isdigit():
                bad = error(400, "bad Content-Length header", close=True)
                return await bad(scope, receive, send)
            return await too_big(scope, receive, send)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        body, more = bytearray(), True
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                slow = error(
                    408, f"the request body did not arrive within {self.timeout:g} s", close=True
                )
                return await slow(scope, receive, send)
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await too_big(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def host_name(header: bytes) -> str:
    """The name in a Host header, without port or brackets: b"[::1]:8000" -> "::1"."""
    text = header.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    name = text.rsplit(":", 1)[0] if text.count(":") == 1 else text
    return name.rstrip(".")


class HostCheck:
    """ASGI middleware: answer only requests whose Host header names one of
    ``hosts`` (421 otherwise).  On loopback this stops DNS rebinding: a web page on
    evil.example that makes its name resolve to 127.0.0.1 still sends
    ``Host: evil.example``.  Requests without a Host (HTTP/1.0) come from no browser
    and pass."""

    def __init__(self, app, hosts: Collection[str]) -> None:
        self.app, self.hosts = app, frozenset(h.lower() for h in hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            header = dict(scope["headers"]).get(b"host")
            if header is not None and host_name(header) not in self.hosts:
                shown = header[:60].decode("latin-1")
                names = ", ".join(sorted(self.hosts))
                refuse = error(
                    421, f"Host {shown!r} is not served here; use one of: {names}", close=True
                )
                return await refuse(scope, receive, send)
        await self.app(scope, receive, send)


class JSONErrors:
    """ASGI wrapper: if the app fails before it has answered, the client still gets
    JSON (500, or 503 when the server is stopping), not the HTTP layer's plain text."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        started = False

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except BaseException as e:
            if scope["type"] == "http" and not started:
                stopping = isinstance(e, asyncio.CancelledError)
                status, text = (
                    (503, "the server is stopping") if stopping else (500, "internal error")
                )
                try:
                    await error(status, text, close=True)(scope, receive, send)
                except Exception:
                    pass
            raise


def release_memory() -> None:
    """Give freed memory back to the system after a picture: glibc keeps freed small
    blocks in the thread's arena for reuse; malloc_trim returns what it can (after
    64 large pictures: 96 MiB kept without it, 79 MiB with it, from 78 MiB before).
    Does nothing where there is no glibc."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


#: glibc's mallopt parameter for the size above which a block gets its own mapping.
M_MMAP_THRESHOLD = -3


def map_large_blocks(threshold: int = 1 << 20) -> None:
    """Make glibc give every block of ``threshold`` bytes or more its own mapping,
    returned to the system the moment it is freed.  By default glibc raises that
    threshold after the first large free (up to 32 MB), after which a picture's 16-64 MB
    arrays come from the threads' heaps, where freed memory lingers between pictures
    (64 concurrent large pictures: the server peaked 361 MiB above its start without
    this, 281 MiB with it, two pictures' worth).  Does nothing where there is no glibc."""
    if _LIBC is not None and hasattr(_LIBC, "mallopt"):
        _LIBC.mallopt(M_MMAP_THRESHOLD, threshold)


def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _libc()


def _round(values: np.ndarray, digits: int = 5) -> list:
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


def decode_png_data_url(url: str) -> bytes:
    """A PNG data URL -> the PNG's bytes, or PictureError saying what arrived."""
    if not url.startswith(PNG_DATA_URL):
        head = url[:30] + ("..." if len(url) > 30 else "")
        raise PictureError(f"image must be a data URL starting {PNG_DATA_URL!r}, got {head!r}")
    try:
        data = base64.b64decode(url[len(PNG_DATA_URL) :], validate=True)
    except (binascii.Error, ValueError):
        raise PictureError("image: the data URL's base64 is malformed") from None
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise PictureError("image: the data URL does not hold a PNG")
    return data


def create_app(
    model: Model,
    samples: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    hosts: Collection[str] | None = None,
    body_timeout: float = BODY_TIMEOUT,
    picture_workers: int = PICTURE_WORKERS,
    picture_queue: int = PICTURE_QUEUE,
    models_dir: Path | None = None,
) -> FastAPI:
    """The app for one model.  ``samples`` are (images (N, 784) uint8, labels (N,))
    for /api/sample; the MNIST test set when not given.  ``hosts``: the Host names
    answered (all when None; ``serve`` on loopback passes ``loopback_names``).
    ``models_dir``: where models trained from the page are saved and read from at the
    start (``serve --models DIR``); in memory only when None."""
    if samples is None:
        from .data import load_split

        samples = load_split(None, "test")
    images, labels = samples
    models = Models(model, models_dir)
    trainer = jobs.Trainer(models)
    rng = np.random.default_rng()
    pictures: dict = {"waiting": 0, "pool": None}  # the pool starts with the first picture

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await trainer.close()
        pool, pictures["pool"] = pictures["pool"], None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="digitnet",
        version="1",
        summary="Draw a digit and watch the 784-16-16-10 network think.",
        docs_url=None,  # Swagger UI would load from a CDN; /openapi.json documents the API
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.models = models  # endpoints take "model": id through models.lookup(id)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return error(400, "malformed JSON body")
        first = problems[0] if problems else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        message = first.get("msg", "invalid request")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return error(422, f"{where}: {message}{more}" if where else message + more)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = error(exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})  # e.g. Allow on a 405
        if exc.status_code == 405:  # every method of the path, not only the first route's
            path = request.url.path
            methods = {
                method
                for route in app.routes
                if getattr(route, "methods", None) and route.path_regex.match(path)
                for method in route.methods
            }
            response.headers["allow"] = ", ".join(sorted(methods))
        return response

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception) -> JSONResponse:
        return error(500, f"internal error ({type(exc).__name__})")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    def describe(model: Model) -> dict:
        net = model.network
        return {
            "sizes": list(net.sizes),
            "activation": net.activation_name,
            "output": net.output_name,
            "n_parameters": net.n_parameters,
            "test_accuracy": model.test_accuracy,
            "weights": [_round(W) for W in net.W],
            "biases": [_round(b) for b in net.b],
        }

    model_info = describe(model)

    @app.get("/api/model", response_model=ModelResponse, responses={404: {"model": ErrorResponse}})
    async def get_model(
        model: Annotated[str | None, Query(description="a model id from /api/models")] = None,
    ) -> dict | JSONResponse:
        """The network: its shape, accuracy, and every weight and bias."""
        if model is None:
            return model_info
        try:
            return describe(models.lookup(model))
        except UnknownModel as e:
            return error(404, str(e))

    @app.get("/api/models", response_model=list[ModelSummary])
    async def list_models() -> list[dict]:
        """The models the page can use: the served one first, then those trained here."""
        return models.summaries()

    @app.get(
        "/api/models/{model_id}/file",
        responses={
            200: {"content": {"application/octet-stream": {}}, "description": "a model file"},
            404: {"model": ErrorResponse},
            409: {"model": ErrorResponse},
        },
    )
    async def model_file(model_id: str) -> Response:
        """One model as a safetensors model file (``digitnet.modelfile``)."""
        try:
            chosen = models.lookup(model_id)
        except UnknownModel as e:
            return error(404, str(e))
        if model_id not in models.ids():
            return error(409, f"model {model_id!r} is still training")
        data = await asyncio.to_thread(to_bytes, chosen.network, chosen.info)
        disposition = f'attachment; filename="{model_id}.safetensors"'
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"content-disposition": disposition},
        )

    def answer(net, pixels: np.ndarray, knockout: explore.Knockout = ()) -> dict:
        prediction = predict_pixels(net, pixels, knockout)
        return {
            "digit": prediction.digit,
            "probabilities": _round(prediction.probabilities, 6),
            "input": _round(prediction.input.reshape(-1), 4),
            "activations": [_round(a, 5) for a in prediction.activations],
        }

    def from_image(url: str, work) -> dict:
        """Decode one picture and hand it to ``work``, on a pool thread; its memory goes
        back after."""
        try:
            picture = open_picture(decode_png_data_url(url), max_pixels=MAX_IMAGE_PIXELS)
            return work(picture)
        finally:
            picture = None
            release_memory()

    async def read_picture(url: str, work) -> dict | JSONResponse:
        """``from_image`` on the bounded pool: at most ``picture_workers`` at once and
        ``picture_queue`` waiting; more get a 503."""
        if pictures["waiting"] >= picture_queue:
            return error(503, "too many pictures at once; try again in a moment")
        if pictures["pool"] is None:
            pictures["pool"] = ThreadPoolExecutor(picture_workers, thread_name_prefix="picture")
        pictures["waiting"] += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(pictures["pool"], from_image, url, work)
        finally:
            pictures["waiting"] -= 1

    @app.post("/api/predict", response_model=PredictResponse, responses=ERRORS)
    async def predict(request: PredictRequest) -> dict | JSONResponse:
        """Read a digit from a canvas PNG or from 784 pixels."""
        if (request.image is None) == (request.pixels is None):
            return error(422, "send exactly one of 'image' (a PNG data URL) or 'pixels'")
        try:
            net = models.lookup(request.model).network
        except UnknownModel as e:
            return error(422, f"model: {e}")
        if net.sizes[0] != 784:
            return error(422, f"this model takes {net.sizes[0]} inputs, not the 784 of a picture")
        knockout = request.knockout or ()
        try:
            explore.keep_masks(net, knockout)
        except ValueError as e:
            return error(422, f"knockout: {e}")
        if request.pixels is not None:
            return answer(net, np.array(request.pixels, dtype=np.float32), knockout)
        try:
            return await read_picture(
                request.image, lambda picture: answer(net, to_mnist(picture), knockout)
            )
        except PictureError as e:
            status = 413 if "limit" in str(e) else 422
            return error(status, str(e))

    add_explorer(app, lambda id: models.lookup(id).network, images, labels, read_picture)

    def steps_of(picture) -> dict:
        done = steps(picture)
        top, left, bottom, right = done.bounds
        crop = Image.fromarray(np.round(255 * done.ink[top:bottom, left:right]).astype(np.uint8))
        png = io.BytesIO()
        crop.save(png, format="PNG")
        return {
            "size": list(done.ink.shape),
            "ink": PNG_DATA_URL + base64.b64encode(png.getvalue()).decode("ascii"),
            "bounds": list(done.bounds),
            "stroke": round(done.stroke, 3),
            "pen": done.pen,
            "box": _round(done.box, 4),
            "offset": list(done.offset),
            "input": _round(done.field.reshape(-1), 4),
        }

    @app.post("/api/preprocess", response_model=StepsResponse, responses=ERRORS)
    async def preprocess(request: StepsRequest) -> dict | JSONResponse:
        """Every step from a canvas PNG to the network's 28x28 input."""
        try:
            return await read_picture(request.image, steps_of)
        except PictureError as e:
            return error(413 if "limit" in str(e) else 422, str(e))

    @app.get("/api/sample", response_model=SampleResponse, responses=ERRORS)
    async def sample(
        request: Request,
        digit: Annotated[int | None, Query(ge=0, le=9, description="only this digit")] = None,
    ) -> dict | JSONResponse:
        """A random MNIST test digit, optionally of one class."""
        raw = request.query_params.getlist("digit")  # strictly "0".."9", not "0.0" or "07"
        if len(raw) > 1 or (raw and raw[0] not in DIGITS):
            return error(422, f"digit: expected one whole number 0-9, got {raw!r}")
        choices = np.flatnonzero(labels == digit) if digit is not None else np.arange(len(labels))
        if len(choices) == 0:
            return error(404, f"no test image of digit {digit}")
        index = int(rng.choice(choices))
        return {
            "label": int(labels[index]),
            "index": index,
            "pixels": _round(images[index] / 255, 4),
        }

    @app.get("/api/train", response_model=TrainOptions)
    async def train_options() -> dict:
        """What a training request may ask for, and the run in progress."""
        job = trainer.running
        return {
            "defaults": jobs.defaults(),
            "limits": jobs.limits(),
            "choices": jobs.choices(),
            "running": None if job is None else {"id": job.id, "epochs": job.config.epochs},
        }

    @app.post(
        "/api/train",
        status_code=202,
        response_model=TrainStarted,
        responses={**ERRORS, 409: {"model": ErrorResponse}},
        openapi_extra={
            "requestBody": {
                "content": {"application/json": {"schema": {"type": "object"}}},
                "description": "any of: " + ", ".join(jobs.FIELDS) + " (as in TrainConfig)",
            }
        },
    )
    async def start_training(request: Request) -> dict | JSONResponse:
        """Train a new network in a worker process; follow it at /api/train/{id}/events."""
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return error(400, "malformed JSON body")
        try:
            config = jobs.train_config(body)
        except jobs.RequestError as e:
            return JSONResponse({"error": str(e), "field": e.field}, status_code=422)
        try:
            job = await trainer.start(config)
        except jobs.Busy as e:
            return error(409, str(e))
        return JSONResponse({"id": job.id}, status_code=202)

    @app.get(
        "/api/train/{job_id}/events",
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
            404: {"model": ErrorResponse},
        },
    )
    async def training_events(job_id: str) -> Response:
        """The run's events: every epoch so far, then each new one, then done or error."""
        job = trainer.find(job_id)
        if job is None:
            return error(404, f"no training {job_id!r}")

        async def stream():
            seen = 0
            while True:
                while seen < len(job.events):
                    yield job.events[seen]
                    seen += 1
                if job.finished:
                    return
                await job.wait(seen, timeout=15)
                if seen == len(job.events) and not job.finished:
                    yield ": still training\n\n"  # keeps idle connections open

        headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    @app.delete(
        "/api/train/{job_id}",
        response_model=TrainStopped,
        responses={202: {"model": TrainStopped}, 404: {"model": ErrorResponse}},
    )
    async def stop_training(job_id: str) -> JSONResponse:
        """Stop a run after its current batch; its best weights so far become a model."""
        job = trainer.find(job_id)
        if job is None:
            return error(404, f"no training {job_id!r}")
        if job.finished:
            return JSONResponse({"id": job.id, "state": job.state})
        trainer.stop(job)
        return JSONResponse({"id": job.id, "state": "stopping"}, status_code=202)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES, timeout=body_timeout)
    if hosts is not None:
        app.add_middleware(HostCheck, hosts=hosts)  # outermost: checked before the body
    return app


# -- the neuron explorer: GET /api/neuron, POST /api/nudge -----------------------------------


def atlases(images: np.ndarray, labels: np.ndarray):
    """``atlas(net)``: the ``explore.Atlas`` of ``net`` on these images, made on first use
    and kept as long as the network lives, so every served model has its own cache."""
    made: weakref.WeakKeyDictionary[Network, explore.Atlas] = weakref.WeakKeyDictionary()

    def atlas(net: Network) -> explore.Atlas:
        if net not in made:
            made[net] = explore.Atlas(net, images, labels)
        return made[net]

    return atlas


def png_data_url(values: np.ndarray) -> str:
    """A uint8 (h, w) array as a grey PNG data URL."""
    png = io.BytesIO()
    Image.fromarray(values).save(png, format="PNG")
    return PNG_DATA_URL + base64.b64encode(png.getvalue()).decode("ascii")


def neuron_answer(atlas: explore.Atlas, layer: int, index: int) -> dict:
    """``GET /api/neuron``'s answer for neuron (layer, index) from its model's atlas."""
    net, images = atlas.net, atlas.images
    explore.check_neuron(net, layer, index)
    indices, acts = atlas.top()[layer - 1]
    side = int(round(np.sqrt(images.shape[1])))
    answer = {
        "layer": layer,
        "index": index,
        "weights": _round(net.W[layer - 1][index]),
        "bias": round(float(net.b[layer - 1][index]), 5),
        "top": [
            {
                "index": int(i),
                "activation": round(float(a), 6),
                "image": png_data_url(images[i].reshape(side, side)),
            }
            for i, a in zip(indices[index], acts[index], strict=True)
        ],
        "wants": _round(atlas.wants(layer)[index], 4),
    }
    if layer < len(net.W):
        table = atlas.table()
        row = table.neurons.index((layer, index))
        answer["knockout"] = {
            "accuracy": round(float(table.accuracy[row]), 6),
            "per_digit": _round(table.per_digit[row], 6),
        }
    return answer


def nudge_answer(net: Network, pixels: np.ndarray, target: int, knockout) -> dict:
    """``POST /api/nudge``'s answer.  The pixels go out as the exact float32 values, so
    that sent back they are the very input the network answered ``digit`` for."""
    done = explore.nudge(net, pixels.reshape(-1), target, knockout=knockout)
    return {
        "pixels": done.pixels.astype(np.float64).tolist(),
        "digit": done.digit,
        "probabilities": _round(done.probabilities, 6),
        "linf": round(done.linf, 6),
        "l2": round(done.l2, 6),
        "steps": done.steps,
    }


def add_explorer(
    app: FastAPI, network_of: Callable[[str | None], Network], images, labels, read_picture
) -> None:
    """The explorer's endpoints.  ``network_of(model_id)`` is the network a request's
    ``model`` names (None: the served one), LookupError for an unknown id; the slow
    parts are computed once per network and kept with it (``atlases``)."""
    atlas = atlases(images, labels)

    @app.get(
        "/api/neuron",
        response_model=NeuronResponse,
        response_model_exclude_none=True,  # "knockout" only for hidden neurons
        responses={**ERRORS, 404: {"model": ErrorResponse}},
    )
    async def neuron(
        layer: int,
        index: int,
        model: Annotated[str | None, Query(description="a model id; the served one")] = None,
    ) -> dict | JSONResponse:
        """What excites one neuron, what it wants, and what is lost without it."""
        try:
            net = network_of(model)
        except LookupError as e:
            return error(404, str(e))
        try:
            explore.check_neuron(net, layer, index)
        except ValueError as e:
            return error(422, str(e))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, neuron_answer, atlas(net), layer, index)

    @app.post("/api/nudge", response_model=NudgeResponse, responses=ERRORS)
    async def nudge(request: NudgeRequest) -> dict | JSONResponse:
        """The smallest change found that makes the network answer ``target``."""
        if (request.image is None) == (request.pixels is None):
            return error(422, "send exactly one of 'image' (a PNG data URL) or 'pixels'")
        try:
            net = network_of(request.model)
        except LookupError as e:
            return error(422, f"model: {e}")
        if net.sizes[0] != 784:
            return error(422, f"this model takes {net.sizes[0]} inputs, not the 784 of a picture")
        knockout = request.knockout or ()
        try:
            explore.check_target(net, request.target)
            explore.keep_masks(net, knockout)
        except ValueError as e:
            return error(422, str(e))

        def work(pixels: np.ndarray) -> dict:
            return nudge_answer(net, pixels, request.target, knockout)

        try:
            if request.pixels is not None:
                loop = asyncio.get_running_loop()
                pixels = np.array(request.pixels, dtype=np.float32)
                return await loop.run_in_executor(None, work, pixels)
            return await read_picture(request.image, lambda picture: work(to_mnist(picture)))
        except PictureError as e:
            return error(413 if "limit" in str(e) else 422, str(e))
        except explore.NudgeFailed as e:
            return error(422, str(e))


def is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return all(info[4][0].startswith("127.") or info[4][0] == "::1" for info in infos)


def loopback_names(host: str) -> frozenset[str]:
    """The Host names a server bound to the loopback address ``host`` answers to."""
    return LOOPBACK_NAMES | {host.strip("[]").lower()}


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted connections only then;
    # without it a keep-alive response waits ~40 ms on Nagle and delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class GuardedProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 connection with the limits a server facing idle, slow and
    hostile clients needs (uvicorn's own concurrency limit counts idle connections,
    so 256 silent sockets would turn every real request into a 503):

    - the request line and headers must arrive within ``header_timeout`` seconds of
      the connection opening or of the previous response (408, or a plain close for
      a connection that sent nothing);
    - past ``max_connections``, the connection idle longest (no request in progress)
      is closed to make room; if every one is busy, the newcomer gets a 503;
    - on shutdown, a request whose body is still arriving gets a 503 at once;
    - the HTTP layer's own errors (malformed requests) are JSON."""

    def __init__(
        self,
        *args,
        header_timeout: float = HEADER_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout, self.max_connections = header_timeout, max_connections
        self.header_timer: asyncio.TimerHandle | None = None
        self.opened = self.loop.time()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._await_headers()
        if len(self.connections) > self.max_connections:
            self._make_room()

    def connection_lost(self, exc) -> None:
        self._headers_arrived()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.header_timer is None and self.conn.their_state is h11.IDLE:
            self._await_headers()  # a new request begins on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._headers_arrived()

    def _await_headers(self) -> None:
        self.header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _headers_arrived(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_too_slow(self) -> None:
        self.header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:  # it sent part of a request: say why it ends
            message = f"no complete request headers within {self.header_timeout:g} s"
            self.transport.write(raw_error(408, message))
        self.transport.close()

    def idle(self) -> bool:
        """No request in progress: waiting for one, or between requests."""
        return (self.cycle is None or self.cycle.response_complete) and (
            self.conn.their_state in (h11.IDLE, h11.DONE)
        )

    def _make_room(self) -> None:
        idle = [c for c in self.connections if c is not self and getattr(c, "idle", None)]
        idle = [c for c in idle if c.idle() and not c.transport.is_closing()]
        if idle:
            min(idle, key=lambda c: c.opened).transport.close()
        else:
            self.transport.write(
                raw_error(503, f"all {self.max_connections} connections are busy; try again")
            )
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self.transport.write(raw_error(400, f"malformed HTTP request ({msg.rstrip('.')})"))
        self.transport.close()

    def shutdown(self) -> None:
        if self.cycle is not None and self.conn.their_state is h11.SEND_BODY:
            self.transport.write(raw_error(503, "the server is stopping; send it again later"))
            self.transport.close()
            return
        super().shutdown()


def _raise_open_files_limit(connections: int) -> int:
    """Allow this process enough open files for ``connections`` sockets (and the
    files it reads); the number of connections it can then hold."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = connections + 256
        if soft != resource.RLIM_INFINITY and soft < wanted:
            new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
    except (ImportError, ValueError, OSError):
        return connections
    return connections if soft == resource.RLIM_INFINITY else min(connections, soft - 256)


def serve(
    app: FastAPI,
    sock: socket.socket,
    *,
    header_timeout: float = HEADER_TIMEOUT,
    keep_alive: int = KEEP_ALIVE_TIMEOUT,
    shutdown_timeout: int = SHUTDOWN_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
) -> None:
    """Run the app on an already bound socket until Ctrl-C or SIGTERM, with the
    limits in this module's docstring."""
    from functools import partial

    import uvicorn

    protocol = partial(
        GuardedProtocol,
        header_timeout=header_timeout,
        max_connections=_raise_open_files_limit(max_connections),
    )
    config = uvicorn.Config(
        JSONErrors(app),
        http=protocol,
        lifespan="on",
        log_level="warning",
        timeout_keep_alive=keep_alive,
        timeout_graceful_shutdown=shutdown_timeout,
        limit_concurrency=None,  # GuardedProtocol limits connections; see its docstring
        backlog=2048,
        h11_max_incomplete_event_size=64 * 1024,
    )
    map_large_blocks()
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
