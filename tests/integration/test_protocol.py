"""PROTOCOL.md sections 2-6 held against a real `flowlink serve`, one hand-built envelope at a time.

One `flowlink serve` process (workspace "b", file secret store) runs for the whole module, with a
Synch Config for a peer "a" whose RSA key pair this module made and holds. The module plays "a":
it builds envelopes with ``new_envelope`` (or as raw bytes when they must be malformed), signs
them with ``Signer`` or by hand, and POSTs them with httpx over TLS verified against b's CA, on
127.0.0.1 only, with a timeout on every call. b's effects are read from its SQLite file opened
read-only. The serve process is restarted once (replay across restarts) and must exit 0 on
SIGTERM each time.

The tests run in file order and share the peer's seq and ack, as one link's history would.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import padding

from flowlink.link.envelope import PROTOCOL, Envelope
from flowlink.link.signing import HEADER_NAME, BadSignature, Signer, b64url_encode
from flowlink.link.strict_json import MAX_BODY_BYTES, json_depth
from flowlink.workspace.identity import generate_private_key, key_id
from link_fixtures import (
    HEALTH_PATH,
    HOST,
    SYNC_PATH,
    HandPeer,
    ServedWorkspace,
    https_client,
    run_cli,
    serve_workspace,
    wait_until,
)

pytestmark = pytest.mark.xdist_group("link-protocol")

ECHO = """\
def handler(system, this, inputs):
    this.save(output_value=inputs)
    return this.success('echoed')
"""
SECRET = """\
def handler(system, this):
    return this.success('the secret flow ran')
"""
CANARY = "hunter2-canary-0f3e"  # placed in refused bodies: no detail may echo it
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
OTHER_KEY = generate_private_key(2048)  # a key b does not know


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> ServedWorkspace:
    ws = serve_workspace(
        tmp_path_factory.mktemp("protocol"), "b", peer="a",
        flows={"echo": ECHO, "secret": SECRET}, link_args=["--allow-flows", "echo"],
    )
    yield ws
    if ws.serve.running:
        assert ws.serve.stop() == 0, ws.serve.log_tail()


@pytest.fixture(scope="module")
def peer(served: ServedWorkspace) -> HandPeer:
    p = served.peer("a", "b")
    yield p
    p.client.close()


@pytest.fixture(scope="module")
def accepted_early(peer: HandPeer) -> tuple[bytes, str]:
    """An envelope b accepted near the start of the module (replayed after the restart)."""
    body = peer.envelope().to_bytes()
    signature = peer.sign(body)
    assert peer.post(body, signature).status_code == 200
    return body, signature


# -- helpers ---------------------------------------------------------------------------------


def refused(response: httpx.Response, status: int, code: str, *, sent: bytes = b"",
            signature: str | None = None) -> str:
    """Assert a §4 refusal: status, unsigned JSON body {"error","detail"}, a clean sentence."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers.get("content-type", "").startswith("application/json")
    assert HEADER_NAME.lower() not in {k.lower() for k in response.headers}, "errors are unsigned"
    body = json.loads(response.content)
    assert isinstance(body, dict) and set(body) == {"error", "detail"}, body
    assert body["error"] == code, body
    detail = body["detail"]
    assert isinstance(detail, str) and 10 <= len(detail) <= 400, detail
    # A sentence: a capital letter or a member path ("messages[0].seq must ...") first.
    assert re.match(r"[A-Z]|messages\[\d+\]", detail) and detail.endswith("."), \
        f"not a sentence: {detail!r}"
    assert not re.search(r"[\x00-\x1f\x7f]", detail), detail
    for secret in ("PRIVATE KEY", "-----BEGIN", CANARY):
        assert secret not in detail, detail
    if signature and signature.rsplit(".", 1)[-1]:
        assert signature.rsplit(".", 1)[-1][:16] not in detail, "the detail echoes the signature"
    if len(sent) > 64:
        assert sent[:64].decode("utf-8", "replace") not in detail, "the detail echoes the body"
    return detail


def db_value(served: ServedWorkspace, sql: str, *params: Any) -> Any:
    conn = served.db()
    try:
        row = conn.execute(sql, params).fetchone()
        return None if row is None else row[0]
    finally:
        conn.close()


def executions_for(served: ServedWorkspace, request_id: str) -> list[dict[str, Any]]:
    conn = served.db()
    try:
        rows = conn.execute("SELECT * FROM executions WHERE request_id = ?", (request_id,))
        return [dict(r) for r in rows.fetchall()]
    finally:
        conn.close()


def poll_updates(peer: HandPeer, request_id: str, until: Any, timeout: float = 20.0
                 ) -> list[dict[str, Any]]:
    """Exchange (wait=2) until ``until(updates)`` holds for the updates about ``request_id``."""
    deadline = time.monotonic() + timeout
    while True:
        updates = peer.updates_for(request_id)
        if until(updates):
            return updates
        if time.monotonic() > deadline:
            raise AssertionError(f"no matching updates for {request_id} in {timeout:g} s: {updates}")
        peer.exchange(wait=2)


def ended(updates: list[dict[str, Any]]) -> bool:
    return any(u["execution"]["status"].startswith("ENDED_") for u in updates)


def drain(peer: HandPeer, served: ServedWorkspace, timeout: float = 20.0) -> None:
    """Exchange until b has nothing queued for a above a's ack and every execution has ended."""
    def quiet() -> bool:
        peer.exchange()
        busy = db_value(served, "SELECT count(*) FROM executions WHERE status NOT LIKE 'ENDED_%'")
        pending = db_value(served, "SELECT count(*) FROM outbox WHERE link = 'a' AND seq > ?",
                           peer.ack)
        return busy == 0 and pending == 0

    wait_until(quiet, timeout, "b to have nothing left for a", interval=0.05)


def header_b64(**members: Any) -> str:
    return b64url_encode(json.dumps(members, separators=(",", ":")).encode())


def pss_signature(key: Any, protected: str, body: bytes) -> str:
    signature = key.sign(protected.encode("ascii") + b"." + body, PSS, hashes.SHA256())
    return f"{protected}..{b64url_encode(signature)}"


def request_dict(peer: HandPeer, **changes: Any) -> dict[str, Any]:
    obj = peer.envelope().to_json()
    obj.update(changes)
    return obj


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def update_message(seq: int, outputs: dict[str, Any]) -> dict[str, Any]:
    """An execution.update for a request b never made: applied (seq moves), no effect."""
    return {
        "seq": seq, "type": "execution.update", "request_id": str(uuid.uuid4()),
        "execution": {
            "id": 1, "flow": "x", "name": "x", "status": "RUNNING", "message": None,
            "outputs": outputs, "parent_id": None, "created_at": "2026-01-01T00:00:00Z",
            "started_at": None, "ended_at": None, "version": 1,
        },
        "listed": False,
    }


def raw_https(served: ServedWorkspace, head: bytes, body_parts: list[bytes],
              timeout: float = 10.0) -> tuple[int, bytes]:
    """Write a request head and body parts on a TLS socket, then read one response."""
    context = ssl.create_default_context(cafile=str(served.ca_file))
    with socket.create_connection((HOST, served.serve.port), timeout=timeout) as sock, \
            context.wrap_socket(sock, server_hostname=HOST) as tls:
        tls.sendall(head)
        for part in body_parts:
            tls.sendall(part)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
        head_bytes, _, rest = data.partition(b"\r\n\r\n")
        status = int(head_bytes.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: *(\d+)", head_bytes).group(1))
        while len(rest) < length:
            chunk = tls.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, rest[:length]


# -- section 2: endpoint ---------------------------------------------------------------------


def test_health_answers_ok_without_auth_or_names(served: ServedWorkspace, peer: HandPeer) -> None:
    response = peer.client.get(served.serve.url + HEALTH_PATH, timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert set(response.headers) <= {"content-length", "content-type"}, response.headers
    assert b"b" not in response.content.replace(b"status", b"")  # no workspace name in it


# -- the 200 path ----------------------------------------------------------------------------


def test_valid_request_gets_a_response_signed_by_b(served: ServedWorkspace, peer: HandPeer,
                                                   accepted_early: tuple[bytes, str]) -> None:
    request = peer.envelope()
    response = peer.post(request.to_bytes())
    assert response.status_code == 200, response.text
    signature = response.headers[HEADER_NAME]
    served.own_verifier.verify(signature, response.content)  # b's key, over the raw bytes
    reply = Envelope.from_bytes(response.content, is_request=False)
    assert reply.protocol == PROTOCOL
    assert reply.in_reply_to == request.id and reply.id != request.id
    assert (reply.from_, reply.to) == ("b", "a")
    assert reply.controls is False  # b's config for a has no Remote URL
    assert abs((reply.created - datetime.now(UTC)).total_seconds()) < 60
    # The check can fail: one changed byte of the response no longer verifies.
    tampered = response.content.replace(b'"to":"a"', b'"to":"c"')
    with pytest.raises(BadSignature):
        served.own_verifier.verify(signature, tampered)


@pytest.fixture(scope="module")
def first_start(served: ServedWorkspace, peer: HandPeer) -> dict[str, Any]:
    """execution.start seq 1 for the allowed flow 'echo', run to its end."""
    message = peer.start_message("echo", {"k": "v"})
    assert message["seq"] == 1
    _request, _response, reply = peer.exchange([message])
    assert reply.ack == 1, "b acknowledges seq 1 in the answer to it"
    # Persisted in the same transaction that recorded seq 1 (section 3).
    [row] = executions_for(served, message["request_id"])
    assert db_value(served, "SELECT in_seq FROM link_state WHERE name = 'a'") == 1
    updates = poll_updates(peer, message["request_id"], ended)
    return {"message": message, "execution_id": row["id"], "updates": updates}


def test_start_creates_one_execution_and_updates_rise_to_success(
        served: ServedWorkspace, first_start: dict[str, Any]) -> None:
    updates = first_start["updates"]
    request_id = first_start["message"]["request_id"]
    versions = [u["execution"]["version"] for u in updates]
    assert versions == sorted(set(versions)), f"versions must rise: {versions}"
    assert [u["seq"] for u in updates] == sorted(u["seq"] for u in updates)
    last = updates[-1]["execution"]
    assert last["status"] == "ENDED_SUCCESS", last
    assert last["message"] == "echoed"
    assert last["outputs"] == {"k": "v"}
    assert last["id"] == first_start["execution_id"] and last["parent_id"] is None
    assert all(u["listed"] is False for u in updates)  # send-all is off
    assert all(not u["execution"]["status"].startswith("ENDED_") for u in updates[:-1])
    [row] = executions_for(served, request_id)
    assert row["status"] == "ENDED_SUCCESS" and json.loads(row["inputs"]) == {"k": "v"}
    assert db_value(served, "SELECT count(*) FROM executions") == 1


def test_redelivered_seq_has_no_second_effect(served: ServedWorkspace, peer: HandPeer,
                                              first_start: dict[str, Any]) -> None:
    before = db_value(served, "SELECT count(*) FROM executions")
    message = first_start["message"]
    _request, _response, reply = peer.exchange([message])  # a new envelope id, the same seq 1
    assert reply.ack == 1
    # seq 1 again but with other content: still "applied before", so ignored.
    impostor = peer.start_message("echo", {"k": "other"}, seq=1)
    peer.exchange([impostor])
    assert db_value(served, "SELECT count(*) FROM executions") == before
    assert executions_for(served, impostor["request_id"]) == []
    assert len(executions_for(served, message["request_id"])) == 1
    assert db_value(served, "SELECT in_seq FROM link_state WHERE name = 'a'") == 1


def test_repeated_request_id_starts_nothing_and_answers_the_state(
        served: ServedWorkspace, peer: HandPeer, first_start: dict[str, Any]) -> None:
    before = db_value(served, "SELECT count(*) FROM executions")
    request_id = first_start["message"]["request_id"]
    last_seq = first_start["updates"][-1]["seq"]
    again = peer.start_message("echo", {"k": "v"}, request_id=request_id)
    assert again["seq"] == 2
    # Resent from a's last ack, as a sender does: seq 1 (applied before) is skipped, 2 applies.
    _request, _response, reply = peer.exchange([first_start["message"], again])
    assert reply.ack == 2
    updates = poll_updates(peer, request_id, lambda us: any(u["seq"] > last_seq for u in us))
    answer = [u for u in updates if u["seq"] > last_seq][0]["execution"]
    assert answer["id"] == first_start["execution_id"]
    assert answer["status"] == "ENDED_SUCCESS" and answer["outputs"] == {"k": "v"}
    assert db_value(served, "SELECT count(*) FROM executions") == before
    assert len(executions_for(served, request_id)) == 1


@pytest.mark.parametrize(
    ("flow", "controls", "reason"),
    [
        ("secret", True, r"may not run flow 'secret'.*Allowed flows are: echo"),
        ("no-such-flow", True, r"no flow 'no-such-flow'"),
        ("echo", False, r"does not control"),
    ],
    ids=["not-in-allow-list", "no-such-flow", "controls-false"],
)
def test_refused_start_is_answered_ended_error_with_reason(
        served: ServedWorkspace, peer: HandPeer, first_start: dict[str, Any],
        flow: str, controls: bool, reason: str) -> None:
    message = peer.start_message(flow, {"k": 1})
    peer.exchange([message], controls=controls)
    updates = poll_updates(peer, message["request_id"], ended)
    final = updates[-1]["execution"]
    assert final["status"] == "ENDED_ERROR", final
    assert re.search(reason, final["message"]), final["message"]
    assert final["started_at"] is None
    [row] = executions_for(served, message["request_id"])
    assert row["status"] == "ENDED_ERROR" and row["started_at"] is None, "nothing ran"


def test_ack_prunes_the_outbox(served: ServedWorkspace, peer: HandPeer,
                               first_start: dict[str, Any]) -> None:
    acked_before = peer.ack
    message = peer.start_message("echo", {"n": 1})
    peer.exchange([message])
    poll_updates(peer, message["request_id"], ended)
    top = peer.ack
    assert top > acked_before
    queued = "SELECT count(*) FROM outbox WHERE link = 'a' AND seq <= ?"
    # Received but not yet acknowledged: still queued, and resent to a request that acks less.
    assert db_value(served, queued, top) > 0
    _request, _response, resent = peer.exchange(ack=acked_before, track=False)
    assert [m["seq"] for m in resent.messages][-1] == top
    assert all(m["seq"] > acked_before for m in resent.messages)
    # Acknowledged: pruned, and never sent again.
    _request, _response, reply = peer.exchange(ack=top)
    assert db_value(served, queued, top) == 0
    assert all(m["seq"] > top for m in reply.messages)
    _request, _response, reply = peer.exchange(ack=top)
    assert all(m["seq"] > top for m in reply.messages)


# -- section 5: long poll --------------------------------------------------------------------


def test_long_poll_with_nothing_queued_returns_after_wait(served: ServedWorkspace,
                                                          peer: HandPeer) -> None:
    drain(peer, served)
    started = time.monotonic()
    _request, _response, reply = peer.exchange(wait=2, timeout=15)
    elapsed = time.monotonic() - started
    assert reply.messages == []
    assert elapsed >= 1.5, f"a wait=2 poll with nothing queued returned after {elapsed:.2f} s"


def test_long_poll_returns_early_when_b_queues_a_message(served: ServedWorkspace,
                                                          peer: HandPeer) -> None:
    drain(peer, served)
    poll = peer.envelope(wait=25)
    result: dict[str, Any] = {}

    def standing() -> None:
        try:
            result["reply"] = peer.send(poll, timeout=40)[1]
        except BaseException as exc:  # reported below
            result["error"] = exc
        result["at"] = time.monotonic()

    thread = threading.Thread(target=standing, daemon=True)
    thread.start()
    # The poll has passed the checks once its id is in b's seen table: it is standing now.
    wait_until(lambda: db_value(served, "SELECT 1 FROM seen_envelopes WHERE id = ?", poll.id),
               10, "the long poll to reach b")
    message = peer.start_message("echo", {"woke": True})
    started = time.monotonic()
    peer.exchange([message])
    thread.join(timeout=30)
    assert not thread.is_alive(), "the long poll did not return"
    assert "error" not in result, result.get("error")
    assert result["at"] - started < 10, "the long poll was not answered when b queued a message"
    carried = [m for m in result["reply"].messages
               if m["type"] == "execution.update" and m["request_id"] == message["request_id"]]
    assert carried, result["reply"].messages
    poll_updates(peer, message["request_id"], ended)


# -- section 4: signature (check 4) ---------------------------------------------------------


def _signature_cases(peer_key: Any, peer_pub_pem: bytes) -> dict[str, Any]:
    kid = key_id(peer_key.public_key())
    good = header_b64(alg="PS256", kid=kid, b64=False, crit=["b64"])

    def hs256(body: bytes) -> str:
        protected = header_b64(alg="HS256", kid=kid, b64=False, crit=["b64"])
        mac = hmac.HMAC(peer_pub_pem, hashes.SHA256())
        mac.update(protected.encode() + b"." + body)
        return f"{protected}..{b64url_encode(mac.finalize())}"

    def rs256(body: bytes) -> str:
        protected = header_b64(alg="RS256", kid=kid, b64=False, crit=["b64"])
        sig = peer_key.sign(protected.encode() + b"." + body, padding.PKCS1v15(), hashes.SHA256())
        return f"{protected}..{b64url_encode(sig)}"

    def tampered_body(body: bytes) -> tuple[bytes, str]:
        signature = Signer(peer_key).sign(body)
        return body.replace(b'"ack":', b'"ack":1', 1), signature

    return {
        "tampered-body": tampered_body,
        "wrong-key-own-kid": lambda b: (b, Signer(OTHER_KEY).sign(b)),
        "wrong-key-claiming-a-kid": lambda b: (b, pss_signature(OTHER_KEY, good, b)),
        "wrong-kid-right-key": lambda b: (b, pss_signature(
            peer_key, header_b64(alg="PS256", kid=key_id(OTHER_KEY.public_key()), b64=False,
                                 crit=["b64"]), b)),
        "alg-none": lambda b: (b, header_b64(alg="none", kid=kid, b64=False, crit=["b64"]) + ".."),
        "alg-none-with-signature": lambda b: (b, header_b64(
            alg="none", kid=kid, b64=False, crit=["b64"]) + ".." + b64url_encode(b"x" * 256)),
        "hs256-with-public-key": lambda b: (b, hs256(b)),
        "rs256": lambda b: (b, rs256(b)),
        "b64-true": lambda b: (b, pss_signature(
            peer_key, header_b64(alg="PS256", kid=kid, b64=True, crit=["b64"]), b)),
        "no-crit": lambda b: (b, pss_signature(peer_key, header_b64(alg="PS256", kid=kid,
                                                                    b64=False), b)),
        "missing-header": lambda b: (b, None),
        "empty-header": lambda b: (b, ""),
        "not-a-jws": lambda b: (b, "not a signature"),
        "attached-payload": lambda b: (b, Signer(peer_key).sign(b).replace(
            "..", "." + b64url_encode(b) + ".")),
        "signature-of-another-body": lambda b: (b, Signer(peer_key).sign(b + b" ")),
    }


CASES = list(_signature_cases(OTHER_KEY, b"").keys())


@pytest.mark.parametrize("case", CASES)
def test_bad_signature_is_refused(served: ServedWorkspace, peer: HandPeer, case: str) -> None:
    cases = _signature_cases(served.peer_key, served.peer_pub_file.read_bytes())
    body, signature = cases[case](peer.envelope().to_bytes())
    response = peer.post(body, signature)
    detail = refused(response, 401, "bad_signature", signature=signature)
    if case == "missing-header":
        assert "missing" in detail
    if case in ("alg-none-with-signature", "hs256-with-public-key", "rs256"):
        assert "only PS256" in detail
    # The same body, correctly signed, is accepted: the refusal was the signature's alone.
    if case not in ("tampered-body",):
        assert peer.post(body).status_code == 200


# -- checks 6, 7, 8 -------------------------------------------------------------------------


def test_wrong_to_is_refused(peer: HandPeer) -> None:
    body = peer.envelope(to="c").to_bytes()
    detail = refused(peer.post(body), 401, "wrong_audience")
    assert "'c'" in detail


def test_from_not_the_path_name_is_refused(peer: HandPeer) -> None:
    body = peer.envelope(from_="c").to_bytes()
    detail = refused(peer.post(body), 401, "wrong_audience")
    assert "'c'" in detail and "'a'" in detail


@pytest.mark.parametrize("offset", [-400, 400, -1800, 86400 * 365], ids=["past", "future",
                                                                          "far-past", "next-year"])
def test_clock_skew_past_300_s_is_refused_naming_the_skew(peer: HandPeer, offset: int) -> None:
    body = peer.envelope(now=datetime.now(UTC) + timedelta(seconds=offset)).to_bytes()
    detail = refused(peer.post(body), 401, "clock_skew")
    seconds = int(re.search(r"by (\d+) s", detail).group(1))
    assert abs(offset) - 2 <= seconds <= abs(offset) + 2, detail
    assert ("ahead of" if offset > 0 else "behind") in detail


@pytest.mark.parametrize("offset", [-280, 280])
def test_skew_within_300_s_is_accepted(peer: HandPeer, offset: int) -> None:
    body = peer.envelope(now=datetime.now(UTC) + timedelta(seconds=offset)).to_bytes()
    assert peer.post(body).status_code == 200


def test_replayed_id_is_refused(peer: HandPeer) -> None:
    body = peer.envelope().to_bytes()
    signature = peer.sign(body)
    assert peer.post(body, signature).status_code == 200
    detail = refused(peer.post(body, signature), 401, "replay")
    assert "already received" in detail
    # The same id in a re-signed, otherwise different body is a replay too.
    obj = json.loads(body)
    obj["ack"] = peer.ack
    obj["controls"] = not obj["controls"]
    refused(peer.post(dumps(obj)), 401, "replay")


# -- check 1: size -------------------------------------------------------------------------


def padded(peer: HandPeer, size: int) -> bytes:
    """A valid request padded with trailing whitespace (strict JSON allows it) to ``size``."""
    body = peer.envelope().to_bytes()
    return body + b" " * (size - len(body))


def test_body_of_exactly_4_mib_is_accepted(peer: HandPeer) -> None:
    body = padded(peer, MAX_BODY_BYTES)
    assert peer.post(body, timeout=30).status_code == 200


def test_oversize_body_by_content_length_is_refused(peer: HandPeer) -> None:
    body = padded(peer, MAX_BODY_BYTES + 1)
    refused(peer.post(body, timeout=30), 413, "too_large")


def test_oversize_content_length_is_refused_before_the_body_is_read(
        served: ServedWorkspace) -> None:
    head = (f"POST {SYNC_PATH.format(name='a')} HTTP/1.1\r\nHost: {HOST}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {64 * MAX_BODY_BYTES}\r\n"
            f"{HEADER_NAME}: x..y\r\n\r\n").encode()
    status, body = raw_https(served, head, [b"{"])  # 256 MiB announced, one byte sent
    assert status == 413 and json.loads(body)["error"] == "too_large"


def test_oversize_chunked_body_is_refused(peer: HandPeer) -> None:
    chunk = b" " * 65536
    sent = {"bytes": 0}

    def stream() -> Any:
        while sent["bytes"] <= MAX_BODY_BYTES:
            sent["bytes"] += len(chunk)
            yield chunk

    response = peer.post(stream(), "x..y", timeout=30)  # no Content-Length: chunked
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    refused(response, 413, "too_large")


def test_oversize_chunked_body_is_refused_while_streaming(served: ServedWorkspace) -> None:
    head = (f"POST {SYNC_PATH.format(name='a')} HTTP/1.1\r\nHost: {HOST}\r\n"
            f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            f"{HEADER_NAME}: x..y\r\n\r\n").encode()
    piece = 64 * 1024
    chunk = f"{piece:x}\r\n".encode() + b" " * piece + b"\r\n"
    parts = [chunk] * (MAX_BODY_BYTES // piece + 2)  # just over 4 MiB, never terminated
    status, body = raw_https(served, head, parts)
    assert status == 413 and json.loads(body)["error"] == "too_large"


# -- check 5: strict JSON of the envelope shape ------------------------------------------------


def _bad_envelopes(peer: HandPeer) -> dict[str, bytes]:
    good = request_dict(peer)
    text = dumps(good).decode()
    deep_outputs: Any = {}
    for _ in range(28):  # outputs sit at depth 5 (envelope, messages, message, execution)
        deep_outputs = {"d": deep_outputs}
    deep = {**good, "messages": [update_message(1, deep_outputs)]}
    assert json_depth(deep) == 33
    ack = re.compile(r'"ack":\d+')
    return {
        "malformed-json": text[:-1].encode(),
        "not-json": f"{CANARY} is not JSON".encode(),
        "trailing-garbage": text.encode() + b"x",
        "duplicate-key": text.replace('"ack":', '"ack":0,"ack":', 1).encode(),
        "duplicate-key-escaped": text.replace('{"protocol"', '{"\\u0061ck":0,"protocol"', 1).encode(),
        "depth-33": dumps(deep),
        "non-utf8": text.encode().replace(b'"a"', b'"\xff"', 1),
        "bom": b"\xef\xbb\xbf" + text.encode(),
        "nan": ack.sub('"ack":NaN', text, count=1).encode(),
        "huge-int": ack.sub('"ack":' + "9" * 70, text, count=1).encode(),
        "ack-2^63": ack.sub(f'"ack":{2**63}', text, count=1).encode(),
        "negative-ack": ack.sub('"ack":-1', text, count=1).encode(),
        "wait-26": dumps({**good, "wait": 26}),
        "bool-ack": dumps({**good, "ack": True}),
        "unknown-member": dumps({**good, "x": CANARY}),
        "missing-messages": dumps({k: v for k, v in good.items() if k != "messages"}),
        "in-reply-to-on-request": dumps({**good, "in_reply_to": str(uuid.uuid4())}),
        "wrong-protocol": dumps({**good, "protocol": "flowlink-sync/2"}),
        "id-not-uuid4": dumps({**good, "id": str(uuid.uuid1())}),
        "created-not-utc": dumps({**good, "created": "2026-12-04T19:18:07+01:00"}),
        "array": dumps([good]),
        "lone-surrogate": text.replace('"a"', '"\\ud800"', 1).encode(),
        "seq-gap": dumps({**good, "messages": [update_message(5, {}), update_message(7, {})]}),
        "unknown-type": dumps({**good, "messages": [{"seq": 1, "type": "shell.exec"}]}),
    }


BAD = list(_bad_envelopes(HandPeer("a", "b", None, None, None, lambda: "")).keys())


@pytest.mark.parametrize("case", BAD)
def test_bad_envelope_is_refused(peer: HandPeer, case: str) -> None:
    body = _bad_envelopes(peer)[case]
    detail = refused(peer.post(body), 400, "bad_envelope", sent=body)
    if case.startswith("duplicate"):
        assert "duplicate" in detail
    if case == "depth-33":
        assert "deeper than 32" in detail


def test_depth_32_is_accepted(served: ServedWorkspace, peer: HandPeer) -> None:
    deep: Any = {}
    for _ in range(27):  # outputs sit at depth 5 (envelope, messages, message, execution)
        deep = {"d": deep}
    seq = peer.take_seq()
    request = peer.envelope([update_message(seq, deep)])
    assert json_depth(request.to_json()) == 32
    _response, reply = peer.send(request)
    assert reply.ack == seq  # applied (a no-op: b never made that request)
    assert db_value(served, "SELECT in_seq FROM link_state WHERE name = 'a'") == seq


# -- checks 2 and 3: unknown and disabled links --------------------------------------------------


@pytest.mark.parametrize("name", ["zz", "c", "Not-A-Name", "a--", "-a", "x" * 64, "%C3%A9",
                                  "a%2Fb", "%2E%2E%2Fa", "", "a%00", "a%0A", "a%2F%0A"])
def test_unknown_link_is_404(peer: HandPeer, name: str) -> None:
    body = peer.envelope(from_="zz").to_bytes()
    refused(peer.post(body, path_name=name), 404, "unknown_link")


def test_disabled_link_is_403_until_enabled(served: ServedWorkspace, peer: HandPeer) -> None:
    run_cli(served.data_dir, "link", "set", "a", "--disabled")
    try:
        def disabled() -> bool:
            return peer.post(peer.envelope().to_bytes()).status_code == 403

        wait_until(disabled, 10, "b to refuse the disabled link")
        body = peer.envelope().to_bytes()
        detail = refused(peer.post(body), 403, "link_disabled")
        assert "disabled" in detail
        # Check 3 comes before check 4: a bad signature still reads "disabled".
        refused(peer.post(body, "x..y"), 403, "link_disabled")
        refused(peer.post(body, None), 403, "link_disabled")
        # A start sent meanwhile is refused whole: nothing runs, seq does not move.
        before = db_value(served, "SELECT count(*) FROM executions")
        in_seq = db_value(served, "SELECT in_seq FROM link_state WHERE name = 'a'")
        message = peer.start_message("echo", seq=in_seq + 1)
        refused(peer.post(peer.envelope([message]).to_bytes()), 403, "link_disabled")
        assert db_value(served, "SELECT count(*) FROM executions") == before
        assert db_value(served, "SELECT in_seq FROM link_state WHERE name = 'a'") == in_seq
    finally:
        run_cli(served.data_dir, "link", "set", "a", "--enabled")
    wait_until(lambda: peer.post(peer.envelope().to_bytes()).status_code == 200, 10,
               "b to accept the link again")
    # Enabling kept the rest of the config: the allow-list still holds.
    config = run_cli(served.data_dir, "link", "show", "a").stdout
    assert re.search(r"Allowed flows:\s+echo", config), config


# -- order of the checks: the first failure answers -----------------------------------------------


def test_check_order_when_two_fail(peer: HandPeer) -> None:
    good = request_dict(peer)
    skewed = {**good, "created": "2020-01-01T00:00:00.000Z"}
    cases = [
        # (what, body, signature, path, status, code)
        ("too large + unknown link", b" " * (MAX_BODY_BYTES + 1), None, "zz", 413, "too_large"),
        ("too large + bad signature", b"{" * (MAX_BODY_BYTES + 1), "x..y", "a", 413, "too_large"),
        ("unknown link + no signature", dumps(good), None, "zz", 404, "unknown_link"),
        ("bad signature + not JSON", b"{not json", "x..y", "a", 401, "bad_signature"),
        ("bad signature + wrong audience", dumps({**good, "to": "c"}), "x..y", "a", 401,
         "bad_signature"),
        ("bad envelope + wrong audience", dumps({**good, "to": "c", "wait": 99}), "sign", "a",
         400, "bad_envelope"),
        ("bad envelope + clock skew", dumps({**skewed, "ack": -1}), "sign", "a", 400,
         "bad_envelope"),
        ("wrong from + clock skew", dumps({**skewed, "from": "c"}), "sign", "a", 401,
         "wrong_audience"),
        ("wrong to + clock skew", dumps({**skewed, "to": "c"}), "sign", "a", 401,
         "wrong_audience"),
    ]
    for what, body, signature, path, status, code in cases:
        response = peer.post(body, signature, path_name=path, timeout=30)
        assert (response.status_code, response.json().get("error")) == (status, code), what


def test_refused_envelopes_are_not_recorded_as_seen(peer: HandPeer) -> None:
    # Clock skew before replay: a stale envelope sent twice is "clock_skew" both times.
    stale = peer.envelope(now=datetime.now(UTC) - timedelta(seconds=1000)).to_bytes()
    signature = peer.sign(stale)
    refused(peer.post(stale, signature), 401, "clock_skew")
    refused(peer.post(stale, signature), 401, "clock_skew")
    # An envelope first sent with a bad signature, or to a wrong audience, keeps its id usable.
    body = peer.envelope().to_bytes()
    refused(peer.post(body, "x..y"), 401, "bad_signature")
    refused(peer.post(body, path_name="zz"), 404, "unknown_link")
    assert peer.post(body).status_code == 200
    refused(peer.post(body), 401, "replay")


# -- replay across a restart (last: it restarts b) --------------------------------------------------


def test_replay_is_refused_after_a_restart(served: ServedWorkspace, peer: HandPeer,
                                           accepted_early: tuple[bytes, str]) -> None:
    body = peer.envelope().to_bytes()
    signature = peer.sign(body)
    assert peer.post(body, signature).status_code == 200
    in_seq = db_value(served, "SELECT in_seq FROM link_state WHERE name = 'a'")
    peer.client.close()  # no idle keep-alive connection left for the shutdown to wait on
    assert served.serve.stop() == 0, served.serve.log_tail()
    wait_until(lambda: "stopped.\n" in served.serve.output, 5, "serve to say it stopped")
    served.serve.start()
    peer.client = https_client(served.ca_file)
    refused(peer.post(body, signature), 401, "replay")
    refused(peer.post(*accepted_early), 401, "replay")
    # b still works after the restart and remembers the link's seq.
    message = peer.start_message("echo", {"after": "restart"})
    assert message["seq"] == in_seq + 1
    peer.exchange([message])
    final = poll_updates(peer, message["request_id"], ended)[-1]["execution"]
    assert final["status"] == "ENDED_SUCCESS", final
