"""Faults between and inside linked workspaces: each ends in a clear state and sentence, and
the link recovers when the fault is gone, with every remote call ending exactly once.

- Network (tests/adversarial/tcp_proxy.py between two `flowlink serve` processes on
  127.0.0.1; a's Remote URL points at the proxy, b has no Remote URL, so every byte of the
  link crosses the proxy): connections dropped, delayed, cut in the middle of a request or
  of a response, a partition that refuses (and, with FLOWLINK_SOAK=1, one that swallows
  everything), each with `flowlink link status` saying what is wrong meanwhile.
- A partition longer than the 300 s window, with a fake clock in two in-process Runtimes
  (waiting 300 s is not the point): envelopes are made fresh per attempt, so the first
  exchange after the partition is not refused for clock skew or replay.
- SIGKILL of either workspace at random moments during bursts of remote calls.
- A keyring that locks mid-run, the database read-only, the disk full: the workspace under
  the fault runs in this process (a Runtime) so the fault can be injected into its objects;
  each test says how.

Every call ends exactly once: b's executions hold each request_id once, every one of a's
remote children is terminal, and both outboxes drain.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tcp_proxy import FaultProxy

from flowlink.link.signing import HEADER_NAME
from pair_fixtures import Peer, wait_until
from workspace_fixtures import cli_env, flowlink

SOAK = os.environ.get("FLOWLINK_SOAK") == "1"
pytestmark = [pytest.mark.xdist_group("link-faults"),
              pytest.mark.timeout(900 if SOAK else 180)]
KILLS = 10 if SOAK else 2
TERMINAL = ("ENDED_SUCCESS", "ENDED_ERROR", "ENDED_CANCELLED")

COLLECT = """\
def handler(system, this, inputs):
    this.save(output_value={'i': inputs['i'], 'tag': inputs['tag']})
"""
SLOW_COLLECT = """\
import time
def handler(system, this, inputs):
    time.sleep(inputs.get('sleep', 0))
    this.save(output_value={'i': inputs['i'], 'tag': inputs['tag']})
"""
BURST = """\
def handler(system, this, inputs):
    children = [this.flow('collect_logs', remote_workspace_name=inputs.get('remote', 'b'),
                          wait=False, i=i, tag=inputs['tag'], sleep=inputs.get('sleep', 0),
                          pad=inputs.get('pad', ''))
                for i in range(inputs['n'])]
    this.wait_for(*children)
    this.save(output_value={'n': len(children)})
"""


# -- peers whose output is kept (a pipe nobody reads would fill up and stall serve) ------------


class LoggedPeer(Peer):
    """A Peer whose serve stdout/stderr and CLI output go to files under ``logs/`` beside the
    data dir (the secrets audit reads them)."""

    @property
    def log_dir(self) -> Path:
        path = self.data_dir.parent / "logs"
        path.mkdir(exist_ok=True)
        return path

    def cli(self, *args: str, check: bool = True, timeout: float = 60):
        result = flowlink(self.data_dir, *args, timeout=timeout)
        with open(self.log_dir / f"{self.name}-cli.log", "a", encoding="utf-8") as log:
            log.write(f"$ flowlink {' '.join(args)}\n{result.stdout}{result.stderr}")
        if check:
            assert result.returncode == 0, f"flowlink {' '.join(args)}: {result.stderr}"
        return result

    def serve(self) -> str:
        assert self.proc is None or self.proc.poll() is not None
        err = open(self.log_dir / f"{self.name}-serve.err", "a", encoding="utf-8")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter
                [sys.executable, "-m", "flowlink", "serve", "--listen", f"127.0.0.1:{self.port}",
                 "--data-dir", str(self.data_dir)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True,
                env=cli_env(),
            )
        finally:
            err.close()
        first = self.proc.stdout.readline()
        if not first.startswith("listening on https://127.0.0.1:"):
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"{self.name}: serve printed {first!r}; "
                                 f"{(self.log_dir / f'{self.name}-serve.err').read_text()[-2000:]}")
        self.url = first.split()[-1]
        self.port = int(self.url.rsplit(":", 1)[1])
        out = open(self.log_dir / f"{self.name}-serve.out", "a", encoding="utf-8")  # noqa: SIM115
        out.write(first)
        threading.Thread(target=_drain, args=(self.proc.stdout, out), daemon=True).start()
        return self.url

    def stop(self, sig: int | None = None) -> int | None:
        import signal

        if self.proc is None:
            return None
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(sig if sig is not None else signal.SIGTERM)
        code = proc.wait(30)
        self.proc = None
        return code

    def kill(self) -> None:
        import signal

        self.stop(signal.SIGKILL)


def _drain(stream: Any, out: Any) -> None:
    with contextlib.suppress(ValueError, OSError), out:
        for line in stream:
            out.write(line)
            out.flush()


def init_peer(folder: Path, name: str) -> LoggedPeer:
    peer = LoggedPeer(name, folder / name)
    peer.init()
    return peer


def link_to(src: Peer, dst: Peer, url: str | None, *extra: str) -> None:
    """``src`` gets a Synch Config for ``dst``; ``url`` None means src only answers."""
    args = ["link", "add", dst.name, "--remote-public-key", str(dst.files["pub"]),
            "--ca-cert", str(dst.files["ca"])]
    if url:
        args += ["--remote-url", url]
    src.cli(*args, *extra)


# -- reading the two stores (read-only, WAL: never blocks the serve processes) -----------------


def query(peer: Peer, sql: str, *params: Any) -> list[tuple]:
    conn = sqlite3.connect(f"file:{peer.data_dir / 'workspace.db'}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def link_row(peer: Peer, link: str) -> dict[str, Any]:
    rows = query(peer, "SELECT last_error, direct_ok, last_success, in_seq FROM link_state "
                 "WHERE name = ?", link)
    if not rows:
        return {"last_error": None, "direct_ok": None, "last_success": None, "in_seq": 0}
    error, direct_ok, last_success, in_seq = rows[0]
    return {"last_error": error, "direct_ok": direct_ok, "last_success": last_success, "in_seq": in_seq}


def cli_status(peer: Peer, link: str) -> tuple[dict[str, Any], str]:
    """`flowlink link status LINK` as JSON and as the text a person reads."""
    data = json.loads(peer.cli("link", "status", link, "--json").stdout)[link]
    return data, peer.cli("link", "status", link).stdout


@dataclass
class Ledger:
    """Every remote call a made to b (a's remote children) and what b ran for them."""

    made: int
    ended: int
    lost: int  # made in a, but never ran in b or never ended in a
    twice: int  # ran more than once in b
    phantom: int  # ran in b with no call in a
    b_open: int  # ran in b, not ended there
    outbox_a: int
    outbox_b: int

    @property
    def settled(self) -> bool:
        return (self.ended == self.made and self.b_open == 0 and self.outbox_a == 0
                and self.outbox_b == 0)

    def check(self) -> None:
        assert self.lost == 0, f"{self.lost} calls lost: {self}"
        assert self.twice == 0, f"{self.twice} calls ran twice: {self}"
        assert self.phantom == 0, f"{self.phantom} runs in b nobody asked for: {self}"
        assert self.settled, f"not settled: {self}"


def ledger(a: Peer, b: Peer) -> Ledger:
    calls = dict(query(a, "SELECT request_id, status FROM executions "
                          "WHERE workspace = ? AND request_id IS NOT NULL", b.name))
    runs = query(b, "SELECT request_id, count(*), sum(status IN (?, ?, ?)) FROM executions "
                    "WHERE origin_link = ? GROUP BY request_id", *TERMINAL, a.name)
    ran = {rid: (count, ended) for rid, count, ended in runs}
    ended = sum(1 for status in calls.values() if status in TERMINAL)
    lost = sum(1 for rid, status in calls.items() if status in TERMINAL and rid not in ran)
    return Ledger(
        made=len(calls), ended=ended, lost=lost,
        twice=sum(1 for count, _ended in ran.values() if count > 1),
        phantom=sum(1 for rid in ran if rid not in calls),
        b_open=sum(count - (ended or 0) for count, ended in ran.values()),
        outbox_a=query(a, "SELECT count(*) FROM outbox WHERE link = ?", b.name)[0][0],
        outbox_b=query(b, "SELECT count(*) FROM outbox WHERE link = ?", a.name)[0][0],
    )


def status_of(peer: Peer, execution_id: int) -> str:
    return query(peer, "SELECT status FROM executions WHERE id = ?", execution_id)[0][0]


def wait_ended(peer: Peer, execution_id: int, timeout: float = 90) -> str:
    wait_until(lambda: status_of(peer, execution_id) in TERMINAL, timeout=timeout, interval=0.1,
               what=f"execution {execution_id} in {peer.name} to end")
    return status_of(peer, execution_id)


def settle(a: Peer, b: Peer, timeout: float = 90) -> Ledger:
    """Wait until every call a made has ended and both outboxes are empty; check the books."""
    state: dict[str, Ledger] = {}

    def settled() -> bool:
        state["ledger"] = ledger(a, b)
        return state["ledger"].settled

    try:
        wait_until(settled, timeout=timeout, interval=0.1, what="every call to end and the outboxes to drain")
    except AssertionError:
        raise AssertionError(f"not settled after {timeout} s: {state.get('ledger')}") from None
    result = state["ledger"]
    result.check()
    return result


# -- the proxied pair --------------------------------------------------------------------------


@dataclass
class ProxiedPair:
    a: LoggedPeer
    b: LoggedPeer
    proxy: FaultProxy
    folder: Path

    def burst(self, n: int, tag: str, **extra: Any) -> int:
        """Start a flow in a that makes ``n`` remote calls to b at once; its execution id."""
        inputs = json.dumps({"n": n, "tag": tag, **extra})
        return int(self.a.cli("run", "burst", "--no-wait", "--inputs-json", inputs).stdout)

    def calls_with_tag(self, tag: str) -> list[tuple[str, str]]:
        return query(self.a, "SELECT request_id, status FROM executions WHERE workspace = 'b' "
                             "AND json_extract(inputs, '$.tag') = ?", tag)

    def close(self) -> None:
        self.proxy.close()
        for peer in (self.a, self.b):
            with contextlib.suppress(Exception):
                peer.stop()


def make_proxied_pair(folder: Path) -> ProxiedPair:
    a, b = init_peer(folder, "a"), init_peer(folder, "b")
    b.add_flow("collect_logs", SLOW_COLLECT)
    a.add_flow("burst", BURST)
    b.serve()
    proxy = FaultProxy(("127.0.0.1", b.port))
    a.serve()
    link_to(a, b, proxy.url("/api/latest/sync_config/a/sync"))
    link_to(b, a, None)  # b only answers: every exchange crosses the proxy
    return ProxiedPair(a, b, proxy, folder)


# Session scope: the pair is made once per worker even when xdist interleaves this module's
# tests with others (pytest 9 + xdist 3.8 ignore xdist_group, so loadgroup cannot help).
@pytest.fixture(scope="session")
def pp(tmp_path_factory) -> Iterator[ProxiedPair]:
    pair = make_proxied_pair(tmp_path_factory.mktemp("faults"))
    try:
        assert wait_ended(pair.a, pair.burst(3, "warmup")) == "ENDED_SUCCESS"
        settle(pair.a, pair.b)
        yield pair
    finally:
        pair.close()


@pytest.fixture
def healthy(pp: ProxiedPair) -> Iterator[ProxiedPair]:
    """The pair, healed and settled after the test whatever it did."""
    yield pp
    pp.proxy.heal()
    for peer in (pp.a, pp.b):
        if peer.proc is None or peer.proc.poll() is not None:
            peer.serve()
    settle(pp.a, pp.b)


def wait_error(pair: ProxiedPair, *fragments: str, timeout: float = 30) -> str:
    """Wait for a's status of b to be an error containing one of ``fragments``; check the
    CLI shows that sentence and the state; return the sentence."""
    def sentence() -> str | None:
        error = link_row(pair.a, "b")["last_error"]
        return error if error and any(f in error for f in fragments) else None

    error = wait_until(sentence, timeout=timeout, interval=0.1,
                       what=f"a's link status to say one of {fragments}")

    def shown() -> bool:
        # What a person reads; a retry may succeed in between, so look again until it shows.
        text = pair.a.cli("link", "status", "b").stdout
        lines = text.splitlines()
        return (lines[0] == "b: error" and "direct path (this side connects): fails" in text
                and any(line.startswith("  last error: ") and any(f in line for f in fragments)
                        for line in lines))

    wait_until(shown, timeout=timeout, interval=0.2, what="`flowlink link status b` to show the error")
    return error


def finish(pair: ProxiedPair, execution_id: int, tag: str, n: int) -> None:
    """After healing: the burst ends, each of its n calls ran once in b, status is clean."""
    assert wait_ended(pair.a, execution_id) == "ENDED_SUCCESS"
    books = settle(pair.a, pair.b)
    calls = pair.calls_with_tag(tag)
    assert len(calls) == n and {status for _rid, status in calls} == {"ENDED_SUCCESS"}, calls[:5]
    wait_until(lambda: link_row(pair.a, "b")["last_error"] is None, timeout=30,
               what="a's link status to clear its error")
    data, _text = cli_status(pair.a, "b")
    assert data["state"] in ("synced", "syncing") and data["direct_ok"] is True, data
    print(f"\n{tag}: {books}")


# -- network faults through the proxy ----------------------------------------------------------


def test_dropped_connections(healthy: ProxiedPair):
    pair = healthy
    pair.proxy.drop()
    execution_id = pair.burst(10, "drop")
    sentence = wait_error(pair, "Cannot connect to", "The exchange with")
    assert pair.proxy.url() in sentence or "127.0.0.1" in sentence, sentence
    # The sentence may come from the cut of an open connection; then retries meet the drop.
    wait_until(lambda: pair.proxy.stats.dropped > 0, timeout=30, what="a retry to be dropped")
    wait_error(pair, "Cannot connect to", "The exchange with")
    assert not pair.calls_with_tag("drop") or all(
        s == "PENDING" for _r, s in pair.calls_with_tag("drop")), "nothing can pass a dropping proxy"
    pair.proxy.heal()
    finish(pair, execution_id, "drop", 10)


def test_delayed_connections(healthy: ProxiedPair):
    pair = healthy
    delay = 0.25
    pair.proxy.delay(delay)
    before = pair.proxy.stats.bytes_up
    started = time.monotonic()
    execution_id = pair.burst(10, "delay")
    finish(pair, execution_id, "delay", 10)
    elapsed = time.monotonic() - started
    # Slow, not broken: no error at any point, and the bytes did cross the delaying proxy.
    assert pair.proxy.stats.bytes_up > before and elapsed >= 2 * delay
    pair.proxy.heal()


@pytest.mark.soak_only  # a delay past the client's timeouts takes > 10 s
def test_delay_longer_than_the_timeouts(healthy: ProxiedPair):
    pair = healthy
    pair.proxy.delay(20)
    pair.proxy.sever()  # new connections only: the TLS handshake itself waits 20 s per leg
    execution_id = pair.burst(5, "long-delay")
    sentence = wait_error(pair, "did not answer in time", timeout=60)
    assert "Timeout" in sentence
    pair.proxy.heal()
    finish(pair, execution_id, "long-delay", 5)


def handshake_bytes(pair: ProxiedPair) -> tuple[int, int]:
    """Bytes a fresh TLS connection to b costs each way before its first request (the
    certificate chain and session tickets set most of it), measured through a proxy of
    its own so that a's traffic does not count."""
    import socket

    request = b"GET /api/latest/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    probe = FaultProxy(("127.0.0.1", pair.b.port))
    try:
        raw = socket.create_connection(probe.address, timeout=10)
        with _ctx(pair.b).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
        wait_until(lambda: probe.open_connections == 0, timeout=10, what="the probe to close")
        # TLS adds ~22 bytes per record; the request and the answer are one record each.
        return (probe.stats.bytes_up - len(request) - 22,
                probe.stats.bytes_down - len(answer) - 22)
    finally:
        probe.close()


@pytest.mark.parametrize("direction", ["up", "down"])
def test_cut_mid_body(healthy: ProxiedPair, direction: str):
    """Every connection is cut 900 bytes past its TLS handshake (measured first), inside
    the first request ("up": its head alone, with the signature, is ~750 bytes) or the first
    response ("down": b has applied what a sent, a never hears back and sends it again;
    redelivery has no second effect). Every exchange fails the same way meanwhile."""
    pair = healthy
    tag = f"cut-{direction}"
    up, down = handshake_bytes(pair)
    if direction == "down":
        # b must have something to say: calls it runs while the cut is on.
        execution_id = pair.burst(40, tag, pad="p" * 200)
        wait_until(lambda: len(pair.calls_with_tag(tag)) == 40, timeout=30, what="the calls to be made")
        pair.proxy.cut_after(down + 900, "down")
    else:
        pair.proxy.cut_after(up + 900, "up")
        execution_id = pair.burst(40, tag, pad="p" * 200)
    pair.proxy.sever()  # open connections start over: their budget counts from the handshake
    wait_until(lambda: pair.proxy.stats.cuts >= 2, timeout=30, what="the proxy to cut exchanges")
    sentence = wait_error(pair, "The exchange with")
    print(f"\n{tag}: handshake {up}/{down} bytes up/down, {pair.proxy.stats.cuts} cuts; "
          f"status said: {sentence}")
    pair.proxy.heal()
    finish(pair, execution_id, tag, 40)


def test_partition_refused(healthy: ProxiedPair):
    pair = healthy
    pair.proxy.refuse()
    execution_id = pair.burst(10, "refuse")
    sentence = wait_error(pair, "Connection refused")
    assert sentence.startswith(f"Cannot connect to {pair.proxy.url()}"), sentence
    assert "Is the other workspace running and listening?" in sentence
    pair.proxy.heal()
    finish(pair, execution_id, "refuse", 10)


@pytest.mark.soak_only  # a swallowing partition shows only after the 10 s connect timeout
def test_partition_blackhole(healthy: ProxiedPair):
    pair = healthy
    pair.proxy.blackhole()
    execution_id = pair.burst(10, "blackhole")
    sentence = wait_error(pair, "did not answer in time", timeout=90)
    assert "Timeout" in sentence
    pair.proxy.heal()
    finish(pair, execution_id, "blackhole", 10)


# -- SIGKILL at random moments -----------------------------------------------------------------


def kill_and_restart(peer: LoggedPeer) -> None:
    peer.kill()
    peer.serve()


def test_sigkill_either_side_at_random_moments(healthy: ProxiedPair):
    pair = healthy
    seed = int(os.environ.get("FLOWLINK_CHAOS_SEED") or time.time_ns() % 1_000_000)
    rng = random.Random(seed)
    print(f"\nchaos seed {seed} (set FLOWLINK_CHAOS_SEED to replay it)")
    victims = ["a", "b"] * (KILLS // 2) + (["a"] if KILLS % 2 else [])
    rng.shuffle(victims)
    bursts: list[tuple[int, str]] = []
    per_burst = 40
    hits: list[int] = []
    for k, victim in enumerate(victims):
        tag = f"kill-{k}"
        bursts.append((pair.burst(per_burst, tag, sleep=0.1), tag))
        wait_until(lambda t=tag: pair.calls_with_tag(t), timeout=30, what=f"burst {tag} to start")
        time.sleep(rng.uniform(0.0, 0.8))  # the random moment: this is the fault's schedule
        in_flight = sum(1 for _r, s in pair.calls_with_tag(tag) if s not in TERMINAL)
        peer = pair.a if victim == "a" else pair.b
        kill_and_restart(peer)
        hits.append(in_flight)
    # b runs each call for 0.1 s, four at a time: every kill lands while calls are in flight.
    assert all(hits), f"calls in flight at each kill: {hits}"
    books = settle(pair.a, pair.b, timeout=120)
    print(f"\nSIGKILL x{KILLS} ({''.join(victims)}, calls in flight {hits}): {books}")
    for _execution_id, tag in bursts:
        calls = pair.calls_with_tag(tag)
        # A burst whose flow was running in a when a died made fewer calls; each made call
        # ended once, whatever it was doing when either side died.
        assert 0 < len(calls) <= per_burst and all(s in TERMINAL for _r, s in calls), (tag, calls[:3])


# -- workspaces run in this process (faults go into their objects) -----------------------------


class InProc:
    """A workspace created and run in this test process (a ``Runtime``), so a test can put a
    fault into its objects: a fake clock, a keyring, its SQLite connections."""

    def __init__(self, folder: Path, name: str) -> None:
        from flowlink.workspace.workspace import Workspace

        self.name = name
        self.data_dir = folder / name
        self.ws = Workspace.init(self.data_dir, name, admin="tester", secret_store="file")
        self.files = {"pub": folder / f"{name}.pub", "ca": folder / f"{name}.ca"}
        self.files["pub"].write_text(self.ws.public_key_pem)
        self.files["ca"].write_text(self.ws.ca_cert_pem)
        self.url: str | None = None
        self.port = 0
        self.rt: Any = None

    def link(self, dst: Any, url: str | None) -> None:
        from flowlink.workspace.links import SyncConfigChange

        self.ws.links.add(dst.name, SyncConfigChange(
            remote_url=url or "", ca_cert=dst.files["ca"].read_text(),
            remote_public_key=dst.files["pub"].read_text()))

    def start(self, *, listen: bool = False, workspace: Any = None) -> None:
        from flowlink.runtime import Runtime

        self.rt = Runtime(workspace or self.ws, listen=("127.0.0.1", 0) if listen else None,
                          parallelism=4)
        self.rt.start()
        if listen:
            self.url, self.port = self.rt.endpoint.url, self.rt.endpoint.port

    def stop(self) -> None:
        if self.rt is not None:
            self.rt.stop()
            self.rt = None

    def sync_url(self, for_peer: str) -> str:
        assert self.url
        return f"{self.url}/api/latest/sync_config/{for_peer}/sync"

    def burst(self, n: int, tag: str, **extra: Any) -> int:
        return self.rt.engine.submit("burst", {"n": n, "tag": tag, **extra})

    def status(self, link: str) -> Any:
        """The link's status as this running process sees it (what the GUI and tray show)."""
        return self.rt.links.statuses()[link]


@pytest.fixture
def inproc(tmp_path) -> Iterator[Callable[[str], InProc]]:
    made: list[InProc] = []

    def make(name: str) -> InProc:
        made.append(InProc(tmp_path, name))
        return made[-1]

    yield make
    for workspace in made:
        workspace.stop()
        workspace.ws.close()


class FakeDatetime(datetime):
    """``datetime`` whose now() runs ``offset`` ahead of the real clock."""

    offset = timedelta(0)

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return datetime.now(tz) + cls.offset


def test_partition_longer_than_the_clock_window_with_a_fake_clock(inproc, monkeypatch):
    """In-process Runtimes p and q (p's Remote URL through the proxy), one fake clock for the
    link code of both (flowlink.link.envelope and .exchange read it): the partition "lasts"
    400 s without anyone waiting for it. Envelopes are built and signed per attempt, so the
    first exchange after it carries a fresh ``created`` and a new id: no clock_skew, no replay.
    A control proves the clock is in effect: an envelope built before the partition and sent
    after it is refused for clock skew."""
    monkeypatch.setattr("flowlink.link.envelope.datetime", FakeDatetime)
    monkeypatch.setattr("flowlink.link.exchange.datetime", FakeDatetime)
    monkeypatch.setattr(FakeDatetime, "offset", timedelta(0))
    p, q = inproc("p"), inproc("q")
    q.ws.add_flow("collect_logs", SLOW_COLLECT)
    p.ws.add_flow("burst", BURST)
    q.link(p, None)
    q.start(listen=True)
    proxy = FaultProxy(("127.0.0.1", q.port))
    try:
        p.link(q, proxy.url("/api/latest/sync_config/p/sync"))
        p.start()
        assert p.rt.engine.wait_ended([p.burst(2, "before", remote="q")], 30)

        events: list[tuple[str, str]] = []
        report = p.rt.links._report

        def spy(name: str, *, busy: bool = False, success: bool = False, error: str | None = None) -> None:
            if success or error:
                events.append(("ok", "") if success else ("error", error or ""))
            report(name, busy=busy, success=success, error=error)

        p.rt.links._report = spy
        proxy.refuse()
        execution_id = p.burst(3, "partition", remote="q")
        wait_until(lambda: any("Connection refused" in e for _k, e in events), timeout=20,
                   what="p to fail to reach q")
        config = p.ws.links.get("q")
        stale, stale_body, stale_signature, _sent = p.rt.links.exchange.build_request(config, wait=0)
        FakeDatetime.offset = timedelta(seconds=400)  # the partition lasted 400 s
        # Control: the envelope made before the partition is refused now, naming the skew.
        with httpx.Client(verify=_ctx(q), trust_env=False, timeout=10) as client:
            refused = client.post(q.sync_url("p"), content=stale_body,
                                  headers={HEADER_NAME: stale_signature, "Content-Type": "application/json"})
        assert refused.status_code == 401 and refused.json()["error"] == "clock_skew", refused.text
        healed_at = len(events)
        proxy.heal()
        assert p.rt.engine.wait_ended([execution_id], 60)
        after = [e for e in events[healed_at:] if "Connection refused" not in e[1]]
        assert after and after[0] == ("ok", ""), f"first exchange after the partition: {after[:3]}"
        assert not [e for e in events if "skew" in e[1] or "replay" in e[1]], events
        books = settle(p, q)
        assert p.ws.get_execution(execution_id).status == "ENDED_SUCCESS"
        print(f"\npartition of 400 s (fake clock): events after healing {after[:3]}; {books}")
    finally:
        proxy.close()


def _ctx(peer: Any) -> Any:
    import ssl

    return ssl.create_default_context(cafile=str(peer.files["ca"]))


# -- a keyring that locks ----------------------------------------------------------------------


class LockableKeyring:
    """Fault injection: a stand-in OS keyring backend that serves the workspace's secrets
    (from its file store) until it is locked, then raises keyring's own KeyringLocked, as a
    locked Secret Service does. ``lock_after`` N calls, or ``lock()`` now."""

    def __init__(self, file_store: Any, lock_after: int | None = None) -> None:
        self.file_store = file_store
        self.calls = 0
        self.lock_after = lock_after

    @property
    def locked(self) -> bool:
        return self.lock_after is not None and self.calls >= self.lock_after

    def lock(self) -> None:
        self.lock_after = self.calls

    def unlock(self) -> None:
        self.lock_after = None

    def get_password(self, service: str, key: str) -> str | None:
        import keyring.errors

        if self.locked:
            raise keyring.errors.KeyringLocked("Failed to unlock the collection!")
        self.calls += 1
        return self.file_store.get_optional(key)

    def set_password(self, service: str, key: str, value: str) -> None:
        raise AssertionError("nothing is stored in this test")

    def delete_password(self, service: str, key: str) -> None:
        raise AssertionError("nothing is deleted in this test")


def keyring_store(workspace: Any, fake: LockableKeyring) -> Any:
    """A SecretStore of the keyring kind whose backend is ``fake`` (named Secret Service)."""
    from flowlink.workspace.secrets import SecretStore, _KeyringBackend

    backend = _KeyringBackend(workspace.id)
    backend._keyring, backend._name = fake, "Secret Service (org.freedesktop.secrets)"
    return SecretStore(backend)


def test_keyring_that_locks_mid_run(pp: ProxiedPair, inproc):
    """Workspace k runs in this process with a keyring (fault injection: LockableKeyring).
    A process that has loaded its keys keeps working when the keyring locks (the signer
    caches them); a process that starts while it is locked cannot sign: its link status is
    the one SecretStoreError sentence, nothing queued is lost, and unlocking is enough."""
    from flowlink.workspace.secrets import SecretStore
    from flowlink.workspace.workspace import Workspace

    b = pp.b
    k = inproc("k")
    k.ws.add_flow("burst", BURST)
    k.link(b, b.sync_url("k"))
    link_to(b, k, None)
    files = SecretStore.open("file", k.data_dir, k.ws.id)
    fake = LockableKeyring(files)
    k.ws._secrets = keyring_store(k.ws, fake)
    k.start()
    assert k.rt.engine.wait_ended([k.burst(2, "k-unlocked")], 30)
    fake.lock()
    # Mid-run: this process has its keys; a locked keyring changes nothing for it.
    first = k.burst(2, "k-locked-running")
    assert k.rt.engine.wait_ended([first], 30) and k.ws.get_execution(first).status == "ENDED_SUCCESS"
    k.stop()
    # A clean stop leaves no error behind (the long poll it cut short is not a link error).
    assert link_row(k, "b")["last_error"] is None, link_row(k, "b")

    # A fresh process (here: a fresh Workspace object and Runtime) while it is still locked.
    fresh = Workspace.open(k.data_dir)
    try:
        fresh._secrets = keyring_store(fresh, fake)
        k.start(workspace=fresh)
        execution_id = fresh.create_execution("burst", {"n": 3, "tag": "k-locked-fresh"})
        k.rt.engine.wake()
        expected = "The Secret Service (org.freedesktop.secrets) is locked, so Flowlink could not finish reading the secret '"
        error = wait_until(lambda: link_row(k, "b")["last_error"], timeout=30, what="k's link status to show the error")
        assert error.startswith(expected) and error.endswith("--secret-store file or FLOWLINK_SECRET_STORE=file."), error
        assert "PRIVATE KEY" not in error
        text = flowlink(k.data_dir, "link", "status", "b").stdout
        assert text.startswith("b: error\n") and f"  {error}\n" in text, text
        assert k.status("b").sentence == error
        # Nothing lost: the three starts wait in the outbox, the calls are pending.
        wait_until(lambda: len(query(k, "SELECT 1 FROM executions WHERE workspace = 'b' AND "
                                        "json_extract(inputs, '$.tag') = 'k-locked-fresh'")) == 3,
                   timeout=30, what="the three calls to be made")
        assert query(k, "SELECT count(*) FROM outbox WHERE link = 'b'")[0][0] >= 3
        fake.unlock()
        assert k.rt.engine.wait_ended([execution_id], 60)
        assert fresh.get_execution(execution_id).status == "ENDED_SUCCESS"
        wait_until(lambda: link_row(k, "b")["last_error"] is None, timeout=30, what="the error to clear")
        books = settle(k, b)
        print(f"\nkeyring locked: status said {error[:90]}...; {books}")
    finally:
        k.stop()
        fresh.close()


# -- the database read-only, the disk full -----------------------------------------------------


class DbFault:
    """Fault injection into one workspace's SQLite connections (all of them: its Store is
    reopened with this connection class before anything runs).

    - "read-only": SQLite's own ``PRAGMA query_only`` is switched on in every connection, so
      every write fails with SQLite's real SQLITE_READONLY ("attempt to write a readonly
      database"). Not chmod: this suite runs as root, and chmod does not stop root (nor an
      open file descriptor); a read-only bind or remount is not available everywhere.
    - "disk-full": every write statement fails with SQLite's SQLITE_FULL message ("database
      or disk is full"), raised before the statement runs, as SQLite does when a page cannot
      be written (the transaction is rolled back). This is the stand-in where no small
      filesystem can be mounted; test_disk_full_on_a_real_small_filesystem fills a real one.
    """

    WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")

    def __init__(self) -> None:
        self.mode: str | None = None
        self.generation = 0

    def set(self, mode: str | None) -> None:
        self.mode = mode
        self.generation += 1

    def install(self, workspace: Any, monkeypatch: Any) -> None:
        fault = self

        class FaultyConnection(sqlite3.Connection):
            _generation = -1

            def _sync(self) -> None:
                if self._generation != fault.generation:
                    self._generation = fault.generation
                    on = "ON" if fault.mode == "read-only" else "OFF"
                    super().execute(f"PRAGMA query_only = {on}")

            def execute(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
                self._sync()
                if fault.mode == "disk-full" and sql.lstrip()[:7].upper().startswith(fault.WRITES):
                    raise sqlite3.OperationalError("database or disk is full")
                return super().execute(sql, *args)

            def executemany(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
                self._sync()
                if fault.mode == "disk-full":
                    raise sqlite3.OperationalError("database or disk is full")
                return super().executemany(sql, *args)

        store = workspace.store
        real_connect = sqlite3.connect

        def connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
            if Path(str(database)) == store.path and "factory" not in kwargs:
                kwargs["factory"] = FaultyConnection
            return real_connect(database, *args, **kwargs)

        monkeypatch.setattr(sqlite3, "connect", connect)
        store.close()  # nothing runs yet: every connection from now on is a FaultyConnection


LOCAL_SLOW = """\
import time
def handler(system, this, inputs):
    time.sleep(inputs['sleep'])
    this.save(output_value={'slept': inputs['sleep']})
"""

FAULT_SENTENCES = {
    "read-only": "cannot be written (attempt to write a readonly database)",
    "disk-full": "is full (database or disk is full)",
}


@pytest.mark.parametrize("mode", ["read-only", "disk-full"])
def test_database_fault_in_a_running_workspace(pp: ProxiedPair, inproc, caplog, monkeypatch, mode: str):
    """Workspace x runs in this process (its SQLite connections carry a DbFault, see there),
    linked both ways with b: x calls b and b calls x. While x cannot write: x's own status
    (what its GUI shows) says why, b's status of x says x answered 503 with the same cause,
    a flow of x's that ends meanwhile is not lost, and nothing loops: the engine, the sync
    loops and the endpoint stay up, logging a bounded number of warnings. When the fault is
    gone everything completes, each call once."""
    b = pp.b
    x = inproc(f"x-{mode}")
    fault = DbFault()
    fault.install(x.ws, monkeypatch)
    for name, source in (("burst", BURST), ("collect_logs", SLOW_COLLECT), ("local_slow", LOCAL_SLOW)):
        x.ws.add_flow(name, source)
    x.link(b, b.sync_url(x.name))
    x.start(listen=True)
    link_to(b, x, x.sync_url("b"))
    if not query(b, "SELECT 1 FROM flows WHERE name = 'burst'"):
        b.add_flow("burst", BURST)
    warm = x.burst(2, f"{mode}-warm", sleep=0)
    assert x.rt.engine.wait_ended([warm], 30) and x.ws.get_execution(warm).status == "ENDED_SUCCESS"

    # x's calls run in b for 1.5 s, a local flow of x's ends in 0.5 s: both during the fault.
    x_calls = x.burst(3, f"{mode}-x-to-b", sleep=1.5)
    local = x.rt.engine.submit("local_slow", {"sleep": 0.5})
    wait_until(lambda: len(query(b, "SELECT 1 FROM executions WHERE origin_link = ? AND "
                                    "json_extract(inputs, '$.tag') = ?", x.name, f"{mode}-x-to-b")) == 3,
               timeout=30, what="b to start x's calls")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        fault.set(mode)
        fault_started = time.monotonic()
        b_calls = int(b.cli("run", "burst", "--no-wait", "--inputs-json", json.dumps(
            {"n": 3, "tag": f"{mode}-b-to-x", "remote": x.name})).stdout)
        cause = FAULT_SENTENCES[mode]
        own = wait_until(lambda: cause in (x.status("b").sentence or "") and x.status("b"),
                         timeout=30, what="x's status to name the fault")
        assert own.state == "error" and str(x.data_dir / "workspace.db") in own.sentence, own
        assert own.sentence.endswith("Nothing was lost; Flowlink retries."), own.sentence
        assert f"database {x.data_dir / 'workspace.db'}" in own.sentence
        theirs = wait_until(lambda: (link_row(b, x.name)["last_error"] or "") if cause in (
            link_row(b, x.name)["last_error"] or "") else None, timeout=30, what="b's status to name x's fault")
        assert theirs.startswith(f"'{x.name}' answered HTTP 503 (unavailable): The ") and theirs.endswith("retries."), theirs
        assert str(x.data_dir) not in theirs, "the peer is not told local paths"
        text = b.cli("link", "status", x.name).stdout  # every exchange of b's fails meanwhile
        assert text.startswith(f"{x.name}: error\n") and f"  last error: {theirs}\n" in text, text
        wait_until(lambda: time.monotonic() - fault_started > 1.5, timeout=10, what="a while of fault")
        # Nothing crashed or loops: every thread of x is alive, it still answers health.
        threads = {t.name for t in threading.enumerate()}
        assert {"flowlink-engine", "flowlink-endpoint", "flowlink-link-b-push", "flowlink-link-b-poll"} <= threads, threads
        assert x.rt.engine._fatal is None, x.rt.engine._fatal
        with httpx.Client(verify=_ctx(x), trust_env=False, timeout=10) as client:
            assert client.get(f"{x.url}/api/latest/health").status_code == 200
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        fault_seconds = time.monotonic() - fault_started
        fault.set(None)
    print(f"\n{mode}: x's status said: {own.sentence}\n b's status of x said: {theirs}\n"
          f" {len(warnings)} warnings in {fault_seconds:.1f} s")
    assert len(warnings) < 40 * fault_seconds, [r.getMessage() for r in warnings[:5]]
    assert not [r for r in warnings if "Traceback" in (r.exc_text or "") and r.levelno >= logging.ERROR
                and "engine loop failed" in r.getMessage()]
    # Recovery: every call and the local flow end, each once.
    healed = time.monotonic()
    assert x.rt.engine.wait_ended([x_calls, local], 60)
    print(f" x's calls and local flow ended {time.monotonic() - healed:.1f} s after the fault")
    assert x.ws.get_execution(x_calls).status == "ENDED_SUCCESS"
    assert x.ws.get_execution(local).status == "ENDED_SUCCESS", x.ws.get_execution(local).message
    assert wait_ended(b, b_calls) == "ENDED_SUCCESS"
    print(f" b's calls ended {time.monotonic() - healed:.1f} s after the fault")
    for caller, callee in ((x, b), (b, x)):
        settle(caller, callee)
    print(f" settled {time.monotonic() - healed:.1f} s after the fault")
    wait_until(lambda: x.status("b").state in ("synced", "syncing"), timeout=30, what="x's status to recover")
    print(f" x's status recovered {time.monotonic() - healed:.1f} s after the fault")
    # b's direct path failed during the fault while x's path carried everything since: its
    # retry must clear the error soon, not when the next long poll returns.
    wait_until(lambda: link_row(b, x.name)["last_error"] is None, timeout=15, what="b's status of x to recover")
    print(f" b's status recovered {time.monotonic() - healed:.1f} s after the fault")


def _can_mount_tmpfs(where: Path) -> bool:
    where.mkdir(exist_ok=True)
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)],  # noqa: S607
                           capture_output=True, timeout=10)
    if probe.returncode != 0:
        return False
    subprocess.run(["umount", str(where)], capture_output=True, timeout=10)  # noqa: S607
    return True


@contextlib.contextmanager
def small_filesystem(where: Path, size: str) -> Iterator[Path]:
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],  # noqa: S607
                   check=True, capture_output=True, timeout=10)
    try:
        yield where
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(where)], capture_output=True, timeout=10).returncode == 0:  # noqa: S607
                break
            time.sleep(0.1)


def fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` up to ENOSPC; returns the filler file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out:
        for size in (1 << 20, 65536, 4096, 512, 1):  # down to the last byte
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * size)
    return filler


def test_disk_full_on_a_real_small_filesystem(tmp_path):
    """A real ENOSPC: b's data dir on a 64 MB tmpfs (needs root and mount; skipped where the
    machine does not allow it, and test_database_fault_in_a_running_workspace[disk-full]
    simulates it everywhere). b's WAL is checkpointed to zero length, the filesystem filled,
    then a calls b: a's status says b's disk is full, and freeing space is all it takes."""
    mount_point = tmp_path / "small"
    from keyring_fixture import require_real

    require_real(_can_mount_tmpfs(mount_point), "mounting a small tmpfs (root with mount rights)")
    with small_filesystem(mount_point, "64m"):
        a = init_peer(tmp_path, "a")
        b = LoggedPeer("b", mount_point / "b")
        b.init()
        b.add_flow("collect_logs", SLOW_COLLECT)
        a.add_flow("burst", BURST)
        try:
            b.serve()
            a.serve()
            link_to(a, b, b.sync_url("a"))
            link_to(b, a, None)
            assert wait_ended(a, int(a.cli("run", "burst", "--no-wait", "--inputs-json",
                                             json.dumps({"n": 2, "tag": "warm"})).stdout)) == "ENDED_SUCCESS"
            settle(a, b)
            conn = sqlite3.connect(b.data_dir / "workspace.db", timeout=10)
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                conn.close()
            filler = fill(mount_point)
            execution_id = int(a.cli("run", "burst", "--no-wait", "--inputs-json",
                                     json.dumps({"n": 10, "tag": "full", "pad": "x" * 5000})).stdout)
            sentence = wait_until(lambda: (link_row(a, "b")["last_error"] or "") if "full" in (
                link_row(a, "b")["last_error"] or "") else None, timeout=30, what="a's status to say b's disk is full")
            assert sentence.startswith("'b' answered HTTP 503 (unavailable): The disk holding the workspace "
                                       "database is full"), sentence
            data, text = cli_status(a, "b")
            assert data["state"] == "error" and sentence in text, text
            assert b.proc.poll() is None, "b crashed on a full disk"
            filler.unlink()
            assert wait_ended(a, execution_id) == "ENDED_SUCCESS"
            books = settle(a, b)
            wait_until(lambda: link_row(a, "b")["last_error"] is None, timeout=30, what="a's status to recover")
            print(f"\nreal ENOSPC on tmpfs: a's status said: {sentence}\n {books}")
        finally:
            for peer in (a, b):
                peer.stop()
