"""Helpers for tests and benchmarks that talk to a real `flowlink serve` over HTTPS.

- ``ServeProcess``: one `flowlink serve --listen 127.0.0.1:0` child process; its URL is read
  from the first line it prints; ``stop()`` sends SIGTERM and returns the exit code.
- ``HandPeer``: the test's own side of a link (its RSA key, a Signer, its seq and ack), which
  builds and signs envelopes by hand and POSTs them to the serve process with httpx (TLS
  verified against the workspace CA, 127.0.0.1 only, a timeout on every call).

Nothing here sleeps for a fixed time where a condition can be polled.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from flowlink.link.envelope import Envelope, new_envelope
from flowlink.link.signing import HEADER_NAME, Signer, Verifier
from pair_fixtures import wait_until  # noqa: F401 - shared with the tests that import it from here

HOST = "127.0.0.1"
SYNC_PATH = "/api/latest/sync_config/{name}/sync"
HEALTH_PATH = "/api/latest/health"


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["FLOWLINK_SECRET_STORE"] = "file"
    env.update(extra)
    return env


def run_cli(data_dir: Path, *args: str, timeout: float = 60, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
    """`flowlink ARGS --data-dir DATA_DIR` in a new process; raises on failure when ``check``."""
    cmd = [sys.executable, "-m", "flowlink", *args, "--data-dir", str(data_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=cli_env())
    if check and proc.returncode != 0:
        raise AssertionError(
            f"flowlink {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


class ServeProcess:
    """A `flowlink serve` child process on 127.0.0.1 (port 0 unless ``port`` is given)."""

    def __init__(self, data_dir: Path, log_path: Path, *, port: int = 0,
                 extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.port = port
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []

    def start(self, timeout: float = 30.0) -> str:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.lines = queue.Queue()
        self.output = []
        log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter
                [sys.executable, "-m", "flowlink", "serve", "--listen", f"{HOST}:{self.port}",
                 "--data-dir", str(self.data_dir)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True,
                env=cli_env(**self.extra_env),
            )
        finally:
            log.close()
        threading.Thread(target=self._drain, args=(self.proc, self.lines, self.output),
                         daemon=True).start()
        try:
            first = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise AssertionError(
                f"serve printed nothing within {timeout:g} s; {self.log_tail()}") from None
        prefix = "listening on https://"
        if first is None or not first.startswith(prefix):
            self.kill()
            raise AssertionError(f"serve's first line was {first!r}; {self.log_tail()}")
        self.url = first[len("listening on "):].strip()
        self.port = int(self.url.rsplit(":", 1)[1])
        return self.url

    @staticmethod
    def _drain(proc: subprocess.Popen[str], lines: queue.Queue[str | None],
               output: list[str]) -> None:
        # This process's own queue and list: a restart must not see the old process's EOF.
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            lines.put(line)
        lines.put(None)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        return f"serve log: ...{text[-chars:]}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; the exit code (the caller asserts 0)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"serve did not stop within {timeout:g} s of SIGTERM") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def sync_url(self, name: str) -> str:
        return self.url + SYNC_PATH.format(name=name)


def https_client(ca_file: Path, timeout: float = 10.0) -> httpx.Client:
    """httpx verifying the workspace CA; no proxies from the environment."""
    import ssl

    context = ssl.create_default_context(cafile=str(ca_file))
    return httpx.Client(verify=context, timeout=httpx.Timeout(timeout), trust_env=False,
                        follow_redirects=False)


@dataclass
class HandPeer:
    """The test's side of the link: it signs as ``name`` and talks to ``remote``."""

    name: str
    remote: str
    signer: Signer
    remote_verifier: Verifier
    client: httpx.Client
    base_url: Callable[[], str]
    next_seq: int = 1
    ack: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    seen_ids: set[str] = field(default_factory=set)

    def take_seq(self) -> int:
        with self.lock:
            seq = self.next_seq
            self.next_seq += 1
            return seq

    def envelope(self, messages: Iterable[dict[str, Any]] = (), *, ack: int | None = None,
                 wait: int = 0, controls: bool = True, now: datetime | None = None,
                 from_: str | None = None, to: str | None = None) -> Envelope:
        return new_envelope(
            from_ or self.name, to or self.remote, messages=list(messages),
            ack=self.ack if ack is None else ack, controls=controls, wait=wait,
            now=now or datetime.now(UTC),
        )

    def sign(self, body: bytes) -> str:
        return self.signer.sign(body)

    def post(self, body: bytes, signature: str | None = "sign", *, path_name: str | None = None,
             timeout: float = 10.0, headers: dict[str, str] | None = None) -> httpx.Response:
        """POST raw bytes; ``signature='sign'`` signs them with this peer's key."""
        hdrs = {"Content-Type": "application/json"}
        if signature == "sign":
            signature = self.sign(body)
        if signature is not None:
            hdrs[HEADER_NAME] = signature
        hdrs.update(headers or {})
        url = self.base_url() + SYNC_PATH.format(name=self.name if path_name is None else path_name)
        return self.client.post(url, content=body, headers=hdrs, timeout=timeout)

    def exchange(self, messages: Iterable[dict[str, Any]] = (), *, wait: int = 0,
                 ack: int | None = None, controls: bool = True, track: bool = True,
                 timeout: float | None = None) -> tuple[Envelope, httpx.Response, Envelope]:
        """A valid signed request, its 200 response checked like an initiator checks it."""
        request = self.envelope(messages, wait=wait, ack=ack, controls=controls)
        response, reply = self.send(request, track=track, timeout=timeout)
        return request, response, reply

    def send(self, request: Envelope, *, track: bool = True, timeout: float | None = None
             ) -> tuple[httpx.Response, Envelope]:
        """POST ``request`` signed; assert 200 and a valid signed response (checks 4-8 plus
        ``in_reply_to``). With ``track`` the messages next in line are recorded and the ack
        moves past them, as a real initiator does once it has applied the response."""
        from flowlink.link.checks import check_response

        body = request.to_bytes()
        wait = request.wait or 0
        response = self.post(body, timeout=timeout if timeout is not None else wait + 15.0)
        assert response.status_code == 200, (response.status_code, response.text)
        reply = check_response(
            body=response.content, signature=response.headers.get(HEADER_NAME),
            verifier=self.remote_verifier, own_name=self.name, peer_name=self.remote,
            request_id=request.id, now=datetime.now(UTC), seen=self._seen,
        )
        if track:
            with self.lock:
                for message in reply.messages:
                    if message["seq"] == self.ack + 1:
                        self.received.append(message)
                        self.ack = message["seq"]
        return response, reply

    def _seen(self, _peer: str, envelope_id: str) -> bool:
        with self.lock:
            if envelope_id in self.seen_ids:
                return True
            self.seen_ids.add(envelope_id)
            return False

    def start_message(self, flow: str, inputs: dict[str, Any] | None = None, *,
                      request_id: str | None = None, seq: int | None = None) -> dict[str, Any]:
        return {
            "seq": self.take_seq() if seq is None else seq,
            "type": "execution.start",
            "request_id": request_id or str(uuid.uuid4()),
            "flow": flow,
            "inputs": inputs or {},
            "parent": {"id": 1, "name": "test"},
        }

    def updates_for(self, request_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.received
                    if m["type"] == "execution.update" and m["request_id"] == request_id]


@dataclass
class ServedWorkspace:
    """A workspace run by `flowlink serve`, with a link to a peer whose key the test holds."""

    data_dir: Path
    serve: ServeProcess
    ca_file: Path
    own_verifier: Verifier  # verifies what the served workspace signs
    peer_key: Any  # the hand peer's RSA private key
    peer_pub_file: Path

    def peer(self, name: str, remote: str, timeout: float = 10.0) -> HandPeer:
        return HandPeer(name, remote, Signer(self.peer_key), self.own_verifier,
                        https_client(self.ca_file, timeout=timeout), lambda: self.serve.url)

    def db(self) -> Any:
        """A read-only connection to the served workspace's SQLite (WAL: reads never block)."""
        import sqlite3

        conn = sqlite3.connect(f"file:{self.data_dir / 'workspace.db'}?mode=ro", uri=True,
                               timeout=10)
        conn.row_factory = sqlite3.Row
        return conn


def serve_workspace(folder: Path, name: str, *, peer: str, flows: dict[str, str],
                    link_args: Iterable[str] = (), key_bits: int = 2048) -> ServedWorkspace:
    """`flowlink init` NAME, add FLOWS, link PEER (a key pair made here), start `serve`."""
    from cryptography.hazmat.primitives import serialization

    from flowlink.workspace.identity import generate_private_key, public_key_to_pem

    folder.mkdir(parents=True, exist_ok=True)
    data_dir = folder / name
    run_cli(data_dir, "init", "--name", name)
    for flow, source in flows.items():
        path = folder / f"{flow}.py"
        path.write_text(source, encoding="utf-8")
        run_cli(data_dir, "flow", "add", flow, str(path))
    key = generate_private_key(key_bits)
    pub_file = folder / f"{peer}.pub.pem"
    pub_file.write_text(public_key_to_pem(key.public_key()), encoding="ascii")
    run_cli(data_dir, "link", "add", peer, "--remote-public-key", str(pub_file), *link_args)
    ca_file = folder / f"{name}-ca.pem"
    ca_file.write_text(run_cli(data_dir, "tls", "ca-cert").stdout, encoding="ascii")
    own_pub = run_cli(data_dir, "keys", "public", "--pem").stdout
    verifier = Verifier(serialization.load_pem_public_key(own_pub.encode("ascii")))
    serve = ServeProcess(data_dir, folder / f"{name}-serve.log")
    serve.start()
    return ServedWorkspace(data_dir, serve, ca_file, verifier, key, pub_file)
