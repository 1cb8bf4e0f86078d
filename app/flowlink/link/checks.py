"""The receiver checks of PROTOCOL.md section 4, free of HTTP and storage.

``check_request`` runs checks 1 to 8 of the table in its order and raises a
``CheckFailure`` for the first that fails; ``check_response`` runs checks 4 to
8 on a 200 response plus ``in_reply_to``. The HTTP layer turns a failure into
``failure.status`` and ``error_body(failure)``.

Decisions where PROTOCOL.md is silent:

- The clock window is inclusive: a skew of exactly 300 s passes. The detail
  rounds the skew up to whole seconds, so a refused skew never reads "300 s".
- A response whose ``in_reply_to`` is not the request's id fails with
  ``wrong_audience`` (it is addressed to another exchange), checked right
  after ``from``/``to`` and before the clock.
- A path name that is not a workspace name is ``unknown_link`` without a
  lookup; the detail quotes the path name only when it is a valid name.
- ``seen`` is called last, only for an envelope that passed every other
  check, so forged or stale envelopes never fill the seen-id table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from flowlink.link.envelope import BadEnvelope, Envelope, is_name
from flowlink.link.signing import BadSignature, Verifier
from flowlink.link.strict_json import MAX_BODY_BYTES, dumps_canonical

MAX_SKEW_SECONDS = 300

TOO_LARGE = "too_large"
UNKNOWN_LINK = "unknown_link"
LINK_DISABLED = "link_disabled"
BAD_SIGNATURE = "bad_signature"
BAD_ENVELOPE = "bad_envelope"
WRONG_AUDIENCE = "wrong_audience"
CLOCK_SKEW = "clock_skew"
REPLAY = "replay"

STATUS_OF = {
    TOO_LARGE: 413,
    UNKNOWN_LINK: 404,
    LINK_DISABLED: 403,
    BAD_SIGNATURE: 401,
    BAD_ENVELOPE: 400,
    WRONG_AUDIENCE: 401,
    CLOCK_SKEW: 401,
    REPLAY: 401,
}

__all__ = [
    "MAX_SKEW_SECONDS",
    "STATUS_OF",
    "CheckFailure",
    "PeerView",
    "check_request",
    "check_response",
    "check_size",
    "error_body",
]


class CheckFailure(Exception):
    """A failed receiver check: the HTTP ``status``, the ``error`` code and a ``detail`` sentence."""

    def __init__(self, error: str, detail: str) -> None:
        if error not in STATUS_OF:
            raise ValueError(f"unknown error code {error!r}")
        super().__init__(f"{error}: {detail}")
        self.error = error
        self.status = STATUS_OF[error]
        self.detail = detail


@dataclass(frozen=True, slots=True)
class PeerView:
    """What the checks need of one Synch Config: its name, whether it is enabled, its key."""

    name: str
    enabled: bool
    verifier: Verifier


def check_size(n: int, *, max_bytes: int = MAX_BODY_BYTES) -> None:
    """Check 1, for the HTTP layer to call from Content-Length and while streaming."""
    if n > max_bytes:
        raise CheckFailure(
            TOO_LARGE,
            f"The body is larger than {max_bytes} bytes; send fewer messages per exchange.",
        )


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("the checks need an aware datetime for 'now'")
    return now.astimezone(UTC)


def _verify(verifier: Verifier, signature: str | None, body: bytes) -> None:
    try:
        verifier.verify(signature, body)
    except BadSignature as exc:
        raise CheckFailure(BAD_SIGNATURE, exc.detail) from None


def _envelope(body: bytes, *, is_request: bool) -> Envelope:
    try:
        return Envelope.from_bytes(body, is_request=is_request)
    except BadEnvelope as exc:
        raise CheckFailure(BAD_ENVELOPE, exc.detail) from None


def _audience(envelope: Envelope, *, sender: str, own_name: str) -> None:
    if envelope.from_ != sender:
        raise CheckFailure(
            WRONG_AUDIENCE,
            f"The envelope says it is from '{envelope.from_}' but came over the link '{sender}'.",
        )
    if envelope.to != own_name:
        raise CheckFailure(
            WRONG_AUDIENCE,
            f"The envelope is addressed to '{envelope.to}', not to this workspace "
            f"'{own_name}'; check the Remote URL of the sending side.",
        )


def _clock(envelope: Envelope, now: datetime) -> None:
    skew = (envelope.created - now).total_seconds()
    if abs(skew) > MAX_SKEW_SECONDS:
        seconds = math.ceil(abs(skew))
        direction = "ahead of" if skew > 0 else "behind"
        raise CheckFailure(
            CLOCK_SKEW,
            f"The sender's clock differs from this workspace's by {seconds} s; it is "
            f"{direction} this workspace's clock and at most {MAX_SKEW_SECONDS} s is accepted: "
            "set both machines' clocks from network time (NTP).",
        )


def _fresh(envelope: Envelope, peer_name: str, seen: Callable[[str, str], bool]) -> None:
    if seen(peer_name, envelope.id):
        raise CheckFailure(
            REPLAY, f"Envelope {envelope.id} was already received from '{peer_name}'."
        )


def check_request(
    *,
    path_name: str,
    body: bytes,
    signature: str | None,
    own_name: str,
    lookup: Callable[[str], PeerView | None],
    now: datetime,
    seen: Callable[[str, str], bool],
) -> tuple[PeerView, Envelope]:
    """Checks 1-8 for a request POSTed to ``.../sync_config/{path_name}/sync``.

    ``lookup(name)`` returns the Synch Config of that name or None.
    ``seen(peer, id)`` returns True if ``id`` was already received from
    ``peer`` and otherwise records it, atomically (two concurrent deliveries
    of one envelope must not both get False) and durably (at least 600 s,
    across restarts).
    """
    now = _utc(now)
    check_size(len(body))
    if not is_name(path_name):
        raise CheckFailure(UNKNOWN_LINK, "The link name in the URL is not a valid workspace name.")
    peer = lookup(path_name)
    if peer is None:
        raise CheckFailure(
            UNKNOWN_LINK,
            f"This workspace has no Synch Config named '{path_name}'; add one for the "
            "sending workspace.",
        )
    if not peer.enabled:
        raise CheckFailure(LINK_DISABLED, f"The link '{path_name}' is disabled in this workspace.")
    _verify(peer.verifier, signature, body)
    envelope = _envelope(body, is_request=True)
    _audience(envelope, sender=path_name, own_name=own_name)
    _clock(envelope, now)
    _fresh(envelope, path_name, seen)
    return peer, envelope


def check_response(
    *,
    body: bytes,
    signature: str | None,
    verifier: Verifier,
    own_name: str,
    peer_name: str,
    request_id: str,
    now: datetime,
    seen: Callable[[str, str], bool],
) -> Envelope:
    """Checks 4-8 on a 200 response from ``peer_name``, plus ``in_reply_to == request_id``."""
    now = _utc(now)
    check_size(len(body))
    _verify(verifier, signature, body)
    envelope = _envelope(body, is_request=False)
    _audience(envelope, sender=peer_name, own_name=own_name)
    if envelope.in_reply_to != request_id:
        raise CheckFailure(
            WRONG_AUDIENCE,
            f"The response answers envelope {envelope.in_reply_to}, not request {request_id}.",
        )
    _clock(envelope, now)
    _fresh(envelope, peer_name, seen)
    return envelope


def error_body(failure: CheckFailure) -> bytes:
    """The unsigned error body ``{"error": code, "detail": sentence}``."""
    return dumps_canonical({"error": failure.error, "detail": failure.detail})
