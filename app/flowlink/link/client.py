"""The initiating side's transport: one httpx.Client per link, keep-alive, timeouts on every call.

Every failure becomes a ``LinkError`` whose message is a sentence for the
status line and the "Test link" button: what went wrong and what to do.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

import httpx

from flowlink.errors import FlowlinkError
from flowlink.link.checks import CheckFailure
from flowlink.link.envelope import Envelope
from flowlink.link.exchange import LinkExchange
from flowlink.link.signing import HEADER_NAME
from flowlink.workspace.links import SyncConfig

CONNECT_TIMEOUT = 10.0
SLACK_SECONDS = 15.0


class LinkError(FlowlinkError):
    def __init__(self, message: str, *, code: str = "error", status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass
class ExchangeResult:
    sent: int
    received: int
    more_to_send: bool
    elapsed: float


def _tls(config: SyncConfig) -> ssl.SSLContext | bool:
    if not config.verify_ssl:
        return False
    if config.ca_cert:
        return ssl.create_default_context(cadata=config.ca_cert)
    return True


def _safe(text: str, limit: int = 300) -> str:
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


class LinkClient:
    def __init__(self, exchange: LinkExchange, config: SyncConfig) -> None:
        self.exchange = exchange
        self.config = config
        # httpcore writes the request head and body separately; without TCP_NODELAY,
        # Nagle holds the body back until the peer's delayed ACK: +40 ms per exchange.
        transport = httpx.HTTPTransport(
            verify=_tls(config),
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        self._client = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(CONNECT_TIMEOUT, read=25 + SLACK_SECONDS),
            follow_redirects=False,
            trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

    def exchange_once(self, *, wait: int = 0, send: bool = True) -> ExchangeResult:
        """One signed request and its checked, applied response."""
        config = self.config
        if not config.remote_url:
            raise LinkError(f"The link to '{config.name}' has no Remote URL; this side only answers.")
        started = time.monotonic()
        envelope, body, signature, sent = self.exchange.build_request(config, wait=wait, send=send)
        try:
            response = self._client.post(
                config.remote_url,
                content=body,
                headers={HEADER_NAME: signature, "Content-Type": "application/json"},
                timeout=httpx.Timeout(CONNECT_TIMEOUT, read=wait + SLACK_SECONDS),
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.status_code != 200:
            raise self._refusal(response)
        reply = self._checked(envelope, response)
        try:
            applied = self.exchange.apply(config.name, reply, inbound=False)
        except CheckFailure as failure:
            raise LinkError(failure.detail, code=failure.error) from None
        _messages, more = self.exchange.pending_messages(config.name)
        return ExchangeResult(sent, applied.applied, bool(_messages) and (more or sent == 0),
                              time.monotonic() - started)

    def probe(self) -> float:
        """"Test link": one signed exchange that carries and applies nothing; the
        round trip in seconds, or a LinkError that says in words what failed.
        Safe with unsaved settings: the answer is checked, never applied (what it
        carries is sent again on the next real exchange)."""
        config = self.config
        if not config.remote_url:
            raise LinkError(f"The link to '{config.name}' has no Remote URL: this side cannot test it; "
                            "test it from the other workspace.")
        started = time.monotonic()
        envelope, body, signature, _sent = self.exchange.build_request(config, wait=0, send=False)
        try:
            response = self._client.post(
                config.remote_url, content=body,
                headers={HEADER_NAME: signature, "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.status_code != 200:
            raise self._refusal(response)
        self._checked(envelope, response)
        return time.monotonic() - started

    def _checked(self, request: Envelope, response: httpx.Response) -> Envelope:
        try:
            return self.exchange.check_response(
                self.config, request, response.content, response.headers.get(HEADER_NAME)
            )
        except CheckFailure as failure:
            raise LinkError(
                f"The answer from '{self.config.name}' was refused ({failure.error}): {failure.detail}",
                code=failure.error,
            ) from None

    def _refusal(self, response: httpx.Response) -> LinkError:
        name = self.config.name
        try:
            data: Any = json.loads(response.content[:16384])
            code = str(data.get("error", "")) if isinstance(data, dict) else ""
            detail = _safe(str(data.get("detail", ""))) if isinstance(data, dict) else ""
        except ValueError:
            code, detail = "", ""
        status = response.status_code
        hints = {
            "bad_signature": (f"'{name}' refused our signature: its Synch Config for this workspace "
                              "must hold our public key ('flowlink keys public --pem')."),
            "unknown_link": f"'{name}' has no Synch Config for this workspace; add one there.",
            "link_disabled": f"'{name}' has disabled its link to this workspace.",
            "clock_skew": f"'{name}' refused us for clock skew: {detail} Set both clocks right (NTP).",
            "wrong_audience": f"'{name}' says the envelope was not meant for it: {detail}",
        }
        message = hints.get(code) or (
            f"'{name}' answered HTTP {status}{' (' + code + ')' if code else ''}"
            f"{': ' + detail.rstrip('.') if detail else ''}."
        )
        return LinkError(message, code=code or f"http_{status}", status=status)

    def _transport_error(self, exc: httpx.HTTPError) -> LinkError:
        url = self.config.remote_url
        text = _safe(str(exc)) or type(exc).__name__
        if isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in text:
            hint = ("paste the other workspace's CA certificate ('flowlink tls ca-cert' there) into "
                    "this link's CA certificate field")
            if "hostname mismatch" in text.lower() or "IP address mismatch" in text:
                hint = "the certificate does not name this host; renew it there with --tls-name"
            return LinkError(f"TLS failure talking to {url}: the certificate is not trusted ({hint}).",
                             code="tls")
        if isinstance(exc, httpx.ConnectError):
            return LinkError(f"Cannot connect to {url}: {text}. Is the other workspace running and listening?",
                             code="connect")
        if isinstance(exc, httpx.TimeoutException):
            return LinkError(f"{url} did not answer in time ({type(exc).__name__}).", code="timeout")
        return LinkError(f"The exchange with {url} failed: {text}.", code="transport")
