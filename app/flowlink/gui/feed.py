"""Turns the core's change callbacks (foreign threads) into one coalesced Qt signal.

The engine calls its listeners on the engine thread with the ids it changed; the
StoreWatcher calls its listeners on its own thread when any connection committed.
Both land here through signals emitted from those threads: the feed lives on the
GUI thread, so Qt queues them to it. Bursts are merged into one ``ChangeBatch``
per ``delay_ms``, which keeps the GUI thread calm during a storm of changes.
"""

from __future__ import annotations

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

    def __init__(self, parent: QObject | None = None, delay_ms: int = 40) -> None:
        super().__init__(parent)
        self._ids: set[int] = set()
        self._store = False
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
            self._timer.start()

    @Slot()
    def flush(self) -> None:
        self._timer.stop()
        if not self._ids and not self._store:
            return
        batch = ChangeBatch(frozenset(self._ids), self._store)
        self._ids.clear()
        self._store = False
        self.changed.emit(batch)
