"""The HTTPS sync endpoint (PROTOCOL.md section 2): Starlette on uvicorn, in its own thread.

The endpoint only carries bytes: every check and every effect is
``LinkExchange``'s. Database work runs in the thread pool so a slow disk never
stalls the event loop that holds the long polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flowlink.errors import FlowlinkError
from flowlink.link.checks import TOO_LARGE, CheckFailure, check_size, error_body
from flowlink.link.exchange import LinkExchange
from flowlink.link.signing import HEADER_NAME
from flowlink.link.strict_json import MAX_BODY_BYTES
from flowlink.workspace.store import describe_error

log = logging.getLogger(__name__)

POLL_FALLBACK_SECONDS = 0.5  # catches messages queued by another process

# Bounds on what a slow or idle client can hold (uvicorn has none of its own for these):
# a request head must arrive whole within HEAD_TIMEOUT_SECONDS of the connection (or of its
# first byte after a response); a body gets BODY_GRACE_SECONDS plus one second per
# BODY_MIN_RATE bytes received; at most MAX_CONNECTIONS are open at once, handshakes included
# (asyncio gives each TLS connection a 256 KiB buffer before its handshake even starts).
HEAD_TIMEOUT_SECONDS = 10.0
BODY_GRACE_SECONDS = 10.0
BODY_MIN_RATE = 500
MAX_CONNECTIONS = 128


class OutboxHub:
    """Wakes long polls when their link's outbox gets a message (from any thread)."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[str, asyncio.Event] = {}
        self.closing = False

    def event(self, link: str) -> asyncio.Event:
        ev = self._events.get(link)
        if ev is None or ev.is_set():
            ev = asyncio.Event()
            self._events[link] = ev
        return ev

    def notify(self, links: Iterable[str]) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        for link in list(links):
            loop.call_soon_threadsafe(self._set, link)

    def _set(self, link: str) -> None:
        ev = self._events.pop(link, None)
        if ev is not None:
            ev.set()

    def wake_all(self) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._set_all)

    def _set_all(self) -> None:
        for ev in self._events.values():
            ev.set()
        self._events.clear()


class _AnyName(Convertor[str]):
    """Any text, '' and '/' and newlines included ("a%2Fb", "a%0A", "//"): every POST to
    .../sync_config/<name>/sync reaches the checks and is answered in the terms of
    PROTOCOL.md section 4 (here 404 unknown_link), never with Starlette's plain-text 404."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("flowlink_any", _AnyName())


def _error(failure: CheckFailure) -> Response:
    return Response(error_body(failure), status_code=failure.status, media_type="application/json")


def build_app(exchange: LinkExchange, hub: OutboxHub) -> Starlette:
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def sync(request: Request) -> Response:
        name = request.path_params["name"]
        length = request.headers.get("content-length")
        try:
            if length is not None:
                if not length.isdigit():
                    return JSONResponse({"error": "bad_envelope", "detail": "Content-Length is not a number."},
                                        status_code=400)
                check_size(int(length))
            body = await _read_body(request)
        except CheckFailure as failure:
            return _error(failure)
        except ClientDisconnect:
            return Response(status_code=400)
        except TimeoutError:
            return JSONResponse(
                {"error": "timeout", "detail": f"The body did not arrive in time (it gets "
                 f"{BODY_GRACE_SECONDS:g} s plus a second per {BODY_MIN_RATE} bytes)."},
                status_code=408, headers={"Connection": "close"})
        signature = request.headers.get(HEADER_NAME)
        try:
            envelope = await run_in_threadpool(exchange.check_request, name, body, signature)
            await run_in_threadpool(exchange.apply, name, envelope, inbound=True)
            if envelope.wait > 0 and not hub.closing:
                await _hold(exchange, hub, name, envelope.ack, envelope.wait)
            config = exchange.ws.links.get(name)
            payload, reply_signature = await run_in_threadpool(exchange.build_response, config, envelope)
        except CheckFailure as failure:
            return _error(failure)
        except FlowlinkError as exc:  # e.g. the keyring is locked: say so, keep serving
            log.warning("link %s: %s", name, exc)
            return JSONResponse({"error": "unavailable", "detail": str(exc)}, status_code=503)
        except sqlite3.Error as exc:  # read-only, disk full: nothing was applied; say so
            log.warning("link %s: %s", name, describe_error(exc, exchange.ws.store.path))
            return JSONResponse({"error": "unavailable", "detail": describe_error(exc)}, status_code=503)
        return Response(payload, media_type="application/json", headers={HEADER_NAME: reply_signature})

    return Starlette(routes=[
        Route("/api/latest/health", health, methods=["GET"]),
        Route("/api/latest/sync_config/{name:flowlink_any}/sync", sync, methods=["POST"]),
    ])


async def _hold(exchange: LinkExchange, hub: OutboxHub, name: str, above: int, wait: int) -> None:
    """Long poll: return as soon as there is something for the peer, or after ``wait`` s.

    While this side's own pusher delivers to the peer successfully, new messages do
    not end the poll: they are on their way already, and sending each message twice
    (push, and again in the poll's answer) cost a signed round trip per message. The
    poll then answers at its deadline with whatever is still unacknowledged; the
    moment the direct path fails, polls carry the messages again (PROTOCOL.md §1).
    """
    deadline = time.monotonic() + wait
    while not hub.closing:
        event = hub.event(name)  # taken before the check, so no notify is missed
        if not exchange.pushing.get(name) and await run_in_threadpool(exchange.has_pending, name, above):
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            await asyncio.wait_for(event.wait(), min(remaining, POLL_FALLBACK_SECONDS))
        except TimeoutError:
            pass


async def _read_body(request: Request) -> bytes:
    """The whole body, checked for size as it streams in; TimeoutError if it trickles."""
    started = asyncio.get_running_loop().time()
    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(BODY_GRACE_SECONDS) as budget:
        async for chunk in request.stream():
            size += len(chunk)
            check_size(size)
            chunks.append(chunk)
            budget.reschedule(started + BODY_GRACE_SECONDS + size / BODY_MIN_RATE)
    return b"".join(chunks)


class _Slot:
    __slots__ = ("sock", "since", "busy", "evicted", "close")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.since = time.monotonic()
        self.busy = False  # a request is being served: never evicted
        self.evicted = False
        self.close: Callable[[], None] | None = None  # the transport's abort, once TLS is up


class _Connections:
    """The endpoint's open connections, at most ``limit``, handshakes included.

    At the limit a new connection makes room by closing the one that has waited longest
    for a request head (a long poll or a body being read is never chosen). If every one is
    busy, or ``limit // 4`` evicted ones are still closing (asyncio accepts a whole backlog
    in one go), the new connection is closed at once, before TLS allocates anything for it.

    A TLS handshake that fails (as an evicted one does) leaves asyncio's SSLProtocol, with
    its 256 KiB buffer, in a traceback reference cycle that only a full garbage collection
    frees; so one runs after every ``limit // 4`` closed connections, and a flood of
    connections leaves bounded garbage too.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots: dict[int, _Slot] = {}
        self._live = 0
        self._closing = 0  # evicted, not closed yet
        self._closed = 0
        self._lock = threading.Lock()

    def admit(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._live >= self.limit:
                idle = [s for s in self._slots.values() if not s.busy and not s.evicted]
                if not idle or self._closing >= max(1, self.limit // 4):
                    return False
                victim = min(idle, key=lambda s: s.since)
                victim.evicted = True
                self._live -= 1
                self._closing += 1
                self._evict(victim)
            self._slots[sock.fileno()] = _Slot(sock)
            self._live += 1
        return True

    @staticmethod
    def _evict(slot: _Slot) -> None:
        if slot.close is not None:
            slot.close()
        else:  # still in the TLS handshake: end it; asyncio then closes the socket
            with contextlib.suppress(OSError):
                slot.sock.shutdown(socket.SHUT_RDWR)

    def forget(self, sock: socket.socket) -> None:
        with self._lock:
            slot = self._slots.pop(sock.fileno(), None)
            if slot is not None and slot.sock is sock:
                if slot.evicted:
                    self._closing -= 1
                else:
                    self._live -= 1
            elif slot is not None:
                self._slots[sock.fileno()] = slot  # not ours (fd reused): put it back
                return
            if slot is None:
                return  # refused before TLS: nothing was allocated for it
            self._closed += 1
            collect = self._closed >= max(1, self.limit // 4)
            if collect:
                self._closed = 0
        if collect:
            # Soon, not now: the frames of the cycle are still running while this closes.
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_soon(gc.collect)

    def slot(self, fd: int) -> _Slot | None:
        with self._lock:
            return self._slots.get(fd)

    def mark(self, slot: _Slot, busy: bool) -> None:
        with self._lock:
            if slot.busy and not busy:
                slot.since = time.monotonic()
            slot.busy = busy

    @property
    def open(self) -> int:
        with self._lock:
            return self._live


class _Accepted(socket.socket):
    """An accepted connection that leaves ``_Connections`` when it is closed."""

    connections: _Connections | None = None

    def close(self) -> None:
        if self.connections is not None and self.fileno() >= 0:
            self.connections.forget(self)
        super().close()


class _Listener(socket.socket):
    """The listening socket; asyncio calls its ``accept`` for every new connection."""

    connections: _Connections | None = None

    def accept(self) -> tuple[socket.socket, object]:
        while True:  # BlockingIOError from _accept ends the loop when no one waits
            fd, addr = self._accept()  # type: ignore[attr-defined]
            conn = _Accepted(self.family, self.type, self.proto, fileno=fd)
            if socket.getdefaulttimeout() is None and self.gettimeout():
                conn.setblocking(True)
            if self.connections is None:
                return conn, addr
            conn.connections = self.connections
            if self.connections.admit(conn):
                return conn, addr
            conn.close()


def _guarded_protocol(connections: _Connections) -> type:
    """uvicorn's h11 protocol with a deadline for request heads and slot bookkeeping."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._head_timer: asyncio.TimerHandle | None = None
            sock = transport.get_extra_info("socket")
            self._slot = connections.slot(sock.fileno()) if sock is not None else None
            if self._slot is not None:
                # abort, not close: a TLS close waits up to 30 s for the client's close_notify
                self._slot.close = transport.abort
            super().connection_made(transport)
            self._track(arm=True)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._track(arm=True)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._track(arm=False)  # uvicorn's keep-alive timeout covers the idle time

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def shutdown(self) -> None:
            if self.cycle is None or self.cycle.response_complete:
                # Idle: a TLS close would wait for the client's close_notify, which an idle
                # keep-alive client never sends, and hold the stop for the whole grace time.
                self.transport.abort()
            else:
                super().shutdown()

        def _track(self, *, arm: bool) -> None:
            serving = self.cycle is not None and not self.cycle.response_complete
            if self._slot is not None:
                connections.mark(self._slot, serving)
            if serving:
                self._disarm()
            elif arm and self._head_timer is None and not self.transport.is_closing():
                self._head_timer = self.loop.call_later(HEAD_TIMEOUT_SECONDS, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.abort()

    return GuardedH11


class LinkEndpoint:
    """uvicorn serving ``build_app`` over TLS on its own thread."""

    def __init__(self, exchange: LinkExchange, host: str, port: int, certfile: Path,
                 keyfile: Path) -> None:
        import uvicorn

        self.exchange = exchange
        self.hub = OutboxHub()
        exchange.ws.outbox_listeners.append(self.hub.notify)
        self.connections = _Connections(MAX_CONNECTIONS)
        self.sock = _listen(host, port, self.connections)
        self.host, self.port = self.sock.getsockname()[:2]
        self.config = uvicorn.Config(
            build_app(exchange, self.hub),
            http=_guarded_protocol(self.connections),
            ssl_certfile=str(certfile),
            ssl_keyfile=str(keyfile),
            ssl_version=ssl.PROTOCOL_TLS_SERVER,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=5,
            limit_concurrency=2000,
            h11_max_incomplete_event_size=64 * 1024,
            server_header=False,
            date_header=False,
        )
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self._run, name="flowlink-endpoint", daemon=True)
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported through .error
            self.error = exc
            log.exception("the HTTPS endpoint stopped")

    async def _serve(self) -> None:
        self.hub.loop = asyncio.get_running_loop()
        await self.server.serve(sockets=[self.sock])

    def start(self, timeout: float = 15.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self.error is not None or not self.thread.is_alive():
                raise FlowlinkError(f"the HTTPS endpoint could not start: {self.error}")
            if time.monotonic() > deadline:
                raise FlowlinkError("the HTTPS endpoint did not start within 15 s")
            time.sleep(0.01)

    def stop(self) -> None:
        self.hub.closing = True
        self.hub.wake_all()
        self.server.should_exit = True
        self.thread.join(timeout=15)
        try:
            self.exchange.ws.outbox_listeners.remove(self.hub.notify)
        except ValueError:
            pass


def _listen(host: str, port: int, connections: _Connections | None = None) -> socket.socket:
    """A listening TCP socket whose connections get TCP_NODELAY (and count in ``connections``).

    asyncio sets TCP_NODELAY only on sockets whose ``proto`` is IPPROTO_TCP, and
    ``socket.create_server`` makes them with proto 0: every response would then
    wait ~40 ms for the peer's delayed ACK (Nagle).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = _Listener(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.connections = connections
    try:
        if hasattr(socket, "SO_REUSEADDR") and not host.startswith("\\"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(512)
    except BaseException:
        sock.close()
        raise
    return sock


__all__ = ["LinkEndpoint", "OutboxHub", "build_app", "MAX_BODY_BYTES", "TOO_LARGE"]
