"""The neuron explorer (``digitnet.inspect.explore``): ``GET /api/neuron?layer=L&index=I``
(what excites neuron (L, I), what input it wants and what the test digits lose without
it) and ``POST /api/nudge`` (a predict request and a ``"target"`` -> the smallest change
found that makes the network answer the target).  The slow parts are computed once
per network and kept with it (``ServerState.atlas``); the work runs on the bounded
pools of ``server.work`` (an answer from the atlas never waits behind work that is
not), and a request whose first-time cost is over ``explore.MAX_EXPLORE_COST`` is
refused (422) before it starts."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request

from ...inspect import explore, learning
from ...learn.knockout import check_neuron, keep_masks
from ...learn.network import Network
from ...vision.preprocess import to_mnist
from ..pictures import png_data_url
from ..schemas import ERRORS, ErrorResponse, NeuronResponse, NudgeRequest, NudgeResponse, rounded
from ..state import State
from .predict import distinct, requested_network

router = APIRouter()


def neuron_answer(atlas: explore.Atlas, layer: int, index: int) -> dict:
    """``GET /api/neuron``'s answer for neuron (layer, index) from its model's atlas."""
    net, images = atlas.net, atlas.images
    check_neuron(net, layer, index)
    indices, acts = atlas.top()[layer - 1]
    side = int(round(np.sqrt(images.shape[1])))
    answer = {
        "layer": layer,
        "index": index,
        "weights": rounded(net.W[layer - 1][index]),
        "bias": round(float(net.b[layer - 1][index]), 5),
        "top": [
            {
                "index": int(i),
                "label": int(atlas.labels[i]),
                "activation": round(float(a), 6),
                "image": png_data_url(images[i].reshape(side, side)),
            }
            for i, a in zip(indices[index], acts[index], strict=True)
        ],
        "wants": rounded(atlas.wants(layer)[index], 4),
    }
    table = atlas.table() if layer < len(net.W) else None  # None: no test digits it reads
    if table is not None:
        row = table.neurons.index((layer, index))
        answer["knockout"] = {
            "accuracy": round(float(table.accuracy[row]), 6),
            "per_digit": rounded(table.per_digit[row], 6),
        }
    return answer


def nudge_answer(
    net: Network, pixels: np.ndarray, target: int, knockout, until: float | None = None
) -> dict:
    """``POST /api/nudge``'s answer.  The pixels go out as the exact float32 values, so
    that sent back they are the very input the network answered ``digit`` for."""
    done = explore.nudge(net, pixels.reshape(-1), target, knockout=knockout, until=until)
    return {
        "pixels": done.pixels.astype(np.float64).tolist(),
        "digit": done.digit,
        "probabilities": rounded(done.probabilities, 6),
        "linf": round(done.linf, 6),
        "l2": round(done.l2, 6),
        "steps": done.steps,
    }


@router.get(
    "/api/neuron",
    response_model=NeuronResponse,
    response_model_exclude_none=True,  # "knockout" only for hidden neurons
    responses={**ERRORS, 404: {"model": ErrorResponse}, 429: {"model": ErrorResponse}},
)
async def neuron(
    layer: int,
    index: int,
    state: State,
    http: Request,
    model: Annotated[str | None, Query(description="a model id; the served one")] = None,
) -> dict:
    """What excites one neuron, what it wants, and what is lost without it."""
    try:
        net = state.models.lookup(model).network
    except LookupError as e:
        raise HTTPException(404, str(e)) from None
    try:
        check_neuron(net, layer, index)
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    atlas = state.atlas(net)
    cold = not atlas.ready(layer)
    if cold:
        cost = explore.explore_cost(net, len(state.images))
        _refused(lambda: explore.check_cost("exploring the neurons", net, cost))
    def work() -> dict:  # on one BLAS thread: on a busy 2-core machine OpenBLAS's threads
        with learning.one_blas_thread():  # made a first 784-64-64-10 table 94 s, not 6 s
            return neuron_answer(atlas, layer, index)

    # ``net`` is held by this frame until the answer is made: the atlas holds it weakly
    return await state.work.run(http, work, cold=cold)


def _refused(check) -> None:
    try:
        check()
    except ValueError as e:
        raise HTTPException(422, str(e)) from None


@router.post("/api/nudge", response_model=NudgeResponse,
             responses={**ERRORS, 429: {"model": ErrorResponse}})  # fmt: skip
async def nudge(request: NudgeRequest, state: State, http: Request) -> dict:
    """The smallest change found that makes the network answer ``target``."""
    net = requested_network(state, request)
    knockout = distinct(request.knockout)
    # unlike predict's, these messages name no field: as they always have
    _refused(lambda: explore.check_digit(net, request.target))
    _refused(lambda: keep_masks(net, knockout))
    _refused(lambda: explore.check_cost("a nudge", net, explore.nudge_cost(net)))

    if request.pixels is not None:
        pixels = np.array(request.pixels, dtype=np.float32)
    else:  # the picture decoded on its pool, the nudge made on the explorer's
        pixels = await state.pictures.read(request.picture, to_mnist)
    work = lambda: nudge_answer(net, pixels, request.target, knockout, request.until)  # noqa: E731
    return await state.work.run(http, work, cold=True)
