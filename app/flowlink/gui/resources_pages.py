"""Settings (JSON values) and Files (bytes) of the workspace: list, view, edit, add, remove."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from flowlink.errors import FlowlinkError, ValidationError
from flowlink.gui.widgets import ErrorLabel, monospace_font, move_cursor_to, parse_json, pretty_json
from flowlink.workspace.workspace import MAX_FILE_BYTES, Workspace

PREVIEW_BYTES = 1024 * 1024


class _NamedListPage(QWidget):
    """A list of names on the left, the selected one on the right."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.currentItemChanged.connect(self._current_changed)
        self.left_buttons = QHBoxLayout()
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.list)
        left_layout.addLayout(self.left_buttons)
        self.right = QWidget()
        self.right_layout = QVBoxLayout(self.right)
        self.right_layout.setContentsMargins(0, 0, 0, 0)
        self.splitter = QSplitter()
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([220, 700])
        layout = QVBoxLayout(self)
        layout.addWidget(self.splitter)

    def names(self) -> list[str]:
        raise NotImplementedError

    def reload(self) -> None:
        names = self.names()
        if names == [self.list.item(i).text() for i in range(self.list.count())]:
            return
        current = self.current_name()
        self.list.blockSignals(True)
        self.list.clear()
        for name in names:
            QListWidgetItem(name, self.list)
        self.list.blockSignals(False)
        if current in names:
            self.select(current)
        elif names:
            self.list.setCurrentRow(0)
        else:
            self.show_name(None)

    def current_name(self) -> str | None:
        item = self.list.currentItem()
        return None if item is None else item.text()

    def select(self, name: str) -> None:
        matches = self.list.findItems(name, Qt.MatchFlag.MatchExactly)
        if matches:
            self.list.setCurrentItem(matches[0])

    def _current_changed(self, current: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        self.show_name(None if current is None else current.text())

    def show_name(self, name: str | None) -> None:
        raise NotImplementedError


class SettingsPage(_NamedListPage):
    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.new_button = QPushButton("New")
        self.remove_button = QPushButton("Remove")
        self.new_button.clicked.connect(self.new_setting)
        self.remove_button.clicked.connect(self.remove_current)
        self.left_buttons.addWidget(self.new_button)
        self.left_buttons.addWidget(self.remove_button)

        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("Name of the new setting")
        self.editor = QPlainTextEdit()
        self.editor.setFont(monospace_font())
        self.editor.textChanged.connect(lambda: self.error_label.clear_error())
        self.hint = QLabel("The value is JSON: an object, array, string in quotes, number, true/false or null. "
                           "Flows read it with system.setting(name).")
        self.hint.setWordWrap(True)
        self.hint.setEnabled(False)
        self.error_label = ErrorLabel()
        self.save_button = QPushButton("Save")
        self.save_button.clicked.connect(self.save)
        header = QHBoxLayout()
        header.addWidget(QLabel("Name:"))
        header.addWidget(self.name_edit, 1)
        self.right_layout.addLayout(header)
        self.right_layout.addWidget(self.editor, 1)
        self.right_layout.addWidget(self.hint)
        self.right_layout.addWidget(self.error_label)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)
        self.right_layout.addLayout(buttons)
        self.reload()
        if not self.list.count():
            self.new_setting()

    def names(self) -> list[str]:
        return self.workspace.list_settings()

    def show_name(self, name: str | None) -> None:
        self.error_label.clear_error()
        if name is None:
            self.new_setting()
            return
        self.name_edit.setText(name)
        self.name_edit.setReadOnly(True)
        self.editor.setPlainText(pretty_json(self.workspace.get_setting(name)))
        self.editor.document().setModified(False)
        self.error_label.clear_error()
        self.remove_button.setEnabled(True)

    def new_setting(self) -> None:
        self.list.blockSignals(True)
        self.list.setCurrentRow(-1)
        self.list.blockSignals(False)
        self.name_edit.setReadOnly(False)
        self.name_edit.clear()
        self.editor.setPlainText("{\n  \n}")
        self.remove_button.setEnabled(False)
        self.name_edit.setFocus()

    def save(self) -> bool:
        name = self.name_edit.text().strip()
        value, error, line, column = parse_json(self.editor.toPlainText())
        if error is not None:
            self.error_label.show_error(error + " Nothing was saved.")
            move_cursor_to(self.editor, line or 1, column or 1)
            return False
        try:
            self.workspace.set_setting(name, value)
        except ValidationError as exc:
            self.error_label.show_error(exc.message)
            self.name_edit.setFocus()
            return False
        except FlowlinkError as exc:
            self.error_label.show_error(str(exc))
            return False
        self.error_label.clear_error()
        self.reload()
        self.select(name)
        self.changed.emit()
        return True

    def remove_current(self) -> None:
        name = self.current_name()
        if name is None:
            return
        answer = QMessageBox.question(self, "Remove setting?", f"Remove the setting '{name}'? Flows that "
                                      "read it will fail with ResourceNotFoundError.",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            self.workspace.remove_setting(name)
        except FlowlinkError as exc:
            self.error_label.show_error(str(exc))
            return
        self.reload()
        self.changed.emit()


class FilesPage(_NamedListPage):
    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.add_button = QPushButton("Add from disk…")
        self.remove_button = QPushButton("Remove")
        self.add_button.clicked.connect(self.add_from_disk)
        self.remove_button.clicked.connect(self.remove_current)
        self.left_buttons.addWidget(self.add_button)
        self.left_buttons.addWidget(self.remove_button)

        self.info = QLabel()
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        self.preview.setFont(monospace_font())
        self.error_label = ErrorLabel()
        self.save_as_button = QPushButton("Save as…")
        self.save_as_button.clicked.connect(self.save_as)
        self.right_layout.addWidget(self.info)
        self.right_layout.addWidget(self.preview, 1)
        self.right_layout.addWidget(self.error_label)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.save_as_button)
        self.right_layout.addLayout(buttons)
        self.reload()
        if not self.list.count():
            self.show_name(None)

    def names(self) -> list[str]:
        return self.workspace.list_files()

    def show_name(self, name: str | None) -> None:
        self.error_label.clear_error()
        has = name is not None
        self.remove_button.setEnabled(has)
        self.save_as_button.setEnabled(has)
        if name is None:
            self.info.setText("No file selected. Flows read files with system.file(name).")
            self.preview.clear()
            return
        content = self.workspace.get_file(name)
        head = content[:PREVIEW_BYTES]
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # not just a character cut by the preview limit
                text = None
            else:
                text = head[: exc.start].decode("utf-8")
        size = _size(len(content))
        if text is None:
            self.info.setText(f"<b>{_html(name)}</b> — {size}, binary: use Save as… to look at it.")
            self.preview.clear()
        else:
            cut = " (first 1 MiB shown)" if len(content) > PREVIEW_BYTES else ""
            self.info.setText(f"<b>{_html(name)}</b> — {size}, text{cut}")
            self.preview.setPlainText(text)

    def add_from_disk(self) -> None:
        path, _filter = QFileDialog.getOpenFileName(self, "Add a file to the workspace")
        if path:
            self.add_file(Path(path))

    def add_file(self, path: Path, name: str | None = None) -> bool:
        name = name or path.name
        try:
            size = path.stat().st_size
        except OSError as exc:
            self.error_label.show_error(f"Cannot read {path}: {exc.strerror or exc}.")
            return False
        if size > MAX_FILE_BYTES:
            self.error_label.show_error(f"{path.name} is {_size(size)}; files in a workspace are limited to 64 MiB.")
            return False
        if self.workspace.file_exists(name):
            answer = QMessageBox.question(self, "Replace file?", f"The workspace already has a file '{name}'. Replace it?",
                                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                          QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                return False
        try:
            self.workspace.put_file(name, path.read_bytes())
        except OSError as exc:
            self.error_label.show_error(f"Cannot read {path}: {exc.strerror or exc}.")
            return False
        except FlowlinkError as exc:
            self.error_label.show_error(str(exc))
            return False
        self.reload()
        self.select(name)
        self.show_name(name)
        self.changed.emit()
        return True

    def save_as(self) -> None:
        name = self.current_name()
        if name is None:
            return
        path, _filter = QFileDialog.getSaveFileName(self, f"Save {name} as", os.path.join(str(Path.home()), name))
        if path:
            self.save_to(name, Path(path))

    def save_to(self, name: str, path: Path) -> bool:
        try:
            path.write_bytes(self.workspace.get_file(name))
        except OSError as exc:
            self.error_label.show_error(f"Cannot write {path}: {exc.strerror or exc}.")
            return False
        except FlowlinkError as exc:
            self.error_label.show_error(str(exc))
            return False
        return True

    def remove_current(self) -> None:
        name = self.current_name()
        if name is None:
            return
        answer = QMessageBox.question(self, "Remove file?", f"Remove the file '{name}' from the workspace?",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            self.workspace.remove_file(name)
        except FlowlinkError as exc:
            self.error_label.show_error(str(exc))
            return
        self.reload()
        self.changed.emit()


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 / 1024:.1f} MiB"


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
