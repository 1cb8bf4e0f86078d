"""Turns the core's change callbacks (foreign threads) into one coalesced Qt signal.

The engine calls its listeners on the engine thread with the ids it changed; the
StoreWatcher calls its listeners on its own thread when any connection committed.
Both land here through signals emitted from those threads: the feed lives on the
GUI thread, so Qt queues them to it. Bursts are merged into one ``ChangeBatch``
per ``delay_ms``; while changes keep coming (a batch went out less than
``BUSY_WINDOW`` ago) per ``busy_delay_ms``: each batch repaints the executions
table, and during a storm (a backlog sync) fewer, larger batches leave the GUI
thread and the GIL to everything else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot


@dataclass(frozen=True)
class ChangeBatch:
    ids: frozenset[int] = field(default_factory=frozenset)
    # True when some connection committed something (the watcher does not know what).
    store: bool = False


class ChangeFeed(QObject):
    changed = Signal(object)  # ChangeBatch
    _ids_posted = Signal(object)
    _store_posted = Signal()

    BUSY_WINDOW = 0.3  # seconds

    def __init__(self, parent: QObject | None = None, delay_ms: int = 40, busy_delay_ms: int = 150) -> None:
        super().__init__(parent)
        self._ids: set[int] = set()
        self._store = False
        self.delay_ms = delay_ms
        self.busy_delay_ms = max(delay_ms, busy_delay_ms)
        self._last_flush = float("-inf")
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self.flush)
        self._ids_posted.connect(self._on_ids, Qt.ConnectionType.QueuedConnection)
        self._store_posted.connect(self._on_store, Qt.ConnectionType.QueuedConnection)

    # -- called on foreign threads -------------------------------------------------------

    def engine_listener(self, ids: list[int]) -> None:
        """An Engine listener: ``engine.listeners.append(feed.engine_listener)``."""
        try:
            self._ids_posted.emit(list(ids))
        except RuntimeError:  # the feed is gone (the window closed first): nothing to tell
            pass

    def store_listener(self) -> None:
        """A StoreWatcher listener."""
        try:
            self._store_posted.emit()
        except RuntimeError:
            pass

    # -- GUI thread ----------------------------------------------------------------------

    def post(self, ids: list[int] | None = None, store: bool = False) -> None:
        """Report a change made on the GUI thread itself (shows up in the next batch)."""
        if ids:
            self._ids.update(ids)
        self._store = self._store or store
        self._arm()

    @Slot(object)
    def _on_ids(self, ids: list[int]) -> None:
        self._ids.update(ids)
        self._arm()

    @Slot()
    def _on_store(self) -> None:
        self._store = True
        self._arm()

    def _arm(self) -> None:
        if not self._timer.isActive():
            busy = time.monotonic() - self._last_flush < self.BUSY_WINDOW
            self._timer.start(self.busy_delay_ms if busy else self.delay_ms)

    @Slot()
    def flush(self) -> None:
        self._timer.stop()
        if not self._ids and not self._store:
            return
        batch = ChangeBatch(frozenset(self._ids), self._store)
        self._ids.clear()
        self._store = False
        self._last_flush = time.monotonic()
        self.changed.emit(batch)
