"""Executions: filters, the live table, and the details of the selected execution."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from flowlink.errors import FlowlinkError
from flowlink.gui.executions_model import (
    COL_DURATION,
    COL_ENDED,
    COL_FLOW,
    COL_ID,
    COL_NAME,
    COL_STARTED,
    COL_STATUS,
    COL_WORKSPACE,
    ExecutionFilter,
    ExecutionsModel,
    format_duration,
    format_time,
    summary_line,
)
from flowlink.gui.feed import ChangeBatch
from flowlink.gui.icons import status_icon, status_label
from flowlink.gui.widgets import monospace_font, pretty_json
from flowlink.workspace.records import STATUSES, Execution
from flowlink.workspace.workspace import Workspace

log = logging.getLogger(__name__)

MAX_TREE_NODES = 1000
MAX_LOG_LINES = 5000
COLUMN_WIDTHS = {COL_ID: 64, COL_FLOW: 120, COL_NAME: 130, COL_STATUS: 100, COL_WORKSPACE: 100,
                 COL_STARTED: 105, COL_ENDED: 105, COL_DURATION: 76}

Canceller = Callable[[int], None]


def log_lines_after(workspace: Workspace, execution_id: int, after_id: int,
                    limit: int = MAX_LOG_LINES) -> list[tuple[int, float, str, str]]:
    """Log lines with their row id, so the pane can follow a log incrementally.

    Workspace.logs() returns lines without their id; this reads the same rows with it.
    """
    if after_id == 0:
        rows = workspace.store.conn.execute(
            "SELECT id, ts, stream, text FROM execution_logs WHERE execution_id = ? "
            "ORDER BY id DESC LIMIT ?", (execution_id, limit)).fetchall()
        rows.reverse()
    else:
        rows = workspace.store.conn.execute(
            "SELECT id, ts, stream, text FROM execution_logs WHERE execution_id = ? AND id > ? "
            "ORDER BY id LIMIT ?", (execution_id, after_id, limit)).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


class DetailsPane(QWidget):
    """Fields, inputs/outputs, the log (following live) and the tree of children."""

    open_execution = Signal(object)  # id, from a double-click in the children tree

    def __init__(self, workspace: Workspace, canceller: Canceller, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.canceller = canceller
        self.execution: Execution | None = None
        self._last_log_id = 0
        self._tree_items: dict[int, QTreeWidgetItem] = {}
        self._tree_terminal = True

        self.title = QLabel("Select an execution to see its details.")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.cancel_button = QPushButton("Cancel execution")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.cancel_button)

        self.fields: dict[str, QLabel] = {}
        form_widget = QWidget()
        form = QFormLayout(form_widget)
        for key, label in (("status", "Status"), ("flow", "Flow"), ("name", "Name"),
                           ("workspace", "Workspace"), ("parent", "Parent"), ("started_by", "Started by"),
                           ("created", "Created"), ("started", "Started"), ("ended", "Ended"),
                           ("duration", "Duration"), ("message", "Message")):
            value = QLabel()
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setWordWrap(True)
            self.fields[key] = value
            form.addRow(label + ":", value)
        self.inputs_view = self._text_view()
        self.outputs_view = self._text_view()
        self.log_view = self._text_view()
        self.log_view.setMaximumBlockCount(50_000)
        self.children_tree = QTreeWidget()
        self.children_tree.setHeaderLabels(["ID", "Flow", "Status", "Workspace", "Message"])
        self.children_tree.setUniformRowHeights(True)
        self.children_tree.itemDoubleClicked.connect(
            lambda item, _column: self.open_execution.emit(item.data(0, Qt.ItemDataRole.UserRole)))

        self.tabs = QTabWidget()
        self.tabs.addTab(form_widget, "Details")
        self.tabs.addTab(self.inputs_view, "Inputs")
        self.tabs.addTab(self.outputs_view, "Outputs")
        self.tabs.addTab(self.log_view, "Log")
        self.tabs.addTab(self.children_tree, "Children")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.tabs, 1)
        layout.addStretch()
        self.tabs.hide()

    @staticmethod
    def _text_view() -> QPlainTextEdit:
        view = QPlainTextEdit()
        view.setReadOnly(True)
        view.setFont(monospace_font())
        return view

    @property
    def execution_id(self) -> int | None:
        return None if self.execution is None else self.execution.id

    def show_execution(self, execution_id: int | None) -> None:
        if execution_id is None:
            self.execution = None
            self.title.setText("Select an execution to see its details.")
            for label in self.fields.values():
                label.clear()
            for view in (self.inputs_view, self.outputs_view, self.log_view):
                view.clear()
            self.children_tree.clear()
            self._tree_items.clear()
            self.cancel_button.setEnabled(False)
            self.tabs.hide()
            return
        if execution_id == self.execution_id:
            self.refresh()
            return
        execution = self.workspace.find_execution(execution_id)
        self.execution = None
        self._last_log_id = 0
        self.log_view.clear()
        self.children_tree.clear()
        self._tree_items.clear()
        if execution is None:
            self.show_execution(None)
            return
        self._show(execution)
        self._follow_log()
        self._update_tree()

    def refresh(self, batch: ChangeBatch | None = None) -> None:
        """Re-read what may have changed: the execution, new log lines, the tree."""
        if self.execution is None:
            return
        if batch is not None:
            touched = bool(batch.ids & ({self.execution.id} | set(self._tree_items)))
            if self.execution.terminal and self._tree_terminal and not touched:
                # A finished tree no longer changes; only trailing log lines may still land.
                if batch.store:
                    self._follow_log()
                return
        execution = self.workspace.find_execution(self.execution.id)
        if execution is None:
            return
        if execution != self.execution:
            self._show(execution)
        self._follow_log()
        self._update_tree()

    def _show(self, ex: Execution) -> None:
        self.execution = ex
        self.tabs.show()
        self.title.setText(f"<b>Execution {ex.id}</b> — {_html(ex.name)}")
        f = self.fields
        f["status"].setText(status_label(ex.status) + (" (cancel requested)" if ex.cancel_requested and not ex.terminal else ""))
        f["flow"].setText(ex.flow)
        f["name"].setText(ex.name)
        f["workspace"].setText(ex.workspace or f"{self.workspace.name} (this workspace)")
        f["parent"].setText("" if ex.parent_id is None else str(ex.parent_id))
        f["started_by"].setText(ex.started_by or "")
        f["created"].setText(format_time(ex.created_at))
        f["started"].setText(format_time(ex.started_at))
        f["ended"].setText(format_time(ex.ended_at))
        f["duration"].setText(format_duration(ex.duration))
        f["message"].setText(ex.message or "")
        self._set_text(self.inputs_view, pretty_json(ex.inputs))
        self._set_text(self.outputs_view, pretty_json(ex.outputs))
        self.cancel_button.setEnabled(not ex.terminal)

    @staticmethod
    def _set_text(view: QPlainTextEdit, text: str) -> None:
        if view.toPlainText() != text:
            view.setPlainText(text)

    def _follow_log(self) -> None:
        assert self.execution is not None
        lines = log_lines_after(self.workspace, self.execution.id, self._last_log_id)
        if not lines:
            return
        bar = self.log_view.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        self._last_log_id = lines[-1][0]
        text = "\n".join(
            f"{datetime.fromtimestamp(ts).strftime('%H:%M:%S.%f')[:-3]} {'' if stream == 'log' else stream + ' '}{line}"
            for _id, ts, stream, line in lines
        )
        self.log_view.appendPlainText(text)
        if at_end:
            bar.setValue(bar.maximum())

    def _update_tree(self) -> None:
        """Add and update children in place, so expanded branches stay expanded."""
        assert self.execution is not None
        nodes: list[tuple[int | None, Execution]] = []
        frontier = [self.execution.id]
        while frontier and len(nodes) < MAX_TREE_NODES:
            parent = frontier.pop(0)
            for child in self.workspace.children(parent):
                nodes.append((None if parent == self.execution.id else parent, child))
                frontier.append(child.id)
        self._tree_terminal = all(child.terminal for _parent, child in nodes)
        for parent, child in nodes:
            item = self._tree_items.get(child.id)
            if item is None:
                item = QTreeWidgetItem()
                item.setData(0, Qt.ItemDataRole.UserRole, child.id)
                owner = self._tree_items.get(parent) if parent is not None else None
                if owner is None:
                    self.children_tree.addTopLevelItem(item)
                else:
                    owner.addChild(item)
                    owner.setExpanded(True)
                self._tree_items[child.id] = item
            item.setText(0, str(child.id))
            item.setText(1, child.flow)
            item.setText(2, status_label(child.status))
            item.setIcon(2, status_icon(child.status))
            item.setText(3, child.workspace or self.workspace.name)
            item.setText(4, summary_line(child.message or "")[:200])
        count = len(self._tree_items)
        self.tabs.setTabText(4, f"Children ({count})" if count else "Children")

    def cancel(self) -> None:
        if self.execution is None or self.execution.terminal:
            return
        try:
            self.canceller(self.execution.id)
        except FlowlinkError as exc:
            self.fields["message"].setText(str(exc))
            return
        self.cancel_button.setEnabled(False)
        self.fields["status"].setText(status_label(self.execution.status) + " (cancelling…)")


class ExecutionsPage(QWidget):
    def __init__(self, workspace: Workspace, canceller: Canceller, parent: QWidget | None = None,
                 *, threaded: bool = True) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.model = ExecutionsModel(workspace, self, threaded=threaded)
        self._pending_select: int | None = None

        self.status_combo = QComboBox()
        self.status_combo.addItem("All statuses", None)
        for status in STATUSES:
            self.status_combo.addItem(status_icon(status), status_label(status), status)
        self.flow_combo = QComboBox()
        self.flow_combo.setEditable(True)
        self.flow_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.flow_combo.lineEdit().setPlaceholderText("All flows")
        self.workspace_combo = QComboBox()
        self.workspace_combo.setEditable(True)
        self.workspace_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.workspace_combo.lineEdit().setPlaceholderText("All workspaces")
        self.text_edit = QLineEdit()
        self.text_edit.setPlaceholderText("Search name, flow, message")
        self.text_edit.setClearButtonEnabled(True)
        self.clear_button = QPushButton("Clear filters")
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(90)
        self.busy.setMaximumHeight(14)
        self.busy.setTextVisible(False)
        self.busy.hide()
        self.count_label = QLabel()

        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(250)
        self._filter_timer.timeout.connect(self.apply_filter)
        self.status_combo.currentIndexChanged.connect(self.apply_filter)
        self.flow_combo.currentTextChanged.connect(lambda _t: self._filter_timer.start())
        self.workspace_combo.currentTextChanged.connect(lambda _t: self._filter_timer.start())
        self.text_edit.textChanged.connect(lambda _t: self._filter_timer.start())
        self.clear_button.clicked.connect(self.clear_filters)

        filters = QHBoxLayout()
        filters.addWidget(self.status_combo)
        filters.addWidget(self.flow_combo, 1)
        filters.addWidget(self.workspace_combo, 1)
        filters.addWidget(self.text_edit, 2)
        filters.addWidget(self.clear_button)

        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(False)
        self.view.setShowGrid(False)
        self.view.setSortingEnabled(False)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.view.verticalHeader().setDefaultSectionSize(self.view.fontMetrics().height() + 8)
        header = self.view.horizontalHeader()
        header.setSectionsMovable(True)
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        for column, width in COLUMN_WIDTHS.items():
            header.resizeSection(column, width)
        self.view.selectionModel().currentRowChanged.connect(self._current_row_changed)

        self.details = DetailsPane(workspace, canceller)
        self.details.open_execution.connect(self.select_execution)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.view)
        self.splitter.addWidget(self.details)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)

        bottom = QHBoxLayout()
        bottom.addWidget(self.count_label, 1)
        bottom.addWidget(self.busy)

        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addWidget(self.splitter, 1)
        layout.addLayout(bottom)

        self.model.loading_changed.connect(self._loading)
        self.model.page_loaded.connect(self._rows_arrived)
        self.model.rows_inserted_at_top.connect(self._inserted_at_top)
        self.model.rowsAboutToBeInserted.connect(self._keep_viewport)
        self.model.load_failed.connect(lambda message: self.count_label.setText(f"Could not load executions: {message}"))
        self.model.modelReset.connect(self._update_count)
        self._scroll_anchor: tuple[int, int] | None = None
        self.model.rowsInserted.connect(self._restore_viewport)
        self.refresh_filter_choices()
        self.model.reload()

    def close_model(self) -> None:
        self.model.close()

    # -- filters ------------------------------------------------------------------------

    def refresh_filter_choices(self) -> None:
        flow_text = self.flow_combo.currentText()
        self.flow_combo.blockSignals(True)
        self.flow_combo.clear()
        self.flow_combo.addItems(self.workspace.list_flows())
        self.flow_combo.setCurrentText(flow_text)
        self.flow_combo.blockSignals(False)
        ws_text = self.workspace_combo.currentText()
        self.workspace_combo.blockSignals(True)
        self.workspace_combo.clear()
        names = [self.workspace.name]
        links = getattr(self.workspace, "links", None)
        if links is not None:
            try:
                names += [config.name for config in links.list()]
            except Exception:  # noqa: BLE001 - the filter works without the link names
                log.debug("could not list links for the workspace filter", exc_info=True)
        self.workspace_combo.addItems(names)
        self.workspace_combo.setCurrentText(ws_text)
        self.workspace_combo.blockSignals(False)

    def current_filter(self) -> ExecutionFilter:
        return ExecutionFilter(
            status=self.status_combo.currentData(),
            flow=self.flow_combo.currentText().strip() or None,
            workspace=self.workspace_combo.currentText().strip() or None,
            text=self.text_edit.text().strip() or None,
        )

    def apply_filter(self) -> None:
        self._filter_timer.stop()
        selected = self.selected_id()
        if selected is not None:
            self._pending_select = selected
        self.model.set_filter(self.current_filter())

    def clear_filters(self) -> None:
        for widget in (self.status_combo, self.flow_combo, self.workspace_combo, self.text_edit):
            widget.blockSignals(True)
        self.status_combo.setCurrentIndex(0)
        self.flow_combo.setCurrentText("")
        self.workspace_combo.setCurrentText("")
        self.text_edit.clear()
        for widget in (self.status_combo, self.flow_combo, self.workspace_combo, self.text_edit):
            widget.blockSignals(False)
        self.apply_filter()

    # -- selection ----------------------------------------------------------------------

    def selected_id(self) -> int | None:
        index = self.view.selectionModel().currentIndex()
        if not index.isValid() or not self.view.selectionModel().isRowSelected(index.row(), QModelIndex()):
            return None
        return self.model.execution_id(index.row())

    def select_execution(self, execution_id: int) -> None:
        """Show an execution's details, and select its row once the table has it."""
        self.details.show_execution(execution_id)
        row = self.model.row_of(execution_id)
        if row is not None:
            self._select_row(row)
            return
        self._pending_select = execution_id
        if execution_id > self.model.top_id:
            filt = self.model.filter
            if not filt.empty:
                self.clear_filters()
            else:
                self.model.request_top()

    def _select_row(self, row: int) -> None:
        self._pending_select = None
        index = self.model.index(row, 0)
        self.view.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.view.scrollTo(index)

    def _current_row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        execution_id = self.model.execution_id(current.row()) if current.isValid() else None
        if execution_id is not None and execution_id != self.details.execution_id:
            self.details.show_execution(execution_id)

    def _try_pending(self) -> None:
        if self._pending_select is None:
            return
        row = self.model.row_of(self._pending_select)
        if row is not None:
            self._select_row(row)

    # -- live updates -------------------------------------------------------------------

    def apply_changes(self, batch: ChangeBatch) -> None:
        self.model.apply_changes(batch.ids, batch.store)
        self.details.refresh(batch)

    def _keep_viewport(self, parent: QModelIndex, first: int, last: int) -> None:
        """Rows inserted above a scrolled view push it down: keep the same rows in sight."""
        bar = self.view.verticalScrollBar()
        if first == 0 and self.model.rowCount() and bar.value() > 0:
            self._scroll_anchor = (bar.value(), last - first + 1)
        else:
            self._scroll_anchor = None

    def _restore_viewport(self, parent: QModelIndex, first: int, last: int) -> None:
        if self._scroll_anchor is None:
            return
        value, count = self._scroll_anchor
        self._scroll_anchor = None
        bar = self.view.verticalScrollBar()
        step = self.view.verticalHeader().defaultSectionSize() if self.view.verticalScrollMode() == \
            QAbstractItemView.ScrollMode.ScrollPerPixel else 1
        QTimer.singleShot(0, lambda: bar.setValue(value + count * step))

    def _inserted_at_top(self, ids: list[int]) -> None:
        self._update_count()
        self._try_pending()

    def _rows_arrived(self, _count: int) -> None:
        self._update_count()
        self._try_pending()

    def _loading(self, loading: bool) -> None:
        self.busy.setVisible(loading)
        if loading:
            self.count_label.setText("Loading executions…")

    def _update_count(self) -> None:
        rows = self.model.rowCount()
        more = "" if self.model.exhausted else " (scroll down for older ones)"
        scope = "matching" if not self.model.filter.empty else "shown"
        self.count_label.setText(f"{rows:,} executions {scope}{more}")

    # -- layout state -------------------------------------------------------------------

    def save_state(self, settings: Any) -> None:
        settings.setValue("executions/header", self.view.horizontalHeader().saveState())
        settings.setValue("executions/splitter", self.splitter.saveState())

    def restore_state(self, settings: Any) -> None:
        header = settings.value("executions/header")
        if header is not None:
            self.view.horizontalHeader().restoreState(header)
        splitter = settings.value("executions/splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
