"""Reading digits: ``POST /api/predict`` (a canvas PNG, its grey bytes or 784 pixels -> digit,
probabilities, the input the network saw and every layer's activations; optional
``"model"`` and ``"knockout"``), ``POST /api/preprocess`` (every step from the canvas
to the network's input), ``GET /api/sample[?digit=7]`` (a random MNIST test digit) and
``GET /api/model[?model=id]`` (sizes, functions, accuracy, every weight and bias, which
the page needs to draw connections and weight pictures)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from PIL import Image

from ...files.modelfile import Model
from ...learn.knockout import Knockout, keep_masks
from ...learn.network import Network
from ...vision.preprocess import steps, to_mnist
from ...vision.recognise import doubt, predict_pixels
from ..models import UnknownModel, about
from ..pictures import png_data_url
from ..schemas import (
    ERRORS,
    ErrorResponse,
    ModelResponse,
    PredictRequest,
    PredictResponse,
    SampleResponse,
    StepsRequest,
    StepsResponse,
    rounded,
)
from ..state import ServerState, State

DIGITS = frozenset("0123456789")

router = APIRouter()


def describe(model: Model) -> dict:
    """``GET /api/model``'s answer: what ``/api/models`` says of the model, its number
    of parameters, and every W[l] (n_out, n_in) and b[l] (n_out,)."""
    net = model.network
    return {
        **about(model),
        "n_parameters": net.n_parameters,
        "weights": [rounded(W) for W in net.W],
        "biases": [rounded(b) for b in net.b],
    }


def named_model(state: ServerState, model_id: str | None) -> Model:
    """The model a request's ``"model"`` names, the served one for None (HTTPException
    422 for an unknown id)."""
    try:
        return state.models.lookup(model_id)
    except UnknownModel as e:
        raise HTTPException(422, f"model: {e}") from None


def requested_model(state: ServerState, request: PredictRequest) -> Model:
    """The model a request with a picture names, once the request is whole: exactly one
    of image, grey and pixels, a known model, and a model that reads 784 pixels
    (HTTPException 422 saying which is not so)."""
    sent = [request.image, request.grey, request.pixels]
    if sum(part is not None for part in sent) != 1:
        raise HTTPException(
            422, "send exactly one of 'image' (a PNG data URL), 'grey' (grey bytes) or 'pixels'"
        )
    model = named_model(state, request.model)
    n = model.network.sizes[0]
    if n != 784:
        raise HTTPException(422, f"this model takes {n} inputs, not the 784 of a picture")
    return model


def requested_network(state: ServerState, request: PredictRequest) -> Network:
    """The network of ``requested_model``: what predict and nudge run."""
    return requested_model(state, request).network


def distinct(knockout: Knockout | None) -> list[tuple[int, int]]:
    """A request's knock-outs, each (layer, index) once, in the order given: a list of
    1,000 copies of one neuron costs what one does."""
    return list(dict.fromkeys(tuple(pair) for pair in knockout or ()))


def answer(net: Network, pixels: np.ndarray, knockout: Knockout = ()) -> dict:
    """``POST /api/predict``'s answer for pixels (28, 28) or (784,) in [0, 1], with
    ``recognise.doubt``'s verdict on whether it is a digit at all."""
    prediction = predict_pixels(net, pixels, knockout)
    reason = doubt(prediction.input, prediction.digit)
    return {
        "digit": prediction.digit,
        "probabilities": rounded(prediction.probabilities, 6),
        "input": rounded(prediction.input.reshape(-1), 4),
        "activations": [rounded(a, 5) for a in prediction.activations],
        "not_a_digit": reason is not None,
        "reason": reason,
    }


def steps_of(picture: Image.Image) -> dict:
    """``POST /api/preprocess``'s answer: ``preprocess.steps`` of the picture, the ink
    cropped to its bounds as a PNG."""
    done = steps(picture)
    top, left, bottom, right = done.bounds
    crop = np.round(255 * done.ink[top:bottom, left:right]).astype(np.uint8)
    return {
        "size": list(done.ink.shape),
        "ink": png_data_url(crop),
        "bounds": list(done.bounds),
        "stroke": round(done.stroke, 3),
        "pen": done.pen,
        "box": rounded(done.box, 4),
        "offset": list(done.offset),
        "input": rounded(done.field.reshape(-1), 4),
    }


@router.get("/api/model", response_model=ModelResponse, responses={404: {"model": ErrorResponse}})
async def get_model(
    state: State,
    model: Annotated[str | None, Query(description="a model id from /api/models")] = None,
) -> dict:
    """The network: its shape, accuracy, and every weight and bias (built and encoded
    off the event loop: for 784-256-256-256-256-10 it is 3.4 MB of JSON)."""
    try:
        chosen = state.models.lookup(model)
    except UnknownModel as e:
        raise HTTPException(404, str(e)) from None
    net = chosen.network
    body = state.model_answers.get(net)  # encoded once per network: json.dumps holds
    if body is None:  # the GIL, so 50 encodings at once would stall every request
        made = state.served_answer if model is None else None
        body = await asyncio.to_thread(_encode_once, state, chosen, made)
    return JSONResponse(body)


def _encode_once(state: ServerState, model: Model, made: dict | None) -> bytes:
    """``GET /api/model``'s answer for ``model`` as JSON bytes, made once per network
    (under a lock: requests arriving together wait for the first) and kept with it."""
    with state.answers_lock:
        body = state.model_answers.get(model.network)
        if body is None:
            body = state.model_answers[model.network] = encoded(made or describe(model))
        return body


class JSONResponse(Response):
    """A JSON answer already encoded (``encoded``)."""

    media_type = "application/json"


def encoded(answer: dict) -> bytes:
    """``answer`` as compact JSON bytes, as FastAPI would send it."""
    return json.dumps(answer, separators=(",", ":"), allow_nan=False).encode()


@router.post("/api/predict", response_model=PredictResponse, responses=ERRORS)
async def predict(request: PredictRequest, state: State) -> JSONResponse:
    """Read a digit from a canvas PNG, its grey bytes or 784 pixels.  The answer is
    encoded here, as ``PredictResponse`` documents it (the schema tests check it), so
    that the 800 numbers ``answer`` has just made are not validated and converted again
    on each of a class's hundreds of requests a second."""
    net = requested_network(state, request)
    knockout = distinct(request.knockout)
    try:
        keep_masks(net, knockout)
    except ValueError as e:
        raise HTTPException(422, f"knockout: {e}") from None
    if request.pixels is not None:  # off the event loop: the first doubt reads MNIST
        pixels = np.array(request.pixels, dtype=np.float32)
        loop = asyncio.get_running_loop()
        made = await loop.run_in_executor(None, answer, net, pixels, knockout)
    else:
        made = await state.pictures.read(
            request.picture, lambda picture: answer(net, to_mnist(picture), knockout), quick=True
        )
    return JSONResponse(encoded(made))


@router.post("/api/preprocess", response_model=StepsResponse, responses=ERRORS)
async def preprocess(request: StepsRequest, state: State) -> dict:
    """Every step from a canvas PNG to the network's 28x28 input."""
    return await state.pictures.read(request.image, steps_of)


@router.get("/api/sample", response_model=SampleResponse, responses=ERRORS)
async def sample(
    request: Request,
    state: State,
    digit: Annotated[int | None, Query(ge=0, le=9, description="only this digit")] = None,
) -> dict:
    """A random MNIST test digit, optionally of one class."""
    raw = request.query_params.getlist("digit")  # strictly "0".."9", not "0.0" or "07"
    if len(raw) > 1 or (raw and raw[0] not in DIGITS):
        raise HTTPException(422, f"digit: expected one whole number 0-9, got {raw!r}")
    labels = state.labels
    choices = np.flatnonzero(labels == digit) if digit is not None else np.arange(len(labels))
    if len(choices) == 0:
        raise HTTPException(404, f"no test image of digit {digit}")
    index = int(state.rng.choice(choices))
    return {
        "label": int(labels[index]),
        "index": index,
        "pixels": rounded(state.images[index] / 255, 4),
    }
