"""Hostile clients against a real `flowlink serve` on 127.0.0.1, while a real link keeps working.

Two workspaces: ``a`` (controls ``b``) and ``b`` (the target), each a `flowlink serve` process.
Raw sockets wrapped in TLS (the ``ssl`` module, verified against b's CA) play the attackers:

- slowloris: request bodies and request heads trickled one byte per second;
- oversized heads: a huge header, a huge request line, thousands of headers, a head with no end;
- N connections held open (fast: 200, FLOWLINK_SOAK=1: 1000), half of them never even
  starting TLS;
- a flood of badly signed envelopes (fast: 500, soak: 5000) from four keep-alive clients.

Throughout each attack: b answers health checks on new connections, a remote call from a
completes (the link keeps syncing), b's serve process stays up with its RSS bounded (VmRSS
from /proc before and after, printed), and no envelope of the flood reaches b's seen-id table.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import socket
import sqlite3
import ssl
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from test_faults import LoggedPeer

from flowlink.link.envelope import new_envelope
from flowlink.link.signing import HEADER_NAME, Signer, b64url_encode
from flowlink.workspace.identity import generate_private_key, key_id, load_public_key
from pair_fixtures import Peer, link, wait_until

SOAK = os.environ.get("FLOWLINK_SOAK") == "1"
pytestmark = [pytest.mark.xdist_group("hostile-clients"),
              pytest.mark.timeout(900 if SOAK else 180)]
HELD = 1000 if SOAK else 200
FLOOD = 5000 if SOAK else 500
TRICKLERS = 10 if SOAK else 1  # of each kind
# The server drops a stalled head or body after about 10 s (HEAD_TIMEOUT_SECONDS and
# BODY_GRACE_SECONDS in flowlink.link.endpoint); this is the bound the tests hold it to.
DROP_BOUND = 30.0
HOST = "127.0.0.1"

COLLECT = """\
def handler(system, this, inputs):
    this.save(output_value={'summary': 'logs since ' + str(inputs['since'])})
"""
CALL = """\
def handler(system, this, inputs):
    child = this.flow('collect_logs', remote_workspace_name='b', since=inputs['since'])
    this.save(output_value={'status': child.get('status'), 'output': child.get('output_value')})
"""


# -- the pair and probes -----------------------------------------------------------------------


# Session scope: the pair is made once per worker even when xdist interleaves this module's
# tests with others (pytest 9 + xdist 3.8 ignore xdist_group, so loadgroup cannot help).
@pytest.fixture(scope="session")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    # LoggedPeer: serve's output goes to files (an unread pipe would fill and stall it).
    a, b = LoggedPeer("a", tmp / "a"), LoggedPeer("b", tmp / "b")
    for peer in (a, b):
        peer.init()
        peer.serve()
    link(a, b)
    link(b, a, url=False)  # every exchange is a's: a's link to b is "the other link" here
    b.add_flow("collect_logs", COLLECT)
    a.add_flow("call", CALL)
    code, ex = a.run("call", "--input", "since=warmup")
    assert code == 0, ex
    yield a, b
    for peer in (a, b):
        assert peer.stop() == 0, f"{peer.name} did not stop cleanly on SIGTERM"


def tls_context(peer: Peer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(peer.files["ca"]))


def tls_connect(peer: Peer, timeout: float = 10.0) -> ssl.SSLSocket:
    raw = socket.create_connection((HOST, peer.port), timeout=timeout)
    try:
        return tls_context(peer).wrap_socket(raw, server_hostname=HOST)
    except BaseException:
        raw.close()
        raise


def read_response(sock: ssl.SSLSocket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes (or ``timeout``)."""
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def status_of(response: bytes) -> int | None:
    if not response.startswith(b"HTTP/1.1 "):
        return None
    return int(response[9:12])


def readable(sock: socket.socket) -> bool:
    """poll(), not select(): with a thousand sockets held, descriptors pass FD_SETSIZE."""
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(0))


def poll_server(sock: ssl.SSLSocket) -> tuple[bytes, bool]:
    """Without blocking: what the server sent so far, and whether it closed the connection.

    TLS 1.3 session tickets make the socket readable without application data: they count
    as nothing."""
    data = b""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        while True:
            if not readable(sock) and not sock.pending():
                return data, False
            try:
                chunk = sock.recv(65536)
            except ssl.SSLWantReadError:
                return data, False
            except OSError:
                return data, True
            if not chunk:
                return data, True
            data += chunk
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(timeout)


def health(peer: Peer) -> None:
    """A health check on a new connection: 200 {"status": "ok"}."""
    sock = tls_connect(peer)
    try:
        sock.sendall(b"GET /api/latest/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        response = read_response(sock)
    finally:
        sock.close()
    assert status_of(response) == 200, response[:200]
    assert json.loads(response.split(b"\r\n\r\n", 1)[1]) == {"status": "ok"}


def proc_status(pid: int, field: str) -> int:
    """A VmRSS/VmHWM line of /proc/PID/status, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for pid {pid}")


class Memory:
    """b's serve process RSS before and after an attack, with the bound of the suite."""

    def __init__(self, peer: Peer, what: str) -> None:
        self.peer, self.what = peer, what
        self.before = proc_status(peer.proc.pid, "VmRSS")
        self.peak = self.before

    def sample(self) -> None:
        assert self.peer.proc.poll() is None, f"b's serve process died during {self.what}"
        self.peak = max(self.peak, proc_status(self.peer.proc.pid, "VmRSS"))

    def check(self) -> None:
        self.sample()
        after = proc_status(self.peer.proc.pid, "VmRSS")
        hwm = proc_status(self.peer.proc.pid, "VmHWM")
        print(f"\n{self.what}: b's VmRSS before {self.before / 1024:.1f} MB, peak sampled "
              f"{self.peak / 1024:.1f} MB, after {after / 1024:.1f} MB, VmHWM {hwm / 1024:.1f} MB")
        bound = 2 * self.before + 50 * 1024
        assert self.peak < bound, (f"{self.what}: b's RSS grew from {self.before} kB to "
                                   f"{self.peak} kB (bound {bound} kB)")


def seen_ids(peer: Peer) -> set[str]:
    conn = sqlite3.connect(f"file:{peer.data_dir / 'workspace.db'}?mode=ro", uri=True, timeout=10)
    try:
        return {row[0] for row in conn.execute("SELECT id FROM seen_envelopes")}
    finally:
        conn.close()


class Meanwhile:
    """While an attack runs: health checks on b and remote calls a -> b, in a thread.

    ``stop()`` returns after at least ``min_calls`` remote calls completed; every call and
    every health check must succeed.
    """

    def __init__(self, a: Peer, b: Peer, memory: Memory, min_calls: int = 1) -> None:
        self.a, self.b, self.memory, self.min_calls = a, b, memory, min_calls
        self.calls = 0
        self.health_checks = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="meanwhile", daemon=True)

    def __enter__(self) -> Meanwhile:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        while True:
            try:
                self.memory.sample()
                health(self.b)
                self.health_checks += 1
                tag = f"meanwhile-{self.calls}"
                code, ex = self.a.run("call", "--input", f"since={tag}", timeout=60)
                if code != 0 or ex["outputs"].get("output") != {"summary": f"logs since {tag}"}:
                    self.errors.append(f"remote call failed: {ex.get('status')} {ex.get('message')}")
                    return
                self.calls += 1
                health(self.b)
                self.health_checks += 1
            except Exception as exc:  # noqa: BLE001 - reported by stop()
                self.errors.append(f"{type(exc).__name__}: {exc}")
                return
            if self._stop.is_set() and self.calls >= self.min_calls:
                return

    def stop(self, timeout: float = 120.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the remote calls and health checks hung"
        assert not self.errors, self.errors
        assert self.calls >= self.min_calls and self.health_checks >= 2 * self.min_calls


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    from keyring_fixture import require_real

    require_real(soft >= needed, f"RLIMIT_NOFILE of {needed} (it is {soft})")


# -- slowloris ---------------------------------------------------------------------------------


class Trickler(threading.Thread):
    """Sends ``head`` and then ``body`` one byte per second until the server lets go."""

    def __init__(self, peer: Peer, head: bytes, body: bytes, label: str) -> None:
        super().__init__(name=f"trickle-{label}", daemon=True)
        self.peer, self.head, self.body, self.label = peer, head, body, label
        self.sent = 0
        self.dropped_after: float | None = None
        self.answer = b""
        self.error: str | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            sock = tls_connect(self.peer)
        except OSError as exc:
            self.error = f"could not connect: {exc}"
            return
        started = time.monotonic()
        try:
            sock.sendall(self.head)
            for byte in self.body:
                if self._server_let_go(sock):
                    break
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
                self.sent += 1
                if self.stop.wait(1.0):  # one byte per second: the attack itself
                    return
            else:
                return  # sent everything without being dropped: dropped_after stays None
            self.dropped_after = time.monotonic() - started
        finally:
            sock.close()

    def _server_let_go(self, sock: ssl.SSLSocket) -> bool:
        data, closed = poll_server(sock)
        self.answer += data
        return closed


def hold_connections(b: Peer, count: int, memory: Memory) -> tuple[list, list, int]:
    """``count`` connections to b, every other one never even starting TLS."""
    held_tls: list[ssl.SSLSocket] = []
    held_raw: list[socket.socket] = []
    refused = 0
    for i in range(count):
        try:
            if i % 2:
                held_raw.append(socket.create_connection((HOST, b.port), timeout=10))
            else:
                held_tls.append(tls_connect(b))
        except OSError:
            refused += 1  # the server may refuse or reset beyond its connection limit
        if i % 50 == 0:
            memory.sample()
    return held_tls, held_raw, refused


def test_slow_and_idle_clients_are_dropped_while_the_link_keeps_syncing(pair):
    """Slowloris and held connections at once (both wait out the server's ~10 s deadlines;
    together they cost that once). First ``HELD`` connections are opened and held (half of
    them never start TLS), then bodies and heads are trickled one byte per second. Meanwhile
    b answers health checks and a's remote calls complete; b's RSS stays within the bound.
    Then: each trickle was dropped within DROP_BOUND after trickling a few bytes (the sync
    endpoint answering 408 first), and every idle TLS connection was closed by the server."""
    a, b = pair
    raise_fd_limit(HELD * 2 + 256)
    memory = Memory(b, f"{HELD} connections held open and {3 * TRICKLERS} trickles")
    budget = int(DROP_BOUND) + 10
    kinds = {
        # a body for the sync endpoint (the size check passes: 1000 bytes are announced)
        "sync-body": (b"POST /api/latest/sync_config/a/sync HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n", b"{" * 1000),
        # a head that never ends
        "head": (b"GET /api/latest/health HTTP/1.1\r\n", b"X-Slow: " + b"a" * budget),
        # a body nobody reads (health answers at once; the body keeps coming)
        "unread-body": (b"POST /api/latest/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Content-Length: 1000\r\n\r\n", b"x" * 1000),
    }
    held_tls, held_raw, refused = hold_connections(b, HELD, memory)
    held_at = time.monotonic()
    tricklers = [Trickler(b, head, body, f"{kind}-{i}") for kind, (head, body) in kinds.items()
                 for i in range(TRICKLERS)]
    open_tls = list(held_tls)

    def all_closed() -> bool:
        nonlocal open_tls
        open_tls = [sock for sock in open_tls if not poll_server(sock)[1]]
        return not open_tls

    try:
        for trickler in tricklers:
            trickler.start()
        with Meanwhile(a, b, memory, min_calls=2):
            wait_until(lambda: all(not t.is_alive() for t in tricklers), timeout=DROP_BOUND + 20,
                       interval=0.2, what="the server to drop every trickling connection")
            # Idle connections are not kept forever: every TLS connection that never sent a
            # request is closed by the server within the bound (raw TCP ones wait for
            # asyncio's 60 s TLS handshake timeout, which this test does not sit out).
            wait_until(all_closed, timeout=DROP_BOUND + 15, interval=0.25,
                       what=f"the server to close {len(open_tls)} idle TLS connections")
        closed_after = time.monotonic() - held_at
    finally:
        for trickler in tricklers:
            trickler.stop.set()
        for sock in [*held_tls, *held_raw]:
            sock.close()
    for trickler in tricklers:
        assert trickler.error is None, (trickler.label, trickler.error)
        assert trickler.dropped_after is not None, f"{trickler.label}: never dropped"
        assert trickler.dropped_after <= DROP_BOUND, (trickler.label, trickler.dropped_after)
        assert trickler.sent >= 3, f"{trickler.label}: dropped before it trickled ({trickler.answer!r})"
        if trickler.label.startswith("sync-body"):
            # The sync endpoint says why before it closes.
            assert status_of(trickler.answer) in (None, 408), trickler.answer[:200]
        elif trickler.label.startswith("unread-body"):
            # Answered at once (405: health is GET only), then dropped while the body trickles.
            assert status_of(trickler.answer) == 405, trickler.answer[:200]
    print(f"\nslowloris: dropped after {sorted(round(t.dropped_after, 1) for t in tricklers)} s; "
          f"held {len(held_tls)} TLS + {len(held_raw)} raw connections ({refused} refused), "
          f"idle TLS ones all closed {closed_after:.1f} s after the last opened")
    memory.check()
    health(b)


# -- oversized heads ---------------------------------------------------------------------------


OVERSIZED = {
    "huge-header": b"GET /api/latest/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
                   + b"a" * 300_000 + b"\r\n\r\n",
    "huge-request-line": b"GET /api/latest/health?" + b"q" * 300_000 + b" HTTP/1.1\r\n"
                         b"Host: 127.0.0.1\r\n\r\n",
    "many-headers": b"POST /api/latest/sync_config/a/sync HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    + b"".join(b"X-H%d: v\r\n" % i for i in range(20_000)) + b"\r\n",
    "endless-head": b"GET /api/latest/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    + b"X-More: b\r\n" * 30_000,  # no blank line: the head never ends
}


@pytest.mark.parametrize("kind", sorted(OVERSIZED))
def test_oversized_head_is_refused_without_a_crash(pair, kind):
    a, b = pair
    memory = Memory(b, f"oversized head ({kind})")
    sock = tls_connect(b)
    try:
        with contextlib.suppress(OSError):  # the server may close while we still send
            sock.sendall(OVERSIZED[kind])
        response = read_response(sock, timeout=DROP_BOUND)
    finally:
        sock.close()
    status = status_of(response)
    # A 4xx, or the connection closed without an answer; never a 2xx, a 5xx or a hang.
    assert status is None or 400 <= status < 500, response[:300]
    assert b.proc.poll() is None, "b's serve process died"
    health(b)
    memory.check()


def test_oversized_head_does_not_stop_the_link(pair):
    a, b = pair
    memory = Memory(b, "oversized heads in a loop")
    stop = threading.Event()

    def attack() -> None:
        while not stop.is_set():
            for payload in OVERSIZED.values():
                with contextlib.suppress(OSError):
                    sock = tls_connect(b)
                    try:
                        sock.sendall(payload)
                        read_response(sock, timeout=5)
                    finally:
                        sock.close()

    attacker = threading.Thread(target=attack, daemon=True)
    attacker.start()
    try:
        with Meanwhile(a, b, memory, min_calls=2):
            pass
    finally:
        stop.set()
        attacker.join(30)
    memory.check()


# -- a flood of badly signed envelopes ---------------------------------------------------------


def bad_requests(a: Peer, b: Peer, count: int) -> list[tuple[str, bytes, dict[str, str]]]:
    """(envelope id, body, headers) of ``count`` envelopes from "a" to "b" that b must refuse
    for their signature: wrong key under a's kid, garbage, none at all, a body changed after
    signing, and a's header with another key's kid."""
    rogue = generate_private_key(2048)
    rogue_signer = Signer(rogue)
    a_kid = key_id(load_public_key(a.files["pub"].read_text(), "a public key"))
    protected = b64url_encode(json.dumps({"alg": "PS256", "kid": a_kid, "b64": False,
                                          "crit": ["b64"]}, separators=(",", ":")).encode())
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    requests = []
    for i in range(count):
        message = {"seq": 10_000 + i, "type": "execution.start", "request_id": str(uuid.uuid4()),
                   "flow": "collect_logs", "inputs": {"since": f"forged-{i}"},
                   "parent": {"id": 1, "name": "forged"}}
        envelope = new_envelope("a", "b", messages=[message], ack=0, controls=True, wait=0,
                                now=datetime.now(UTC))
        body = envelope.to_bytes()
        kind = i % 5
        if kind == 0:  # a's kid, a rogue key's signature: the RSA check itself must fail
            signature = protected + ".." + b64url_encode(rogue.sign(protected.encode() + b"." + body,
                                                                    pss, hashes.SHA256()))
        elif kind == 1:  # garbage
            signature = protected + ".." + b64url_encode(os.urandom(384))
        elif kind == 2:  # none at all
            signature = None
        elif kind == 3:  # signed, then the body changed
            signature = rogue_signer.sign(body)
            body = body.replace(b"forged", b"FORGED")
        else:  # the rogue key's own header
            signature = rogue_signer.sign(body)
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers[HEADER_NAME] = signature
        requests.append((envelope.id, body, headers))
    return requests


def test_flood_of_badly_signed_envelopes(pair):
    a, b = pair
    requests = bad_requests(a, b, FLOOD)
    memory = Memory(b, f"flood of {FLOOD} badly signed envelopes")
    seen_before = seen_ids(b)
    url = b.sync_url("a")
    answers: dict[int, int] = {}
    codes: dict[str, int] = {}
    lock = threading.Lock()
    failures: list[str] = []

    def flood(part: list[tuple[str, bytes, dict[str, str]]]) -> None:
        with httpx.Client(verify=tls_context(b), timeout=httpx.Timeout(10.0), trust_env=False) as client:
            for _id, body, headers in part:
                try:
                    response = client.post(url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                code = response.json().get("error", "?") if response.status_code != 200 else "accepted"
                with lock:
                    answers[response.status_code] = answers.get(response.status_code, 0) + 1
                    codes[code] = codes.get(code, 0) + 1

    threads = [threading.Thread(target=flood, args=(requests[i::4],), daemon=True) for i in range(4)]
    started = time.monotonic()
    with Meanwhile(a, b, memory, min_calls=1):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(thread.is_alive() for thread in threads), "the flood hung"
    elapsed = time.monotonic() - started
    print(f"\nflood: {FLOOD} envelopes in {elapsed:.1f} s, answers {answers}, codes {codes}")
    assert not failures, failures[:5]
    assert answers == {401: FLOOD} and codes == {"bad_signature": FLOOD}
    new_seen = seen_ids(b) - seen_before
    flood_ids = {envelope_id for envelope_id, _body, _headers in requests}
    assert not new_seen & flood_ids, "a refused envelope reached the seen-id table"
    # What did grow came from a's real exchanges meanwhile, far fewer than the flood.
    assert len(new_seen) < FLOOD // 5, len(new_seen)
    forged = [e for e in b.executions() if str(e["inputs"].get("since", "")).startswith(("forged", "FORGED"))]
    assert not forged, forged[:3]
    memory.check()
