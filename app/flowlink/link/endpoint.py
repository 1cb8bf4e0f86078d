"""The HTTPS sync endpoint (PROTOCOL.md section 2): Starlette on uvicorn, in its own thread.

The endpoint only carries bytes: every check and every effect is
``LinkExchange``'s. Database work runs in the thread pool so a slow disk never
stalls the event loop that holds the long polls.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flowlink.errors import FlowlinkError
from flowlink.link.checks import TOO_LARGE, CheckFailure, check_size, error_body
from flowlink.link.exchange import LinkExchange
from flowlink.link.signing import HEADER_NAME
from flowlink.link.strict_json import MAX_BODY_BYTES

log = logging.getLogger(__name__)

POLL_FALLBACK_SECONDS = 0.5  # catches messages queued by another process


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
            chunks: list[bytes] = []
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                check_size(size)
                chunks.append(chunk)
        except CheckFailure as failure:
            return _error(failure)
        except ClientDisconnect:
            return Response(status_code=400)
        body = b"".join(chunks)
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
        return Response(payload, media_type="application/json", headers={HEADER_NAME: reply_signature})

    return Starlette(routes=[
        Route("/api/latest/health", health, methods=["GET"]),
        Route("/api/latest/sync_config/{name}/sync", sync, methods=["POST"]),
    ])


async def _hold(exchange: LinkExchange, hub: OutboxHub, name: str, above: int, wait: int) -> None:
    """Long poll: return as soon as there is something for the peer, or after ``wait`` s."""
    deadline = time.monotonic() + wait
    while not hub.closing:
        event = hub.event(name)  # taken before the check, so no notify is missed
        if await run_in_threadpool(exchange.has_pending, name, above):
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            await asyncio.wait_for(event.wait(), min(remaining, POLL_FALLBACK_SECONDS))
        except TimeoutError:
            pass


class LinkEndpoint:
    """uvicorn serving ``build_app`` over TLS on its own thread."""

    def __init__(self, exchange: LinkExchange, host: str, port: int, certfile: Path,
                 keyfile: Path) -> None:
        import uvicorn

        self.exchange = exchange
        self.hub = OutboxHub()
        exchange.ws.outbox_listeners.append(self.hub.notify)
        self.sock = _listen(host, port)
        self.host, self.port = self.sock.getsockname()[:2]
        self.config = uvicorn.Config(
            build_app(exchange, self.hub),
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


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket whose connections get TCP_NODELAY.

    asyncio sets TCP_NODELAY only on sockets whose ``proto`` is IPPROTO_TCP, and
    ``socket.create_server`` makes them with proto 0: every response would then
    wait ~40 ms for the peer's delayed ACK (Nagle).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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
