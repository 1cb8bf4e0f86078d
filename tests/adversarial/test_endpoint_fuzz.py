"""Hostile envelopes against a real `flowlink serve` endpoint over HTTPS on 127.0.0.1.

hypothesis generates request bodies (wrong types, missing and extra members, huge and negative
numbers, odd Unicode and path characters in names, deep nesting, duplicate keys, non-UTF-8,
truncation) and mutates valid signed envelopes (a byte of the body or a character of the
signature header changed, alg/kid swaps, ``none`` and HMAC-with-the-public-key downgrades).

Properties, for every request:
- a 200 only for a valid envelope correctly signed by the link's key (and then the response
  is signed by the served workspace and answers that request);
- any other answer is a 4xx of PROTOCOL.md section 4 with its status, an unsigned JSON body
  ``{"error", "detail"}``, and the code the protocol core (``check_request``) names for it;
- no 5xx, no hang (a timeout on every call), and the server still answers health checks.

Examples: 500 in total across the module; FLOWLINK_SOAK=1 runs 20 000.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from flowlink.link.checks import CheckFailure, PeerView, check_request
from flowlink.link.envelope import PROTOCOL, Envelope, format_time
from flowlink.link.signing import HEADER_NAME, BadSignature, Signer, Verifier, b64url_encode
from flowlink.workspace.identity import generate_private_key, key_id
from link_fixtures import HEALTH_PATH, HandPeer, ServedWorkspace, serve_workspace

SOAK = os.environ.get("FLOWLINK_SOAK") == "1"
pytestmark = [pytest.mark.xdist_group("endpoint-fuzz"),
              pytest.mark.timeout(3600 if SOAK else 120)]
TOTAL = 20_000 if SOAK else 500
# Share of the total per test; they add up to 1.
SHARES = {"generated": 0.4, "mutated": 0.3, "downgrade": 0.15, "path": 0.15}

# PROTOCOL.md section 4, written out here rather than imported from the code under test.
STATUS_OF = {
    "too_large": 413,
    "unknown_link": 404,
    "link_disabled": 403,
    "bad_signature": 401,
    "bad_envelope": 400,
    "wrong_audience": 401,
    "clock_skew": 401,
    "replay": 401,
}


def fuzz(share: str) -> settings:
    return settings(
        max_examples=max(1, round(TOTAL * SHARES[share])),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much, HealthCheck.large_base_example,
                               HealthCheck.function_scoped_fixture],
    )


OTHER_KEY = generate_private_key(2048)
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


# -- the served workspace and the oracle -------------------------------------------------------


class Target:
    """The served workspace, the peer's view of the link, and what b has accepted so far."""

    def __init__(self, served: ServedWorkspace, peer: HandPeer) -> None:
        self.served = served
        self.peer = peer
        public = served.peer_key.public_key()
        self.verifier = Verifier(public)  # the peer's key, as b's Synch Config holds it
        self.public_pem = public.public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        self.public_der = public.public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        self.accepted: list[tuple[bytes, str]] = []
        self.accepted_ids: set[str] = set()

    def __repr__(self) -> str:  # hypothesis prints it with every failing example
        return f"Target({self.served.serve.url}, {len(self.accepted)} accepted)"


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Target:
    served = serve_workspace(
        tmp_path_factory.mktemp("fuzz"), "b", peer="a",
        flows={"echo": "def handler(system, this, inputs):\n    return this.success('ok')\n"},
        link_args=["--allow-flows", "echo"],
    )
    peer = served.peer("a", "b")
    yield Target(served, peer)
    peer.client.close()
    assert served.serve.running, "serve died during the fuzzing: " + served.serve.log_tail()
    assert served.serve.stop() == 0, served.serve.log_tail()


@pytest.fixture(autouse=True)
def still_healthy(target: Target) -> None:
    yield
    response = target.peer.client.get(target.served.serve.url + HEALTH_PATH, timeout=10)
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert target.served.serve.running


def expected(t: Target, path_name: str, body: bytes, signature: str | None) -> CheckFailure | None:
    """What PROTOCOL.md section 4 says b must answer (None: accept), from the protocol core."""
    views = {"a": PeerView("a", True, t.verifier)}
    try:
        check_request(path_name=path_name, body=body, signature=signature, own_name="b",
                      lookup=views.get, now=datetime.now(UTC),
                      seen=lambda _peer, envelope_id: envelope_id in t.accepted_ids)
    except CheckFailure as failure:
        return failure
    return None


def post(t: Target, path: str, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[HEADER_NAME] = signature
    url = t.served.serve.url + path
    return t.peer.client.post(url, content=body, headers=headers, timeout=15)


def check_answer(t: Target, path_name: str, body: bytes, signature: str | None, *,
                 correctly_signed: bool, quoted_path: str | None = None) -> httpx.Response:
    """POST and hold the answer to the properties in the module docstring."""
    want = expected(t, path_name, body, signature)
    path = f"/api/latest/sync_config/{quoted_path or path_name}/sync"
    response = post(t, path, body, signature)
    status = response.status_code
    event(f"answer {status} {want.error if want else 'accepted'}")
    assert status < 500, (status, response.text[:300])
    if status == 200:
        # Accepted: it must be a valid envelope signed by the link's key, for this workspace.
        assert correctly_signed, "accepted a request that was not signed by the link's key"
        assert want is None, f"accepted what the protocol refuses: {want}"
        t.verifier.verify(signature, body)
        request = Envelope.from_bytes(body, is_request=True)
        assert (request.from_, request.to, path_name) == ("a", "b", "a")
        assert request.id not in t.accepted_ids
        t.served.own_verifier.verify(response.headers.get(HEADER_NAME), response.content)
        reply = Envelope.from_bytes(response.content, is_request=False)
        assert reply.in_reply_to == request.id and (reply.from_, reply.to) == ("b", "a")
        t.accepted_ids.add(request.id)
        t.accepted.append((body, signature or ""))
        return response
    assert 400 <= status < 500, status
    assert response.headers.get("content-type", "").startswith("application/json"), \
        (status, response.text[:200])
    assert HEADER_NAME.lower() not in {k.lower() for k in response.headers}
    answer = json.loads(response.content)
    assert isinstance(answer, dict) and set(answer) == {"error", "detail"}, answer
    assert answer["error"] in STATUS_OF and STATUS_OF[answer["error"]] == status, answer
    assert isinstance(answer["detail"], str) and answer["detail"].endswith("."), answer
    assert want is not None, f"refused a valid request: {answer}"
    assert answer["error"] == want.error, (answer, want.error, want.detail)
    return response


# -- JSON with raw literals and duplicate keys ----------------------------------------------------


@dataclass(frozen=True)
class Raw:
    text: str  # a literal written as is: NaN, 1e999, 0123, a 70-digit integer...


@dataclass(frozen=True)
class Obj:
    pairs: tuple[tuple[str, Any], ...]  # keys may repeat


def write(node: Any, ascii_only: bool = True) -> str:
    if isinstance(node, Raw):
        return node.text
    if isinstance(node, Obj):
        inner = ",".join(f"{json.dumps(k, ensure_ascii=ascii_only)}:{write(v, ascii_only)}"
                         for k, v in node.pairs)
        return "{" + inner + "}"
    if isinstance(node, dict):
        return write(Obj(tuple(node.items())), ascii_only)
    if isinstance(node, list | tuple):
        return "[" + ",".join(write(v, ascii_only) for v in node) + "]"
    return json.dumps(node, ensure_ascii=ascii_only)


NAMES = st.one_of(
    st.just("a"), st.just("b"), st.just("c"),
    st.sampled_from(["A", "a_b", "-a", "a" * 63, "a" * 64, "", " a", "a\n", "é", "ａ",
                     "a\u200b", "a\x00", "../a", "a/b", "\ud800", "\u202eb"]),
    st.text(max_size=12),
)
RAW_NUMBERS = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "01", "1.",
                               ".5", "-", "+1", "0x10", "9" * 70, "-" + "9" * 65, "1e-999",
                               str(2**63), str(2**63 - 1), str(-(2**63)), "-0", "1E2"])
SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=16), NAMES, RAW_NUMBERS.map(Raw),
    st.sampled_from([PROTOCOL, "flowlink-sync/2", "execution.start", "execution.update",
                     "execution.cancel", "ENDED_SUCCESS", "RUNNING", "2026-12-04T19:18:07Z",
                     str(uuid.uuid4()), str(uuid.uuid1()), "\x00", "\ufeff", "%2e%2e%2f"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(st.tuples(st.one_of(st.text(max_size=6), st.sampled_from(
            ["seq", "type", "request_id", "flow", "inputs", "id", "status", "version"])),
            children), max_size=4).map(lambda pairs: Obj(tuple(pairs))),
    ),
    max_leaves=20,
)


# Plain JSON the protocol accepts inside inputs and outputs.
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=16)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=6), children, max_size=4)),
    max_leaves=12,
)


def _time(offset: float) -> str:
    return format_time(datetime.now(UTC) + timedelta(seconds=offset))


NEXT = Raw("9999999999999999999999999")  # replaced by the seq b expects next, in the test


def pick(draw: st.DrawFn, valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> Any:
    """Mostly the valid value, so that whole messages are often valid and get applied."""
    # sampled_from leans to its first entry (and shrinks to it): the valid choice.
    return draw(hostile) if draw(st.sampled_from([False] * 19 + [True])) else draw(valid)


UUIDS = st.builds(lambda: str(uuid.uuid4()))
TIMES = st.one_of(st.builds(lambda: _time(0)), st.just("2026-12-04T19:18:07.123456789Z"))


@st.composite
def messages(draw: st.DrawFn) -> Any:
    """Message-like objects: mostly valid, each member sometimes hostile, missing or extra."""
    kind = pick(draw, st.sampled_from(["execution.start", "execution.update",
                                       "execution.cancel"]), VALUES)
    seq = pick(draw, st.one_of(st.just(NEXT), st.just(NEXT), st.integers(1, 40)), VALUES)
    pairs: list[tuple[str, Any]] = [("seq", seq), ("type", kind),
                                    ("request_id", pick(draw, UUIDS, VALUES))]
    if kind == "execution.start":
        pairs += [("flow", pick(draw, st.one_of(st.sampled_from(["echo", "nope", "é x", " x"]),
                                                st.text(min_size=1, max_size=30)), VALUES)),
                  ("inputs", pick(draw, st.dictionaries(st.text(max_size=5), JSON, max_size=3),
                                  VALUES))]
        if draw(st.booleans()):
            pairs.append(("name", pick(draw, st.one_of(st.none(), st.text(max_size=30)), VALUES)))
        if draw(st.booleans()):
            pairs.append(("parent", pick(draw, st.fixed_dictionaries({
                "id": st.one_of(st.integers(0, 2**63 - 1), st.text(min_size=1, max_size=10)),
                "name": st.text(max_size=10)}), VALUES)))
    elif kind == "execution.update":
        execution = Obj((
            ("id", pick(draw, st.one_of(st.integers(0, 2**63 - 1), st.text(min_size=1,
                                                                         max_size=128)),
                        st.one_of(st.integers(-1, 2**64), st.text(max_size=200)))),
            ("flow", pick(draw, st.text(min_size=1, max_size=20), VALUES)),
            ("name", pick(draw, st.one_of(st.none(), st.text(max_size=20)), VALUES)),
            ("status", pick(draw, st.sampled_from(["PENDING", "RUNNING", "WAITING", "PAUSED",
                                                   "ENDED_SUCCESS", "ENDED_ERROR",
                                                   "ENDED_CANCELLED"]),
                            st.sampled_from(["DONE", "", "running"]))),
            ("message", pick(draw, st.one_of(st.none(), st.text(max_size=20)), VALUES)),
            ("outputs", pick(draw, st.dictionaries(st.text(max_size=5), JSON, max_size=3),
                             VALUES)),
            ("parent_id", pick(draw, st.one_of(st.none(), st.integers(0, 99)), VALUES)),
            ("created_at", pick(draw, TIMES, st.sampled_from(["yesterday",
                                                              "2026-02-30T00:00:00Z"]))),
            ("started_at", pick(draw, st.one_of(st.none(), TIMES), VALUES)),
            ("ended_at", pick(draw, st.one_of(st.none(), TIMES), VALUES)),
            ("version", pick(draw, st.integers(0, 2**63 - 1), st.one_of(
                st.integers(-(2**64), 2**64), VALUES))),
        ))
        pairs += [("execution", execution), ("listed", pick(draw, st.booleans(), VALUES))]
    if draw(st.sampled_from([False] * 19 + [True])):
        del pairs[draw(st.integers(0, len(pairs) - 1))]
    if draw(st.sampled_from([False] * 19 + [True])):
        pairs.append((draw(st.text(max_size=8)), draw(VALUES)))
    return Obj(tuple(pairs))


def number_messages(body: bytes, next_seq: int) -> bytes:
    """Replace each NEXT placeholder with the next seq b expects, counting up."""
    parts = body.split(NEXT.text.encode())
    out = parts[0]
    for index, part in enumerate(parts[1:]):
        out += str(next_seq + index).encode() + part
    return out


@st.composite
def envelopes(draw: st.DrawFn) -> Obj:
    """Request-like envelopes: each member valid, hostile, missing, doubled, or extra."""
    good = {
        "protocol": PROTOCOL, "id": str(uuid.uuid4()), "from": "a", "to": "b",
        "created": _time(0), "wait": 0, "ack": 0, "controls": True, "messages": [],
    }
    hostile = {
        "protocol": VALUES, "id": st.one_of(st.just(str(uuid.uuid4()).upper()), VALUES),
        "from": NAMES, "to": NAMES,
        "created": st.one_of(st.sampled_from([_time(-1000), _time(1000), _time(-86400 * 400),
                                              "2026-12-04T19:18:07.123+01:00", "now",
                                              "2026-12-04 19:18:07Z"]), VALUES),
        # Not 1..25: a valid long poll would be held that long (see long_poll()).
        "wait": st.one_of(st.integers(-5, -1), st.integers(26, 2**64), VALUES),
        "ack": st.one_of(st.integers(-(2**70), 2**70), VALUES),
        "controls": VALUES,
        "messages": st.one_of(st.lists(messages(), max_size=3), VALUES),
    }
    # Spoil a few members (none in about two thirds of the envelopes, so that many are valid
    # and their messages get applied); the others keep their valid value.
    spoiled = draw(st.lists(st.sampled_from(list(good)), min_size=1, max_size=3, unique=True)) \
        if draw(st.sampled_from([False, False, True])) else []
    pairs: list[tuple[str, Any]] = []
    for key, value in good.items():
        choice = draw(st.sampled_from(["hostile", "missing", "double"])) if key in spoiled \
            else "keep"
        if key == "messages" and choice == "keep":
            pairs.append((key, draw(st.lists(messages(), max_size=3))))
            continue
        if key == "ack" and choice == "keep":
            value = draw(st.one_of(st.just(0), st.integers(0, 2**63 - 1)))
        if choice == "missing":
            continue
        if choice == "hostile":
            value = draw(hostile[key])
        pairs.append((key, value))
        if choice == "double":
            pairs.append((key, draw(st.one_of(st.just(value), hostile[key]))))
    if draw(st.sampled_from([False] * 7 + [True])):
        pairs.insert(draw(st.integers(0, len(pairs))),
                     (draw(st.sampled_from(["in_reply_to", "extra", "__proto__", "Ack"])),
                      draw(VALUES)))
    return Obj(tuple(pairs))


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    shape = draw(st.sampled_from(["envelope"] * 9 + ["value", "deep", "bytes"]))
    if shape == "envelope":
        node: Any = draw(envelopes())
    elif shape == "value":
        node = draw(VALUES)
    elif shape == "deep":
        depth = draw(st.sampled_from([30, 31, 32, 100, 100_000]))
        inner = draw(st.sampled_from(["[]", "{}", "1", '{"a":[]}']))
        opener = draw(st.sampled_from(["[", '{"d":']))
        closer = "]" if opener == "[" else "}"
        node = Obj((("protocol", PROTOCOL), ("messages", Raw(opener * depth + inner
                                                             + closer * depth))))
    else:
        return draw(st.binary(max_size=200))
    text = write(node, ascii_only=draw(st.booleans()))
    body = text.encode("utf-8", "surrogatepass")
    edit = draw(st.sampled_from(["none"] * 10 + ["truncate", "bom", "latin1", "insert", "pad"]))
    if edit == "truncate" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif edit == "bom":
        body = b"\xef\xbb\xbf" + body
    elif edit == "latin1":
        body = text.encode("latin-1", "replace").replace(b'"a"', b'"\xe9"')
    elif edit == "insert" and body:
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\x00",
                                                 b",", b"}", b'"'])) + body[at:]
    elif edit == "pad":
        body = body + draw(st.sampled_from([b" \n\t\r", b" x", b"\x0b", b"\xa0"]))
    return body


def in_seq(t: Target) -> int:
    conn = t.served.db()
    try:
        row = conn.execute("SELECT in_seq FROM link_state WHERE name = 'a'").fetchone()
        return 0 if row is None else int(row[0])
    finally:
        conn.close()


def long_poll(body: bytes) -> bool:
    """A valid request with wait > 0 would be held up to that long: not what is fuzzed here."""
    try:
        return bool(Envelope.from_bytes(body, is_request=True).wait)
    except ValueError:
        return False


# -- 1. generated bodies ----------------------------------------------------------------------------


@fuzz("generated")
@given(body=bodies(), signing=st.sampled_from(["sign"] * 6 + ["none", "garbage", "other-key"]),
       replay=st.sampled_from([False] * 19 + [True]))
def test_generated_bodies(target: Target, body: bytes, signing: str, replay: bool) -> None:
    if replay and target.accepted:
        body, signature = target.accepted[-1]  # a replay of something b accepted
        check_answer(target, "a", body, signature, correctly_signed=True)
        return
    body = number_messages(body, in_seq(target) + 1)
    assume(not long_poll(body))
    signature = {
        "sign": lambda: target.peer.sign(body),
        "none": lambda: None,
        "garbage": lambda: "eyJhbGciOiJub25lIn0..AAAA",
        "other-key": lambda: Signer(OTHER_KEY).sign(body),
    }[signing]()
    before = in_seq(target)
    response = check_answer(target, "a", body, signature, correctly_signed=signing == "sign")
    if response.status_code == 200:
        event(f"messages applied: {min(in_seq(target) - before, 3)}")


# -- 2. mutations of a valid signed envelope ------------------------------------------------------


def valid_envelope(t: Target) -> tuple[bytes, str]:
    body = t.peer.envelope([{
        "seq": 10**9, "type": "execution.cancel", "request_id": str(uuid.uuid4()),
    }], ack=0).to_bytes()
    return body, t.peer.sign(body)


@fuzz("mutated")
@given(data=st.data(), where=st.sampled_from(["body", "header", "both"]))
def test_mutated_valid_envelopes_are_refused(target: Target, data: st.DataObject,
                                             where: str) -> None:
    body, signature = valid_envelope(target)
    if where in ("body", "both"):
        at = data.draw(st.integers(0, len(body) - 1), label="body byte")
        flip = data.draw(st.integers(1, 255), label="xor")
        body = body[:at] + bytes([body[at] ^ flip]) + body[at + 1:]
    if where in ("header", "both"):
        at = data.draw(st.integers(0, len(signature) - 1), label="header char")
        char = data.draw(st.characters(min_codepoint=0x21, max_codepoint=0x7E)
                         .filter(lambda c: c != signature[at]), label="replacement")
        signature = signature[:at] + char + signature[at + 1:]
    response = check_answer(target, "a", body, signature, correctly_signed=False)
    assert response.json()["error"] == "bad_signature"


# -- 3. alg / kid swaps and downgrades ---------------------------------------------------------------


@fuzz("downgrade")
@given(
    alg=st.sampled_from(["PS256", "PS256", "none", "None", "HS256", "HS512", "RS256", "PS384",
                         "PS512", "ES256", "ps256", "PS256 ", ""]),
    kid=st.sampled_from(["peer", "peer", "other", "upper", "empty", "missing", "number"]),
    b64=st.sampled_from([False, False, True, "false", None, "missing"]),
    crit=st.sampled_from([["b64"], ["b64"], [], ["b64", "b64"], "b64", None, "missing"]),
    extra=st.sampled_from([None, None, None, ("jwk", {"kty": "RSA"}), ("x5u", "https://e/x"),
                           ("typ", "JOSE")]),
    method=st.sampled_from(["pss", "pss", "pss-other-key", "pkcs1", "hmac-pem", "hmac-der",
                            "empty", "random"]),
)
def test_header_swaps_and_downgrades(target: Target, alg: str, kid: str, b64: Any, crit: Any,
                                     extra: Any, method: str) -> None:
    body = target.peer.envelope().to_bytes()
    peer_kid = target.verifier.kid
    header: dict[str, Any] = {"alg": alg}
    kid_value = {"peer": peer_kid, "other": key_id(OTHER_KEY.public_key()),
                 "upper": peer_kid.upper(), "empty": "", "number": 1}.get(kid)
    if kid != "missing":
        header["kid"] = kid_value
    if b64 != "missing":
        header["b64"] = b64
    if crit != "missing":
        header["crit"] = crit
    if extra is not None:
        header[extra[0]] = extra[1]
    protected = b64url_encode(json.dumps(header, separators=(",", ":")).encode())
    signing_input = protected.encode() + b"." + body
    if method == "pss":
        raw = target.served.peer_key.sign(signing_input, PSS, hashes.SHA256())
    elif method == "pss-other-key":
        raw = OTHER_KEY.sign(signing_input, PSS, hashes.SHA256())
    elif method == "pkcs1":
        raw = target.served.peer_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    elif method.startswith("hmac"):
        mac = hmac.HMAC(target.public_pem if method == "hmac-pem" else target.public_der,
                        hashes.SHA256())
        mac.update(signing_input)
        raw = mac.finalize()
    elif method == "empty":
        raw = b""
    else:
        raw = os.urandom(256)
    signature = f"{protected}..{b64url_encode(raw)}"
    proper = (alg == "PS256" and kid == "peer" and b64 is False and crit == ["b64"]
              and extra is None and method == "pss")
    response = check_answer(target, "a", body, signature, correctly_signed=proper)
    if not proper:
        assert response.json()["error"] == "bad_signature"
    else:
        assert response.status_code == 200
        with pytest.raises(BadSignature):  # and the oracle itself can say no
            target.verifier.verify(signature, body + b" ")


# -- 4. odd names in the path -------------------------------------------------------------------------


@fuzz("path")
@given(name=st.one_of(NAMES, st.text(min_size=1, max_size=70)), signed=st.booleans(),
       claims=st.sampled_from(["a", "path"]))
def test_odd_path_names(target: Target, name: str, signed: bool, claims: str) -> None:
    from_ = "a" if claims == "a" or not name else name
    obj = target.peer.envelope().to_json()
    obj["from"] = from_
    body = write(obj, ascii_only=False).encode("utf-8", "surrogatepass")
    quoted = urllib.parse.quote(name.encode("utf-8", "surrogatepass"), safe="")
    quoted = quoted.replace(".", "%2E")  # no dot segments for the client to normalise
    signature = target.peer.sign(body) if signed else None
    decoded = urllib.parse.unquote(quoted, errors="replace")  # as the server sees the path
    check_answer(target, decoded, body, signature, correctly_signed=signed, quoted_path=quoted)
