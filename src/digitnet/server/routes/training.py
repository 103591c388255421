"""Training from the page (``digitnet.server.jobs``): ``GET /api/train`` (the defaults, limits
and choices a request may use, the run training and the queue), ``POST /api/train``
(202: the run's id, name and place in the queue), ``GET /api/train/{id}/events``
(server-sent events: ``queued``... and ``started`` while it waits, ``epoch``..., then
``done`` or ``error``) and ``DELETE /api/train/{id}`` (stop after the current batch,
keeping the best weights so far: only the client that started it, or the teacher).

Each client (``classroom.Client``, a cookie) has one run waiting or training at a
time; a run over the work budget (``budget``) is refused before any work."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from ...settings import page_settings, short
from .. import jobs
from ..classroom import Class, Client
from ..schemas import (
    ERRORS,
    MAX_PACE,
    ErrorResponse,
    TrainOptions,
    TrainPace,
    TrainStarted,
    TrainStopped,
)
from ..state import State

#: Seconds between comments on an idle event stream, which keep its connection open.
KEEP_ALIVE_EVERY = 15

router = APIRouter()


@router.get("/api/train", response_model=TrainOptions)
async def train_options(state: State, client: Client) -> dict:
    """What a training request may ask for, the run in progress and the queue."""
    trainer = state.trainer
    job = trainer.running
    return {
        "defaults": {**jobs.defaults(), "pace": 0.0},
        "limits": {**jobs.limits(), **jobs.queue_limits(trainer), "pace": MAX_PACE},
        "choices": jobs.choices(),
        "help": {
            **{name: s.help for name, s in page_settings().items()},
            "pace": TrainPace.model_fields["pace"].description,
        },
        "running": None if job is None else job.public(client, 0),
        "queue": trainer.queue(client),
        "enabled": trainer.enabled,
    }


def pace_of(body: object) -> float:
    """A training request's "pace" (``TrainPace``), taken out of the object so that
    what is left holds training settings only; RequestError naming it if it is bad."""
    if not isinstance(body, dict) or "pace" not in body:
        return 0.0
    value = body.pop("pace")
    try:
        return TrainPace(pace=value).pace
    except ValidationError:
        expected = f"expected seconds between epochs, a number 0-{MAX_PACE:g}"
        raise jobs.RequestError("pace", f"{expected}, got {short(value)}") from None


@router.post(
    "/api/train",
    status_code=202,
    response_model=TrainStarted,
    responses={**ERRORS, **{code: {"model": ErrorResponse} for code in (403, 413, 429, 503)}},
    openapi_extra={
        "requestBody": {
            "content": {"application/json": {"schema": {"type": "object"}}},
            "description": "any of: " + ", ".join(jobs.FIELDS) + " (as in TrainConfig), "
            "the run's name, and pace (seconds at least between epochs, 0-" + f"{MAX_PACE:g})",
        }
    },
)
async def start_training(request: Request, state: State, client: Client) -> JSONResponse:
    """Queue a new network's training (it starts at once when none trains); follow it
    at /api/train/{id}/events."""
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "malformed JSON body") from None
    try:
        named = isinstance(body, dict) and "name" in body
        name = jobs.check_name(body.pop("name")) if named else None
        pace = pace_of(body)
        body, added = jobs.added_digits(body)
        config = jobs.train_config(body)
    except jobs.RequestError as e:  # the answer names the field, for the page to mark
        return JSONResponse({"error": str(e), "field": e.field}, status_code=422)
    try:
        job = await state.trainer.start(config, client, name, pace, added)
    except jobs.Refused as e:
        raise HTTPException(e.status, str(e)) from None
    answer = {
        "id": job.id, "name": job.name, "position": state.trainer.position(job),
        "estimate_seconds": round(job.estimate, 1),
    }  # fmt: skip
    return JSONResponse(answer, status_code=202)


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
        raise HTTPException(404, f"no training {short(job_id)}")
    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    return StreamingResponse(event_stream(job), media_type="text/event-stream", headers=headers)


@router.delete(
    "/api/train/{job_id}",
    response_model=TrainStopped,
    responses={
        202: {"model": TrainStopped}, 403: {"model": ErrorResponse}, 404: {"model": ErrorResponse}
    },
)
async def stop_training(
    job_id: str, request: Request, state: State, client: Client, room: Class
) -> JSONResponse:
    """Stop a run after its current batch (a waiting one leaves the queue); its best
    weights so far become a model.  Only its owner, or the teacher (the key in an
    ``X-Teacher-Key`` header)."""
    job = state.trainer.find(job_id)
    if job is None:
        raise HTTPException(404, f"no training {short(job_id)}")
    teacher = room.is_teacher(request.headers.get("x-teacher-key"))
    if not teacher and job.owner != client:
        raise HTTPException(403, f"training {job.id} was started by another browser: only it "
                            "or the teacher can stop it")  # fmt: skip
    if job.finished:
        return JSONResponse({"id": job.id, "state": job.state})
    by = "owner" if job.owner == client else "teacher"
    return JSONResponse({"id": job.id, "state": await state.trainer.stop(job, by)}, status_code=202)
