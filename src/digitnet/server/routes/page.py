"""The page: ``GET /`` (and ``HEAD /``) answers index.html, and ``/static`` the files
shipped in the package beside it (nothing from a CDN)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(str(resources.files("digitnet") / "static"))

router = APIRouter()


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html")


def static_files() -> StaticFiles:
    """The app for ``/static``: the package's static folder and nothing outside it."""
    return StaticFiles(directory=STATIC)
