"""The receiver check pipeline of PROTOCOL.md section 4, without HTTP or storage."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from flowlink.link.checks import (
    MAX_SKEW_SECONDS,
    STATUS_OF,
    CheckFailure,
    PeerView,
    check_request,
    check_response,
    check_size,
    error_body,
)
from flowlink.link.envelope import PROTOCOL, Envelope, format_time, new_envelope
from flowlink.link.signing import Signer, Verifier
from flowlink.link.strict_json import MAX_BODY_BYTES, dumps_canonical

NOW = datetime(2026, 12, 4, 19, 18, 7, 123000, tzinfo=UTC)
SENDER = "laptop"
RECEIVER = "server"


@pytest.fixture(scope="module")
def sender_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def receiver_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def stranger_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class SeenIds:
    """An in-memory stand-in for the durable seen-id table; records every call."""

    def __init__(self) -> None:
        self.ids: set[tuple[str, str]] = set()
        self.calls: list[tuple[str, str]] = []

    def __call__(self, peer: str, envelope_id: str) -> bool:
        self.calls.append((peer, envelope_id))
        if (peer, envelope_id) in self.ids:
            return True
        self.ids.add((peer, envelope_id))
        return False


class Links:
    """Synch Configs by name; records lookups."""

    def __init__(self, *peers: PeerView) -> None:
        self.peers = {p.name: p for p in peers}
        self.lookups: list[str] = []

    def __call__(self, name: str) -> PeerView | None:
        self.lookups.append(name)
        return self.peers.get(name)


@pytest.fixture
def seen() -> SeenIds:
    return SeenIds()


@pytest.fixture
def links(sender_key: rsa.RSAPrivateKey) -> Links:
    return Links(PeerView(SENDER, True, Verifier(sender_key.public_key())))


def request_obj(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "protocol": PROTOCOL,
        "id": str(uuid.uuid4()),
        "from": SENDER,
        "to": RECEIVER,
        "created": format_time(NOW),
        "wait": 25,
        "ack": 0,
        "controls": True,
        "messages": [{"seq": 1, "type": "execution.cancel", "request_id": str(uuid.uuid4())}],
    }
    obj.update(changes)
    return obj


def signed(key: rsa.RSAPrivateKey, obj: dict[str, Any] | bytes) -> tuple[bytes, str]:
    body = obj if isinstance(obj, bytes) else dumps_canonical(obj)
    return body, Signer(key).sign(body)


def run_request(
    body: bytes,
    signature: str | None,
    *,
    links: Links,
    seen: Callable[[str, str], bool],
    path_name: str = SENDER,
    now: datetime = NOW,
) -> tuple[PeerView, Envelope]:
    return check_request(
        path_name=path_name,
        body=body,
        signature=signature,
        own_name=RECEIVER,
        lookup=links,
        now=now,
        seen=seen,
    )


def failure(expected: str, fn: Callable[..., object], *args: Any, **kwargs: Any) -> CheckFailure:
    with pytest.raises(CheckFailure) as info:
        fn(*args, **kwargs)
    assert info.value.error == expected, info.value.detail
    assert info.value.status == STATUS_OF[expected]
    assert info.value.detail and info.value.detail[0].isupper() and info.value.detail.endswith(".")
    return info.value


# --- the happy path -----------------------------------------------------------------------


def test_valid_request_passes(sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds) -> None:
    obj = request_obj()
    peer, env = run_request(*signed(sender_key, obj), links=links, seen=seen)
    assert peer is links.peers[SENDER]
    assert (env.id, env.from_, env.to, env.created) == (obj["id"], SENDER, RECEIVER, NOW)
    assert seen.calls == [(SENDER, obj["id"])]
    assert links.lookups == [SENDER]


def test_request_built_by_new_envelope_passes(
    sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds
) -> None:
    env = new_envelope(SENDER, RECEIVER, messages=[], ack=5, controls=False, wait=25, now=NOW)
    body = env.to_bytes()
    _, checked = run_request(body, Signer(sender_key).sign(body), links=links, seen=seen)
    assert checked == env


# --- the codes and statuses ---------------------------------------------------------------


def test_status_codes_are_the_protocol_table() -> None:
    assert STATUS_OF == {
        "too_large": 413,
        "unknown_link": 404,
        "link_disabled": 403,
        "bad_signature": 401,
        "bad_envelope": 400,
        "wrong_audience": 401,
        "clock_skew": 401,
        "replay": 401,
    }


def test_check_failure_refuses_unknown_codes() -> None:
    with pytest.raises(ValueError):
        CheckFailure("teapot", "No.")


def test_error_body(sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds) -> None:
    err = failure(
        "unknown_link", run_request, b"{}", None, links=links, seen=seen, path_name="nobody"
    )
    body = error_body(err)
    assert json.loads(body) == {"error": "unknown_link", "detail": err.detail}
    assert list(json.loads(body)) == ["error", "detail"]
    assert b" " not in body.split(b'"detail"')[0]


# --- check 1: size ------------------------------------------------------------------------


def test_check_size_boundary() -> None:
    check_size(0)
    check_size(MAX_BODY_BYTES)
    err = failure("too_large", check_size, MAX_BODY_BYTES + 1)
    assert err.status == 413
    check_size(10, max_bytes=10)
    failure("too_large", check_size, 11, max_bytes=10)


def test_oversize_body_is_too_large_before_anything_else(seen: SeenIds) -> None:
    links = Links()
    body = b" " * (MAX_BODY_BYTES + 1)
    failure("too_large", run_request, body, None, links=links, seen=seen, path_name="nobody")
    assert links.lookups == [] and seen.calls == []


# --- check 2: unknown link ----------------------------------------------------------------


def test_unknown_link(sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds) -> None:
    body, sig = signed(sender_key, request_obj(**{"from": "other"}))
    err = failure("unknown_link", run_request, body, sig, links=links, seen=seen, path_name="other")
    assert "'other'" in err.detail
    assert seen.calls == []


@pytest.mark.parametrize(
    "path_name", ["", "Laptop", "../etc", "a" * 64, "laptop\n", "lap top", "%2e%2e"]
)
def test_invalid_path_names_are_unknown_without_lookup(
    sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds, path_name: str
) -> None:
    body, sig = signed(sender_key, request_obj())
    err = failure(
        "unknown_link", run_request, body, sig, links=links, seen=seen, path_name=path_name
    )
    assert links.lookups == []
    if path_name:
        assert path_name not in err.detail


# --- check 3: disabled --------------------------------------------------------------------


def test_disabled_link(sender_key: rsa.RSAPrivateKey, seen: SeenIds) -> None:
    links = Links(PeerView(SENDER, False, Verifier(sender_key.public_key())))
    failure(
        "link_disabled", run_request, *signed(sender_key, request_obj()), links=links, seen=seen
    )
    assert seen.calls == []


def test_disabled_link_with_bad_signature_answers_link_disabled(
    stranger_key: rsa.RSAPrivateKey, sender_key: rsa.RSAPrivateKey, seen: SeenIds
) -> None:
    links = Links(PeerView(SENDER, False, Verifier(sender_key.public_key())))
    body, _ = signed(stranger_key, request_obj())
    for signature in (None, "garbage", Signer(stranger_key).sign(body)):
        failure("link_disabled", run_request, body, signature, links=links, seen=seen)


# --- check 4: signature -------------------------------------------------------------------


def test_missing_signature(sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds) -> None:
    body, _ = signed(sender_key, request_obj())
    err = failure("bad_signature", run_request, body, None, links=links, seen=seen)
    assert "missing" in err.detail


def test_signature_by_another_key(
    stranger_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds
) -> None:
    failure(
        "bad_signature", run_request, *signed(stranger_key, request_obj()), links=links, seen=seen
    )
    assert seen.calls == []


def test_tampered_body(sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds) -> None:
    body, sig = signed(sender_key, request_obj(ack=1))
    tampered = body.replace(b'"ack":1', b'"ack":9')
    assert tampered != body
    failure("bad_signature", run_request, tampered, sig, links=links, seen=seen)


def test_every_byte_of_a_signed_request_is_protected(
    sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds
) -> None:
    body, sig = signed(sender_key, request_obj(messages=[]))
    for position in range(len(body)):
        tampered = bytearray(body)
        tampered[position] ^= 0x20
        failure("bad_signature", run_request, bytes(tampered), sig, links=links, seen=seen)
    assert seen.calls == []


def test_bad_signature_over_bad_json_answers_bad_signature(
    sender_key: rsa.RSAPrivateKey, stranger_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds
) -> None:
    for body in (b"not json", b'{"a":1,"a":2}', b"[" * 100, b"\xff"):
        for signature in (None, "x..y", Signer(stranger_key).sign(body)):
            failure("bad_signature", run_request, body, signature, links=links, seen=seen)


# --- check 5: envelope --------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"a":1,"a":2}',
        b"[" * 40 + b"]" * 40,
        b"\xff\xfe",
        b"[]",
        b"{}",
        b'{"protocol":"flowlink-sync/1"} trailing',
    ],
)
def test_validly_signed_non_envelope_is_bad_envelope(
    sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds, body: bytes
) -> None:
    failure("bad_envelope", run_request, *signed(sender_key, body), links=links, seen=seen)
    assert seen.calls == []


def test_duplicate_key_envelope_is_bad_envelope(
    sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds
) -> None:
    body = dumps_canonical(request_obj())
    body = body[:-1] + b',"to":"' + RECEIVER.encode() + b'"}'
    err = failure("bad_envelope", run_request, *signed(sender_key, body), links=links, seen=seen)
    assert "duplicate" in err.detail


def test_response_shaped_request_is_bad_envelope(
    sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds
) -> None:
    obj = request_obj(in_reply_to=str(uuid.uuid4()))
    del obj["wait"]
    failure("bad_envelope", run_request, *signed(sender_key, obj), links=links, seen=seen)


def test_bad_envelope_wins_over_audience_skew_and_replay(
    sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds
) -> None:
    obj = request_obj(to="someone-else", created=format_time(NOW - timedelta(hours=1)), ack=-1)
    failure("bad_envelope", run_request, *signed(sender_key, obj), links=links, seen=seen)


# --- check 6: audience --------------------------------------------------------------------


def test_from_must_equal_path_name(
    sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds
) -> None:
    # Signed with the link's key but claiming another sender.
    err = failure(
        "wrong_audience",
        run_request,
        *signed(sender_key, request_obj(**{"from": "mallory"})),
        links=links,
        seen=seen,
    )
    assert "'mallory'" in err.detail and f"'{SENDER}'" in err.detail
    assert seen.calls == []


def test_to_must_be_this_workspace(
    sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds
) -> None:
    err = failure(
        "wrong_audience",
        run_request,
        *signed(sender_key, request_obj(to="server-2")),
        links=links,
        seen=seen,
    )
    assert "'server-2'" in err.detail


def test_audience_is_checked_before_clock_and_replay(
    sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds
) -> None:
    obj = request_obj(to="server-2", created=format_time(NOW - timedelta(hours=2)))
    body, sig = signed(sender_key, obj)
    seen.ids.add((SENDER, obj["id"]))
    failure("wrong_audience", run_request, body, sig, links=links, seen=seen)
    assert seen.calls == []


# --- check 7: clock -----------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-299, -MAX_SKEW_SECONDS, 0, 299, MAX_SKEW_SECONDS, 299.999])
def test_skew_within_300_s_passes(
    sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds, offset: float
) -> None:
    obj = request_obj()
    body, sig = signed(sender_key, obj)
    # now moves instead of created: created keeps its millisecond form.
    run_request(body, sig, links=links, seen=seen, now=NOW - timedelta(seconds=offset))


@pytest.mark.parametrize(
    ("offset", "shown", "direction"),
    [
        (301, 301, "ahead of"),
        (-301, 301, "behind"),
        (300.001, 301, "ahead of"),
        (-300.5, 301, "behind"),
        (412, 412, "ahead of"),
        (-86_400 * 365, 86_400 * 365, "behind"),
    ],
)
def test_skew_beyond_300_s_is_refused(
    sender_key: rsa.RSAPrivateKey,
    links: Links,
    seen: SeenIds,
    offset: float,
    shown: int,
    direction: str,
) -> None:
    body, sig = signed(sender_key, request_obj())
    # created = NOW; the receiver's clock reads NOW - offset, so the sender is offset ahead.
    err = failure(
        "clock_skew",
        run_request,
        body,
        sig,
        links=links,
        seen=seen,
        now=NOW - timedelta(seconds=offset),
    )
    assert f"clock differs from this workspace's by {shown} s;" in err.detail
    assert direction in err.detail
    assert seen.calls == []


def test_skew_is_measured_against_created_in_the_envelope(
    sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds
) -> None:
    for seconds, ok in ((299, True), (301, False), (-299, True), (-301, False)):
        obj = request_obj(created=format_time(NOW + timedelta(seconds=seconds)))
        body, sig = signed(sender_key, obj)
        if ok:
            run_request(body, sig, links=links, seen=seen)
        else:
            failure("clock_skew", run_request, body, sig, links=links, seen=seen)


def test_now_in_another_zone_is_the_same_instant(
    sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds
) -> None:
    body, sig = signed(sender_key, request_obj())
    run_request(
        body, sig, links=links, seen=seen, now=NOW.astimezone(timezone(timedelta(hours=-7)))
    )


def test_naive_now_is_a_programming_error(
    sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds
) -> None:
    body, sig = signed(sender_key, request_obj())
    with pytest.raises(ValueError):
        run_request(body, sig, links=links, seen=seen, now=NOW.replace(tzinfo=None))


def test_clock_is_checked_before_replay(
    sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds
) -> None:
    obj = request_obj(created=format_time(NOW - timedelta(seconds=301)))
    seen.ids.add((SENDER, obj["id"]))
    failure("clock_skew", run_request, *signed(sender_key, obj), links=links, seen=seen)
    assert seen.calls == []


# --- check 8: replay ----------------------------------------------------------------------


def test_replay_is_refused(sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds) -> None:
    body, sig = signed(sender_key, request_obj())
    run_request(body, sig, links=links, seen=seen)
    err = failure("replay", run_request, body, sig, links=links, seen=seen)
    assert json.loads(body)["id"] in err.detail
    # A fresh signature over the same body is still the same envelope id.
    failure("replay", run_request, body, Signer(sender_key).sign(body), links=links, seen=seen)


def test_seen_ids_are_per_peer(sender_key: rsa.RSAPrivateKey, seen: SeenIds) -> None:
    verifier = Verifier(sender_key.public_key())
    links = Links(PeerView(SENDER, True, verifier), PeerView("desk", True, verifier))
    shared_id = str(uuid.uuid4())
    run_request(*signed(sender_key, request_obj(id=shared_id)), links=links, seen=seen)
    run_request(
        *signed(sender_key, request_obj(id=shared_id, **{"from": "desk"})),
        links=links,
        seen=seen,
        path_name="desk",
    )
    assert seen.calls == [(SENDER, shared_id), ("desk", shared_id)]


def test_distinct_ids_are_not_replays(
    sender_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds
) -> None:
    for _ in range(5):
        run_request(*signed(sender_key, request_obj()), links=links, seen=seen)
    assert len(seen.ids) == 5


# --- check_response -----------------------------------------------------------------------


def response_obj(request_id: str, **changes: Any) -> dict[str, Any]:
    obj = request_obj(**{"from": RECEIVER, "to": SENDER, "in_reply_to": request_id})
    del obj["wait"]
    obj.update(changes)
    return obj


def run_response(
    body: bytes,
    signature: str | None,
    *,
    verifier: Verifier,
    request_id: str,
    seen: Callable[[str, str], bool],
    now: datetime = NOW,
) -> Envelope:
    return check_response(
        body=body,
        signature=signature,
        verifier=verifier,
        own_name=SENDER,
        peer_name=RECEIVER,
        request_id=request_id,
        now=now,
        seen=seen,
    )


@pytest.fixture
def receiver_verifier(receiver_key: rsa.RSAPrivateKey) -> Verifier:
    return Verifier(receiver_key.public_key())


def test_valid_response_passes(
    receiver_key: rsa.RSAPrivateKey, receiver_verifier: Verifier, seen: SeenIds
) -> None:
    rid = str(uuid.uuid4())
    obj = response_obj(rid)
    env = run_response(
        *signed(receiver_key, obj), verifier=receiver_verifier, request_id=rid, seen=seen
    )
    assert env.in_reply_to == rid and env.id == obj["id"]
    assert seen.calls == [(RECEIVER, obj["id"])]


def test_response_built_by_new_envelope_passes(
    receiver_key: rsa.RSAPrivateKey, receiver_verifier: Verifier, seen: SeenIds
) -> None:
    rid = str(uuid.uuid4())
    env = new_envelope(
        RECEIVER, SENDER, messages=[], ack=0, controls=False, in_reply_to=rid, now=NOW
    )
    body = env.to_bytes()
    checked = run_response(
        body, Signer(receiver_key).sign(body), verifier=receiver_verifier, request_id=rid, seen=seen
    )
    assert checked == env


def test_response_checks(
    receiver_key: rsa.RSAPrivateKey,
    sender_key: rsa.RSAPrivateKey,
    receiver_verifier: Verifier,
    seen: SeenIds,
) -> None:
    rid = str(uuid.uuid4())

    def expect(code: str, body: bytes, sig: str | None, now: datetime = NOW) -> CheckFailure:
        return failure(
            code,
            run_response,
            body,
            sig,
            verifier=receiver_verifier,
            request_id=rid,
            seen=seen,
            now=now,
        )

    body, sig = signed(receiver_key, response_obj(rid))
    expect("bad_signature", body, None)
    expect("bad_signature", body + b" ", sig)
    expect("bad_signature", *signed(sender_key, response_obj(rid)))
    expect("too_large", b" " * (MAX_BODY_BYTES + 1), sig)
    # A request-shaped body (wait, no in_reply_to) is not a response.
    expect("bad_envelope", *signed(receiver_key, request_obj(**{"from": RECEIVER, "to": SENDER})))
    expect("wrong_audience", *signed(receiver_key, response_obj(rid, **{"from": "mallory"})))
    expect("wrong_audience", *signed(receiver_key, response_obj(rid, to="server")))
    err = expect("wrong_audience", *signed(receiver_key, response_obj(str(uuid.uuid4()))))
    assert rid in err.detail
    expect("clock_skew", body, sig, now=NOW + timedelta(seconds=301))
    expect("clock_skew", body, sig, now=NOW - timedelta(seconds=301))
    assert seen.calls == []
    run_response(
        body,
        sig,
        verifier=receiver_verifier,
        request_id=rid,
        seen=seen,
        now=NOW + timedelta(seconds=299),
    )
    expect("replay", body, sig)


def test_response_in_reply_to_is_checked_before_clock(
    receiver_key: rsa.RSAPrivateKey, receiver_verifier: Verifier, seen: SeenIds
) -> None:
    rid = str(uuid.uuid4())
    obj = response_obj(str(uuid.uuid4()), created=format_time(NOW - timedelta(hours=1)))
    failure(
        "wrong_audience",
        run_response,
        *signed(receiver_key, obj),
        verifier=receiver_verifier,
        request_id=rid,
        seen=seen,
    )


def test_details_never_quote_an_unauthenticated_body(
    stranger_key: rsa.RSAPrivateKey, links: Links, seen: SeenIds
) -> None:
    secret = "s3cr3t-passw0rd"
    obj = request_obj(**{"from": "mallory"})
    obj["messages"] = [
        {
            "seq": 1,
            "type": "execution.start",
            "request_id": str(uuid.uuid4()),
            "flow": secret,
            "inputs": {"password": secret},
        }
    ]
    for body, sig in (signed(stranger_key, obj), (dumps_canonical(obj), None)):
        err = failure("bad_signature", run_request, body, sig, links=links, seen=seen)
        assert secret not in err.detail and secret.encode() not in error_body(err)
