"""A fault-injecting TCP proxy on 127.0.0.1 for the link fault tests.

One listening port forwards byte for byte to a target (TLS passes through untouched: the
proxy never sees plaintext). The test thread switches the fault at any moment:

- ``forward()``        healthy: every byte passes (also what ``heal()`` returns to);
- ``drop()``           new connections are accepted and reset at once, open ones are cut;
- ``delay(seconds)``   every chunk, both ways, waits ``seconds`` before it is passed on;
- ``cut_after(n, direction)``  every connection is cut after ``n`` more bytes have passed in
                       ``direction`` ("up": client to server, "down": server to client),
                       in the middle of whatever it carries (a TLS record, a body);
- ``refuse()``         partition, the loud way: the port is closed (connect is refused) and
                       every open connection is reset;
- ``blackhole()``      partition, the quiet way: connections are accepted but nothing passes
                       either way, on new and open connections alike, until the fault ends
                       (then held bytes go on, as after a real partition).

Counters (``stats``) say what the proxy did, so a test can prove its fault was exercised.
Everything is bounded: sockets have timeouts, threads are daemons and ``close()`` joins them.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"
FORWARD, DROP, DELAY, CUT, REFUSE, BLACKHOLE = (
    "forward", "drop", "delay", "cut", "refuse", "blackhole")
_TICK = 0.05


@dataclass
class ProxyStats:
    accepted: int = 0
    dropped: int = 0
    cuts: int = 0
    severed: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    modes: list[str] = field(default_factory=list)


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a crashed or partitioned peer looks."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Pair:
    """One proxied connection: the client's socket, the upstream socket, two pumps."""

    def __init__(self, proxy: FaultProxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.closed = threading.Event()
        self.budget: dict[str, int | None] = {"up": None, "down": None}
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.ended = 0  # directions that saw EOF; at 2 the connection is over

    def start(self) -> None:
        thread = threading.Thread(target=self._run, name="proxy-conn", daemon=True)
        self.threads.append(thread)
        thread.start()

    def _run(self) -> None:
        proxy = self.proxy
        # In a blackhole the upstream is not even dialled until the fault ends.
        if not proxy._hold_while_blackholed(self.closed):
            self.kill()
            return
        try:
            self.upstream = socket.create_connection(proxy.target, timeout=5)
        except OSError:
            self.kill()
            return
        for sock in (self.client, self.upstream):
            sock.settimeout(_TICK * 4)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        down = threading.Thread(target=self._pump, args=(self.upstream, self.client, "down"),
                                name="proxy-down", daemon=True)
        self.threads.append(down)
        down.start()
        self._pump(self.client, self.upstream, "up")

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        proxy = self.proxy
        while not self.closed.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                self.kill()
                return
            if not data:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
                with self.lock:
                    self.ended += 1
                    over = self.ended == 2
                if over:
                    self.kill(reset=False)
                return
            if not proxy._hold_while_blackholed(self.closed):
                return
            delay = proxy._delay
            if delay > 0 and proxy.mode == DELAY:
                if self.closed.wait(delay):
                    return
            cut = False
            with self.lock:
                budget = self.budget[direction]
                if budget is not None:
                    if len(data) >= budget:
                        data, cut = data[:budget], True
                    self.budget[direction] = budget - len(data)
            try:
                if data:
                    dst.sendall(data)
            except OSError:
                self.kill()
                return
            with proxy._lock:
                if direction == "up":
                    proxy.stats.bytes_up += len(data)
                else:
                    proxy.stats.bytes_down += len(data)
            if cut:
                with proxy._lock:
                    proxy.stats.cuts += 1
                self.kill()
                return

    def arm_cut(self, n: int, direction: str) -> None:
        with self.lock:
            self.budget = {"up": None, "down": None}
            self.budget[direction] = n

    def disarm(self) -> None:
        with self.lock:
            self.budget = {"up": None, "down": None}

    def kill(self, reset: bool = True) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            if reset:
                _reset(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.close()
        self.proxy._forget(self)


class FaultProxy:
    """Listens on 127.0.0.1 (port 0 picks one) and forwards to ``target``."""

    def __init__(self, target: tuple[str, int], port: int = 0) -> None:
        assert target[0] == HOST, "the proxy only forwards to 127.0.0.1"
        self.target = target
        self.stats = ProxyStats()
        self.mode = FORWARD
        self._delay = 0.0
        self._cut: tuple[int, str] | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pairs: set[_Pair] = set()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        # A socket closed while another thread polls it keeps listening until that poll
        # returns: the accept thread polls under _poll_lock, and refuse() wakes it through
        # the pipe and takes the lock before it closes the listener.
        self._wake_r, self._wake_w = os.pipe()
        self._poll_lock = threading.Lock()
        self.port = port
        self._listen()
        self._thread = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)
        self._thread.start()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return HOST, self.port

    def url(self, path: str = "") -> str:
        return f"https://{HOST}:{self.port}{path}"

    def retarget(self, target: tuple[str, int]) -> None:
        """Forward new connections elsewhere (the workspace behind came back on a new port)."""
        assert target[0] == HOST
        self.target = target

    # -- faults (any thread) -----------------------------------------------------------------

    def forward(self) -> None:
        self._set(FORWARD)

    heal = forward

    def drop(self) -> None:
        self._set(DROP)
        self.sever()

    def delay(self, seconds: float) -> None:
        self._delay = float(seconds)
        self._set(DELAY)

    def cut_after(self, n: int, direction: str = "up") -> None:
        assert direction in ("up", "down") and n >= 0
        self._cut = (n, direction)
        self._set(CUT)
        for pair in self._snapshot():
            pair.arm_cut(n, direction)

    def refuse(self) -> None:
        self._set(REFUSE)
        self.sever()

    def blackhole(self) -> None:
        self._set(BLACKHOLE)

    def sever(self) -> int:
        """Reset every open connection; returns how many."""
        pairs = self._snapshot()
        for pair in pairs:
            pair.kill()
        with self._lock:
            self.stats.severed += len(pairs)
        return len(pairs)

    @property
    def open_connections(self) -> int:
        return len(self._snapshot())

    def close(self) -> None:
        self._close_listener()
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        self.sever()
        self._thread.join(timeout=5)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- internals ---------------------------------------------------------------------------

    def _set(self, mode: str) -> None:
        with self._changed:
            previous = self.mode
            self.mode = mode
            self.stats.modes.append(mode)
            if mode != CUT:
                self._cut = None
            self._changed.notify_all()
        if mode != CUT:
            for pair in self._snapshot():
                pair.disarm()
        if mode == REFUSE:
            self._close_listener()
        elif previous == REFUSE:
            self._listen()

    def _listen(self) -> None:
        if self._listener is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 10
        while True:
            try:
                sock.bind((HOST, self.port))
                break
            except OSError:
                # The same port again after a refuse(): TIME_WAIT may hold it a moment.
                if self.port == 0 or time.monotonic() > deadline:
                    sock.close()
                    raise
                time.sleep(_TICK)
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self._listener = sock

    def _close_listener(self) -> None:
        sock, self._listener = self._listener, None
        if sock is None:
            return
        os.write(self._wake_w, b"x")
        with self._poll_lock, contextlib.suppress(OSError):
            sock.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            sock = self._listener
            if sock is None:
                self._stopping.wait(_TICK)
                continue
            with self._poll_lock:
                if self._listener is not sock:
                    continue
                # poll(), not select(): descriptors may pass FD_SETSIZE in a soak
                poller = select.poll()
                poller.register(sock, select.POLLIN)
                poller.register(self._wake_r, select.POLLIN)
                ready = dict(poller.poll(_TICK * 1000))
                if self._wake_r in ready:
                    os.read(self._wake_r, 64)
                listening = sock.fileno()
            if self._listener is not sock or listening not in ready:
                continue
            try:
                client, _addr = sock.accept()
            except OSError:
                continue
            with self._lock:
                self.stats.accepted += 1
                mode = self.mode
            if mode in (DROP, REFUSE):
                with self._lock:
                    self.stats.dropped += 1
                _reset(client)
                continue
            pair = _Pair(self, client)
            with self._lock:
                self._pairs.add(pair)
            if mode == CUT and self._cut is not None:
                pair.arm_cut(*self._cut)
            pair.start()

    def _hold_while_blackholed(self, closed: threading.Event) -> bool:
        """Wait while the proxy is a blackhole; False if the connection ended meanwhile."""
        with self._changed:
            while self.mode == BLACKHOLE and not self._stopping.is_set():
                if closed.is_set():
                    return False
                self._changed.wait(_TICK)
        return not closed.is_set() and not self._stopping.is_set()

    def _snapshot(self) -> list[_Pair]:
        with self._lock:
            return list(self._pairs)

    def _forget(self, pair: _Pair) -> None:
        with self._lock:
            self._pairs.discard(pair)
