"""The HTTP connection and its limits: ``bind`` a socket, ``serve`` an app on it with
uvicorn and ``GuardedProtocol``, and the loopback names a server on loopback answers to.

Against idle, slow and hostile clients: a connection must send its request line and
headers within ``HEADER_TIMEOUT`` seconds, and an idle keep-alive connection is
closed after ``KEEP_ALIVE_TIMEOUT``; up to ``MAX_CONNECTIONS`` are held, and when one
more arrives the connection idle longest makes room, so idle sockets cannot lock real
requests out; SIGTERM or Ctrl-C stop the server gracefully within
``SHUTDOWN_TIMEOUT`` seconds: no new connections, uploads still arriving are answered
503, requests already read get that long to finish.
"""

from __future__ import annotations

import asyncio
import re
import socket
from functools import partial

import h11
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import raw_error
from .memory import map_large_blocks
from .middleware import JSONErrors, StreamCount

#: Seconds a connection has to send its request line and headers.
HEADER_TIMEOUT = 10.0
#: Seconds an idle keep-alive connection is held open.
KEEP_ALIVE_TIMEOUT = 5
#: Seconds requests in progress get to finish once the server is told to stop.
SHUTDOWN_TIMEOUT = 5
#: Connections held at once.
MAX_CONNECTIONS = 1000
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
#: Most bytes of a refused body read and thrown away in a lingering close, and the
#: seconds it may last.
LINGER_BYTES, LINGER_TIMEOUT = 64 * 1024 * 1024, 5.0
#: Bytes of a request's line and headers kept to check its framing (h11 refuses more).
MAX_HEAD = 64 * 1024 + 4
_FIELD = re.compile(rb"^([!#$%&'*+.^_`|~0-9A-Za-z-]+):([^\r\n]*)", re.MULTILINE)
_LENGTH = re.compile(rb" ?[0-9]{1,19}")


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` resolves to is a loopback one."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return all(info[4][0].startswith("127.") or info[4][0] == "::1" for info in infos)


def loopback_names(host: str) -> frozenset[str]:
    """The Host names a server bound to the loopback address ``host`` answers to."""
    return LOOPBACK_NAMES | {host.strip("[]").lower()}


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted connections only then;
    # without it a keep-alive response waits ~40 ms on Nagle and delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class Lingering:
    """A connection's transport whose ``close`` lingers while the client is still
    sending a body (``GuardedProtocol.linger``); everything else is the transport's."""

    def __init__(self, transport, protocol: GuardedProtocol) -> None:
        self.inner, self.protocol = transport, protocol

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def close(self) -> None:
        if not self.protocol.linger():
            self.inner.close()

    def is_closing(self) -> bool:
        return self.protocol.lingering is not None or self.inner.is_closing()


def framing_problem(head: bytes) -> str | None:
    """What makes a request's framing unsafe to act on, from its raw request line and
    headers, or None: both Transfer-Encoding and Content-Length (a proxy in front may
    read the body differently: request smuggling), more than one Content-Length, or
    one that is not plain digits (" 5", "5, 5" and "+5" are refused, not guessed at)."""
    end = head.find(b"\r\n\r\n")
    fields = [(n.lower(), v) for n, v in _FIELD.findall(head if end < 0 else head[:end])]
    lengths = [value for name, value in fields if name == b"content-length"]
    if lengths and any(name == b"transfer-encoding" for name, _ in fields):
        return "both Transfer-Encoding and Content-Length"
    if len(lengths) > 1:
        return f"{len(lengths)} Content-Length headers"
    if lengths and not _LENGTH.fullmatch(lengths[0]):
        return f"Content-Length {lengths[0][:20].decode('latin-1').strip()!r} is not digits"
    return None


class GuardedProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 connection with the limits a server facing idle, slow and
    hostile clients needs (uvicorn's own concurrency limit counts idle connections,
    so 256 silent sockets would turn every real request into a 503):

    - the request line and headers must arrive within ``header_timeout`` seconds of
      the connection opening or of the previous response (408, or a plain close for
      a connection that sent nothing);
    - past ``max_connections``, the connection idle longest (no request in progress)
      is closed to make room; if every one is busy, the newcomer gets a 503;
    - on shutdown, a request whose body is still arriving gets a 503 at once;
    - the HTTP layer's own errors (malformed requests) are JSON;
    - Content-Length is read strictly, and a request with both Transfer-Encoding and
      Content-Length is refused (400) and its connection closed (RFC 9112 6.1);
    - a connection answered before its request's body has arrived (413, 408, 503)
      closes lingering: its write side is shut, and up to ``LINGER_BYTES`` more are
      read and thrown away for up to ``LINGER_TIMEOUT`` s, so that a client that
      writes its whole body before reading still reads the answer (closing a socket
      with unread data resets it, and the reset discards the answer on the way);
    - event streams (counted by ``middleware.EventStreams``) are not counted against
      ``max_connections``: they have a limit of their own."""

    def __init__(
        self,
        *args,
        header_timeout: float = HEADER_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        streams: StreamCount | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout, self.max_connections = header_timeout, max_connections
        self.streams = streams
        self.header_timer: asyncio.TimerHandle | None = None
        self.opened = self.loop.time()
        self.head = bytearray()  # the raw request line and headers, while they arrive
        self.lingering: asyncio.TimerHandle | None = None
        self.discarded, self.lost = 0, False

    def connection_made(self, transport) -> None:
        super().connection_made(Lingering(transport, self))
        self._await_headers()
        streams = 0 if self.streams is None else self.streams.open
        if len(self.connections) - streams > self.max_connections:
            self._make_room()

    def connection_lost(self, exc) -> None:
        self.lost = True
        self._headers_arrived()
        if self.lingering is not None:
            self.lingering.cancel()
        super().connection_lost(exc)

    def eof_received(self) -> bool | None:
        if self.lingering is not None:  # the client has sent all it will: close now
            self.close_now()
        return super().eof_received()

    def data_received(self, data: bytes) -> None:
        if self.lingering is not None:  # a refused body: read and thrown away
            self.discarded += len(data)
            if self.discarded > LINGER_BYTES:
                self.close_now()
            return
        waiting = self.conn.their_state is h11.IDLE
        if self.header_timer is None and waiting:
            self._await_headers()  # a new request begins on a kept-alive connection
        if waiting and len(self.head) < MAX_HEAD:
            self.head += data[: MAX_HEAD - len(self.head)]
        tasks = set(self.tasks)
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._headers_arrived()
            if waiting:
                head, self.head = bytes(self.head), bytearray()
                problem = framing_problem(head)
                if problem is not None:
                    self._refuse(problem, self.tasks - tasks)

    def _refuse(self, problem: str, started: set) -> None:
        """Answer a request whose framing is unsafe with a 400 before the app sees it,
        and close the connection (what follows on it cannot be trusted)."""
        for task in started:
            task.cancel()  # created for this request, not yet run
        if self.cycle is not None:
            self.cycle.disconnected = True
        self.transport.write(raw_error(400, f"malformed HTTP request ({problem})"))
        self.transport.close()

    def linger(self) -> bool:
        """Begin a lingering close if the client is still sending a body the server
        will not read; whether it did (else the caller closes at once)."""
        if self.lost or self.lingering is not None:
            return self.lingering is not None and not self.lost
        if self.conn.their_state is not h11.SEND_BODY:
            return False
        transport = self.transport.inner
        if transport.is_closing() or not transport.can_write_eof():
            return False
        transport.write_eof()  # the answer goes out, then FIN
        transport.resume_reading()
        self.lingering = self.loop.call_later(LINGER_TIMEOUT, self.close_now)
        return True

    def close_now(self) -> None:
        """Close the connection without lingering."""
        self.transport.inner.close()

    def _await_headers(self) -> None:
        self.header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _headers_arrived(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_too_slow(self) -> None:
        self.header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:  # it sent part of a request: say why it ends
            message = f"no complete request headers within {self.header_timeout:g} s"
            self.transport.write(raw_error(408, message))
        self.transport.close()

    def idle(self) -> bool:
        """No request in progress: waiting for one, or between requests."""
        return (self.cycle is None or self.cycle.response_complete) and (
            self.conn.their_state in (h11.IDLE, h11.DONE)
        )

    def _make_room(self) -> None:
        idle = [c for c in self.connections if c is not self and getattr(c, "idle", None)]
        idle = [c for c in idle if c.idle() and not c.transport.is_closing()]
        if idle:
            min(idle, key=lambda c: c.opened).transport.close()
        else:
            self.transport.write(
                raw_error(503, f"all {self.max_connections} connections are busy; try again")
            )
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self.transport.write(raw_error(400, f"malformed HTTP request ({msg.rstrip('.')})"))
        self.transport.close()

    def shutdown(self) -> None:
        if self.cycle is not None and self.conn.their_state is h11.SEND_BODY:
            self.transport.write(raw_error(503, "the server is stopping; send it again later"))
            self.close_now()  # no lingering: the server is going
            return
        super().shutdown()


def _raise_open_files_limit(connections: int) -> int:
    """Allow this process enough open files for ``connections`` sockets (and the
    files it reads); the number of connections it can then hold."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = connections + 256
        if soft != resource.RLIM_INFINITY and soft < wanted:
            new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
    except (ImportError, ValueError, OSError):
        return connections
    return connections if soft == resource.RLIM_INFINITY else min(connections, soft - 256)


def serve(
    app: FastAPI,
    sock: socket.socket,
    *,
    header_timeout: float = HEADER_TIMEOUT,
    keep_alive: int = KEEP_ALIVE_TIMEOUT,
    shutdown_timeout: int = SHUTDOWN_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
) -> None:
    """Run the app on an already bound socket until Ctrl-C or SIGTERM, with the
    limits in this module's docstring."""
    import uvicorn

    streams = getattr(app.state, "streams", None)
    extra = 0 if streams is None else streams.limit  # event streams have their own room
    protocol = partial(
        GuardedProtocol,
        header_timeout=header_timeout,
        max_connections=max(1, _raise_open_files_limit(max_connections + extra) - extra),
        streams=streams,
    )
    config = uvicorn.Config(
        JSONErrors(app),
        http=protocol,
        lifespan="on",
        log_level="warning",
        timeout_keep_alive=keep_alive,
        timeout_graceful_shutdown=shutdown_timeout,
        limit_concurrency=None,  # GuardedProtocol limits connections; see its docstring
        backlog=2048,
        h11_max_incomplete_event_size=64 * 1024,
    )
    map_large_blocks()
    stopping = getattr(app.state, "stopping", None)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            if stopping is not None:
                stopping.set()  # explorer work stops at its next checkpoint (``work``)
            await super().shutdown(sockets)

    Server(config).run(sockets=[sock])
