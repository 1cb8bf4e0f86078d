"""Notices commits to a workspace store made by any other connection, in any process.

SQLite's ``PRAGMA data_version`` changes on a connection whenever another connection
has committed since it last looked. The watcher polls it on a connection of its own
(the store hands each thread its own connection), so every commit counts: the
engine thread's, a CLI process's, `flowlink serve`'s, or the GUI's own. Listeners are
told *that* something changed, not what: they re-read what they show.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

from flowlink.errors import FlowlinkError
from flowlink.workspace.store import Store

log = logging.getLogger(__name__)

StoreListener = Callable[[], None]


class StoreWatcher:
    """Calls each of ``listeners`` (with no arguments, on the watcher thread) after a commit."""

    def __init__(self, store: Store, interval: float = 0.1) -> None:
        if not interval > 0:
            raise ValueError("interval must be a positive number of seconds")
        self.store = store
        self.interval = interval
        self.listeners: list[StoreListener] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start polling; returns once the baseline is read, so no later commit is missed."""
        if self.running:
            return
        self._stop.clear()
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="flowlink-store-watcher", daemon=True)
        self._thread.start()
        self._ready.wait(5.0)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _version(self) -> int | None:
        try:
            return self.store.data_version()
        except (sqlite3.Error, FlowlinkError) as exc:
            # A busy or closing database: try again at the next tick.
            log.debug("store watcher could not read data_version: %s", exc)
            return None

    def _run(self) -> None:
        last = self._version()
        self._ready.set()
        while not self._stop.wait(self.interval):
            version = self._version()
            if version is None:
                continue
            if last is None:
                last = version
                continue
            if version != last:
                last = version
                self._notify()

    def _notify(self) -> None:
        for listener in list(self.listeners):
            if self._stop.is_set():
                return
            try:
                listener()
            except Exception:  # noqa: BLE001 - a broken listener must not stop the watcher
                log.exception("store listener failed")
