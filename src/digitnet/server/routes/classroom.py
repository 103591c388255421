"""A class on one server (``digitnet.server.classroom``): ``GET /api/class`` (the addresses
students can open and a QR code of the first, for the page's "Join" dialog), and the
teacher's view: ``GET /teacher?key=KEY`` (the page), ``GET /api/teacher?key=KEY`` (the
queue, the switch, the class's models), ``POST /api/teacher/training`` (``{"key",
"enabled"}``: training on or off for everyone) and ``POST /api/teacher/clear``
(``{"key"}``: forget every model trained here).  A wrong key gets 403."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from ..classroom import Class, Classroom, Client, qr_svg
from ..schemas import ErrorResponse
from ..state import State
from .page import STATIC

router = APIRouter()
REFUSED = {code: {"model": ErrorResponse} for code in (400, 403, 422)}


def body_of(*fields: str) -> dict:
    """The OpenAPI extra that documents a JSON body of these fields."""
    properties = {"key": {"type": "string"}, "enabled": {"type": "boolean"}}
    schema = {"type": "object", "properties": {f: properties[f] for f in fields}}
    return {"requestBody": {"content": {"application/json": {"schema": schema}}}}


@router.get("/api/class")
async def class_info(request: Request, room: Class) -> dict:
    """Where others open the page: ``addresses`` (the first the one to give), a QR code
    of it (``qr``, an SVG document), whether the server listens on the network
    (``network``: false, and this page's own address, on this machine only) and
    whether it serves a class (``class``)."""
    urls = room.urls or [str(request.base_url)]
    qr = qr_svg(urls[0], f"QR code: {urls[0]}")
    return {"class": room.on, "network": bool(room.urls), "addresses": urls, "qr": qr}


def check_key(room: Classroom, key: object) -> None:
    """HTTPException 403 unless ``key`` is the teacher's."""
    if not room.is_teacher(key):
        where = "the teacher link printed when `digitnet serve --class` started"
        raise HTTPException(403, f"wrong or missing teacher key; use {where}")


async def key_of(request: Request) -> object:
    """The ``key`` of a JSON body (400 if the body is not JSON)."""
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "malformed JSON body") from None
    return body if isinstance(body, dict) else {}


@router.get("/teacher", include_in_schema=False, response_model=None)
async def teacher_page(room: Class, key: str = "") -> FileResponse:
    check_key(room, key)
    return FileResponse(STATIC / "teacher.html", headers={"cache-control": "no-store"})


@router.get("/api/teacher", responses=REFUSED)
async def teacher_view(state: State, room: Class, client: Client, key: str = "") -> dict:
    """The queue (the run training first), whether training is on, and the models
    trained here with their names."""
    check_key(room, key)
    models = [m for m in state.models.summaries() if m["id"] in state.models.owners]
    return {"enabled": state.trainer.enabled, "queue": state.trainer.queue(client),
            "models": models, "addresses": room.urls}  # fmt: skip


@router.post("/api/teacher/training", responses=REFUSED, openapi_extra=body_of("key", "enabled"))
async def switch_training(request: Request, state: State, room: Class) -> dict:
    """``{"key", "enabled": bool}``: take new runs or not (off also empties the queue;
    a run training goes on until it ends or is stopped)."""
    body = await key_of(request)
    check_key(room, body.get("key"))
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise HTTPException(422, f"enabled: expected true or false, got {json.dumps(enabled)[:40]}")
    await state.trainer.switch(enabled)
    return {"enabled": state.trainer.enabled}


@router.post("/api/teacher/clear", responses=REFUSED, openapi_extra=body_of("key"))
async def clear_models(request: Request, state: State, room: Class) -> dict:
    """``{"key"}``: forget every finished model trained here (their files, in a
    models folder, stay); the ids cleared."""
    check_key(room, (await key_of(request)).get("key"))
    busy = {job.id for job in state.trainer.jobs.values() if not job.finished}
    cleared = [i for i in list(state.models.owners) if i not in busy]
    for model_id in cleared:
        state.models.drop(model_id)
    return {"cleared": cleared}
