"""Dialogs: first run (name the workspace), run inputs, unexpected error."""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from flowlink.errors import FlowlinkError, ValidationError
from flowlink.gui.widgets import ErrorLabel, monospace_font, move_cursor_to, parse_json
from flowlink.workspace.workspace import WORKSPACE_NAME_RULE, Workspace, check_workspace_name

log = logging.getLogger(__name__)

SECRET_STORE_CHOICES = (
    ("keyring", "The OS keyring (recommended)"),
    ("file", "Files in the data folder, readable only by you"),
)


def suggested_workspace_name() -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().split(".")[0].lower()).strip("-")
    try:
        return check_workspace_name(name[:63])
    except ValidationError:
        return "my-workspace"


def default_secret_store() -> str:
    from flowlink.workspace.secrets import resolve_kind

    try:
        return resolve_kind(None)
    except FlowlinkError:
        return "keyring"


class _Relay(QObject):
    done = Signal(object)


class FirstRunDialog(QDialog):
    """Asks the name of the new workspace and creates it (key generation runs off the GUI thread)."""

    def __init__(self, data_dir: Path, acting_user: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.data_dir = Path(data_dir)
        self.acting_user = acting_user
        self.workspace: Workspace | None = None
        self.setWindowTitle("Welcome to Flowlink")
        self.setMinimumWidth(520)

        intro = QLabel(
            "<b>Create your workspace.</b><br>Flowlink keeps your flows, settings, files and "
            "executions in a workspace. Linked workspaces know this one by its name."
        )
        intro.setWordWrap(True)

        self.name_edit = QLineEdit(suggested_workspace_name())
        self.name_edit.setPlaceholderText("e.g. my-laptop")
        self.name_edit.selectAll()
        self.name_edit.textEdited.connect(lambda _text: self._show_error(None))
        rule = QLabel(WORKSPACE_NAME_RULE[0].upper() + WORKSPACE_NAME_RULE[1:] + ".")
        rule.setWordWrap(True)
        rule.setEnabled(False)
        self.error_label = ErrorLabel()

        self.store_combo = QComboBox()
        for kind, label in SECRET_STORE_CHOICES:
            self.store_combo.addItem(label, kind)
        self.store_combo.setCurrentIndex(max(0, self.store_combo.findData(default_secret_store())))
        folder = QLabel(str(self.data_dir))
        folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        folder.setWordWrap(True)

        self.rule_label = rule
        name_box = QVBoxLayout()
        name_box.setSpacing(4)
        name_box.addWidget(self.name_edit)
        name_box.addWidget(rule)
        name_box.addWidget(self.error_label)
        form = QFormLayout()
        form.addRow("Workspace name:", name_box)
        form.addRow("Keep keys in:", self.store_combo)
        form.addRow("Data folder:", folder)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.create_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.create_button.setText("Create workspace")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.buttons)

        self._relay = _Relay(self)
        self._relay.done.connect(self._created, Qt.ConnectionType.QueuedConnection)
        self._busy = False

    @property
    def busy(self) -> bool:
        return self._busy

    def accept(self) -> None:
        if self._busy:
            return
        name = self.name_edit.text().strip()
        try:
            check_workspace_name(name)
        except ValidationError as exc:
            self._show_error(exc.message)
            self.name_edit.setFocus()
            return
        self._show_error(None)
        self._set_busy(True)
        kind = self.store_combo.currentData()
        threading.Thread(target=self._create, args=(name, kind), name="flowlink-first-run", daemon=True).start()

    def _create(self, name: str, kind: str) -> None:
        try:
            result: Any = Workspace.init(self.data_dir, name, admin=self.acting_user, secret_store=kind)
        except (FlowlinkError, OSError) as exc:
            result = exc
        except Exception as exc:  # noqa: BLE001 - shown beside the form, logged in full
            log.exception("creating the workspace failed")
            result = exc
        try:
            self._relay.done.emit(result)
        except RuntimeError:  # the dialog went away meanwhile
            if isinstance(result, Workspace):
                result.close()

    @Slot(object)
    def _created(self, result: Any) -> None:
        self._set_busy(False)
        if isinstance(result, Workspace):
            self.workspace = result
            super().accept()
            return
        message = getattr(result, "message", None) or str(result) or type(result).__name__
        self._show_error(message)

    def _show_error(self, message: str | None) -> None:
        """The error replaces the naming rule (it repeats it when the name is the problem)."""
        if message is None:
            self.error_label.clear_error()
            self.rule_label.show()
        else:
            self.rule_label.hide()
            self.error_label.show_error(message)

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.name_edit.setEnabled(not busy)
        self.store_combo.setEnabled(not busy)
        self.create_button.setEnabled(not busy)
        self.create_button.setText("Creating…" if busy else "Create workspace")

    def reject(self) -> None:
        if not self._busy:
            super().reject()


class RunDialog(QDialog):
    """Inputs of a run as one JSON object, checked before anything runs."""

    def __init__(self, flow: str, parent: QWidget | None = None, initial: str = "{}") -> None:
        super().__init__(parent)
        self.flow = flow
        self.inputs: dict[str, Any] | None = None
        self.setWindowTitle(f"Run {flow}")
        self.setMinimumSize(460, 300)
        label = QLabel(f"Inputs of <b>{_escape(flow)}</b> as a JSON object, e.g. "
                       "<code>{\"name\": \"Ada\", \"count\": 3}</code>:")
        label.setWordWrap(True)
        self.editor = QPlainTextEdit(initial)
        self.editor.setFont(monospace_font())
        self.editor.textChanged.connect(lambda: self.error_label.clear_error())
        self.error_label = ErrorLabel()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.run_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.run_button.setText("Run")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(label)
        layout.addWidget(self.editor)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

    def accept(self) -> None:
        text = self.editor.toPlainText().strip() or "{}"
        value, error, line, column = parse_json(text)
        if error is not None:
            self.error_label.show_error(error)
            move_cursor_to(self.editor, line or 1, column or 1)
            return
        if not isinstance(value, dict):
            self.error_label.show_error(
                f"The inputs must be a JSON object like {{\"a\": 1}}, not {json_kind(value)}."
            )
            return
        self.inputs = value
        super().accept()


class ErrorDialog(QDialog):
    """An unexpected error: the message, the traceback folded away, and the log folder."""

    def __init__(self, message: str, details: str, log_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.log_dir = Path(log_dir)
        self.setWindowTitle("Flowlink: unexpected error")
        self.setMinimumWidth(480)
        icon = QLabel()
        icon.setPixmap(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxCritical).pixmap(40, 40))
        headline = QLabel("<b>Something went wrong.</b> Flowlink keeps running; what you were doing "
                          "may not have finished. The log file has the details.")
        headline.setWordWrap(True)
        self.message_label = QLabel(message)
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details = QPlainTextEdit(details)
        self.details.setReadOnly(True)
        self.details.setFont(monospace_font())
        self.details.setVisible(False)
        self.details.setMinimumHeight(160)

        self.buttons = QDialogButtonBox()
        self.open_logs_button = QPushButton("Open log folder")
        self.details_button = QPushButton("Show details")
        self.details_button.setCheckable(True)
        self.details_button.toggled.connect(self._toggle_details)
        self.buttons.addButton(self.open_logs_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(self.details_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)
        self.open_logs_button.clicked.connect(self.open_log_folder)

        layout = QVBoxLayout(self)
        top = QFormLayout()
        top.addRow(icon, headline)
        layout.addLayout(top)
        layout.addWidget(self.message_label)
        layout.addWidget(self.details)
        layout.addWidget(self.buttons)

    def _toggle_details(self, shown: bool) -> None:
        self.details.setVisible(shown)
        self.details_button.setText("Hide details" if shown else "Show details")

    def open_log_folder(self) -> bool:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return QDesktopServices.openUrl(QUrl.fromLocalFile(os.fspath(self.log_dir)))


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
