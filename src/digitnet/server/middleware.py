"""ASGI middleware around the app: ``BodyLimit`` (size and arrival time of request
bodies), ``HostCheck`` (the Host header, against DNS rebinding) and ``JSONErrors``
(JSON even when the app fails before answering)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from .errors import error

#: Largest request body accepted, in bytes.
MAX_BODY_BYTES = 2 * 1024 * 1024
#: Seconds a request's body has to arrive, once its headers have.
BODY_TIMEOUT = 20.0


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with a 413, by
    the Content-Length header when there is one, else while the body streams in;
    a body that has not fully arrived ``timeout`` seconds after its headers gets a
    408 and the connection is closed (a client that stops sending cannot hold a
    request open)."""

    def __init__(self, app, limit: int, timeout: float = BODY_TIMEOUT) -> None:
        self.app, self.limit, self.timeout = app, limit, timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_big = error(413, f"request body over the {self.limit:,}-byte limit", close=True)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and not length.isdigit():
            return await error(400, "bad Content-Length header", close=True)(scope, receive, send)
        if length is not None and int(length) > self.limit:
            return await too_big(scope, receive, send)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        body, more = bytearray(), True
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                slow = error(
                    408, f"the request body did not arrive within {self.timeout:g} s", close=True
                )
                return await slow(scope, receive, send)
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await too_big(scope, receive, send)
        await self.app(scope, replay(bytes(body), receive), send)


def replay(body: bytes, receive):
    """An ASGI ``receive`` that gives the whole ``body`` once, then defers to ``receive``
    (for the disconnect that may follow)."""
    replayed = False

    async def receive_again():
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again


def host_name(header: bytes) -> str:
    """The name in a Host header, without port or brackets: b"[::1]:8000" -> "::1"."""
    text = header.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    name = text.rsplit(":", 1)[0] if text.count(":") == 1 else text
    return name.rstrip(".")


class HostCheck:
    """ASGI middleware: answer only requests whose Host header names one of
    ``hosts`` (421 otherwise).  On loopback this stops DNS rebinding: a web page on
    evil.example that makes its name resolve to 127.0.0.1 still sends
    ``Host: evil.example``.  Requests without a Host (HTTP/1.0) come from no browser
    and pass."""

    def __init__(self, app, hosts: Collection[str]) -> None:
        self.app, self.hosts = app, frozenset(h.lower() for h in hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            header = dict(scope["headers"]).get(b"host")
            if header is not None and host_name(header) not in self.hosts:
                shown = header[:60].decode("latin-1")
                names = ", ".join(sorted(self.hosts))
                refuse = error(
                    421, f"Host {shown!r} is not served here; use one of: {names}", close=True
                )
                return await refuse(scope, receive, send)
        await self.app(scope, receive, send)


class JSONErrors:
    """ASGI wrapper: if the app fails before it has answered, the client still gets
    JSON (500, or 503 when the server is stopping), not the HTTP layer's plain text."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        started = False

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except BaseException as e:
            if scope["type"] == "http" and not started:
                stopping = isinstance(e, asyncio.CancelledError)
                status, text = (
                    (503, "the server is stopping") if stopping else (500, "internal error")
                )
                try:
                    await error(status, text, close=True)(scope, receive, send)
                except Exception:
                    pass
            raise
