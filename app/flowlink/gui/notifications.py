"""What is worth a desktop notification: a link falling into error, a remote execution failing.

``Notifier.notified(title, text)`` fires whatever shows it (the tray's balloon);
the switch lives in QSettings (not a secret). Remote executions are those whose
``workspace`` names a linked workspace; only the ones that end in error after the
app started are told, each once. The store is read off the GUI thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal

from flowlink.gui.background import run_in_background
from flowlink.gui.executions_model import summary_line
from flowlink.workspace.records import ENDED_ERROR
from flowlink.workspace.workspace import Workspace

log = logging.getLogger(__name__)

SETTING = "notifications/enabled"
CHUNK = 900
MAX_NAMED = 3  # a burst of failures is one balloon naming the first few


def notifications_enabled() -> bool:
    value = QSettings().value(SETTING, True)
    return value not in (False, "false", "0", 0)


def set_notifications_enabled(enabled: bool) -> None:
    settings = QSettings()
    settings.setValue(SETTING, bool(enabled))
    settings.sync()


def failed_remote_executions(workspace: Workspace, ids: Iterable[int] | None, since: float) -> list[dict[str, Any]]:
    """Remote executions that ended in error after ``since``: among ``ids``, or all (ids None)."""
    conn = workspace.store.conn
    columns = "SELECT id, flow, workspace, message FROM executions"
    found: list[Any] = []
    if ids is None:
        found = conn.execute(
            f"{columns} WHERE workspace IS NOT NULL AND status = ? AND ended_at >= ? ORDER BY id",
            (ENDED_ERROR, since)).fetchall()
    else:
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start:start + CHUNK]
            marks = ",".join("?" * len(chunk))
            found += conn.execute(
                f"{columns} WHERE id IN ({marks}) AND workspace IS NOT NULL AND status = ? AND ended_at >= ?",
                (*chunk, ENDED_ERROR, since)).fetchall()
    return [dict(row) for row in found]


class Notifier(QObject):
    notified = Signal(str, str)  # title, text

    def __init__(self, workspace: Workspace, parent: QObject | None = None, *, scan_interval: float = 2.0) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.enabled = notifications_enabled()
        self.since = time.time()
        self.scan_interval = scan_interval
        self._link_states: dict[str, str] | None = None
        self._told: set[int] = set()
        self._busy = False
        self._queued_ids: set[int] = set()
        self._queued_scan = False
        self._last_scan = 0.0
        self._closed = False

    def close(self) -> None:
        self._closed = True

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled

    def notify(self, title: str, text: str) -> bool:
        if not self.enabled or self._closed:
            return False
        log.info("notification: %s: %s", title, text)
        self.notified.emit(title, text)
        return True

    # -- links -------------------------------------------------------------------------

    def links_changed(self, statuses: dict[str, Any]) -> None:
        """Tell when a link that was known and not in error now is (not on the first report)."""
        states = {name: status.state for name, status in statuses.items()}
        before = self._link_states
        self._link_states = states
        if before is None:
            return
        for name, status in statuses.items():
            if status.state == "error" and name in before and before[name] != "error":
                self.notify(f"Link to {name} failed", status.sentence or "The link stopped syncing.")

    # -- remote executions -----------------------------------------------------------------

    def executions_changed(self, ids: Iterable[int] = (), scan: bool = False) -> None:
        """``ids`` changed (owner: the engine says which); ``scan``: something changed (viewer)."""
        self._queued_ids.update(ids)
        if scan and time.monotonic() - self._last_scan >= self.scan_interval:
            self._queued_scan = True
        self._check()

    def _check(self) -> None:
        if self._busy or self._closed or not (self._queued_ids or self._queued_scan):
            return
        ids = None if self._queued_scan else set(self._queued_ids)
        if ids is None:
            self._last_scan = time.monotonic()
        self._queued_ids.clear()
        self._queued_scan = False
        self._busy = True
        workspace, since = self.workspace, self.since
        run_in_background(lambda: failed_remote_executions(workspace, ids, since), self._found, self._failed)

    def _found(self, rows: list[dict[str, Any]]) -> None:
        self._busy = False
        fresh = [row for row in rows if row["id"] not in self._told]
        self._told.update(row["id"] for row in fresh)
        if len(fresh) == 1:
            row = fresh[0]
            self.notify(f"{row['flow']} failed in {row['workspace']}",
                        summary_line(row["message"] or "") or "The remote execution ended in error.")
        elif fresh:
            named = ", ".join(f"{row['flow']} in {row['workspace']}" for row in fresh[:MAX_NAMED])
            more = f" and {len(fresh) - MAX_NAMED} more" if len(fresh) > MAX_NAMED else ""
            self.notify(f"{len(fresh)} remote executions failed",
                        f"{named}{more}. The Executions page lists them.")
        self._check()

    def _failed(self, exc: BaseException) -> None:
        self._busy = False
        log.warning("could not look for failed remote executions: %s", exc)
        self._check()
