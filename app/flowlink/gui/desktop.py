"""The desktop session of one workspace: engine ownership, change feed, window, tray.

Exactly one process per data dir runs the engine (the holder of the owner lock).
If this window gets the lock, the engine runs here on its own thread; if
`flowlink serve` (or another engine) holds it, this window is a viewer: runs
started here are recorded as PENDING for the owner to pick up, and changes are
seen through the StoreWatcher. A viewer takes over when the owner goes away.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QMessageBox, QSystemTrayIcon

from flowlink.engine.engine import Engine
from flowlink.errors import FlowlinkError
from flowlink.gui.feed import ChangeFeed
from flowlink.gui.links_page import rows_from_configs
from flowlink.gui.main_window import MainWindow
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

    def __init__(self, workspace: Workspace, *, engine: Engine | None = None, use_tray: bool = True,
                 threaded: bool = True, parallelism: int | None = None,
                 parent: QObject | None = None) -> None:
        """``engine``: an engine someone else started and stops (tests); otherwise this app
        takes the owner lock and runs its own, or becomes a viewer of the process that has it."""
        super().__init__(parent)
        self.workspace = workspace
        self.engine: Engine | None = engine
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
        self._takeover = QTimer(self)
        self._takeover.setInterval(TAKEOVER_MS)
        self._takeover.timeout.connect(self._try_takeover)
        self._stopped = False

    # -- start --------------------------------------------------------------------------

    def start(self) -> MainWindow:
        self.watcher.start()
        if self.engine is not None:
            self.engine.listeners.append(self.feed.engine_listener)
        else:
            self._try_takeover()
        self.window = MainWindow(self.workspace, self.run_flow, self.cancel, threaded=self._threaded)
        self.window.restore_state()
        self.window.quit_requested.connect(self.request_quit_now)
        self.feed.changed.connect(self.window.apply_changes)
        if self._use_tray and QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = TrayIcon(self.workspace.name, self)
            self.tray.show_requested.connect(self.show_window)
            self.tray.quit_requested.connect(self.request_quit)
            self.tray.sync_now_requested.connect(self._sync_now)
            self.tray.pause_requested.connect(self._pause)
            self.tray.set_links([(r.name, r.state, r.sentence) for r in rows_from_configs(self.workspace)])
            self.tray.show()
            self.window.tray = self.tray
        self._show_ownership()
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
        engine = Engine(self.workspace, parallelism=self._parallelism)
        engine.listeners.append(self.feed.engine_listener)
        try:
            engine.start()
        except Exception as exc:  # noqa: BLE001 - the window still shows the workspace
            log.exception("the engine did not start")
            lock.release()
            self.engine_error = str(exc)
            self._takeover.stop()
            self._show_ownership()
            return
        self.engine_error = None
        self.lock = lock
        self.engine = engine
        self.owner = None
        self._takeover.stop()
        log.info("running the engine of %s in this process", self.workspace.data_dir)
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

    def _sync_now(self) -> None:
        log.info("sync now: no sync worker in this version")

    def _pause(self, paused: bool) -> None:
        if self.tray is not None:
            self.tray.set_paused(paused)

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
        self.watcher.stop()
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
