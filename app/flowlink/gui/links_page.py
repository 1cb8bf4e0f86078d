"""Links: one row per Synch Config with its live sync state; Add / Edit / Remove / Sync now.

The rows join two things read off the GUI thread: the Synch Configs (for the
Remote URL) and the ``LinkStatus`` reports the ``SyncWorker`` delivers (state,
sentence, last exchange, queued messages). Add and Edit open the Synch Config
form in a dialog; saving or removing emits ``links_changed`` so the app reloads
the link syncers. Users who are not organization admins see everything and can
open each form read-only, but cannot change anything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from flowlink.errors import FlowlinkError
from flowlink.gui.background import run_in_background
from flowlink.gui.icons import (
    DISABLED,
    ERROR,
    PAUSED_STATE,
    SYNCED,
    SYNCING,
    TRAY_STATES,
    panel_variant,
    tray_icon,
)
from flowlink.gui.sync_config_form import SyncConfigForm
from flowlink.gui.widgets import ErrorLabel
from flowlink.workspace.workspace import Workspace

log = logging.getLogger(__name__)

LINK_COLUMNS = ("Workspace", "State", "Remote URL", "Last exchange", "Queued out", "Received")
COL_NAME, COL_STATE, COL_URL, COL_LAST, COL_QUEUED_OUT, COL_RECEIVED = range(len(LINK_COLUMNS))

# LinkStatus.state words (flowlink.link.syncer) -> the tray state whose icon shows them.
_TRAY_STATE = {"synced": SYNCED, "syncing": SYNCING, "error": ERROR, "paused": PAUSED_STATE,
               "disabled": DISABLED, "answers only": SYNCED}


def tray_state(link_state: str) -> str:
    return _TRAY_STATE.get(link_state, DISABLED)


@dataclass(frozen=True)
class LinkRow:
    name: str
    state: str  # one of icons.TRAY_STATES
    sentence: str = ""  # what the state means now, e.g. the error
    remote_url: str = ""
    last_exchange: float | None = None
    queued_out: int = 0
    received: int = 0
    label: str = ""  # the link's own state word ("answers only"); empty: ``state``

    @property
    def state_text(self) -> str:
        word = self.label or self.state
        return word + (f": {self.sentence}" if self.sentence else "")


def link_rows(statuses: dict[str, Any], urls: dict[str, str | None]) -> list[LinkRow]:
    """One row per link the configs or the reports know, by name."""
    rows = []
    for name in sorted(set(statuses) | set(urls)):
        status = statuses.get(name)
        url = urls.get(name) or ""
        if status is None:
            rows.append(LinkRow(name, DISABLED, "waiting for the first report", url, label="…"))
            continue
        last = max((t for t in (status.last_success, status.last_inbound) if t is not None), default=None)
        rows.append(LinkRow(name, tray_state(status.state), status.sentence, url, last,
                            status.queued_out, status.received, status.state))
    return rows


class LinksModel(QAbstractTableModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[LinkRow] = []

    def set_links(self, rows: list[LinkRow]) -> None:
        """Replace the rows, updating in place when the same links come back (keeps selection)."""
        rows = list(rows)
        if [r.name for r in rows] == [r.name for r in self._rows]:
            changed = [i for i, (old, new) in enumerate(zip(self._rows, rows, strict=True)) if old != new]
            self._rows = rows
            if changed:
                self.dataChanged.emit(self.index(min(changed), 0),
                                      self.index(max(changed), len(LINK_COLUMNS) - 1))
            return
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def links(self) -> list[LinkRow]:
        return list(self._rows)

    def row_named(self, name: str) -> int | None:
        for i, row in enumerate(self._rows):
            if row.name == name:
                return i
        return None

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
                row.state_text,
                row.remote_url or "(none: the other workspace calls this one)",
                "never" if row.last_exchange is None
                else datetime.fromtimestamp(row.last_exchange).strftime("%Y-%m-%d %H:%M:%S"),
                str(row.queued_out),
                str(row.received),
            )[column]
        if role == Qt.ItemDataRole.ToolTipRole and column == COL_STATE:
            return row.state_text
        if role == Qt.ItemDataRole.DecorationRole and column == COL_STATE and row.state in TRAY_STATES:
            return tray_icon(row.state, panel_variant())
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (COL_QUEUED_OUT, COL_RECEIVED):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return row.name
        return None


class SyncConfigDialog(QDialog):
    """The Synch Config form in a window of its own; it stays open after saving (Test link)."""

    def __init__(self, workspace: Workspace, name: str | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if name is None:
            title = "Add a linked workspace"
        elif workspace.is_admin:
            title = f"Synch Config: {name}"
        else:
            title = f"Synch Config: {name} (read-only)"
        self.setWindowTitle(title)
        self.form = SyncConfigForm(workspace, name)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.buttons)
        self.resize(760, 740)


class LinksPage(QWidget):
    sync_now_requested = Signal(object)  # link name, or None for all
    links_changed = Signal(str)  # a Synch Config was added, saved or removed

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.dialog: SyncConfigDialog | None = None
        self._statuses: dict[str, Any] = {}
        self._urls: dict[str, str | None] = {}
        self._loading = False
        self._load_again = False
        self._select_after_load: str | None = None
        self.sync_available = True
        self._sync_reason = ""
        self.model = LinksModel(self)
        self.view = QTableView()
        self.view.setObjectName("linksTable")
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().hide()
        self.view.setWordWrap(False)
        header = self.view.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(COL_STATE, QHeaderView.ResizeMode.Stretch)
        for column, width in ((COL_NAME, 130), (COL_URL, 300), (COL_LAST, 150), (COL_QUEUED_OUT, 90),
                              (COL_RECEIVED, 80)):
            header.resizeSection(column, width)
        self.view.doubleClicked.connect(lambda _index: self.edit_selected())
        self.empty = QLabel(
            "<h3>No linked workspaces yet</h3>"
            "<p>A link lets flows here run flows in another workspace and get their results "
            "(a laptop, or a server with no public address).</p>"
            "<p><b>Add…</b> opens the Synch Config form: the other workspace's name, its URL "
            "(or none, if it calls this one) and its public key.</p>")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.view)

        self.details = QLabel()
        self.details.setObjectName("linkDetails")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setTextFormat(Qt.TextFormat.PlainText)
        self.note = QLabel()
        self.note.setObjectName("linksNote")
        self.note.setWordWrap(True)
        self.note.hide()
        self.error = ErrorLabel()
        self.add_button = QPushButton("Add…")
        self.add_button.setObjectName("addLink")
        self.edit_button = QPushButton("Edit…")
        self.edit_button.setObjectName("editLink")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setObjectName("removeLink")
        self.sync_button = QPushButton("Sync now")
        self.sync_button.setObjectName("syncNow")
        self.add_button.clicked.connect(self.add_link)
        self.edit_button.clicked.connect(self.edit_selected)
        self.remove_button.clicked.connect(self.remove_selected)
        self.sync_button.clicked.connect(self.sync_selected)
        buttons = QHBoxLayout()
        for button in (self.add_button, self.edit_button, self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.sync_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.note)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.details)
        layout.addWidget(self.error)
        layout.addLayout(buttons)
        self.view.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self.admin = workspace.is_admin
        if not self.admin:
            reason = (f"Only an organization admin can add, change or remove links; you are "
                      f"'{workspace.acting_user}'.")
            self.note.setText(reason + " Double-click a link to see its Synch Config.")
            self.note.show()
            for button in (self.add_button, self.remove_button):
                button.setToolTip(reason)
            self.edit_button.setText("View…")
        self._update_buttons()
        self.reload()

    # -- data ---------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the Synch Configs again (off the GUI thread); the rows follow."""
        if self._loading:
            self._load_again = True
            return
        self._loading = True
        links = self.workspace.links

        def read() -> dict[str, str | None]:
            return {config.name: config.remote_url for config in links.list()}

        run_in_background(read, self._configs_read, self._configs_failed)

    def _configs_read(self, urls: dict[str, str | None]) -> None:
        self._loading = False
        self._urls = urls
        # A link the configs no longer have is gone, whatever an older report says.
        self._statuses = {name: s for name, s in self._statuses.items() if name in urls}
        self._show()
        if self._select_after_load is not None and self.select(self._select_after_load):
            self._select_after_load = None
        if self._load_again:
            self._load_again = False
            self.reload()

    def _configs_failed(self, exc: BaseException) -> None:
        self._loading = False
        log.warning("could not list the workspace links: %s", exc)
        self.error.show_error(f"Could not read the links: {exc}")

    def set_statuses(self, statuses: dict[str, Any]) -> None:
        self._statuses = dict(statuses)
        self._show()

    def set_links(self, rows: list[LinkRow]) -> None:
        self.model.set_links(rows)
        self.stack.setCurrentWidget(self.view if rows else self.empty)
        self._update_buttons()

    def _show(self) -> None:
        self.set_links(link_rows(self._statuses, self._urls))

    def set_sync_available(self, available: bool, reason: str = "") -> None:
        """False in a window that does not run the workspace: it cannot sync or pause."""
        self.sync_available = available
        self._sync_reason = reason
        self._update_buttons()

    def selected_name(self) -> str | None:
        rows = self.view.selectionModel().selectedRows()
        if not rows:
            return None
        return self.model.data(rows[0], Qt.ItemDataRole.UserRole)

    def select(self, name: str) -> bool:
        row = self.model.row_named(name)
        if row is None:
            return False
        self.view.selectRow(row)
        return True

    def _update_details(self) -> None:
        """The selected link in full: the state column cuts long error sentences."""
        name = self.selected_name()
        row = None if name is None else self.model.row_named(name)
        if row is None:
            self.details.setText("Select a link to see its state in full." if self.model.rowCount() else "")
            return
        link = self.model.links()[row]
        last = "never" if link.last_exchange is None else \
            datetime.fromtimestamp(link.last_exchange).strftime("%Y-%m-%d %H:%M:%S")
        self.details.setText(f"{link.name}: {link.state_text}\nLast exchange: {last}. Queued to send: "
                             f"{link.queued_out}. Received so far: {link.received}.")

    def _update_buttons(self) -> None:
        self._update_details()
        selected = self.selected_name() is not None
        self.add_button.setEnabled(self.admin)
        self.edit_button.setEnabled(selected)
        self.remove_button.setEnabled(self.admin and selected)
        has_links = self.model.rowCount() > 0
        self.sync_button.setEnabled(self.sync_available and has_links)
        if not self.sync_available:
            self.sync_button.setToolTip(self._sync_reason)
        else:
            self.sync_button.setToolTip("Exchange with the selected linked workspace now "
                                        "(with every one when none is selected).")

    # -- actions ------------------------------------------------------------------------

    def add_link(self) -> SyncConfigDialog | None:
        if not self.admin:
            return None
        return self._open_form(None)

    def edit_selected(self) -> SyncConfigDialog | None:
        name = self.selected_name()
        if name is None:
            return None
        return self._open_form(name)

    def _open_form(self, name: str | None) -> SyncConfigDialog | None:
        self.error.clear_error()
        try:
            dialog = SyncConfigDialog(self.workspace, name, self)
        except FlowlinkError as exc:  # removed by another process meanwhile
            self.error.show_error(str(exc))
            self.reload()
            return None
        dialog.form.saved.connect(self._saved)
        dialog.finished.connect(lambda _result, d=dialog: self._dialog_closed(d))
        self.dialog = dialog
        dialog.open()
        return dialog

    def _dialog_closed(self, dialog: SyncConfigDialog) -> None:
        if self.dialog is dialog:
            self.dialog = None
        dialog.deleteLater()

    def _saved(self, name: str) -> None:
        self.links_changed.emit(name)
        self._select_after_load = name
        self.reload()

    def remove_selected(self) -> bool:
        name = self.selected_name()
        if name is None or not self.admin:
            return False
        answer = QMessageBox.question(
            self, "Remove the link?",
            f"Remove the link to '{name}'? Flows here can then no longer run flows there, and its "
            "keys are deleted from the secret store. Messages still queued for it are dropped.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return False
        self.error.clear_error()
        self.remove_button.setEnabled(False)
        links = self.workspace.links

        def removed(_result: object) -> None:
            self._statuses.pop(name, None)
            self._urls.pop(name, None)
            self._show()
            self.links_changed.emit(name)
            self.reload()

        def failed(exc: BaseException) -> None:
            self._update_buttons()
            self.error.show_error(f"The link to '{name}' was not removed: {exc}")

        run_in_background(lambda: links.remove(name), removed, failed)
        return True

    def sync_selected(self) -> None:
        self.sync_now_requested.emit(self.selected_name())
