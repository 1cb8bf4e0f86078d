"""Hostile input to the link core: only the documented exceptions, nothing forged accepted.

Properties (PROTOCOL.md sections 3 and 4):
- parse_strict raises nothing but BadJSON, and whatever it returns the stdlib agrees with;
- Envelope.from_bytes / from_json raise nothing but BadEnvelope; an accepted envelope
  re-serialises to an equal one;
- Verifier.verify raises nothing but BadSignature on arbitrary header values;
- check_request raises nothing but CheckFailure, and a signed envelope with any single
  byte of its body or header value changed is never accepted.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowlink.link.checks import CheckFailure, PeerView, check_request
from flowlink.link.envelope import PROTOCOL, BadEnvelope, Envelope, format_time
from flowlink.link.signing import BadSignature, Signer, Verifier
from flowlink.link.strict_json import BadJSON, dumps_canonical, json_depth, parse_strict

NOW = datetime(2026, 12, 4, 19, 18, 7, 123000, tzinfo=UTC)
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Keys are made once per module: hypothesis reruns the test body, not the fixture.
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_SIGNER = Signer(_KEY)
_VERIFIER = Verifier(_KEY.public_key())

ENVELOPE_KEYS = [
    "protocol",
    "id",
    "from",
    "to",
    "created",
    "wait",
    "ack",
    "controls",
    "messages",
    "in_reply_to",
    "seq",
    "type",
    "request_id",
    "flow",
    "inputs",
    "name",
    "parent",
    "execution",
    "listed",
    "status",
    "version",
    "outputs",
    "parent_id",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(
        [
            PROTOCOL,
            "execution.start",
            "execution.update",
            "execution.cancel",
            "RUNNING",
            "ENDED_ERROR",
            "laptop",
            "server",
            "2026-12-04T19:18:07.123Z",
            str(uuid.uuid4()),
            "\u202e",
            "../../etc/passwd",
            "a" * 64,
            "\x00",
        ]
    ),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(
            st.one_of(st.sampled_from(ENVELOPE_KEYS), st.text(max_size=8)), children, max_size=6
        ),
    ),
    max_leaves=40,
)


def valid_request(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "protocol": PROTOCOL,
        "id": str(uuid.uuid4()),
        "from": "laptop",
        "to": "server",
        "created": format_time(NOW),
        "wait": 25,
        "ack": 3,
        "controls": True,
        "messages": [
            {
                "seq": 4,
                "type": "execution.start",
                "request_id": str(uuid.uuid4()),
                "flow": "x",
                "inputs": {"a": [1, {"b": None}]},
                "parent": {"id": 1, "name": "p"},
            },
            {
                "seq": 5,
                "type": "execution.update",
                "request_id": str(uuid.uuid4()),
                "execution": {
                    "id": 2,
                    "flow": "y",
                    "name": "y",
                    "status": "ENDED_SUCCESS",
                    "message": "done",
                    "outputs": {"output_value": 1},
                    "parent_id": None,
                    "created_at": format_time(NOW),
                    "started_at": format_time(NOW),
                    "ended_at": format_time(NOW),
                    "version": 3,
                },
                "listed": True,
            },
            {"seq": 6, "type": "execution.cancel", "request_id": str(uuid.uuid4())},
        ],
    }
    obj.update(changes)
    return obj


def parse_only_badjson(body: bytes) -> Any:
    try:
        return parse_strict(body)
    except BadJSON:
        return BadJSON


def envelope_only_bad(body: bytes, *, is_request: bool) -> Envelope | None:
    try:
        env = Envelope.from_bytes(body, is_request=is_request)
    except BadEnvelope:
        return None
    again = Envelope.from_bytes(env.to_bytes(), is_request=is_request)
    assert again == env
    return env


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_badjson(body: bytes) -> None:
    result = parse_only_badjson(body)
    if result is not BadJSON:
        assert result == json.loads(body)


@FUZZ
@given(json_values)
def test_generated_json_round_trips_or_is_refused_for_a_documented_reason(value: Any) -> None:
    try:
        body = dumps_canonical(value)
    except ValueError:
        return  # lone surrogate in generated text: dumps_canonical refuses it, as documented
    assert parse_only_badjson(body) == value


@FUZZ
@given(
    st.recursive(
        st.text(alphabet='\\"[]{}ab\n', max_size=8),
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(st.text(alphabet='\\"[]{}a', max_size=4), children, max_size=3),
        ),
        max_leaves=60,
    )
)
def test_depth_limit_is_exact_whatever_the_strings_hold(value: Any) -> None:
    body = dumps_canonical(value)
    depth = json_depth(value)
    assert parse_strict(body, max_depth=depth) == value
    if depth > 0:
        with pytest.raises(BadJSON, match="deeper"):
            parse_strict(body, max_depth=depth - 1)


@FUZZ
@given(json_values, st.booleans())
def test_generated_objects_raise_only_bad_envelope(value: Any, is_request: bool) -> None:
    try:
        Envelope.from_json(value, is_request=is_request)
    except BadEnvelope:
        pass


@FUZZ
@given(st.data())
def test_mutated_valid_envelopes_raise_only_bad_envelope(data: st.DataObject) -> None:
    obj = valid_request()
    # Walk to a random container in the envelope and replace, add or delete a member.
    target: Any = obj
    for _ in range(data.draw(st.integers(0, 4))):
        children = (
            [k for k, v in target.items() if isinstance(v, dict | list)]
            if isinstance(target, dict)
            else [i for i, v in enumerate(target) if isinstance(v, dict | list)]
        )
        if not children:
            break
        target = target[data.draw(st.sampled_from(children))]
    action = data.draw(st.sampled_from(["replace", "add", "delete"]))
    if isinstance(target, dict):
        keys = list(target)
        if action == "delete" and keys:
            del target[data.draw(st.sampled_from(keys))]
        elif action == "add":
            target[data.draw(st.sampled_from(ENVELOPE_KEYS))] = data.draw(json_values)
        elif keys:
            target[data.draw(st.sampled_from(keys))] = data.draw(json_values)
    elif isinstance(target, list) and target:
        index = data.draw(st.integers(0, len(target) - 1))
        if action == "delete":
            del target[index]
        else:
            target[index] = data.draw(json_values)
    try:
        body = dumps_canonical(obj)
    except ValueError:
        return
    envelope_only_bad(body, is_request=data.draw(st.booleans()))


@FUZZ
@given(st.data())
def test_byte_mutations_of_a_valid_body_raise_only_bad_envelope(data: st.DataObject) -> None:
    body = bytearray(dumps_canonical(valid_request()))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        position = data.draw(st.integers(0, len(body) - 1))
        if op == "flip":
            body[position] = data.draw(st.integers(0, 255))
        elif op == "insert":
            body[position:position] = data.draw(
                st.sampled_from(
                    [b"[", b"{", b'"', b"\\", b",", b"\xff", b"\\ud800", b'"a":1,', b"9" * 80]
                )
            )
        elif op == "delete":
            del body[position]
        else:
            del body[position:]
        if not body:
            body = bytearray(b"{")
    envelope_only_bad(bytes(body), is_request=True)


@FUZZ
@given(
    st.one_of(
        st.none(),
        st.text(max_size=600),
        st.text(alphabet="ABCabc012-_.=+/ ", max_size=600),
        st.builds(
            lambda h, s: f"{h}..{s}",
            st.text(alphabet="ABCDEFabcdef0123456789-_", max_size=400),
            st.text(alphabet="ABCDEFabcdef0123456789-_", max_size=400),
        ),
    )
)
def test_arbitrary_header_values_raise_only_bad_signature(value: str | None) -> None:
    with pytest.raises(BadSignature):
        _VERIFIER.verify(value, b"{}")


@FUZZ
@given(json_values)
def test_arbitrary_protected_headers_raise_only_bad_signature(header: Any) -> None:
    try:
        raw = dumps_canonical(header)
    except ValueError:
        return
    protected = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    with pytest.raises(BadSignature):
        _VERIFIER.verify(f"{protected}..{_SIGNER.sign(b'{}').split('.')[2]}", b"{}")


_SIGNED_BODY = dumps_canonical(valid_request())
_SIGNED_HEADER = _SIGNER.sign(_SIGNED_BODY)


def _check(body: bytes, signature: str | None, seen: set[str]) -> Envelope:
    def seen_fn(peer: str, envelope_id: str) -> bool:
        if envelope_id in seen:
            return True
        seen.add(envelope_id)
        return False

    _, env = check_request(
        path_name="laptop",
        body=body,
        signature=signature,
        own_name="server",
        lookup=lambda name: PeerView(name, True, _VERIFIER) if name == "laptop" else None,
        now=NOW,
        seen=seen_fn,
    )
    return env


def test_the_unmutated_signed_envelope_is_accepted() -> None:
    # The baseline the mutation properties below depend on.
    assert _check(_SIGNED_BODY, _SIGNED_HEADER, set()).from_ == "laptop"


@FUZZ
@given(st.data())
def test_mutated_signed_envelopes_are_never_accepted(data: st.DataObject) -> None:
    body = bytearray(_SIGNED_BODY)
    header = _SIGNED_HEADER
    if data.draw(st.booleans()):
        position = data.draw(st.integers(0, len(body) - 1))
        body[position] ^= data.draw(st.integers(1, 255))
    else:
        position = data.draw(st.integers(0, len(header) - 1))
        replacement = data.draw(
            st.characters(codec="ascii").filter(lambda c: c != header[position])
        )
        header = header[:position] + replacement + header[position + 1 :]
    with pytest.raises(CheckFailure) as info:
        _check(bytes(body), header, set())
    assert info.value.error == "bad_signature"


@FUZZ
@given(st.binary(max_size=200), st.one_of(st.none(), st.text(max_size=50)), st.text(max_size=70))
def test_check_request_raises_only_check_failure(
    body: bytes, signature: str | None, path: str
) -> None:
    with pytest.raises(CheckFailure) as info:
        check_request(
            path_name=path,
            body=body,
            signature=signature,
            own_name="server",
            lookup=lambda name: PeerView(name, True, _VERIFIER),
            now=NOW,
            seen=lambda peer, envelope_id: False,
        )
    assert info.value.status in (400, 401, 403, 404, 413)


@FUZZ
@given(st.data())
def test_validly_signed_mutations_raise_only_check_failure(data: st.DataObject) -> None:
    # The peer's own key signs hostile content: checks 5-8 must still hold.
    obj = copy.deepcopy(valid_request())
    key = data.draw(st.sampled_from(list(obj)))
    obj[key] = data.draw(json_values)
    try:
        body = dumps_canonical(obj)
    except ValueError:
        return
    try:
        env = _check(body, _SIGNER.sign(body), set())
    except CheckFailure as exc:
        assert exc.error in ("bad_envelope", "wrong_audience", "clock_skew")
        return
    assert env == Envelope.from_bytes(env.to_bytes(), is_request=True)
