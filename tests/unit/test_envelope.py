"""The envelope shape of PROTOCOL.md section 3, validated strictly."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from flowlink.link.envelope import (
    PROTOCOL,
    STATUSES,
    BadEnvelope,
    Envelope,
    format_time,
    new_envelope,
    parse_time,
    validate_message,
)
from flowlink.link.strict_json import MAX_BODY_BYTES, dumps_canonical

NOW = datetime(2026, 12, 4, 19, 18, 7, 123000, tzinfo=UTC)


def uid() -> str:
    return str(uuid.uuid4())


def start_msg(seq: int = 1, **extra: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "seq": seq,
        "type": "execution.start",
        "request_id": uid(),
        "flow": "hello world",
        "inputs": {"k": [1, {"v": None}]},
    }
    msg.update(extra)
    return msg


def execution(**changes: Any) -> dict[str, Any]:
    ex: dict[str, Any] = {
        "id": 17,
        "flow": "x",
        "name": "x",
        "status": "RUNNING",
        "message": None,
        "outputs": {},
        "parent_id": None,
        "created_at": "2026-12-04T19:18:07.123Z",
        "started_at": "2026-12-04T19:18:07.200Z",
        "ended_at": None,
        "version": 2,
    }
    ex.update(changes)
    return ex


def update_msg(seq: int = 1, **ex_changes: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "type": "execution.update",
        "request_id": uid(),
        "execution": execution(**ex_changes),
        "listed": False,
    }


def cancel_msg(seq: int = 1) -> dict[str, Any]:
    return {"seq": seq, "type": "execution.cancel", "request_id": uid()}


def request(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "protocol": PROTOCOL,
        "id": uid(),
        "from": "laptop",
        "to": "server-1",
        "created": "2026-12-04T19:18:07.123Z",
        "wait": 25,
        "ack": 41,
        "controls": True,
        "messages": [start_msg(42), update_msg(43), cancel_msg(44)],
    }
    obj.update(changes)
    return obj


def response(**changes: Any) -> dict[str, Any]:
    obj = request()
    del obj["wait"]
    obj["in_reply_to"] = uid()
    obj.update(changes)
    return obj


def without(obj: dict[str, Any], key: str) -> dict[str, Any]:
    obj = dict(obj)
    del obj[key]
    return obj


def bad(obj: object, *, is_request: bool = True, match: str | None = None) -> BadEnvelope:
    with pytest.raises(BadEnvelope, match=match) as info:
        Envelope.from_json(obj, is_request=is_request)
    assert info.value.detail == str(info.value)
    assert info.value.detail[:1].isupper() or info.value.detail.startswith("messages[")
    return info.value


# --- accepted -----------------------------------------------------------------------------


def test_request_round_trips() -> None:
    obj = request()
    env = Envelope.from_json(obj, is_request=True)
    assert env.protocol == PROTOCOL
    assert (env.id, env.from_, env.to) == (obj["id"], "laptop", "server-1")
    assert env.created == NOW
    assert (env.wait, env.ack, env.controls, env.in_reply_to) == (25, 41, True, None)
    assert env.messages == obj["messages"]
    assert env.is_request
    again = Envelope.from_bytes(env.to_bytes(), is_request=True)
    assert again == env


def test_response_round_trips() -> None:
    obj = response(controls=False, messages=[])
    env = Envelope.from_json(obj, is_request=False)
    assert (env.in_reply_to, env.wait, env.controls, env.messages) == (
        obj["in_reply_to"],
        None,
        False,
        [],
    )
    assert not env.is_request
    body = env.to_bytes()
    assert b'"in_reply_to"' in body and b'"wait"' not in body
    assert Envelope.from_bytes(body, is_request=False) == env


def test_wait_is_optional_on_requests_and_means_zero() -> None:
    env = Envelope.from_json(without(request(), "wait"), is_request=True)
    assert env.wait == 0


@pytest.mark.parametrize("wait", [0, 1, 24, 25])
def test_wait_range(wait: int) -> None:
    assert Envelope.from_json(request(wait=wait), is_request=True).wait == wait


@pytest.mark.parametrize("ack", [0, 1, 2**63 - 1])
def test_ack_range(ack: int) -> None:
    assert Envelope.from_json(request(ack=ack), is_request=True).ack == ack


@pytest.mark.parametrize("name", ["a", "0", "a-b", "a" * 63, "0-9z", "x-"])
def test_valid_names(name: str) -> None:
    env = Envelope.from_json(request(**{"from": name, "to": name}), is_request=True)
    assert (env.from_, env.to) == (name, name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-04T19:18:07Z", datetime(2026, 12, 4, 19, 18, 7, tzinfo=UTC)),
        ("2026-12-04T19:18:07+00:00", datetime(2026, 12, 4, 19, 18, 7, tzinfo=UTC)),
        ("2026-12-04T19:18:07.1Z", datetime(2026, 12, 4, 19, 18, 7, 100000, tzinfo=UTC)),
        ("2026-12-04T19:18:07.123+00:00", NOW),
        ("2026-12-04T19:18:07.123456Z", NOW.replace(microsecond=123456)),
        ("2026-12-04T19:18:07.123456789Z", NOW.replace(microsecond=123456)),
        ("2024-02-29T23:59:59.999Z", datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=UTC)),
    ],
)
def test_created_accepts_rfc3339_utc(text: str, expected: datetime) -> None:
    env = Envelope.from_json(request(created=text), is_request=True)
    assert env.created == expected
    assert env.created.tzinfo is UTC


def test_empty_message_list_is_a_valid_long_poll() -> None:
    assert Envelope.from_json(request(messages=[]), is_request=True).messages == []


def test_seq_may_start_anywhere_and_rises_by_one() -> None:
    msgs = [cancel_msg(1000), cancel_msg(1001), cancel_msg(1002)]
    assert len(Envelope.from_json(request(messages=msgs), is_request=True).messages) == 3


# --- refused: envelope level --------------------------------------------------------------


@pytest.mark.parametrize("value", [[], "x", 1, None, True, [request()]])
def test_refuses_non_object(value: object) -> None:
    bad(value, match="JSON object")


@pytest.mark.parametrize(
    "key", ["protocol", "id", "from", "to", "created", "ack", "controls", "messages"]
)
@pytest.mark.parametrize("is_request", [True, False])
def test_refuses_missing_member(key: str, is_request: bool) -> None:
    obj = request() if is_request else response()
    bad(without(obj, key), is_request=is_request, match=f"'{key}'")


def test_response_requires_in_reply_to() -> None:
    bad(without(response(), "in_reply_to"), is_request=False, match="in_reply_to")


def test_request_refuses_in_reply_to() -> None:
    bad(request(in_reply_to=uid()), match="in_reply_to")


def test_response_refuses_wait() -> None:
    bad(response(wait=0), is_request=False, match="wait")


@pytest.mark.parametrize("key", ["extra", "From", "signature", "\u202eevil", "x" * 100])
def test_refuses_unknown_top_level_member(key: str) -> None:
    err = bad(request(**{key: 1}), match="unknown member")
    if key in ("extra", "From", "signature"):
        assert key in err.detail
    else:
        assert key not in err.detail


@pytest.mark.parametrize(
    "value",
    ["flowlink-sync/2", "flowlink-sync/1 ", "FLOWLINK-SYNC/1", "", None, 1, ["flowlink-sync/1"]],
)
def test_refuses_other_protocol(value: object) -> None:
    bad(request(protocol=value), match="protocol")


@pytest.mark.parametrize(
    "value",
    [
        # Fixed values: parameters must be the same in every xdist worker.
        "1e45cd2a-f020-11f1-988e-02fc00000001",  # a UUID1
        "C1BC8283-75EB-4297-9E94-15CC9BE1B347",
        "{f0b96523-2191-4726-95ad-b3ef68360184}",
        "f0b965232191472695adb3ef68360184",  # hex, no dashes
        "urn:uuid:f0b96523-2191-4726-95ad-b3ef68360184",
        "f0b96523-2191-4726-95ad-b3ef68360184\n",
        "00000000-0000-4000-c000-000000000000",  # variant bits not RFC 4122
        "00000000-0000-0000-0000-000000000000",
        "",
        None,
        123,
    ],
)
@pytest.mark.parametrize("field", ["id", "in_reply_to"])
def test_refuses_non_canonical_uuid4(value: object, field: str) -> None:
    if field == "id":
        bad(request(id=value), match="id")
    else:
        bad(response(in_reply_to=value), is_request=False, match="in_reply_to")


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A",
        "Laptop",
        "-a",
        "a_b",
        "a.b",
        "a b",
        "a" * 64,
        "a\n",
        "\u0661",  # ARABIC-INDIC DIGIT ONE: \d would match it
        "ａ",
        "../a",
        None,
        1,
        ["a"],
    ],
)
@pytest.mark.parametrize("field", ["from", "to"])
def test_refuses_bad_names(name: object, field: str) -> None:
    bad(request(**{field: name}), match=f"'{field}'")


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-04T19:18:07.123+01:00",
        "2026-12-04T19:18:07.123-00:00",
        "2026-12-04T19:18:07.123",
        "2026-12-04T19:18:07.123z",
        "2026-12-04t19:18:07.123Z",
        "2026-12-04 19:18:07.123Z",
        "2026-12-04T19:18:07.Z",
        "2026-12-04T19:18:07.1234567890Z",
        "2026-12-04T19:18Z",
        "2026-12-04",
        "2026-12-04T19:18:60Z",
        "2026-02-30T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-12-04T24:00:00Z",
        "2026-12-04T19:18:07Z\n",
        "２026-12-04T19:18:07Z",
        "+2026-12-04T19:18:07Z",
        "1733339887",
        1733339887,
        None,
    ],
)
def test_refuses_non_rfc3339_utc_created(text: object) -> None:
    bad(request(created=text), match="created")


@pytest.mark.parametrize("wait", [-1, 26, 10**6, True, False, 1.0, "25", None])
def test_refuses_bad_wait(wait: object) -> None:
    bad(request(wait=wait), match="wait")


@pytest.mark.parametrize("ack", [-1, 2**63, 10**30, True, False, 1.0, "1", None])
def test_refuses_bad_ack(ack: object) -> None:
    bad(request(ack=ack), match="ack")


@pytest.mark.parametrize("controls", [1, 0, "true", None, []])
def test_refuses_non_bool_controls(controls: object) -> None:
    bad(request(controls=controls), match="controls")


@pytest.mark.parametrize("messages", [{}, None, "[]", start_msg()])
def test_refuses_non_list_messages(messages: object) -> None:
    bad(request(messages=messages), match="messages")


# --- refused: messages --------------------------------------------------------------------


@pytest.mark.parametrize("msg", [[], "x", 1, None, True])
def test_refuses_non_object_message(msg: object) -> None:
    bad(request(messages=[msg]), match=r"messages\[0\]")


@pytest.mark.parametrize("seq", [0, -1, 2**63, True, 1.0, "1", None])
def test_refuses_bad_seq(seq: object) -> None:
    bad(request(messages=[cancel_msg(seq)]), match="seq")  # type: ignore[arg-type]


def test_refuses_missing_seq() -> None:
    bad(request(messages=[without(cancel_msg(), "seq")]), match="seq")


@pytest.mark.parametrize("seqs", [[1, 3], [2, 1], [1, 1], [5, 6, 8], [5, 6, 5]])
def test_refuses_seq_that_does_not_rise_by_one(seqs: list[int]) -> None:
    bad(request(messages=[cancel_msg(s) for s in seqs]), match="rises by exactly 1")


@pytest.mark.parametrize(
    "kind", ["execution.stop", "", None, 1, "EXECUTION.START", ["execution.start"]]
)
def test_refuses_unknown_message_type(kind: object) -> None:
    msg = cancel_msg()
    msg["type"] = kind
    bad(request(messages=[msg]), match="type")


def test_refuses_missing_message_type() -> None:
    bad(request(messages=[without(cancel_msg(), "type")]), match="type")


@pytest.mark.parametrize(
    "make", [start_msg, update_msg, cancel_msg], ids=["start", "update", "cancel"]
)
def test_refuses_unknown_message_member(make) -> None:  # noqa: ANN001
    msg = make()
    msg["surprise"] = 1
    bad(request(messages=[msg]), match="unknown member 'surprise'")


@pytest.mark.parametrize(
    ("make", "key"),
    [
        (start_msg, "request_id"),
        (start_msg, "flow"),
        (start_msg, "inputs"),
        (update_msg, "request_id"),
        (update_msg, "execution"),
        (update_msg, "listed"),
        (cancel_msg, "request_id"),
    ],
)
def test_refuses_missing_message_member(make, key: str) -> None:  # noqa: ANN001
    bad(request(messages=[without(make(), key)]), match=f"'{key}'")


@pytest.mark.parametrize("make", [start_msg, update_msg, cancel_msg])
@pytest.mark.parametrize(
    "value", ["1e45cd2a-f020-11f1-988e-02fc00000001", "x", None, 5, "C1BC8283-75EB-4297-9E94-15CC9BE1B347"]
)
def test_refuses_bad_request_id(make, value: object) -> None:  # noqa: ANN001
    msg = make()
    msg["request_id"] = value
    bad(request(messages=[msg]), match="request_id")


# execution.start ---------------------------------------------------------------------------


def test_start_optional_members() -> None:
    variants = [
        start_msg(),
        start_msg(name="my run"),
        start_msg(name=None),
        start_msg(parent={"id": 3, "name": "caller"}),
        start_msg(parent={"id": "e-3f", "name": ""}),
        start_msg(parent=None),
    ]
    for msg in variants:
        assert Envelope.from_json(request(messages=[msg]), is_request=True).messages == [msg]


@pytest.mark.parametrize(
    "flow",
    ["", " x", "x ", "a\x00b", "a\nb", "a\x7fb", "f" * 201, None, 1, ["x"]],
)
def test_start_refuses_bad_flow_name(flow: object) -> None:
    bad(request(messages=[start_msg(flow=flow)]), match="flow")


@pytest.mark.parametrize("flow", ["x", "f" * 200, "my flow/v2", "ünïcode ✓"])
def test_start_accepts_flow_names(flow: str) -> None:
    assert Envelope.from_json(request(messages=[start_msg(flow=flow)]), is_request=True)


@pytest.mark.parametrize("inputs", [[], None, "x", 1])
def test_start_refuses_non_object_inputs(inputs: object) -> None:
    bad(request(messages=[start_msg(inputs=inputs)]), match="inputs")


@pytest.mark.parametrize("name", [1, True, ["x"], "n" * 1001])
def test_start_refuses_bad_name(name: object) -> None:
    bad(request(messages=[start_msg(name=name)]), match="name")


@pytest.mark.parametrize(
    "parent",
    [
        {},
        {"id": 1},
        {"name": "x"},
        {"id": 1, "name": "x", "extra": 1},
        {"id": None, "name": "x"},
        {"id": True, "name": "x"},
        {"id": -1, "name": "x"},
        {"id": 2**63, "name": "x"},
        {"id": "", "name": "x"},
        {"id": "a\nb", "name": "x"},
        {"id": "i" * 129, "name": "x"},
        {"id": 1.5, "name": "x"},
        {"id": 1, "name": None},
        {"id": 1, "name": 5},
        [1, "x"],
        "x",
    ],
)
def test_start_refuses_bad_parent(parent: object) -> None:
    bad(request(messages=[start_msg(parent=parent)]), match="parent")


# execution.update --------------------------------------------------------------------------


@pytest.mark.parametrize("status", STATUSES)
def test_update_accepts_every_status(status: str) -> None:
    msg = update_msg(status=status)
    assert Envelope.from_json(request(messages=[msg]), is_request=True).messages[0] is msg


def test_statuses_are_the_seven_of_the_protocol() -> None:
    assert set(STATUSES) == {
        "PENDING",
        "RUNNING",
        "WAITING",
        "PAUSED",
        "ENDED_SUCCESS",
        "ENDED_ERROR",
        "ENDED_CANCELLED",
    }


def test_update_accepts_full_terminal_execution() -> None:
    msg = update_msg(
        id="exec-1",
        name=None,
        status="ENDED_ERROR",
        message="Traceback ...\n  boom",
        outputs={"output_value": [1, 2]},
        parent_id=9,
        ended_at="2026-12-04T19:18:09+00:00",
        version=0,
    )
    msg["listed"] = True
    assert Envelope.from_json(request(messages=[msg]), is_request=True).messages == [msg]


@pytest.mark.parametrize(
    "key",
    [
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
    ],
)
def test_update_requires_every_execution_member(key: str) -> None:
    msg = update_msg()
    del msg["execution"][key]
    bad(request(messages=[msg]), match=f"'{key}'")


def test_update_refuses_unknown_execution_member() -> None:
    msg = update_msg()
    msg["execution"]["inputs"] = {}
    bad(request(messages=[msg]), match="unknown member 'inputs'")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("id", None),
        ("id", True),
        ("id", -5),
        ("id", 1.0),
        ("id", {}),
        ("flow", ""),
        ("flow", None),
        ("name", 3),
        ("name", "n" * 1001),
        ("status", "running"),
        ("status", "ENDED"),
        ("status", None),
        ("status", ["RUNNING"]),
        ("message", 1),
        ("message", ["x"]),
        ("outputs", None),
        ("outputs", []),
        ("parent_id", True),
        ("parent_id", ""),
        ("created_at", None),
        ("created_at", "yesterday"),
        ("started_at", "2026-12-04T19:18:07+02:00"),
        ("ended_at", 0),
        ("version", -1),
        ("version", True),
        ("version", None),
        ("version", 2**63),
        ("version", 1.0),
    ],
)
def test_update_refuses_bad_execution_member(key: str, value: object) -> None:
    msg = update_msg(**{key: value})
    bad(request(messages=[msg]), match=key)


@pytest.mark.parametrize("listed", [1, 0, None, "true"])
def test_update_refuses_non_bool_listed(listed: object) -> None:
    msg = update_msg()
    msg["listed"] = listed
    bad(request(messages=[msg]), match="listed")


@pytest.mark.parametrize("value", [[], "x", None])
def test_update_refuses_non_object_execution(value: object) -> None:
    msg = update_msg()
    msg["execution"] = value
    bad(request(messages=[msg]), match="execution")


# --- from_bytes ---------------------------------------------------------------------------


def test_from_bytes_turns_strict_json_failures_into_bad_envelope() -> None:
    obj = request()
    body = json.dumps(obj).encode()
    dup = body[:-1] + b',"ack":1}'
    with pytest.raises(BadEnvelope, match="strict JSON.*duplicate"):
        Envelope.from_bytes(dup, is_request=True)
    with pytest.raises(BadEnvelope, match="strict JSON"):
        Envelope.from_bytes(b"\xff" + body, is_request=True)
    with pytest.raises(BadEnvelope, match="strict JSON"):
        Envelope.from_bytes(body + b"x", is_request=True)


def test_from_bytes_depth_limit_counts_the_envelope() -> None:
    def inputs_of_depth(depth: int) -> dict[str, Any]:
        value: dict[str, Any] = {}
        for _ in range(depth - 1):
            value = {"a": value}
        return value

    # envelope (1) > messages (2) > message (3) > inputs (4...): inputs may nest 29 deep.
    ok = request(messages=[start_msg(inputs=inputs_of_depth(29))])
    assert Envelope.from_bytes(dumps_canonical(ok), is_request=True)
    too_deep = request(messages=[start_msg(inputs=inputs_of_depth(30))])
    with pytest.raises(BadEnvelope, match="deeper than 32"):
        Envelope.from_bytes(dumps_canonical(too_deep), is_request=True)


# --- validate_message ---------------------------------------------------------------------


def test_validate_message_returns_the_message_and_refuses_bad_ones() -> None:
    msg = start_msg()
    assert validate_message(msg) is msg
    with pytest.raises(BadEnvelope, match="message.flow"):
        validate_message(start_msg(flow=""))


# --- new_envelope -------------------------------------------------------------------------


def test_new_request_envelope() -> None:
    msgs = [cancel_msg(7)]
    env = new_envelope("a", "b", messages=msgs, ack=3, controls=True, wait=25, now=NOW)
    assert uuid.UUID(env.id).version == 4 and env.id == str(uuid.UUID(env.id))
    assert env.created == NOW
    assert (env.from_, env.to, env.ack, env.controls, env.wait, env.in_reply_to) == (
        "a",
        "b",
        3,
        True,
        25,
        None,
    )
    body = env.to_bytes()
    assert json.loads(body)["created"] == "2026-12-04T19:18:07.123Z"
    assert Envelope.from_bytes(body, is_request=True) == env


def test_new_envelope_ids_are_fresh() -> None:
    ids = {new_envelope("a", "b", messages=[], ack=0, controls=False).id for _ in range(50)}
    assert len(ids) == 50


def test_new_envelope_defaults_wait_to_zero_and_uses_the_clock() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    env = new_envelope("a", "b", messages=[], ack=0, controls=False)
    after = datetime.now(UTC)
    assert env.wait == 0
    assert before <= env.created <= after
    assert env.created.microsecond % 1000 == 0


def test_new_envelope_truncates_to_milliseconds_and_converts_to_utc() -> None:
    local = datetime(2026, 12, 4, 21, 18, 7, 123999, tzinfo=timezone(timedelta(hours=2)))
    env = new_envelope("a", "b", messages=[], ack=0, controls=False, now=local)
    assert env.created == NOW
    assert env.created.tzinfo is UTC
    assert json.loads(env.to_bytes())["created"] == "2026-12-04T19:18:07.123Z"


def test_new_envelope_refuses_naive_now() -> None:
    with pytest.raises(ValueError):
        new_envelope("a", "b", messages=[], ack=0, controls=False, now=datetime(2026, 1, 1))


def test_new_response_envelope() -> None:
    rid = uid()
    env = new_envelope("b", "a", messages=[update_msg(1)], ack=0, controls=False, in_reply_to=rid)
    assert (env.in_reply_to, env.wait) == (rid, None)
    assert Envelope.from_bytes(env.to_bytes(), is_request=False) == env
    with pytest.raises(BadEnvelope, match="in_reply_to"):
        Envelope.from_bytes(env.to_bytes(), is_request=True)


def test_new_response_refuses_wait() -> None:
    with pytest.raises(BadEnvelope, match="wait"):
        new_envelope("b", "a", messages=[], ack=0, controls=False, wait=0, in_reply_to=uid())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"from_": "A"},
        {"to": "b c"},
        {"ack": -1},
        {"ack": True},
        {"controls": 1},
        {"wait": 26},
        {"in_reply_to": "nope"},
        {"messages": [cancel_msg(1), cancel_msg(3)]},
        {"messages": [start_msg(flow="")]},
    ],
)
def test_new_envelope_refuses_what_the_peer_would_refuse(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {
        "from_": "a",
        "to": "b",
        "messages": [],
        "ack": 0,
        "controls": True,
    }
    args.update(kwargs)
    with pytest.raises(BadEnvelope):
        new_envelope(args.pop("from_"), args.pop("to"), **args)


def test_new_envelope_refuses_messages_nesting_too_deep() -> None:
    value: dict[str, Any] = {}
    for _ in range(28):
        value = {"a": value}
    ok = start_msg(inputs=value)  # message 1 > inputs 2 ... = 30
    env = new_envelope("a", "b", messages=[ok], ack=0, controls=True)
    assert Envelope.from_bytes(env.to_bytes(), is_request=True) == env
    with pytest.raises(BadEnvelope, match="deeper"):
        new_envelope("a", "b", messages=[start_msg(inputs={"x": value})], ack=0, controls=True)


def test_to_bytes_refuses_oversize_and_unserialisable_bodies() -> None:
    big = start_msg(inputs={"blob": "x" * MAX_BODY_BYTES})
    env = new_envelope("a", "b", messages=[big], ack=0, controls=True)
    with pytest.raises(BadEnvelope, match="fewer messages"):
        env.to_bytes()
    for value in (float("nan"), {1, 2}, datetime.now(UTC), "\udc80"):
        env = new_envelope(
            "a", "b", messages=[start_msg(inputs={"v": value})], ack=0, controls=True
        )
        with pytest.raises(BadEnvelope, match="cannot be written"):
            env.to_bytes()


def test_to_bytes_is_compact_and_ordered_like_the_protocol() -> None:
    env = new_envelope("a", "b", messages=[], ack=0, controls=True, wait=25, now=NOW)
    body = env.to_bytes()
    assert b" " not in body
    assert list(json.loads(body)) == [
        "protocol",
        "id",
        "from",
        "to",
        "created",
        "wait",
        "ack",
        "controls",
        "messages",
    ]


def test_envelope_is_immutable() -> None:
    env = Envelope.from_json(request(), is_request=True)
    with pytest.raises(AttributeError):
        env.ack = 5  # type: ignore[misc]


def test_messages_are_not_mutated_by_validation() -> None:
    obj = request()
    snapshot = copy.deepcopy(obj)
    Envelope.from_json(obj, is_request=True)
    assert obj == snapshot


# --- time helpers -------------------------------------------------------------------------


def test_format_time_round_trips_through_parse_time() -> None:
    for moment in (NOW, NOW.replace(microsecond=0), NOW.replace(microsecond=123456)):
        text = format_time(moment)
        assert text.endswith("Z")
        assert parse_time(text, "t") == moment
    assert format_time(NOW) == "2026-12-04T19:18:07.123Z"
    with pytest.raises(ValueError):
        format_time(datetime(2026, 1, 1))
