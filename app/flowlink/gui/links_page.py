"""Links: one row per Synch Config with its sync state.

Phase 1 lists the configs the workspace has (``workspace.links``) with what is
known without a sync worker. The ``SyncWorker`` will feed ``LinksModel.set_links``
with live states, and the Add/Edit form plugs into the buttons that are here now.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from flowlink.gui.icons import DISABLED, TRAY_STATES, panel_variant, tray_icon
from flowlink.workspace.workspace import Workspace

log = logging.getLogger(__name__)

LINK_COLUMNS = ("Workspace", "State", "Remote URL", "Last exchange", "Queued out", "Queued in")


@dataclass(frozen=True)
class LinkRow:
    name: str
    state: str  # one of icons.TRAY_STATES
    sentence: str = ""  # what the state means now, e.g. the error
    remote_url: str = ""
    last_exchange: float | None = None
    queued_out: int = 0
    queued_in: int = 0


def rows_from_configs(workspace: Workspace) -> list[LinkRow]:
    """What the store says about each link, before any sync worker reports."""
    links = getattr(workspace, "links", None)
    if links is None:
        return []
    rows = []
    for config in links.list():
        if not config.enabled:
            state, sentence = DISABLED, "disabled in its Synch Config"
        elif config.controls:
            state, sentence = DISABLED, "not syncing: this version of the window has no sync worker yet"
        else:
            state, sentence = DISABLED, "waits for the other workspace to call"
        rows.append(LinkRow(config.name, state, sentence, config.remote_url or ""))
    return rows


class LinksModel(QAbstractTableModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[LinkRow] = []

    def set_links(self, rows: list[LinkRow]) -> None:
        """Replace the rows, updating in place when the same links come back (keeps selection)."""
        rows = list(rows)
        if [r.name for r in rows] == [r.name for r in self._rows]:
            self._rows = rows
            if rows:
                self.dataChanged.emit(self.index(0, 0), self.index(len(rows) - 1, len(LINK_COLUMNS) - 1))
            return
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def links(self) -> list[LinkRow]:
        return list(self._rows)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(LINK_COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole \
                and 0 <= section < len(LINK_COLUMNS):
            return LINK_COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (
                row.name,
                row.state + (f": {row.sentence}" if row.sentence else ""),
                row.remote_url or "(the other workspace calls this one)",
                "" if row.last_exchange is None else datetime.fromtimestamp(row.last_exchange).strftime("%Y-%m-%d %H:%M:%S"),
                str(row.queued_out),
                str(row.queued_in),
            )[column]
        if role == Qt.ItemDataRole.DecorationRole and column == 1 and row.state in TRAY_STATES:
            return tray_icon(row.state, panel_variant())
        if role == Qt.ItemDataRole.UserRole:
            return row.name
        return None


class LinksPage(QWidget):
    sync_now_requested = Signal(object)  # link name, or None for all
    add_requested = Signal()
    edit_requested = Signal(str)
    remove_requested = Signal(str)

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.model = LinksModel(self)
        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.verticalHeader().hide()
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.empty = QLabel(
            "<h3>No linked workspaces yet</h3>"
            "<p>A link lets flows here run flows in another workspace and get their results "
            "(a laptop, or a server with no public address).</p>"
            "<p>Until the Synch Config form arrives in this window, create links with "
            "<code>flowlink link add</code>; they are listed here.</p>")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.view)

        self.add_button = QPushButton("Add…")
        self.edit_button = QPushButton("Edit…")
        self.remove_button = QPushButton("Remove")
        self.sync_button = QPushButton("Sync now")
        pending = "Arrives with the Synch Config form; use 'flowlink link' meanwhile."
        for button in (self.add_button, self.edit_button, self.remove_button, self.sync_button):
            button.setEnabled(False)
            button.setToolTip(pending)
        buttons = QHBoxLayout()
        for button in (self.add_button, self.edit_button, self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.sync_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.stack, 1)
        layout.addLayout(buttons)
        self.reload()

    def reload(self) -> None:
        try:
            rows = rows_from_configs(self.workspace)
        except Exception:  # noqa: BLE001 - an unreadable table must not break the window
            log.exception("could not list the workspace links")
            rows = []
        self.set_links(rows)

    def set_links(self, rows: list[LinkRow]) -> None:
        self.model.set_links(rows)
        self.stack.setCurrentWidget(self.view if rows else self.empty)
