"""Flows: the list with search, the editor, Save (checked like the CLI), New, Remove, Run."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QSortFilterProxyModel, QStringListModel, Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from flowlink.errors import FlowlinkError, ValidationError
from flowlink.gui.code_editor import CodeEditor
from flowlink.gui.dialogs import RunDialog
from flowlink.gui.widgets import ErrorLabel, move_cursor_to
from flowlink.workspace.workspace import Workspace

NEW_FLOW_TEMPLATE = '''def handler(system, this, inputs):
    """Runs when the flow is started; inputs is the JSON object given to Run."""
    name = inputs.get("name", "world")
    this.log(f"Hello, {name}!")
    this.save(output_value={"greeting": f"Hello, {name}!"})
    return this.success("greeted " + name)
'''

LINE_RE = re.compile(r"\bline (\d+)\b")

Runner = Callable[[str, dict[str, Any]], int]


class FlowsPage(QWidget):
    execution_started = Signal(object)  # execution id
    flows_changed = Signal()

    def __init__(self, workspace: Workspace, runner: Runner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.runner = runner
        self.current: str | None = None  # the saved flow in the editor; None while new
        self.run_dialog: RunDialog | None = None

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search flows")
        self.search.setClearButtonEnabled(True)
        self.names = QStringListModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.names)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.search.textChanged.connect(self.proxy.setFilterFixedString)
        self.list = QListView()
        self.list.setModel(self.proxy)
        self.list.setEditTriggers(QListView.EditTrigger.NoEditTriggers)
        self.list.selectionModel().currentChanged.connect(self._current_changed)
        self.new_button = QPushButton("New")
        self.remove_button = QPushButton("Remove")
        self.new_button.clicked.connect(self.new_flow)
        self.remove_button.clicked.connect(self.remove_current)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.search)
        left_layout.addWidget(self.list)
        row = QHBoxLayout()
        row.addWidget(self.new_button)
        row.addWidget(self.remove_button)
        left_layout.addLayout(row)

        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("Name of the new flow")
        self.state_label = QLabel()
        self.state_label.setEnabled(False)
        self.editor = CodeEditor()
        self.editor.textChanged.connect(self._edited)
        self.error_label = ErrorLabel()
        self.save_button = QPushButton("Save")
        self.save_button.setShortcut("Ctrl+S")
        self.run_button = QPushButton("Run…")
        self.run_button.setShortcut("Ctrl+R")
        self.save_button.clicked.connect(self.save)
        self.run_button.clicked.connect(self.open_run_dialog)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        header = QHBoxLayout()
        header.addWidget(QLabel("Name:"))
        header.addWidget(self.name_edit, 1)
        header.addWidget(self.state_label)
        right_layout.addLayout(header)
        right_layout.addWidget(self.editor, 1)
        right_layout.addWidget(self.error_label)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.run_button)
        right_layout.addLayout(buttons)

        self.splitter = QSplitter()
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([220, 700])
        layout = QVBoxLayout(self)
        layout.addWidget(self.splitter)

        self.reload()
        if self.proxy.rowCount():
            self.list.setCurrentIndex(self.proxy.index(0, 0))
        else:
            self.new_flow()

    # -- list ---------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read the names (keeps the current one selected); cheap when nothing changed."""
        names = self.workspace.list_flows()
        if names == self.names.stringList():
            return
        self.names.setStringList(names)
        if self.current is not None:
            self._select_in_list(self.current)

    def _select_in_list(self, name: str) -> None:
        rows = self.names.stringList()
        if name in rows:
            index = self.proxy.mapFromSource(self.names.index(rows.index(name), 0))
            if index.isValid():
                self.list.selectionModel().blockSignals(True)
                self.list.setCurrentIndex(index)
                self.list.selectionModel().blockSignals(False)

    def _current_changed(self, current: Any, _previous: Any) -> None:
        name = current.data() if current.isValid() else None
        if name is None or name == self.current:
            return
        if not self._may_discard():
            self._select_in_list(self.current) if self.current else self.list.clearSelection()
            return
        self.open_flow(name)

    def open_flow(self, name: str) -> None:
        source = self.workspace.get_flow(name)
        self.current = name
        self.name_edit.setText(name)
        self.name_edit.setReadOnly(True)
        self.editor.blockSignals(True)
        self.editor.setPlainText(source)
        self.editor.blockSignals(False)
        self.editor.document().setModified(False)
        self.editor.set_error_line(None)
        self.error_label.clear_error()
        self._select_in_list(name)
        self._update_state()

    def _may_discard(self) -> bool:
        if not self.editor.document().isModified():
            return True
        what = f"the changes to '{self.current}'" if self.current else "the new flow"
        answer = QMessageBox.question(self, "Discard changes?", f"Discard {what}?",
                                      QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
                                      QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Discard

    # -- editing ------------------------------------------------------------------------

    def new_flow(self) -> None:
        if self.current is not None and not self._may_discard():
            return
        self.current = None
        self.list.clearSelection()
        self.name_edit.setReadOnly(False)
        self.name_edit.clear()
        self.editor.setPlainText(NEW_FLOW_TEMPLATE)
        self.editor.document().setModified(True)
        self.editor.set_error_line(None)
        self.error_label.clear_error()
        self.name_edit.setFocus()
        self._update_state()

    def _edited(self) -> None:
        if self.editor.error_line is not None:
            self.editor.set_error_line(None)
        self._update_state()

    def _update_state(self) -> None:
        modified = self.editor.document().isModified()
        self.state_label.setText("new flow" if self.current is None else ("modified" if modified else "saved"))
        self.remove_button.setEnabled(self.current is not None)
        self.run_button.setEnabled(self.current is not None)

    def save(self) -> bool:
        name = self.current or self.name_edit.text().strip()
        source = self.editor.toPlainText()
        if self.current is None and self.workspace.flow_exists(name):
            self.error_label.show_error(f"There is already a flow named '{name}'; choose another name "
                                        "or open that flow from the list.")
            self.name_edit.setFocus()
            return False
        try:
            self.workspace.add_flow(name, source)
        except ValidationError as exc:
            self.error_label.show_error(exc.message)
            if exc.field == "name":
                self.name_edit.setFocus()
                return False
            match = LINE_RE.search(exc.message)
            if match:
                line = int(match.group(1))
                move_cursor_to(self.editor, line)
                self.editor.set_error_line(line)
            return False
        except FlowlinkError as exc:
            self.error_label.show_error(str(exc))
            return False
        self.error_label.clear_error()
        self.editor.set_error_line(None)
        self.editor.document().setModified(False)
        self.current = name
        self.name_edit.setReadOnly(True)
        self.reload()
        self._select_in_list(name)
        self._update_state()
        self.flows_changed.emit()
        return True

    def remove_current(self) -> None:
        if self.current is None:
            return
        answer = QMessageBox.question(
            self, "Remove flow?",
            f"Remove the flow '{self.current}'? Its past executions stay in the list.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            self.workspace.remove_flow(self.current)
        except FlowlinkError as exc:
            self.error_label.show_error(str(exc))
            return
        self.editor.document().setModified(False)
        self.current = None
        self.reload()
        self.flows_changed.emit()
        if self.proxy.rowCount():
            self.list.setCurrentIndex(self.proxy.index(0, 0))
        else:
            self.new_flow()

    # -- running ------------------------------------------------------------------------

    def open_run_dialog(self) -> RunDialog | None:
        if self.current is None:
            return None
        if self.editor.document().isModified():
            answer = QMessageBox.question(
                self, "Save before running?",
                f"'{self.current}' has unsaved changes. Save them and run the saved flow?",
                QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Save)
            if answer != QMessageBox.StandardButton.Save or not self.save():
                return None
        dialog = RunDialog(self.current, self)
        dialog.accepted.connect(lambda: self._run(dialog))
        dialog.finished.connect(dialog.deleteLater)
        self.run_dialog = dialog
        dialog.open()
        return dialog

    def _run(self, dialog: RunDialog) -> None:
        self.run_dialog = None
        try:
            execution_id = self.runner(dialog.flow, dialog.inputs or {})
        except FlowlinkError as exc:
            self.error_label.show_error(str(exc))
            return
        self.execution_started.emit(execution_id)
