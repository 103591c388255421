"""How the network learns (``digitnet.inspect.learning`` and ``landscape``):

- ``POST /api/gradient``: a predict request and its ``label`` -> what this one example
  asks of every weight and bias (``learning.wishes``);
- ``POST /api/step``: the same and ``lr`` -> a new model θ − lr·∇C, listed in
  ``/api/models`` as ``step-N`` with a ``step`` record (source model, label, lr, loss);
- ``POST /api/minibatch``: ``sizes`` and ``seed`` -> each mini-batch's cost, gradient
  norm and cosine to the full training set's gradient (``learning.minibatches``);
- ``POST /api/landscape``: ``size``, ``span``, ``seed`` -> the cost over a plane of
  parameters through the model (``landscape.landscape``).

Which loss: the one the model's record names (``info["loss"]`` or its config's);
a model without one is taken under cross-entropy if its output is softmax and the
quadratic cost if sigmoid (``learning.model_loss``).  The 60,000 training images are
read on the first minibatch or landscape request and kept with one ``learning.Cache``
per server, so a class asking the same question again is answered from it.
"""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, HTTPException, Request

from ...files.modelfile import Model
from ...inspect import explore, learning
from ...inspect import landscape as landscapes
from ...vision.preprocess import to_mnist
from ..models import SERVED
from ..schemas import (
    ERRORS,
    GradientRequest,
    GradientResponse,
    LandscapeRequest,
    LandscapeResponse,
    MinibatchRequest,
    MinibatchResponse,
    StepRequest,
    StepResponse,
)
from ..state import ServerState, State
from .predict import named_model, requested_model

#: The prefix of the ids of models made by ``/api/step``: step-1, step-2, ...
STEP_PREFIX = "step"
#: Most stepped models held; past that the oldest step is let go, so that a class
#: stepping again and again never pushes out a model trained from the page.
MAX_STEPS = 16

router = APIRouter()


def _refused(work):
    """``work()``, its ValueError (a request the library refuses) as a 422."""
    try:
        return work()
    except ValueError as e:
        raise HTTPException(422, str(e)) from None


def _check_example(state: ServerState, request: GradientRequest) -> Model:
    """The model of a gradient or step request, once the request is whole: one of
    image or pixels, no knock-outs, a label the network has, a picture with ink."""
    model = requested_model(state, request)
    if request.knockout:
        raise HTTPException(422, "knockout: not taken here (the gradient is the whole network's)")
    _refused(lambda: explore.check_digit(model.network, request.label, "label"))
    if request.pixels is not None and max(request.pixels) == 0:
        raise HTTPException(422, "pixels: the picture is blank (all 784 are 0); draw a digit")
    return model


async def _on_pixels(state: ServerState, request: GradientRequest, http: Request, work):
    """``work(pixels (784,) float32)`` off the event loop (``state.work``'s warm pool:
    one example's gradient is quick), on the request's pixels or on its picture
    preprocessed as for ``/api/predict`` (a blank picture is refused there)."""
    if request.pixels is not None:
        pixels = np.array(request.pixels, dtype=np.float32)
    else:  # decoded on the picture pool, then worked on as pixels
        pixels = await state.pictures.read(
            request.picture, lambda picture: to_mnist(picture).reshape(-1)
        )
    return await state.work.run(http, lambda: _refused(lambda: work(pixels)), cold=False)


@router.post("/api/gradient", response_model=GradientResponse, responses=ERRORS)
async def gradient(request: GradientRequest, state: State, http: Request) -> dict:
    """What one example asks of every weight and bias: the nudges −∂C/∂θ."""
    model = _check_example(state, request)
    net, loss = model.network, learning.model_loss(model.network, model.info)
    return await _on_pixels(
        state, request, http, lambda x: learning.wishes(net, x, request.label, loss).to_json()
    )


@router.post("/api/step", response_model=StepResponse, responses=ERRORS)
async def step(request: StepRequest, state: State, http: Request) -> dict:
    """One step of plain gradient descent on one example, θ − lr·∇C, as a new model
    (the one stepped from is left as it was); steps chain from a stepped model.  Stepped
    models are kept in memory only, the newest ``MAX_STEPS`` of them (``serve --models
    DIR`` saves trained models, not steps), and their ids are never reused."""
    model = _check_example(state, request)
    net, loss = model.network, learning.model_loss(model.network, model.info)
    done = await _on_pixels(
        state, request, http, lambda x: learning.step(net, x, request.label, loss, request.lr)
    )
    source = request.model or SERVED
    record = {"source": source, "label": request.label, "lr": request.lr, "loss": loss}
    model_id = state.models.new_id(prefix=STEP_PREFIX, start=state.steps_made + 1)
    state.steps_made = int(model_id.rsplit("-", 1)[1])
    stepped = [i for i in state.models.ids() if "step" in state.models.lookup(i).info]
    for old in stepped[: max(0, len(stepped) - MAX_STEPS + 1)]:
        state.models.drop(old)
    state.models.put(model_id, Model(done.network, {"loss": loss, "step": record}))
    return {
        "model": model_id,
        "cost_before": done.cost_before,
        "cost_after": done.cost_after,
        "digit_before": done.digit_before,
        "digit_after": done.digit_after,
        "probabilities_after": done.probabilities_after,
    }


def minibatch_cost(model: Model, sizes: list[int], n_train: int) -> float:
    """About how many multiply-adds ``/api/minibatch`` costs: a forward and backward
    pass (3 per parameter) for every training image and every image drawn."""
    return 3.0 * model.network.n_parameters * (n_train + sum(sizes))


def landscape_cost(model: Model, size: int) -> float:
    """About how many multiply-adds ``/api/landscape`` costs on its N images: the
    gradient (3 per parameter per image), the first layer's three products
    (3 N n_0 n_1), and for each of the size² points the layers after the first."""
    n, N = model.network.sizes, learning.LANDSCAPE_IMAGES
    after_first = sum(n[m - 1] * n[m] for m in range(2, len(n)))
    return 3.0 * N * (model.network.n_parameters + n[0] * n[1]) + size**2 * N * after_first


def minibatch_answer(state: ServerState, model: Model, sizes: list[int], seed: int) -> dict:
    """``POST /api/minibatch``'s answer, kept in the server's cache per network, loss,
    sizes and seed (the full-set gradient is kept there per network and loss)."""
    net, cache = model.network, state.learning_cache()
    loss = learning.model_loss(net, model.info)
    key = learning.fingerprint(net, "minibatch", loss, tuple(sizes), seed)
    answer = lambda: learning.minibatches(net, cache, loss, sizes, seed).to_json()  # noqa: E731
    return cache.get(key, answer, owner=net)


@router.post("/api/minibatch", response_model=MinibatchResponse, responses=ERRORS)
async def minibatch(request: MinibatchRequest, state: State, http: Request) -> dict:
    """Mini-batches of the training set against all of it: how well each batch's mean
    gradient points the way of the full one (cost without weight decay or augmentation,
    pixels in [0, 1])."""
    model = named_model(state, request.model)
    sizes = request.sizes
    _refused(lambda: [learning.check_whole(s, "each batch size", 1, 60_000) for s in sizes])
    _refused(lambda: learning.check_whole(request.seed, "seed", 0, 2**63 - 1))
    cost = minibatch_cost(model, sizes, 60_000)
    _refused(lambda: explore.check_cost("a mini-batch comparison", model.network, cost))
    work = lambda: _refused(lambda: minibatch_answer(state, model, sizes, request.seed))  # noqa: E731
    return await state.work.run(http, work, cold=True)


def landscape_answer(state: ServerState, model: Model, request: LandscapeRequest) -> dict:
    """``POST /api/landscape``'s answer.  No path: a model's record keeps only its final
    weights (its history holds each epoch's numbers, not its weights), so there is no
    path of training to project onto the plane."""
    net, cache = model.network, state.learning_cache()
    loss = learning.model_loss(net, model.info)
    land = landscapes.landscape(net, cache, loss, request.size, request.span, request.seed)
    return land.to_json()


@router.post("/api/landscape", response_model=LandscapeResponse,
             response_model_exclude_none=True, responses=ERRORS)  # fmt: skip
async def landscape(request: LandscapeRequest, state: State, http: Request) -> dict:
    """The mean cost on the first 10,000 training images over θ + α·d₁ + β·d₂: d₁ down
    the gradient, d₂ random and orthogonal to it, both scaled filter by filter (Li et
    al., 2018).  The answer has no ``path``: no model's record keeps per-epoch weights."""
    model = named_model(state, request.model)
    cost = landscape_cost(model, min(request.size, learning.LANDSCAPE_SIZES[1]))  # size: later
    _refused(lambda: explore.check_cost("a landscape", model.network, cost))
    work = lambda: _refused(lambda: landscape_answer(state, model, request))  # noqa: E731
    return await state.work.run(http, work, cold=True)
