"""The desktop session of one workspace: ownership, change feed, sync worker, window, tray.

Exactly one process per data dir runs the workspace (the holder of the owner
lock). If this window gets the lock, it runs a ``Runtime`` here: the engine on
its own thread, and the link side (syncers, HTTPS endpoint when listening) on
the ``SyncWorker`` thread. If `flowlink serve` (or another engine) holds it, this
window is a viewer: runs started here are recorded as PENDING for the owner to
pick up, changes are seen through the StoreWatcher, and link states are read
from the store the owner writes them to. A viewer takes over when the owner goes away.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtWidgets import QMessageBox, QSystemTrayIcon

from flowlink.engine.engine import Engine
from flowlink.errors import FlowlinkError
from flowlink.gui.feed import ChangeBatch, ChangeFeed
from flowlink.gui.links_page import tray_state
from flowlink.gui.main_window import MainWindow
from flowlink.gui.notifications import Notifier
from flowlink.gui.sync_worker import SyncWorker
from flowlink.gui.tray import TrayIcon
from flowlink.workspace.ownership import OwnerLock, current_owner
from flowlink.workspace.watcher import StoreWatcher
from flowlink.workspace.workspace import Workspace

log = logging.getLogger(__name__)

OWNER_KIND = "desktop"
TAKEOVER_MS = 2000


def describe_owner(owner: dict[str, Any] | None) -> str:
    if owner is None:
        return "another process"
    kind = owner.get("kind") or "flowlink"
    pid = owner.get("pid")
    return f"{kind} (pid {pid})" if pid else str(kind)


class DesktopApp(QObject):
    quit_requested = Signal()
    ownership_changed = Signal(bool)  # True: the engine runs in this process
    statuses_changed = Signal(object)  # dict[str, LinkStatus], on the GUI thread
    links_started = Signal()  # the link syncers run (on the SyncWorker thread)

    def __init__(self, workspace: Workspace, *, engine: Engine | None = None, use_tray: bool = True,
                 threaded: bool = True, parallelism: int | None = None,
                 parent: QObject | None = None) -> None:
        """``engine``: an engine someone else started and stops (tests); otherwise this app
        takes the owner lock and runs its own, or becomes a viewer of the process that has it."""
        super().__init__(parent)
        self.workspace = workspace
        self.engine: Engine | None = engine
        self.runtime: Any = None  # flowlink.runtime.Runtime while this process runs the workspace
        self._own_engine = engine is None
        self._parallelism = parallelism
        self._use_tray = use_tray
        self._threaded = threaded
        self.lock: OwnerLock | None = None
        self.owner: dict[str, Any] | None = None
        self.engine_error: str | None = None
        self.feed = ChangeFeed(self)
        self.watcher = StoreWatcher(workspace.store)
        self.watcher.listeners.append(self.feed.store_listener)
        self.window: MainWindow | None = None
        self.tray: TrayIcon | None = None
        self.sync = SyncWorker(workspace)
        self.sync.statuses.connect(self._statuses_arrived)
        self.sync.attached.connect(self._links_attached)
        self.links_running = False
        self.link_statuses: dict[str, Any] = {}
        self.notifier = Notifier(workspace, self)
        self._takeover = QTimer(self)
        self._takeover.setInterval(TAKEOVER_MS)
        self._takeover.timeout.connect(self._try_takeover)
        self._stopped = False

    # -- start --------------------------------------------------------------------------

    def start(self) -> MainWindow:
        self.watcher.start()
        self.sync.start()
        self.window = MainWindow(self.workspace, self.run_flow, self.cancel, threaded=self._threaded)
        self.window.restore_state()
        self.window.quit_requested.connect(self.request_quit_now)
        self.feed.changed.connect(self.window.apply_changes)
        self.feed.changed.connect(self._changes_arrived)
        links = self.window.links
        links.sync_now_requested.connect(self.sync_now)
        links.links_changed.connect(self._links_edited)
        page = self.window.this_workspace
        page.listen_requested.connect(self.set_listening)
        page.notifications_changed.connect(self.notifier.set_enabled)
        # Bound methods of objects on the GUI thread, never lambdas: a lambda would run on
        # the worker thread that emits (PySide gives it the sender's thread).
        self.sync.listen_loaded.connect(page.set_listen_setting)
        self.sync.endpoint_changed.connect(self._endpoint_changed)
        self.sync.endpoint_failed.connect(self._endpoint_failed)
        self.sync.attach_failed.connect(self._attach_failed)
        if self._use_tray and QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = TrayIcon(self.workspace.name, self)
            self.tray.show_requested.connect(self.show_window)
            self.tray.quit_requested.connect(self.request_quit)
            self.tray.sync_now_requested.connect(lambda: self.sync_now(None))
            self.tray.pause_requested.connect(self.set_paused)
            self.notifier.notified.connect(self.tray.notify)
            self.tray.show()
            self.window.tray = self.tray
        if self.engine is not None:
            self.engine.listeners.append(self.feed.engine_listener)
        else:
            self._try_takeover()
        self._show_ownership()
        if not self.is_owner:
            self.sync.restore_listening()  # shows the remembered address; the owner listens
        self.sync.poll()
        # What start-up built lives as long as the window: keep the cyclic collector from
        # walking it again and again (its full passes were the longest GUI-thread stalls).
        gc.freeze()
        return self.window

    def _try_takeover(self) -> None:
        """Take the owner lock and start the engine here, or stay (or become) a viewer."""
        if self.engine is not None or self._stopped:
            self._takeover.stop()
            return
        lock = OwnerLock.try_acquire(self.workspace.data_dir, OWNER_KIND)
        if lock is None:
            owner = current_owner(self.workspace.data_dir)
            changed = owner != self.owner
            self.owner = owner
            if not self._takeover.isActive():
                self._takeover.start()
            if changed:
                self._show_ownership()
            return
        from flowlink.link.syncer import LinkManager
        from flowlink.runtime import Runtime

        runtime = Runtime(self.workspace, parallelism=self._parallelism)
        engine = runtime.engine
        engine.listeners.append(self.feed.engine_listener)
        # Wired as Runtime.start wires them, before the engine runs, so that a recovered run
        # calling a linked workspace finds the link side; the syncers start on the SyncWorker.
        links = LinkManager(self.workspace)
        runtime.links = links
        engine.remote = links.remote_runner()
        links.exchange.listeners.append(engine.external_changes)
        try:
            engine.start()
        except Exception as exc:  # noqa: BLE001 - the window still shows the workspace
            log.exception("the engine did not start")
            links.stop()
            lock.release()
            self.engine_error = str(exc)
            self._takeover.stop()
            self._show_ownership()
            return
        self.engine_error = None
        self.lock = lock
        self.runtime = runtime
        self.engine = engine
        self.owner = None
        self._takeover.stop()
        log.info("running the workspace %s in this process", self.workspace.data_dir)
        self.sync.attach(runtime)
        self.sync.restore_listening()
        self._show_ownership()
        self.feed.post(store=True)  # what the owner left PENDING now runs here: show it
        self.ownership_changed.emit(True)

    @property
    def is_owner(self) -> bool:
        return self.engine is not None

    def ownership_text(self) -> tuple[str, str | None]:
        """(status line, banner or None)."""
        if self.engine is not None:
            return (f"Flows run in this window ({self.engine.parallelism} at a time).", None)
        if self.engine_error is not None:
            return ("Flows do not run: the engine did not start.",
                    f"Flowlink could not start running flows: {self.engine_error} "
                    "The log file has the details; restart Flowlink to try again.")
        who = describe_owner(self.owner)
        return (f"Flows run in {who}.",
                f"This workspace is run by {who}; runs you start here are handed to it.")

    def _show_ownership(self) -> None:
        if self.window is None:
            return
        text, banner = self.ownership_text()
        self.window.set_engine_state(text, banner)
        page = self.window.this_workspace
        links = self.window.links
        if self.runtime is not None:
            if self.workspace.is_admin:
                page.set_listen_available(True)
            else:
                page.set_listen_available(False, "Only an organization admin can switch listening on or off.")
            links.set_sync_available(True)
        elif self.engine is not None:  # an engine someone else started (tests): no link side here
            reason = "This window runs flows but not the links."
            page.set_listen_available(False, reason)
            links.set_sync_available(False, reason)
        else:
            from flowlink.gui.sync_worker import owner_endpoint_url

            who = describe_owner(self.owner) if self.engine_error is None else "no process"
            url = owner_endpoint_url(self.workspace)
            reason = f"Links and listening are run by {who}" + (f", listening on {url}." if url else ".")
            page.set_listen_available(False, reason)
            links.set_sync_available(False, f"Links are synced by {who}.")
        if self.tray is not None:
            self.tray.sync_action.setVisible(self.runtime is not None)
            self.tray.pause_action.setVisible(self.runtime is not None)

    # -- actions ------------------------------------------------------------------------

    def run_flow(self, flow: str, inputs: dict[str, Any]) -> int:
        if self.engine is not None:
            execution_id = self.engine.submit(flow, inputs)
        else:
            execution_id = self.workspace.create_execution(flow, inputs)
        log.info("started flow %s as execution %d", flow, execution_id)
        self.feed.post([execution_id])
        return execution_id

    def cancel(self, execution_id: int) -> None:
        if self.engine is not None:
            self.engine.cancel(execution_id)
        else:
            self.workspace.request_cancel(execution_id)
        self.feed.post([execution_id])

    def show_window(self) -> None:
        if self.window is None:
            return
        self.window.show()
        if self.window.isMinimized():
            self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()

    def sync_now(self, name: str | None = None) -> None:
        log.info("sync now: %s", name or "every link")
        self.sync.sync_now(name)

    def set_paused(self, paused: bool) -> None:
        log.info("sync %s", "paused" if paused else "resumed")
        self.sync.set_paused(paused)
        if self.tray is not None:
            self.tray.set_paused(paused)

    def set_listening(self, enabled: bool, host: str, port: int) -> None:
        self.sync.set_listening(enabled, host, port)

    # -- what the link side and the store report --------------------------------------------

    @Slot(object)
    def _statuses_arrived(self, statuses: dict[str, Any]) -> None:
        if self._stopped:
            return
        self.link_statuses = statuses
        if self.window is not None:
            self.window.links.set_statuses(statuses)
        if self.tray is not None:
            self.tray.set_links([(name, tray_state(s.state), s.sentence) for name, s in statuses.items()])
        self.notifier.links_changed(statuses)
        self.statuses_changed.emit(statuses)

    @Slot(object)
    def _endpoint_changed(self, url: str | None) -> None:
        if self.window is not None and not self._stopped:
            self.window.this_workspace.set_listening(url)

    @Slot(str)
    def _endpoint_failed(self, error: str) -> None:
        if self.window is not None and not self._stopped:
            self.window.this_workspace.set_listening(None, error)

    @Slot(str)
    def _attach_failed(self, sentence: str) -> None:
        if self.window is not None and not self._stopped:
            self.window.links.error.show_error(sentence)

    @Slot()
    def _links_attached(self) -> None:
        self.links_running = True
        self.links_started.emit()

    def _changes_arrived(self, batch: ChangeBatch) -> None:
        if self._stopped:
            return
        # The engine names what it changed (owner); a viewer only knows that the store did.
        self.notifier.executions_changed(batch.ids, scan=batch.store and self.engine is None)
        if batch.store and self.runtime is None:
            self.sync.poll()  # another process syncs: its reports are in the store

    def _links_edited(self, _name: str) -> None:
        self.sync.reload()

    # -- quitting -----------------------------------------------------------------------

    def request_quit(self) -> bool:
        """Quit after asking, when flows are running here (quitting ends them)."""
        if self.engine is not None and self._own_engine and self.engine.busy:
            answer = QMessageBox.question(
                self.window, "Quit Flowlink?",
                "Flows are running in this window. Quitting stops them; they end with an error "
                "saying the workspace stopped. Quit anyway?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                return False
        self.request_quit_now()
        return True

    def request_quit_now(self) -> None:
        if self.window is not None:
            self.window.quitting = True
        self.quit_requested.emit()

    def shutdown(self) -> None:
        """Stop everything this app started, in order; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._takeover.stop()
        if self.window is not None:
            self.window.quitting = True
            try:
                self.window.save_state()
            except RuntimeError:
                pass
            self.window.close_models()
            self.window.hide()
        if self.tray is not None:
            self.tray.hide()
        self.notifier.close()
        self.watcher.stop()
        # The link side first (endpoint, syncers), as Runtime.stop does: nothing queued is
        # lost, the outbox is in the store; then the engine.
        self.sync.stop()
        if self.runtime is not None and not self.sync.is_attached:
            self.runtime.links.stop()  # built but never started on the worker
        if self.engine is not None:
            try:
                self.engine.listeners.remove(self.feed.engine_listener)
            except ValueError:
                pass
            if self._own_engine:
                try:
                    self.engine.stop()
                except FlowlinkError:
                    log.exception("stopping the engine failed")
        if self.lock is not None:
            self.lock.release()
            self.lock = None
