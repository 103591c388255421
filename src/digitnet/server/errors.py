"""Every error is JSON, ``{"error": "..."}``, whoever sends it: ``error`` makes one for
the app and the middleware, ``raw_error`` writes one for the HTTP layer, and
``add_handlers`` installs the app's handlers.

The HTTP status of a failure is chosen by the exception's type, never by its
message: ``STATUS`` maps each kind the endpoints let through to its status, and a
request check refuses with ``HTTPException(status, message)``.
"""

from __future__ import annotations

import json
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..inspect.explore import NudgeFailed, Stopped
from ..vision.preprocess import PictureError, PictureTooLarge
from .pictures import TooManyPictures

#: The status each kind of failure gets; the most specific type listed wins.
STATUS: dict[type[Exception], int] = {
    PictureTooLarge: 413,  # over the pixel limit, refused before decoding
    PictureError: 422,  # not a PNG, unreadable, or no digit in it
    NudgeFailed: 422,  # no nudge within the budget reached the target
    TooManyPictures: 503,  # the picture pool and its queue are full
    Stopped: 503,  # work given up: the server is stopping (or the client left)
}

_REASONS = {400: "Bad Request", 408: "Request Timeout", 503: "Service Unavailable"}


#: Longest error message sent, and longest run of characters without a space in it:
#: a bad value echoed back (a 401-digit number, a 1.5 MB model id) is cut to that
#: prefix and "…" (the longest word of a message, a model id, is 64).
MAX_MESSAGE, MAX_ECHO = 500, 64
_LONG_WORD = re.compile(rf"\S{{{MAX_ECHO + 1},}}")


def error(status: int, message: str, *, close: bool = False) -> JSONResponse:
    """``{"error": message}`` with ``status``, each word cut to ``MAX_ECHO`` characters
    and the whole to ``MAX_MESSAGE``; ``close`` ends the connection after it."""
    headers = {"connection": "close"} if close else None
    message = _LONG_WORD.sub(lambda m: m.group()[:MAX_ECHO] + "…", message)
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
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


def status_of(exc: BaseException) -> int:
    """The status ``STATUS`` gives ``exc``'s type or its nearest listed base; 500 for
    a type it does not list."""
    return next((STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS), 500)


async def known_failure(request: Request, exc: Exception) -> JSONResponse:
    """A failure of a kind in ``STATUS``: its status, its message."""
    return error(status_of(exc), str(exc))


async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A request its model refuses: 400 for JSON that does not parse, else 422 naming
    the first problem (``field: message``) and how many more there are."""
    problems = exc.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        return error(400, "malformed JSON body")
    first = problems[0] if problems else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    message = first.get("msg", "invalid request")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return error(422, f"{where}: {message}{more}" if where else message + more)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """A refusal (``HTTPException``, or the router's 404 and 405) as JSON; a 405 lists
    every method of the path, not only the first route's."""
    response = error(exc.status_code, str(exc.detail))
    response.headers.update(exc.headers or {})  # e.g. Allow on a 405
    if exc.status_code == 405:
        path = request.url.path
        methods = set()
        for route in request.app.routes:
            pattern = getattr(route, "path_regex", None)
            if pattern is not None and pattern.match(path):  # a mount (static) serves GET
                methods |= set(getattr(route, "methods", None) or {"GET"})
        if "GET" in methods:
            methods.add("HEAD")  # answered as GET without the body (``HeadAsGet``)
        response.headers["allow"] = ", ".join(sorted(methods))
    return response


async def failure(request: Request, exc: Exception) -> JSONResponse:
    """Anything else: a 500 that names the exception's type, not its message."""
    return error(500, f"internal error ({type(exc).__name__})")


def add_handlers(app: FastAPI) -> None:
    """Install the handlers above, so that every answer of ``app`` is JSON."""
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    for kind in STATUS:
        app.add_exception_handler(kind, known_failure)
    app.add_exception_handler(Exception, failure)
