"""Per-link sync loops and the manager that runs them (used by `serve`, the CLI and the GUI).

Timing (PROTOCOL.md section 5):
- Sync interval empty: a *pusher* sends as soon as a message is queued, and a
  *poller* keeps one long poll (``wait: 25``) standing, so a workspace that only
  initiates still gets the other side's messages at once.
- Sync interval N: one exchange every N seconds, ``wait: 0``.
Failures back off with jitter from 0.5 s doubling to 60 s; nothing queued is
ever dropped.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flowlink.engine.engine import RemoteRunner
from flowlink.link.exchange import LinkExchange
from flowlink.workspace.links import SyncConfig
from flowlink.workspace.store import describe_error, now
from flowlink.workspace.workspace import Workspace

log = logging.getLogger(__name__)

BACKOFF_START = 0.5
BACKOFF_MAX = 60.0
LONG_POLL = 25
PUSH_CHECK_SECONDS = 1.0
CONFIG_POLL_SECONDS = 1.0

SYNCED, SYNCING, ERROR, PAUSED, DISABLED, LISTENING = (
    "synced", "syncing", "error", "paused", "disabled", "answers only",
)


@dataclass
class LinkStatus:
    name: str
    state: str
    sentence: str = ""
    last_success: float | None = None
    last_inbound: float | None = None
    last_error: str | None = None
    queued_out: int = 0
    received: int = 0
    direct_ok: bool | None = None
    verify_ssl: bool = True


class Backoff:
    def __init__(self) -> None:
        self.delay = 0.0

    def failed(self) -> float:
        self.delay = BACKOFF_START if self.delay == 0 else min(BACKOFF_MAX, self.delay * 2)
        return self.delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto

    def reset(self) -> None:
        self.delay = 0.0


class LinkSyncer:
    """The exchanges this workspace initiates with one linked workspace."""

    def __init__(self, manager: LinkManager, config: SyncConfig) -> None:
        self.manager = manager
        self.config = config
        self.stopping = threading.Event()
        self.queued = threading.Event()
        self.queued.set()  # whatever is already in the outbox goes out first
        self.kick = threading.Event()  # "Sync now" in interval mode
        self.threads: list[threading.Thread] = []
        self._clients: list[Any] = []

    def start(self) -> None:
        if self.config.sync_interval is None:
            targets = [(self._pusher, "push"), (self._poller, "poll")]
        else:
            targets = [(self._interval, "interval")]
        for target, label in targets:
            thread = threading.Thread(target=target, name=f"flowlink-link-{self.config.name}-{label}",
                                      daemon=True)
            self.threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.manager.exchange.pushing.pop(self.config.name, None)
        self.queued.set()
        self.kick.set()
        for client in list(self._clients):
            try:
                client.close()
            except Exception:  # noqa: BLE001, S110 - closing on the way out
                pass
        # A long poll in flight cannot be interrupted from here: give each thread a moment,
        # then leave it (a daemon) to notice `stopping` when its request returns. Anything
        # it applies meanwhile is applied exactly once, as always.
        deadline = time.monotonic() + 1.0
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _client(self) -> Any:
        from flowlink.link.client import LinkClient

        client = LinkClient(self.manager.exchange, self.config)
        self._clients.append(client)
        return client

    def _exchange(self, client: Any, *, wait: int, send: bool) -> Any:
        manager = self.manager
        if manager.paused.is_set():
            manager.paused_wait(self.stopping)
            return None
        manager._report(self.config.name, busy=True)
        try:
            result = client.exchange_once(wait=wait, send=send)
        except Exception as exc:  # noqa: BLE001 - every failure is reported and retried
            from flowlink.errors import FlowlinkError

            if self.stopping.is_set():
                raise _Failed from None  # stop() closed the client under it: not a link error
            if isinstance(exc, FlowlinkError):
                sentence = str(exc)
            elif isinstance(exc, sqlite3.Error):  # read-only, disk full: say so, retry
                sentence = describe_error(exc, manager.ws.store.path)
                log.warning("link %s: %s", self.config.name, sentence)
            else:
                sentence = f"unexpected error: {type(exc).__name__}"
                log.exception("link %s: exchange failed", self.config.name)
            manager._report(self.config.name, error=sentence)
            raise _Failed from None
        manager._report(self.config.name, success=True)
        return result

    def _run_loop(self, body: Callable[[Any, Backoff], None]) -> None:
        client = self._client()
        backoff = Backoff()
        try:
            while not self.stopping.is_set():
                try:
                    body(client, backoff)
                    backoff.reset()
                except _Failed:
                    self.stopping.wait(backoff.failed())
                except Exception:  # noqa: BLE001 - a sync loop never dies: log, back off, retry
                    log.exception("link %s: sync loop failed", self.config.name)
                    self.queued.set()
                    self.stopping.wait(backoff.failed())
        finally:
            client.close()

    def _pusher(self) -> None:
        # After a failure the next round exchanges even with nothing queued: the other
        # side's path may have carried everything meanwhile, and the status of this path
        # must not stay "fails" until the next long poll returns.
        retry = [False]

        pushing = self.manager.exchange.pushing
        name = self.config.name

        def body(client: Any, backoff: Backoff) -> None:
            # Also look every second: another process may have queued something.
            self.queued.wait(PUSH_CHECK_SECONDS)
            if self.stopping.is_set():
                return
            self.queued.clear()
            try:
                while ((retry[0] or self.manager.exchange.has_pending(name))
                       and not self.stopping.is_set()):
                    result = self._exchange(client, wait=0, send=True)
                    retry[0] = False
                    pushing[name] = True
                    if result is None or result.sent == 0:
                        break
            except _Failed:
                retry[0] = True
                pushing[name] = False
                self.queued.set()  # what is queued stays queued: try again after the backoff
                raise

        self._run_loop(body)

    def _poller(self) -> None:
        def body(client: Any, backoff: Backoff) -> None:
            self._exchange(client, wait=LONG_POLL, send=False)

        self._run_loop(body)

    def _interval(self) -> None:
        interval = float(self.config.sync_interval or 1)

        def body(client: Any, backoff: Backoff) -> None:
            started = time.monotonic()
            while not self.stopping.is_set():
                result = self._exchange(client, wait=0, send=True)
                if result is None or not self.manager.exchange.has_pending(self.config.name):
                    break
            self.kick.wait(max(0.0, interval - (time.monotonic() - started)))
            self.kick.clear()

        self._run_loop(body)


class _Failed(Exception):
    pass


class LinkManager:
    """All links of a workspace: syncers for those it initiates, status for all."""

    def __init__(self, workspace: Workspace, exchange: LinkExchange | None = None) -> None:
        self.ws = workspace
        self.exchange = exchange or LinkExchange(workspace)
        self.syncers: dict[str, LinkSyncer] = {}
        self.paused = threading.Event()
        self.listeners: list[Callable[[dict[str, LinkStatus]], None]] = []
        self._status: dict[str, LinkStatus] = {}
        self._unsaved: dict[str, str] = {}  # errors the store could not record
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watch = threading.Thread(target=self._watch_configs, name="flowlink-links", daemon=True)
        self._signature: tuple[Any, ...] | None = None
        self.ws.outbox_listeners.append(self._on_queued)

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        self.reload()
        self._watch.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._watch.is_alive():
            self._watch.join(timeout=5)
        for syncer in list(self.syncers.values()):
            syncer.stop()
        self.syncers.clear()
        try:
            self.ws.outbox_listeners.remove(self._on_queued)
        except ValueError:
            pass

    def reload(self) -> None:
        """Start, stop and restart syncers to match the Synch Configs in the store."""
        configs = {c.name: c for c in self.ws.links.list()}
        with self._lock:
            for name in list(self.syncers):
                current = configs.get(name)
                if current is None or current != self.syncers[name].config or not _initiates(current):
                    self.syncers.pop(name).stop()
            for name, config in configs.items():
                if name not in self.syncers and _initiates(config):
                    syncer = LinkSyncer(self, config)
                    self.syncers[name] = syncer
                    syncer.start()
            for name in list(self._status):
                if name not in configs:
                    del self._status[name]
        self._publish()

    def _watch_configs(self) -> None:
        # Configs may change in another process (`flowlink link set` beside `serve`).
        while not self._stopping.wait(CONFIG_POLL_SECONDS):
            try:
                row = self.ws.store.conn.execute(
                    "SELECT count(*), max(updated_at) FROM links").fetchone()
                signature = (row[0], row[1])
                if signature != self._signature:
                    self._signature = signature
                    self.reload()
                else:
                    self._publish()
            except Exception:  # noqa: BLE001 - keep watching; the log says why
                log.exception("reloading link configs failed")

    def _on_queued(self, links: set[str]) -> None:
        for name in links:
            syncer = self.syncers.get(name)
            if syncer is not None:
                syncer.queued.set()

    def sync_now(self, name: str | None = None) -> None:
        for link, syncer in list(self.syncers.items()):
            if name is None or link == name:
                syncer.queued.set()
                syncer.kick.set()

    def set_paused(self, paused: bool) -> None:
        if paused:
            self.paused.set()
        else:
            self.paused.clear()
            self.sync_now()
        self._publish()

    def paused_wait(self, stopping: threading.Event) -> None:
        while self.paused.is_set() and not stopping.is_set():
            stopping.wait(0.2)

    def remote_runner(self) -> RemoteRunner:
        """What the engine calls to start or cancel a child in a linked workspace."""
        exchange = self.exchange

        class LinkRunner(RemoteRunner):
            def start(self, parent_id: int, remote: str, flow: str, inputs: dict[str, Any],
                      name: str | None) -> int:
                return exchange.start_remote(parent_id, remote, flow, inputs, name)

            def cancel(self, execution_id: int) -> None:
                exchange.cancel_remote(execution_id)

        return LinkRunner()

    # -- status -----------------------------------------------------------------

    def _report(self, name: str, *, busy: bool = False, success: bool = False,
                error: str | None = None) -> None:
        if success or error is not None:
            try:
                with self.ws.store.transaction() as tx:
                    if success:
                        tx.execute("UPDATE link_state SET last_success = ?, last_error = NULL, "
                                   "direct_ok = 1 WHERE name = ?", (now(), name))
                    else:
                        tx.execute("UPDATE link_state SET last_error = ?, last_error_at = ?, "
                                   "direct_ok = 0 WHERE name = ?", (error, now(), name))
                self._unsaved.pop(name, None)
            except sqlite3.Error as exc:
                # The store cannot record it (read-only, disk full): the status in memory
                # (GUI, tray) still shows what is wrong.
                self._unsaved[name] = error or describe_error(exc, self.ws.store.path)
        if busy:
            with self._lock:
                status = self._status.get(name)
                if status is not None and status.state != ERROR:
                    status.state = SYNCING
        self._publish()

    def statuses(self) -> dict[str, LinkStatus]:
        statuses = read_statuses(self.ws, paused=self.paused.is_set(), busy=set())
        for name, sentence in list(self._unsaved.items()):
            status = statuses.get(name)
            if status is not None and status.state not in (DISABLED, PAUSED):
                status.state, status.sentence, status.last_error = ERROR, sentence, sentence
                status.direct_ok = False
        return statuses

    def _publish(self) -> None:
        try:
            statuses = self.statuses()
        except sqlite3.Error as exc:
            log.warning("link status: %s", describe_error(exc, self.ws.store.path))
            return
        with self._lock:
            self._status = statuses
        for listener in list(self.listeners):
            try:
                listener(statuses)
            except Exception:  # noqa: BLE001
                log.exception("link status listener failed")


def _initiates(config: SyncConfig) -> bool:
    return config.enabled and bool(config.remote_url)


def read_statuses(ws: Workspace, *, paused: bool = False, busy: set[str] | None = None
                  ) -> dict[str, LinkStatus]:
    """The state of every link as the store records it (any process can read it)."""
    rows = ws.store.conn.execute(
        "SELECT l.name, l.enabled, l.remote_url, l.verify_ssl, s.last_success, s.last_inbound, "
        "s.last_error, s.last_error_at, s.direct_ok, s.in_seq, "
        "(SELECT count(*) FROM outbox o WHERE o.link = l.name) AS queued "
        "FROM links l LEFT JOIN link_state s ON s.name = l.name ORDER BY l.name"
    ).fetchall()
    result: dict[str, LinkStatus] = {}
    for r in rows:
        status = LinkStatus(
            name=r["name"], state=SYNCED, last_success=r["last_success"],
            last_inbound=r["last_inbound"], last_error=r["last_error"], queued_out=r["queued"] or 0,
            received=r["in_seq"] or 0,
            direct_ok=None if r["direct_ok"] is None else bool(r["direct_ok"]),
            verify_ssl=bool(r["verify_ssl"]),
        )
        if not r["enabled"]:
            status.state, status.sentence = DISABLED, "The link is disabled."
        elif paused:
            status.state, status.sentence = PAUSED, "Sync is paused."
        elif r["remote_url"] and r["last_error"]:
            status.state, status.sentence = ERROR, r["last_error"]
        elif not r["remote_url"]:
            status.state = LISTENING if r["last_inbound"] is None else SYNCED
            status.sentence = ("No Remote URL: this side only answers; the other workspace initiates."
                               if r["last_inbound"] is None else "Reached by the other workspace.")
        elif busy and r["name"] in busy or status.queued_out:
            status.state = SYNCING
        if not r["verify_ssl"] and r["remote_url"]:
            status.sentence = (status.sentence + " " if status.sentence else "") + (
                "Warning: TLS certificates are not verified on this link (signatures still are).")
        result[r["name"]] = status
    return result
