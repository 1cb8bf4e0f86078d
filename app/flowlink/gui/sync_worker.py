"""SyncWorker: the link side of the workspace on its own QThread.

When this window runs the workspace (it holds the owner lock), the worker is
*attached* to the ``Runtime``: it starts and stops the ``LinkManager`` (the same
syncers `flowlink serve` runs) and the HTTPS endpoint on its thread, so the
keyring, the network and the joins of stopping threads never touch the GUI
thread. The LinkManager calls its listeners on its own threads; the worker
copies each report, coalesces bursts (at most one signal per ``min_interval_ms``,
the latest state always last) and re-emits it as ``statuses``, which Qt queues
to the GUI thread.

When another process runs the workspace, the worker reads the link states that
process records in the store (``read_statuses``) whenever ``poll()`` is asked,
again on its own thread.

Every public method may be called from the GUI thread: each one only emits a
request signal that runs on the worker thread.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from flowlink.errors import FlowlinkError
from flowlink.workspace.workspace import Workspace

log = logging.getLogger(__name__)

LISTEN_META = "listen"
DEFAULT_LISTEN = {"enabled": False, "host": "127.0.0.1", "port": 8443}
ENDPOINT_FILE = "endpoint.json"  # where `serve` writes its URL too; the CLI and viewers read it


def listen_setting(workspace: Workspace) -> dict[str, Any]:
    """The remembered listening address (off by default)."""
    setting = dict(DEFAULT_LISTEN)
    raw = workspace.store.get_meta(LISTEN_META)
    if raw:
        try:
            stored = json.loads(raw)
        except ValueError:
            stored = {}
        if isinstance(stored, dict):
            if isinstance(stored.get("enabled"), bool):
                setting["enabled"] = stored["enabled"]
            if isinstance(stored.get("host"), str) and stored["host"]:
                setting["host"] = stored["host"]
            if isinstance(stored.get("port"), int) and 0 <= stored["port"] <= 65535:
                setting["port"] = stored["port"]
    return setting


def owner_endpoint_url(workspace: Workspace) -> str | None:
    """The URL the process that runs the workspace listens on, if it wrote one."""
    try:
        return json.loads((workspace.data_dir / ENDPOINT_FILE).read_text()).get("url")
    except (OSError, ValueError, AttributeError):
        return None


class SyncWorker(QObject):
    statuses = Signal(object)  # dict[str, LinkStatus]: copies, safe to keep
    attached = Signal()  # the link syncers run (owner mode)
    attach_failed = Signal(str)
    paused_changed = Signal(bool)
    listen_loaded = Signal(object)  # the remembered listen setting (dict)
    endpoint_changed = Signal(object)  # the URL listened on, or None when not listening
    endpoint_failed = Signal(str)  # a sentence: why listening did not start
    stopped = Signal()

    # Requests, queued from any thread to the worker thread.
    _attach_requested = Signal(object)
    _sync_now_requested = Signal(object)
    _paused_requested = Signal(bool)
    _reload_requested = Signal()
    _poll_requested = Signal()
    _listen_requested = Signal(bool, str, int)
    _restore_listen_requested = Signal()
    _stop_requested = Signal()
    _posted = Signal()

    def __init__(self, workspace: Workspace, *, min_interval_ms: int = 100, poll_interval_ms: int = 250) -> None:
        super().__init__()  # no parent: it moves to its own thread
        self.workspace = workspace
        self.runtime: Any = None
        self.paused = False
        self.min_interval = min_interval_ms / 1000
        self.poll_interval = poll_interval_ms / 1000
        self.thread = QThread()
        self.thread.setObjectName("flowlink-sync-worker")
        self.moveToThread(self.thread)
        self._lock = threading.Lock()
        self._latest: dict[str, Any] | None = None
        self._emitted: dict[str, Any] | None = None
        self._pending = False
        self._next_emit = 0.0
        self._poll_pending = False
        self._next_poll = 0.0
        self._running = False
        self._stopped = False
        self._attach_requested.connect(self._attach)
        self._sync_now_requested.connect(self._sync_now)
        self._paused_requested.connect(self._set_paused)
        self._reload_requested.connect(self._reload)
        self._poll_requested.connect(self._poll_soon)
        self._listen_requested.connect(self._listen)
        self._restore_listen_requested.connect(self._restore_listen)
        self._stop_requested.connect(self._stop)
        self._posted.connect(self._flush_soon)

    # -- public API (any thread) ---------------------------------------------------------

    def start(self) -> None:
        if not self.thread.isRunning() and not self._stopped:
            self._running = True
            self.thread.start()

    @property
    def is_attached(self) -> bool:
        return self.runtime is not None

    def attach(self, runtime: Any) -> None:
        """Run ``runtime.links`` (built, not started) on the worker thread from now on."""
        self._attach_requested.emit(runtime)

    @Slot(object)
    def sync_now(self, name: str | None = None) -> None:
        self._sync_now_requested.emit(name)

    @Slot(bool)
    def set_paused(self, paused: bool) -> None:
        self._paused_requested.emit(bool(paused))

    @Slot()
    def reload(self) -> None:
        """The Synch Configs changed: restart the syncers to match, then report."""
        self._reload_requested.emit()

    @Slot()
    def poll(self) -> None:
        """Read the link states again (rate-limited): the store changed."""
        with self._lock:
            if self._poll_pending:
                return
            self._poll_pending = True
        self._safe_emit(self._poll_requested)

    def set_listening(self, enabled: bool, host: str, port: int) -> None:
        """Start (or stop) the HTTPS endpoint and remember the choice in the workspace store."""
        self._listen_requested.emit(bool(enabled), str(host), int(port))

    def restore_listening(self) -> None:
        """Report the remembered setting; when attached and it says on, listen."""
        self._restore_listen_requested.emit()

    def stop(self, timeout_ms: int = 60_000) -> bool:
        """Stop the endpoint and the syncers on the worker thread, then the thread; True when done."""
        if self._stopped:
            return True
        self._stopped = True
        if not self.thread.isRunning():
            self._stop_links()
            return True
        self._stop_requested.emit()
        done = self.thread.wait(timeout_ms)
        if not done:
            log.error("the sync worker did not stop within %d ms", timeout_ms)
        return done

    def listener(self, statuses: dict[str, Any]) -> None:
        """A LinkManager listener (called on the manager's threads)."""
        snapshot = {name: dataclasses.replace(status) for name, status in statuses.items()}
        with self._lock:
            self._latest = snapshot
            if self._pending:
                return
            self._pending = True
        self._safe_emit(self._posted)

    def _safe_emit(self, signal: Any) -> None:
        try:
            signal.emit()
        except RuntimeError:  # the worker is gone (the app quit first): nothing to report to
            pass

    # -- the worker thread -------------------------------------------------------------

    @Slot(object)
    def _attach(self, runtime: Any) -> None:
        if self._stopped:
            return
        self.runtime = runtime
        links = runtime.links
        links.listeners.append(self.listener)
        try:
            links.start()
        except Exception as exc:  # noqa: BLE001 - the window stays usable; the sentence says why
            log.exception("the link syncers did not start")
            self.attach_failed.emit(f"The links do not sync: {exc}")
            return
        log.info("link syncers running (%d initiated here)", len(links.syncers))
        self.attached.emit()

    @Slot(object)
    def _sync_now(self, name: str | None) -> None:
        if self.runtime is None:
            return
        self.runtime.links.sync_now(name)

    @Slot(bool)
    def _set_paused(self, paused: bool) -> None:
        if self.runtime is None:
            return
        self.paused = paused
        self.runtime.links.set_paused(paused)
        self.paused_changed.emit(paused)

    @Slot()
    def _reload(self) -> None:
        if self.runtime is not None:
            try:
                self.runtime.links.reload()
            except Exception:  # noqa: BLE001
                log.exception("reloading the links failed")
        else:
            self._read_now()

    @Slot()
    def _poll_soon(self) -> None:
        delay = max(0.0, self._next_poll - time.monotonic())
        QTimer.singleShot(int(delay * 1000), self._poll_now)

    @Slot()
    def _poll_now(self) -> None:
        with self._lock:
            self._poll_pending = False
        self._next_poll = time.monotonic() + self.poll_interval
        self._read_now()

    def _read_now(self) -> None:
        if self._stopped:
            return
        import sqlite3

        try:
            if self.runtime is not None:
                statuses = self.runtime.links.statuses()
            else:
                from flowlink.link.syncer import read_statuses

                statuses = read_statuses(self.workspace)
        except (sqlite3.Error, FlowlinkError) as exc:
            log.warning("reading the link states failed: %s", exc)
            return
        self.listener(statuses)

    @Slot()
    def _flush_soon(self) -> None:
        delay = max(0.0, self._next_emit - time.monotonic())
        if delay <= 0:
            self._flush()
        else:
            QTimer.singleShot(int(delay * 1000) + 1, self._flush)

    @Slot()
    def _flush(self) -> None:
        with self._lock:
            snapshot = self._latest
            self._pending = False
        if snapshot is None or snapshot == self._emitted or self._stopped:
            return
        self._emitted = snapshot
        self._next_emit = time.monotonic() + self.min_interval
        self.statuses.emit(snapshot)

    @Slot()
    def _restore_listen(self) -> None:
        try:
            setting = listen_setting(self.workspace)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not read the listen setting: %s", exc)
            setting = dict(DEFAULT_LISTEN)
        self.listen_loaded.emit(setting)
        if setting["enabled"] and self.runtime is not None:
            self._start_endpoint(setting["host"], setting["port"], remember=False)

    @Slot(bool, str, int)
    def _listen(self, enabled: bool, host: str, port: int) -> None:
        if self.runtime is None:
            self.endpoint_failed.emit("This window does not run the workspace, so it cannot listen; "
                                      "the process that runs it does.")
            return
        if enabled:
            self._start_endpoint(host, port, remember=True)
        else:
            self._stop_endpoint()
            self._remember(False, host, port)
            self.endpoint_changed.emit(None)

    def _start_endpoint(self, host: str, port: int, *, remember: bool) -> None:
        runtime = self.runtime
        self._stop_endpoint()
        try:
            url = runtime.start_endpoint(host, port)
        except OSError as exc:
            self._discard_endpoint()
            self.endpoint_failed.emit(f"Cannot listen on {host}:{port}: {exc.strerror or exc}. "
                                      "Choose another port (or 'any free port').")
            return
        except FlowlinkError as exc:
            self._discard_endpoint()
            self.endpoint_failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a TLS file or certificate problem, say so
            log.exception("the HTTPS endpoint did not start")
            self._discard_endpoint()
            self.endpoint_failed.emit(f"The HTTPS endpoint did not start: {type(exc).__name__}: {exc}")
            return
        log.info("listening for linked workspaces on %s", url)
        try:
            (self.workspace.data_dir / ENDPOINT_FILE).write_text(json.dumps({"url": url}))
        except OSError:
            log.warning("could not write %s", ENDPOINT_FILE, exc_info=True)
        if remember:
            self._remember(True, host, port)
        self.endpoint_changed.emit(url)

    def _discard_endpoint(self) -> None:
        try:
            self.runtime.stop_endpoint()
        except Exception:  # noqa: BLE001 - a half-started endpoint: drop it whatever it says
            log.debug("stopping a failed endpoint", exc_info=True)
        self.runtime.endpoint = None

    def _stop_endpoint(self) -> None:
        runtime = self.runtime
        if runtime is None or runtime.endpoint is None:
            return
        try:
            runtime.stop_endpoint()
        except Exception:  # noqa: BLE001
            log.exception("stopping the HTTPS endpoint failed")
            runtime.endpoint = None
        (self.workspace.data_dir / ENDPOINT_FILE).unlink(missing_ok=True)
        log.info("stopped listening for linked workspaces")

    def _remember(self, enabled: bool, host: str, port: int) -> None:
        try:
            self.workspace.store.set_meta(LISTEN_META, json.dumps({"enabled": enabled, "host": host, "port": port}))
        except Exception:  # noqa: BLE001 - listening works; only remembering it failed
            log.exception("could not remember the listen setting")

    @Slot()
    def _stop(self) -> None:
        try:
            self._stop_links()
        finally:
            self.stopped.emit()
            self.thread.quit()

    def _stop_links(self) -> None:
        runtime = self.runtime
        if runtime is None:
            return
        self._stop_endpoint()
        links = runtime.links
        try:
            links.listeners.remove(self.listener)
        except ValueError:
            pass
        try:
            links.stop()
        except Exception:  # noqa: BLE001
            log.exception("stopping the link syncers failed")
        log.info("link syncers stopped")
