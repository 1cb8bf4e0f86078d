"""The envelope of PROTOCOL.md section 3: its shape, strictly validated, and building one.

Where PROTOCOL.md is silent, this module decides (and the tests pin it):

- Unknown members are refused at every level the protocol defines (envelope,
  message, ``parent``, ``execution``); only ``inputs`` and ``outputs`` are free
  JSON objects. Both sides speak ``flowlink-sync/1`` exactly, so an unknown
  member is a bug or an attack, never an extension.
- ``wait`` is optional on requests and means 0 when absent; ``in_reply_to`` is
  required on responses. Each is refused on the other kind.
- Optional members (``name`` and ``parent`` of ``execution.start``) may be
  absent or ``null``; in ``execution`` the members ``name``, ``message``,
  ``parent_id``, ``started_at`` and ``ended_at`` are required but may be
  ``null``.
- Execution ids (``execution.id``, ``parent_id``, ``parent.id``) are opaque to
  the peer: an integer in 0..2**63-1 or a string of 1 to 128 characters
  without control characters.
- Integers are true JSON integers (``true`` is not 1) within 0..2**63-1.
- Times are RFC 3339 in UTC only: ``Z`` or ``+00:00`` (uppercase ``T`` and
  ``Z``), with 0 to 9 fractional digits (kept to the microsecond).
- Flow names follow the workspace's resource-name rule: 1 to 200 characters,
  no control characters, no leading or trailing whitespace. Execution names
  are at most 1000 characters.
- Within one envelope ``seq`` starts anywhere >= 1 and rises by exactly 1.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flowlink.link.strict_json import (
    MAX_BODY_BYTES,
    MAX_DEPTH,
    BadJSON,
    dumps_canonical,
    json_depth,
    parse_strict,
)

PROTOCOL = "flowlink-sync/1"
MAX_WAIT = 25
MAX_INT = 2**63 - 1
MAX_FLOW_NAME_CHARS = 200
MAX_EXECUTION_NAME_CHARS = 1000
MAX_ID_CHARS = 128
# Envelope object, "messages" array, then the message object itself.
MESSAGE_MAX_DEPTH = MAX_DEPTH - 2

STATUSES = (
    "PENDING",
    "RUNNING",
    "WAITING",
    "PAUSED",
    "ENDED_SUCCESS",
    "ENDED_ERROR",
    "ENDED_CANCELLED",
)

NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
UUID4_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_TIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(?:Z|\+00:00)"
)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_SAFE_KEY_RE = re.compile(r"[A-Za-z0-9_.-]{1,40}")

_REQUEST_FIELDS = frozenset(
    {"protocol", "id", "from", "to", "created", "wait", "ack", "controls", "messages"}
)
_RESPONSE_FIELDS = frozenset(
    {"protocol", "id", "from", "to", "created", "in_reply_to", "ack", "controls", "messages"}
)
_REQUIRED_FIELDS = ("protocol", "id", "from", "to", "created", "ack", "controls", "messages")

__all__ = [
    "MAX_WAIT",
    "PROTOCOL",
    "STATUSES",
    "BadEnvelope",
    "Envelope",
    "format_time",
    "is_name",
    "is_uuid4",
    "new_envelope",
    "parse_time",
    "validate_message",
]


class BadEnvelope(ValueError):
    """The body is not an envelope of PROTOCOL.md section 3; ``detail`` is a sentence."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def is_name(value: object) -> bool:
    return isinstance(value, str) and NAME_RE.fullmatch(value) is not None


def is_uuid4(value: object) -> bool:
    return isinstance(value, str) and UUID4_RE.fullmatch(value) is not None


def parse_time(value: object, where: str) -> datetime:
    """An RFC 3339 UTC time as an aware datetime, or ``BadEnvelope``."""
    match = _TIME_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise BadEnvelope(f"{where} must be an RFC 3339 UTC time such as 2026-12-04T19:18:07.123Z.")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = (match.group(7) or "").ljust(6, "0")[:6]
    try:
        return datetime(year, month, day, hour, minute, second, int(fraction), tzinfo=UTC)
    except ValueError:
        raise BadEnvelope(f"{where} is not a real date and time.") from None


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds (microseconds when the time has them) and ``Z``."""
    if moment.tzinfo is None:
        raise ValueError("format_time needs an aware datetime")
    moment = moment.astimezone(UTC)
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond % 1000 == 0:
        return f"{base}.{moment.microsecond // 1000:03d}Z"
    return f"{base}.{moment.microsecond:06d}Z"


def _int(value: object, where: str, *, low: int, high: int = MAX_INT) -> int:
    # type() and not isinstance(): bool is a subclass of int.
    if type(value) is not int:
        raise BadEnvelope(f"{where} must be an integer.")
    if not low <= value <= high:
        raise BadEnvelope(f"{where} must be between {low} and {high}.")
    return value


def _bool(value: object, where: str) -> bool:
    if type(value) is not bool:
        raise BadEnvelope(f"{where} must be true or false.")
    return value


def _object(value: object, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise BadEnvelope(f"{where} must be a JSON object.")
    return value


def _text(value: object, where: str, *, max_chars: int, nullable: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if type(value) is not str:
        raise BadEnvelope(f"{where} must be a string{' or null' if nullable else ''}.")
    if len(value) > max_chars:
        raise BadEnvelope(f"{where} is longer than {max_chars} characters.")
    return value


def _flow_name(value: object, where: str) -> str:
    if (
        type(value) is not str
        or not value
        or len(value) > MAX_FLOW_NAME_CHARS
        or value != value.strip()
        or _CONTROL_RE.search(value)
    ):
        raise BadEnvelope(
            f"{where} must be a flow name of 1 to {MAX_FLOW_NAME_CHARS} characters "
            "without control characters or surrounding spaces."
        )
    return value


def _execution_id(value: object, where: str, *, nullable: bool = False) -> int | str | None:
    if value is None and nullable:
        return None
    if type(value) is int and 0 <= value <= MAX_INT:
        return value
    if type(value) is str and 0 < len(value) <= MAX_ID_CHARS and not _CONTROL_RE.search(value):
        return value
    raise BadEnvelope(
        f"{where} must be an execution id (an integer >= 0 or a string of 1 to "
        f"{MAX_ID_CHARS} characters){' or null' if nullable else ''}."
    )


def _uuid4(value: object, where: str) -> str:
    if not is_uuid4(value):
        raise BadEnvelope(f"{where} must be a UUID4 in lowercase canonical form.")
    assert isinstance(value, str)
    return value


def _members(
    obj: Mapping[str, Any], where: str, required: Iterable[str], optional: Iterable[str] = ()
) -> None:
    required = tuple(required)
    allowed = set(required) | set(optional)
    for key in required:
        if key not in obj:
            raise BadEnvelope(f"{where} lacks the member '{key}'.")
    unknown = [key for key in obj if key not in allowed]
    if unknown:
        # Echo the key only when it is short and plainly printable.
        shown = f" '{unknown[0]}'" if _SAFE_KEY_RE.fullmatch(unknown[0]) else ""
        raise BadEnvelope(
            f"{where} has an unknown member{shown}; this workspace speaks {PROTOCOL}."
        )


def _validate_start(msg: dict[str, Any], where: str) -> None:
    _members(msg, where, ("seq", "type", "request_id", "flow", "inputs"), ("name", "parent"))
    _uuid4(msg["request_id"], f"{where}.request_id")
    _flow_name(msg["flow"], f"{where}.flow")
    _object(msg["inputs"], f"{where}.inputs")
    _text(msg.get("name"), f"{where}.name", max_chars=MAX_EXECUTION_NAME_CHARS, nullable=True)
    parent = msg.get("parent")
    if parent is not None:
        _object(parent, f"{where}.parent")
        _members(parent, f"{where}.parent", ("id", "name"))
        _execution_id(parent["id"], f"{where}.parent.id")
        _text(parent["name"], f"{where}.parent.name", max_chars=MAX_EXECUTION_NAME_CHARS)


_EXECUTION_FIELDS = (
    "id",
    "flow",
    "name",
    "status",
    "message",
    "outputs",
    "parent_id",
    "created_at",
    "started_at",
    "ended_at",
    "version",
)


def _validate_update(msg: dict[str, Any], where: str) -> None:
    _members(msg, where, ("seq", "type", "request_id", "execution", "listed"))
    _uuid4(msg["request_id"], f"{where}.request_id")
    _bool(msg["listed"], f"{where}.listed")
    ex_where = f"{where}.execution"
    execution = _object(msg["execution"], ex_where)
    _members(execution, ex_where, _EXECUTION_FIELDS)
    _execution_id(execution["id"], f"{ex_where}.id")
    _flow_name(execution["flow"], f"{ex_where}.flow")
    _text(execution["name"], f"{ex_where}.name", max_chars=MAX_EXECUTION_NAME_CHARS, nullable=True)
    if type(execution["status"]) is not str or execution["status"] not in STATUSES:
        raise BadEnvelope(f"{ex_where}.status must be one of {', '.join(STATUSES)}.")
    _text(execution["message"], f"{ex_where}.message", max_chars=MAX_BODY_BYTES, nullable=True)
    _object(execution["outputs"], f"{ex_where}.outputs")
    _execution_id(execution["parent_id"], f"{ex_where}.parent_id", nullable=True)
    parse_time(execution["created_at"], f"{ex_where}.created_at")
    for key in ("started_at", "ended_at"):
        if execution[key] is not None:
            parse_time(execution[key], f"{ex_where}.{key}")
    _int(execution["version"], f"{ex_where}.version", low=0)


def _validate_cancel(msg: dict[str, Any], where: str) -> None:
    _members(msg, where, ("seq", "type", "request_id"))
    _uuid4(msg["request_id"], f"{where}.request_id")


_VALIDATORS = {
    "execution.start": _validate_start,
    "execution.update": _validate_update,
    "execution.cancel": _validate_cancel,
}
MESSAGE_TYPES = tuple(_VALIDATORS)


def validate_message(msg: object, where: str = "message") -> dict[str, Any]:
    """Check one message's shape (not its depth or size); return it unchanged.

    Senders call it (through ``new_envelope``) before a message is queued, so
    that a message the peer would refuse never blocks an outbox.
    """
    msg = _object(msg, where)
    if "seq" not in msg:
        raise BadEnvelope(f"{where} lacks the member 'seq'.")
    _int(msg["seq"], f"{where}.seq", low=1)
    kind = msg.get("type")
    validator = _VALIDATORS.get(kind) if type(kind) is str else None
    if validator is None:
        raise BadEnvelope(f"{where}.type must be one of {', '.join(MESSAGE_TYPES)}.")
    validator(msg, where)
    return msg


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    protocol: str
    id: str
    from_: str
    to: str
    created: datetime  # aware, UTC
    in_reply_to: str | None  # responses: the request's id; requests: None
    wait: int | None  # requests: 0..25; responses: None
    ack: int
    controls: bool
    messages: list[dict[str, Any]]

    @property
    def is_request(self) -> bool:
        return self.in_reply_to is None

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "protocol": self.protocol,
            "id": self.id,
            "from": self.from_,
            "to": self.to,
            "created": format_time(self.created),
        }
        if self.in_reply_to is not None:
            obj["in_reply_to"] = self.in_reply_to
        if self.wait is not None:
            obj["wait"] = self.wait
        obj["ack"] = self.ack
        obj["controls"] = self.controls
        obj["messages"] = self.messages
        return obj

    def to_bytes(self) -> bytes:
        """The body to sign and send; ``BadEnvelope`` if the peer would refuse it for size."""
        try:
            body = dumps_canonical(self.to_json())
        except (TypeError, ValueError) as exc:
            raise BadEnvelope(f"the envelope cannot be written as JSON ({exc}).") from None
        if len(body) > MAX_BODY_BYTES:
            raise BadEnvelope(
                f"the envelope is {len(body)} bytes, more than the {MAX_BODY_BYTES} a peer "
                "accepts; send fewer messages per exchange."
            )
        return body

    @classmethod
    def from_bytes(cls, body: bytes, *, is_request: bool) -> Envelope:
        """Strict JSON (``strict_json.parse_strict``) of the envelope shape, else ``BadEnvelope``."""
        try:
            obj = parse_strict(body)
        except BadJSON as exc:
            raise BadEnvelope(f"The body is not strict JSON: {exc.reason}.") from None
        return cls.from_json(obj, is_request=is_request)

    @classmethod
    def from_json(cls, obj: object, *, is_request: bool) -> Envelope:
        """Validate a parsed body against the envelope shape; see the module docstring."""
        kind = "request" if is_request else "response"
        obj = _object(obj, f"The {kind} envelope")
        where = "The envelope"
        for key in _REQUIRED_FIELDS:
            if key not in obj:
                raise BadEnvelope(f"The envelope lacks the member '{key}'.")
        if not is_request and "in_reply_to" not in obj:
            raise BadEnvelope("A response envelope must carry 'in_reply_to'.")
        if is_request and "in_reply_to" in obj:
            raise BadEnvelope("A request envelope must not carry 'in_reply_to'.")
        if not is_request and "wait" in obj:
            raise BadEnvelope("A response envelope must not carry 'wait'.")
        _members(obj, where, _REQUIRED_FIELDS, _REQUEST_FIELDS if is_request else _RESPONSE_FIELDS)
        if type(obj["protocol"]) is not str or obj["protocol"] != PROTOCOL:
            raise BadEnvelope(f"The envelope's protocol must be '{PROTOCOL}'.")
        envelope_id = _uuid4(obj["id"], "The envelope id")
        for key in ("from", "to"):
            if not is_name(obj[key]):
                raise BadEnvelope(
                    f"The envelope's '{key}' must be a workspace name: 1 to 63 lowercase "
                    "letters, digits and '-', starting with a letter or digit."
                )
        created = parse_time(obj["created"], "The envelope's 'created'")
        wait: int | None = None
        in_reply_to: str | None = None
        if is_request:
            wait = (
                _int(obj["wait"], "The envelope's 'wait'", low=0, high=MAX_WAIT)
                if "wait" in obj
                else 0
            )
        else:
            in_reply_to = _uuid4(obj["in_reply_to"], "The envelope's 'in_reply_to'")
        ack = _int(obj["ack"], "The envelope's 'ack'", low=0)
        controls = _bool(obj["controls"], "The envelope's 'controls'")
        messages = obj["messages"]
        if type(messages) is not list:
            raise BadEnvelope("The envelope's 'messages' must be a list.")
        previous: int | None = None
        for index, msg in enumerate(messages):
            validate_message(msg, f"messages[{index}]")
            seq = msg["seq"]
            if previous is not None and seq != previous + 1:
                raise BadEnvelope(
                    f"messages[{index}].seq must be {previous + 1}: seq rises by exactly 1."
                )
            previous = seq
        return cls(
            protocol=PROTOCOL,
            id=envelope_id,
            from_=obj["from"],
            to=obj["to"],
            created=created,
            ack=ack,
            controls=controls,
            messages=messages,
            wait=wait,
            in_reply_to=in_reply_to,
        )


def new_envelope(
    from_: str,
    to: str,
    *,
    messages: list[dict[str, Any]],
    ack: int,
    controls: bool,
    wait: int | None = None,
    in_reply_to: str | None = None,
    now: datetime | None = None,
) -> Envelope:
    """A fresh, validated envelope: a request unless ``in_reply_to`` is given.

    The id is a new UUID4 and ``created`` is ``now`` (default: the clock)
    truncated to the millisecond. Raises ``BadEnvelope`` for anything the peer
    would refuse except the total size, which ``to_bytes`` checks.
    """
    moment = datetime.now(UTC) if now is None else now
    if moment.tzinfo is None:
        raise ValueError("new_envelope needs an aware datetime for 'now'")
    moment = moment.astimezone(UTC)
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    is_request = in_reply_to is None
    if is_request and wait is None:
        wait = 0
    if not is_request and wait is not None:
        raise BadEnvelope("A response envelope must not carry 'wait'.")
    for index, msg in enumerate(messages):
        if json_depth(msg) > MESSAGE_MAX_DEPTH:
            raise BadEnvelope(
                f"messages[{index}] nests deeper than {MESSAGE_MAX_DEPTH} levels; "
                f"an envelope may nest at most {MAX_DEPTH}."
            )
    obj: dict[str, Any] = {
        "protocol": PROTOCOL,
        "id": str(uuid.uuid4()),
        "from": from_,
        "to": to,
        "created": format_time(moment),
        "ack": ack,
        "controls": controls,
        "messages": list(messages),
    }
    if is_request:
        obj["wait"] = wait
    else:
        obj["in_reply_to"] = in_reply_to
    return Envelope.from_json(obj, is_request=is_request)
