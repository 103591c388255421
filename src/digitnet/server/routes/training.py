"""Training from the page (``digitnet.server.jobs``): ``GET /api/train`` (the defaults, limits
and choices a request may use, and the run in progress), ``POST /api/train`` (202, or
409 while one runs), ``GET /api/train/{id}/events`` (server-sent events: ``epoch``...,
then ``done`` or ``error``) and ``DELETE /api/train/{id}`` (stop after the current
batch, keeping the best weights so far)."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from .. import jobs
from ..schemas import ERRORS, ErrorResponse, TrainOptions, TrainStarted, TrainStopped
from ..state import State

#: Seconds between comments on an idle event stream, which keep its connection open.
KEEP_ALIVE_EVERY = 15

router = APIRouter()


@router.get("/api/train", response_model=TrainOptions)
async def train_options(state: State) -> dict:
    """What a training request may ask for, and the run in progress."""
    job = state.trainer.running
    return {
        "defaults": jobs.defaults(),
        "limits": jobs.limits(),
        "choices": jobs.choices(),
        "running": None if job is None else {"id": job.id, "epochs": job.config.epochs},
    }


@router.post(
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
async def start_training(request: Request, state: State) -> JSONResponse:
    """Train a new network in a worker process; follow it at /api/train/{id}/events."""
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "malformed JSON body") from None
    try:
        body, added = jobs.added_digits(body)
        config = jobs.train_config(body)
    except jobs.RequestError as e:  # the answer names the field, for the page to mark
        return JSONResponse({"error": str(e), "field": e.field}, status_code=422)
    try:
        job = await state.trainer.start(config, added)
    except jobs.Busy as e:
        raise HTTPException(409, str(e)) from None
    return JSONResponse({"id": job.id}, status_code=202)


async def event_stream(job: jobs.Job):
    """The run's events as server-sent events' text: every one so far, then each new
    one as it comes, until the run ends."""
    seen = 0
    while True:
        while seen < len(job.events):
            yield job.events[seen]
            seen += 1
        if job.finished:
            return
        await job.wait(seen, timeout=KEEP_ALIVE_EVERY)
        if seen == len(job.events) and not job.finished:
            yield ": still training\n\n"  # keeps idle connections open


@router.get(
    "/api/train/{job_id}/events",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
        404: {"model": ErrorResponse},
    },
)
async def training_events(job_id: str, state: State) -> Response:
    """The run's events: every epoch so far, then each new one, then done or error."""
    job = state.trainer.find(job_id)
    if job is None:
        raise HTTPException(404, f"no training {job_id!r}")
    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    return StreamingResponse(event_stream(job), media_type="text/event-stream", headers=headers)


@router.delete(
    "/api/train/{job_id}",
    response_model=TrainStopped,
    responses={202: {"model": TrainStopped}, 404: {"model": ErrorResponse}},
)
async def stop_training(job_id: str, state: State) -> JSONResponse:
    """Stop a run after its current batch; its best weights so far become a model."""
    job = state.trainer.find(job_id)
    if job is None:
        raise HTTPException(404, f"no training {job_id!r}")
    if job.finished:
        return JSONResponse({"id": job.id, "state": job.state})
    state.trainer.stop(job)
    return JSONResponse({"id": job.id, "state": "stopping"}, status_code=202)
