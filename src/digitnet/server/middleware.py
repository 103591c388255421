"""ASGI middleware around the app: ``BodyLimit`` (size, arrival time and nesting of
request bodies), ``HostCheck`` (the Host header, against DNS rebinding), ``SameOrigin``
(no state-changing request from another site), ``HeadAsGet`` (HEAD answered as GET
without its body) and ``JSONErrors`` (JSON even when the app fails before answering);
``client_key``, who a request comes from."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Collection
from urllib.parse import urlsplit

import numpy as np

from .classroom import cookie_client
from .errors import error

#: Largest request body accepted, in bytes.
MAX_BODY_BYTES = 2 * 1024 * 1024
#: Seconds a request's body has to arrive, once its headers have.
BODY_TIMEOUT = 20.0
#: Deepest nesting of arrays and objects a JSON body may have (the API's deepest is 3,
#: a knock-out list); checked before the body is parsed, so no parser recurses deeper.
MAX_NESTING = 32
#: Methods that change the server's state: refused from another origin.
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))


def nesting(body: bytes) -> int:
    """The deepest nesting of ``[`` and ``{`` in a JSON text, strings left out, found
    by one scan (no parsing): depth = max over the text of (opened - closed)."""
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def client_key(scope) -> str:
    """Who a request comes from: its address, and its client id (the cookie
    ``classroom.ClientCookie`` gives each browser) when it sends one, so that people
    behind one address are told apart, and one person is one client whatever
    connection they use."""
    host = (scope.get("client") or ("?", 0))[0]
    client = cookie_client(scope.get("headers") or ())
    return host if client is None else f"{host} {client}"


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
        depth = nesting(bytes(body)) if body else 0
        if depth > MAX_NESTING:
            deep = error(400, f"JSON nested {depth:,} deep: at most {MAX_NESTING} levels")
            return await deep(scope, receive, send)
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


#: Event streams (``GET /api/train/{id}/events``) held at once, and per client; they
#: are counted apart from ``protocol.MAX_CONNECTIONS``.
MAX_STREAMS, STREAMS_PER_CLIENT = 256, 4
_EVENTS = re.compile(r"/api/train/[^/]+/events")


class StreamCount:
    """The event streams open: ``open`` in all, ``by_client`` per ``client_key``; at
    most ``limit`` and ``per_client``."""

    def __init__(self, limit: int = MAX_STREAMS, per_client: int = STREAMS_PER_CLIENT):
        self.limit, self.per_client = limit, per_client
        self.open, self.by_client = 0, {}


class EventStreams:
    """ASGI middleware: counts the event streams open in ``count``, at most
    ``count.per_client`` for one client (``client_key``; 429 past that) and
    ``count.limit`` in all (503), so that streams, which stay open for a whole run,
    never take the room of other requests (the HTTP layer leaves ``count.open`` out of
    its connection count)."""

    def __init__(self, app, count: StreamCount) -> None:
        self.app, self.count = app, count

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not _EVENTS.fullmatch(scope["path"]):
            return await self.app(scope, receive, send)
        count, who = self.count, client_key(scope)
        mine = count.by_client.get(who, 0)
        if mine >= count.per_client:
            message = f"at most {count.per_client} event streams per client; close one first"
            return await error(429, message)(scope, receive, send)
        if count.open >= count.limit:
            message = f"all {count.limit} event streams are taken; try again later"
            return await error(503, message)(scope, receive, send)
        count.open, count.by_client[who] = count.open + 1, mine + 1
        try:
            await self.app(scope, receive, send)
        finally:
            count.open -= 1
            count.by_client[who] -= 1
            if not count.by_client[who]:
                del count.by_client[who]


def _origin_host(origin: str) -> str | None:
    """The host[:port] of an Origin header, without the scheme's default port; None
    for ``null`` or anything that is not an http(s) origin."""
    parts = urlsplit(origin.strip().lower())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    default = ":80" if parts.scheme == "http" else ":443"
    return parts.netloc.removesuffix(default)


def foreign_origin(headers: dict[bytes, bytes]) -> str | None:
    """Why a request comes from another origin, or None when it may be the page's own
    (or no browser's: the CLI and curl send neither header).  Same origin means the
    Origin's host and port are the request's Host, which is what a page loaded from
    this server sends whatever name the server is reached by."""
    site = headers.get(b"sec-fetch-site", b"").decode("latin-1").strip().lower()
    if site in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site: {site}"
    origin = headers.get(b"origin")
    if origin is None:
        return None
    text = origin.decode("latin-1")
    host = headers.get(b"host", b"").decode("latin-1").strip().lower().removesuffix(":80")
    if _origin_host(text) != host:
        return f"Origin {text[:60]!r} is not this server ({host[:60] or 'no Host'})"
    return None


def is_json(content_type: bytes | None) -> bool:
    """Whether a Content-Type is JSON: application/json or application/*+json."""
    kind = (content_type or b"").split(b";")[0].strip().lower()
    return kind == b"application/json" or (
        kind.startswith(b"application/") and kind.endswith(b"+json")
    )


class SameOrigin:
    """ASGI middleware: a request that changes state (``WRITES``) is refused with 403
    when a browser says it comes from another origin (``Origin`` not this server, or
    ``Sec-Fetch-Site: cross-site``), and with 415 when it has a body that is not
    declared JSON: a page elsewhere can send a "simple" cross-site POST (text/plain,
    no preflight), never one with a JSON type, and every body this API reads is JSON.
    The page, the widget and the CLI or curl (no Origin) are served as before."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in WRITES:
            headers = dict(scope["headers"])
            why = foreign_origin(headers)
            if why is not None:
                refuse = error(
                    403, f"{scope['method']} from another site refused: {why}", close=True
                )
                return await refuse(scope, receive, send)
            has_body = headers.get(b"content-length", b"0") != b"0" or (
                b"transfer-encoding" in headers
            )
            if has_body and not is_json(headers.get(b"content-type")):
                kind = headers.get(b"content-type", b"none").decode("latin-1")[:60]
                refuse = error(
                    415, f"expected Content-Type: application/json, got {kind!r}", close=True
                )
                return await refuse(scope, receive, send)
        await self.app(scope, receive, send)


class HeadAsGet:
    """ASGI middleware: HEAD on any GET route answers as GET (the same status and
    headers, Content-Length included) without the body."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)
        done = False

        async def headers_only(message):
            nonlocal done
            if message["type"] == "http.response.body":
                if done:
                    return
                done, message = True, {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class JSONErrors:
    """ASGI wrapper: if the app fails before it has answered, the client still gets
    JSON (500, or 503 when the server is stopping), not the HTTP layer's plain text.
    A request cancelled by the server's stop ends there, answered, not as an error."""

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
                if stopping:  # answered: the server cancelled it at its deadline; no
                    return  # traceback in the log for a stop that went as planned
            raise
