"""A class on one laptop: who each browser is, where students can reach the server,
and the teacher's key.

- Each browser is a client with an id of its own: ``ClientCookie`` gives every
  response to a request without one an HttpOnly, ``SameSite=Strict`` cookie
  ``digitnet_client`` (random, 16 base64url characters), and the endpoints read it
  with a parameter typed ``Client``.  A script keeps the cookie as a browser does;
  without it, every request is a stranger's.
- ``lan_addresses`` are the machine's IPv4 addresses other machines can use (never
  0.0.0.0 or loopback), ``class_urls`` the page's addresses on them and on the
  machine's name, ``class_hosts`` the Host names a server in class mode answers,
  ``qr_text`` and ``qr_svg`` a QR code of an address for a terminal and a page.
- ``Classroom`` holds the teacher's key (printed at start, in the teacher link) and
  the addresses; ``is_teacher`` compares a key in constant time.
"""

from __future__ import annotations

import hmac
import io
import re
import secrets
import socket
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

#: The cookie that names a browser.
COOKIE = "digitnet_client"
#: What a client id looks like (``secrets.token_urlsafe(12)``).
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{16}")
#: Where the client id is kept in an ASGI scope for the endpoints.
SCOPE_KEY = "digitnet.client"
#: Addresses that reach no one else: loopback, "this host", link-local.
LOCAL_ONLY = ("127.", "0.", "169.254.")


def new_client_id() -> str:
    return secrets.token_urlsafe(12)


def cookie_client(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The client id in a request's Cookie headers, or None (absent or malformed)."""
    for name, value in headers:
        if name != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            key, _, text = part.strip().partition("=")
            if key == COOKIE and CLIENT_ID.fullmatch(text):
                return text
    return None


class ClientCookie:
    """ASGI middleware: the request's client id in ``scope[SCOPE_KEY]``; a request
    without one gets a new id, sent back as an HttpOnly ``SameSite=Strict`` cookie on
    its response (the page's first load gives the browser its id).  A request from
    another site (``Sec-Fetch-Site: cross-site``: a link followed from a chat) comes
    without the Strict cookie even when the browser has one: it gets an id for itself
    alone and no cookie, so the browser keeps its own for the page's next requests."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        client = cookie_client(scope["headers"])
        if client is not None:
            scope[SCOPE_KEY] = client
            return await self.app(scope, receive, send)
        scope[SCOPE_KEY] = client = new_client_id()
        if (b"sec-fetch-site", b"cross-site") in scope["headers"]:
            return await self.app(scope, receive, send)
        cookie = f"{COOKIE}={client}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000"

        async def with_cookie(message):
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_cookie)


async def client_of(request: Request) -> str:
    """The request's client id (``ClientCookie``); a new one if the app runs without it."""
    return request.scope.get(SCOPE_KEY) or new_client_id()


#: An endpoint parameter typed ``Client`` receives the request's client id.
Client = Annotated[str, Depends(client_of)]


def lan_addresses() -> list[str]:
    """The machine's IPv4 addresses others on its networks can reach, the one its
    default route leaves from first; no loopback or link-local address."""
    found: list[str] = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.254.254.254", 1))  # no packet is sent: it only picks a route
        found.append(probe.getsockname()[0])
    except OSError:
        pass
    finally:
        probe.close()
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        infos = []
    found += [info[4][0] for info in infos]
    return [a for i, a in enumerate(found) if a not in found[:i] and not a.startswith(LOCAL_ONLY)]


def class_urls(port: int, addresses: list[str] | None = None) -> list[str]:
    """The page's addresses for students: http://ADDRESS:PORT/ for each LAN address,
    then the machine's name (which not every network resolves)."""
    addresses = lan_addresses() if addresses is None else addresses
    name = socket.gethostname().lower()
    hosts = [*addresses, *([name] if name and name not in addresses else [])]
    return [f"http://{host}:{port}/" for host in hosts]


def class_hosts(addresses: list[str] | None = None) -> frozenset[str]:
    """The Host names a server in class mode answers: loopback, the machine's names
    (short, fully qualified, and ``.local`` for mDNS) and its LAN addresses."""
    addresses = lan_addresses() if addresses is None else addresses
    name = socket.gethostname().lower()
    names = {"localhost", "127.0.0.1", "::1", name, f"{name}.local", socket.getfqdn().lower()}
    return frozenset(n for n in names | set(addresses) if n)


def qr_code(text: str):
    """``text`` as a QR code (``segno``, error correction M, the smallest version)."""
    import segno

    return segno.make(text, error="m", micro=False)


def qr_text(text: str) -> str:
    """A QR code of ``text`` for a terminal: two rows of modules per line in half
    blocks, light modules drawn (for a dark terminal), in the standard's quiet zone of
    4 modules."""
    out = io.StringIO()
    qr_code(text).terminal(out=out, compact=True, border=4)
    return out.getvalue()


def qr_svg(text: str, title: str) -> str:
    """A QR code of ``text`` as an SVG document (dark on light, 6 px modules)."""
    out = io.BytesIO()
    qr_code(text).save(out, kind="svg", scale=6, border=4, title=title, xmldecl=False,
                       svgns=True, dark="#000", light="#fff")  # fmt: skip
    return out.getvalue().decode()


@dataclass
class Classroom:
    """A server's class settings: whether it serves a class (``serve --class``: the
    teacher's view and ``key``), and the page's addresses others can open (``urls``;
    none on loopback without a class)."""

    on: bool = False
    urls: list[str] = field(default_factory=list)
    key: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    def is_teacher(self, key: object) -> bool:
        """Whether ``key`` is the teacher's (constant time; only in class mode)."""
        return self.on and isinstance(key, str) and hmac.compare_digest(key, self.key)


async def classroom_of(request: Request) -> Classroom:
    """The app's ``Classroom`` (``create_app``'s ``classroom``)."""
    return request.app.state.classroom


#: An endpoint parameter typed ``Class`` receives the app's ``Classroom``.
Class = Annotated[Classroom, Depends(classroom_of)]
