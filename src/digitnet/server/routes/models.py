"""The models the page can use (``digitnet.server.models``): ``GET /api/models`` lists them,
the served one first, then the caller's own (``"mine": true``); ``GET
/api/models/{id}/file`` downloads one as a model file."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from ...files.modelfile import to_bytes
from ..classroom import Client
from ..models import UnknownModel
from ..schemas import ErrorResponse, ModelSummary
from ..state import State

router = APIRouter()


@router.get("/api/models", response_model=list[ModelSummary])
async def list_models(state: State, client: Client) -> list[dict]:
    """The models the page can use: the served one first, then those the caller
    trained, then the others trained here; each with its name."""
    return state.models.summaries(client)


@router.get(
    "/api/models/{model_id}/file",
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "a model file"},
        404: {"model": ErrorResponse},
        409: {"model": ErrorResponse},
    },
)
async def model_file(model_id: str, state: State) -> Response:
    """One model as a safetensors model file (``digitnet.files.modelfile``)."""
    try:
        chosen = state.models.lookup(model_id)
    except UnknownModel as e:
        raise HTTPException(404, str(e)) from None
    if model_id not in state.models.ids():
        raise HTTPException(409, f"model {model_id!r} is still training")
    data = await asyncio.to_thread(to_bytes, chosen.network, chosen.info)
    disposition = f'attachment; filename="{model_id}.safetensors"'
    return Response(
        data, media_type="application/octet-stream", headers={"content-disposition": disposition}
    )
