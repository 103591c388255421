"""The page and its JSON API: draw a digit, watch the network think.

``create_app(model)`` builds a FastAPI app (tests start their own); ``serve`` runs
it on uvicorn.  Endpoints:

- ``GET /``: the page (static files shipped in the package; nothing from a CDN).
- ``GET /api/model``: sizes, activations, accuracy, and every weight and bias, which
  the page needs to draw connections and weight pictures.
- ``POST /api/predict``: ``{"image": "data:image/png;base64,..."}`` (a canvas) or
  ``{"pixels": [784 numbers in [0, 1]]}`` -> digit, probabilities, the 784 inputs
  the network saw and every layer's activations.
- ``GET /api/sample[?digit=7]``: a random MNIST test digit.
- ``POST /api/preprocess``: ``{"image": ...}`` as for predict -> every step from the
  canvas to the network's input (``preprocess.steps``), for the page to show.

Bad requests get a 4xx with ``{"error": "..."}``; bodies over ``MAX_BODY_BYTES`` are
refused before they are parsed, pictures over ``MAX_IMAGE_PIXELS`` before they are
decoded.
"""

from __future__ import annotations

import base64
import binascii
import io
import socket
from importlib import resources
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .modelfile import Model
from .preprocess import PictureError, open_picture, steps, to_mnist
from .recognise import predict_pixels

#: Largest request body accepted, in bytes.
MAX_BODY_BYTES = 2 * 1024 * 1024
#: Largest picture accepted by /api/predict, in pixels (width x height).
MAX_IMAGE_PIXELS = 4_000_000
PNG_DATA_URL = "data:image/png;base64,"
DIGITS = frozenset("0123456789")

STATIC = Path(str(resources.files("digitnet") / "static"))


class PredictRequest(BaseModel):
    """Exactly one of ``image`` (a PNG data URL) or ``pixels`` (784 numbers)."""

    model_config = ConfigDict(extra="forbid")
    image: str | None = Field(
        None, description="a PNG as a data URL: data:image/png;base64,...", examples=[]
    )
    pixels: list[Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, strict=True)]] | None = (
        Field(None, min_length=784, max_length=784, description="784 pixels in [0, 1]")
    )


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


class ErrorResponse(BaseModel):
    error: str


ERRORS = {
    400: {"model": ErrorResponse},
    413: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
}


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with a 413, by
    the Content-Length header when there is one, else while the body streams in."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_big = error(413, f"request body over the {self.limit:,}-byte limit")
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            if not length.isdigit():
                return await error(400, "bad Content-Length header")(scope, receive, send)
            return await too_big(scope, receive, send)
        body, more = bytearray(), True
        while more:
            message = await receive()
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


def create_app(model: Model, samples: tuple[np.ndarray, np.ndarray] | None = None) -> FastAPI:
    """The app for one model.  ``samples`` are (images (N, 784) uint8, labels (N,))
    for /api/sample; the MNIST test set when not given."""
    if samples is None:
        from .data import load_split

        samples = load_split(None, "test")
    images, labels = samples
    net = model.network
    rng = np.random.default_rng()
    app = FastAPI(
        title="digitnet",
        version="1",
        summary="Draw a digit and watch the 784-16-16-10 network think.",
        docs_url=None,  # Swagger UI would load from a CDN; /openapi.json documents the API
        redoc_url=None,
    )

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
        return response

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    model_info = {
        "sizes": list(net.sizes),
        "activation": net.activation_name,
        "output": net.output_name,
        "n_parameters": net.n_parameters,
        "test_accuracy": model.test_accuracy,
        "weights": [_round(W) for W in net.W],
        "biases": [_round(b) for b in net.b],
    }

    @app.get("/api/model", response_model=ModelResponse)
    async def get_model() -> dict:
        """The network: its shape, accuracy, and every weight and bias."""
        return model_info

    def answer(pixels: np.ndarray) -> dict:
        prediction = predict_pixels(net, pixels)
        return {
            "digit": prediction.digit,
            "probabilities": _round(prediction.probabilities, 6),
            "input": _round(prediction.input.reshape(-1), 4),
            "activations": [_round(a, 5) for a in prediction.activations],
        }

    def from_image(url: str) -> dict:
        picture = open_picture(decode_png_data_url(url), max_pixels=MAX_IMAGE_PIXELS)
        return answer(to_mnist(picture))

    @app.post("/api/predict", response_model=PredictResponse, responses=ERRORS)
    async def predict(request: PredictRequest) -> dict | JSONResponse:
        """Read a digit from a canvas PNG or from 784 pixels."""
        if (request.image is None) == (request.pixels is None):
            return error(422, "send exactly one of 'image' (a PNG data URL) or 'pixels'")
        if request.pixels is not None:
            if net.sizes[0] != 784:
                return error(422, f"this model takes {net.sizes[0]} inputs, not 784")
            return answer(np.array(request.pixels, dtype=np.float32))
        try:
            return await run_in_threadpool(from_image, request.image)
        except PictureError as e:
            status = 413 if "limit" in str(e) else 422
            return error(status, str(e))

    def steps_of(url: str) -> dict:
        picture = open_picture(decode_png_data_url(url), max_pixels=MAX_IMAGE_PIXELS)
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
            return await run_in_threadpool(steps_of, request.image)
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

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    return app


def is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return all(info[4][0].startswith("127.") or info[4][0] == "::1" for info in infos)


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


def serve(app: FastAPI, sock: socket.socket) -> None:
    """Run the app on an already bound socket until Ctrl-C."""
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level="warning",
        timeout_keep_alive=5,
        limit_concurrency=256,
        h11_max_incomplete_event_size=64 * 1024,
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
