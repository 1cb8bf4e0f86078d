"""The executions table: a window over the store, newest first, loaded in pages.

Nothing here ever reads the whole table. Rows arrive in pages of ``page_size`` by
keyset paging on the id (``before_id``), which costs about a millisecond at any
depth of a million-row store. All store reads run on a loader thread; the model
applies their results on the GUI thread, so a slow query (a text filter that
matches nothing scans the table) never freezes the window.

Live updates never reset the model: changed rows that are loaded are re-read and
announced with ``dataChanged``; executions newer than the top row are inserted at
row 0 with ``beginInsertRows``, so selections and the current index survive.
Rows stay sorted by id, descending, at all times (pages append older ids, live
inserts prepend newer ones), which makes finding a row a binary search.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QModelRoleDataSpan,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
    Slot,
)

from flowlink.gui.icons import status_icon, status_label
from flowlink.workspace.records import TERMINAL, Execution
from flowlink.workspace.workspace import Workspace

log = logging.getLogger(__name__)

ID_ROLE = Qt.ItemDataRole.UserRole
STATUS_ROLE = Qt.ItemDataRole.UserRole + 1
# Plain ints, compared on every painted cell (enum lookups and | are Python calls each time).
_DISPLAY = int(Qt.ItemDataRole.DisplayRole.value)
_DECORATION = int(Qt.ItemDataRole.DecorationRole.value)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole.value)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole.value)
_RIGHT = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)
_ID = int(ID_ROLE.value)
_STATUS = int(STATUS_ROLE.value) if hasattr(STATUS_ROLE, "value") else int(STATUS_ROLE)

COLUMNS = ("ID", "Flow", "Name", "Status", "Workspace", "Started", "Ended", "Duration", "Message")
(COL_ID, COL_FLOW, COL_NAME, COL_STATUS, COL_WORKSPACE, COL_STARTED, COL_ENDED, COL_DURATION,
 COL_MESSAGE) = range(len(COLUMNS))

PAGE_SIZE = 200
TOP_FIRST = 20
TOP_PAGE = 500
# More new rows than this between two updates (a bulk import) reloads instead of inserting.
MAX_LIVE_INSERT = 10_000
MAX_REFRESH_ACTIVE = 5_000


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    """What the table shows of an execution (no inputs/outputs: they stay in the store)."""

    id: int
    flow: str
    name: str
    status: str
    workspace: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    message: str
    version: int
    parent_id: int | None

    @classmethod
    def from_execution(cls, ex: Execution) -> ExecutionRow:
        return cls(ex.id, ex.flow, ex.name, ex.status, ex.workspace, ex.created_at, ex.started_at,
                   ex.ended_at, (ex.message or "")[:4000], ex.version, ex.parent_id)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class ExecutionFilter:
    status: str | None = None
    flow: str | None = None
    workspace: str | None = None
    text: str | None = None

    def kwargs(self) -> dict[str, Any]:
        return {"status": self.status or None, "flow": self.flow or None,
                "workspace": self.workspace or None, "text": self.text or None}

    @property
    def empty(self) -> bool:
        return not any(self.kwargs().values())


# -- loader --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageRequest:
    generation: int
    filter: ExecutionFilter
    before_id: int | None
    limit: int


@dataclass(frozen=True)
class TopRequest:
    generation: int
    filter: ExecutionFilter
    after_id: int


@dataclass(frozen=True)
class RefreshRequest:
    generation: int
    ids: frozenset[int]
    # The rows as the model has them: the loader returns only those that differ, so the
    # GUI thread handles what changed rather than every row it asked about.
    known: dict[int, ExecutionRow] = field(default_factory=dict)


@dataclass
class LoadResult:
    request: Any
    rows: list[ExecutionRow]
    exhausted: bool = False  # a page: nothing older is left; a top: more than MAX_LIVE_INSERT
    error: str | None = None


def run_request(workspace: Workspace, request: Any) -> LoadResult:
    """Answer one request from the store (on whatever thread calls it)."""
    if isinstance(request, PageRequest):
        found = workspace.list_executions(**request.filter.kwargs(), limit=request.limit,
                                          before_id=request.before_id)
        rows = [ExecutionRow.from_execution(ex) for ex in found]
        return LoadResult(request, rows, exhausted=len(rows) < request.limit)
    if isinstance(request, TopRequest):
        # Usually nothing or a few rows are new: look at a few first, then widen.
        rows: list[ExecutionRow] = []
        before: int | None = None
        limit = TOP_FIRST
        while True:
            found = workspace.list_executions(**request.filter.kwargs(), limit=limit, before_id=before)
            newer = [ExecutionRow.from_execution(ex) for ex in found if ex.id > request.after_id]
            rows.extend(newer)
            if len(rows) > MAX_LIVE_INSERT:
                return LoadResult(request, [], exhausted=True)
            if len(newer) < len(found) or len(found) < limit:
                return LoadResult(request, rows)
            before = found[-1].id
            limit = TOP_PAGE
    if isinstance(request, RefreshRequest):
        # Versions first (cheap), whole rows only for what moved on.
        moved = [i for i, version, status in versions_by_id(workspace, request.ids)
                 if (known := request.known.get(i)) is None or (known.version, known.status) != (version, status)]
        fresh = rows_by_id(workspace, moved)
        return LoadResult(request, [r for r in fresh if request.known.get(r.id) != r])
    raise TypeError(f"unknown request {request!r}")


ROW_COLUMNS = "id, flow, name, status, workspace, created_at, started_at, ended_at, message, version, parent_id"


def rows_by_id(workspace: Workspace, ids: Iterable[int], chunk: int = 500) -> list[ExecutionRow]:
    """The table's columns of many executions in a few queries.

    Workspace has no batch read (find_execution is one query, and decodes inputs and
    outputs the table never shows), so this reads the same table, columns only.
    """
    wanted = sorted(set(ids), reverse=True)
    rows: list[ExecutionRow] = []
    conn = workspace.store.conn
    for start in range(0, len(wanted), chunk):
        part = wanted[start:start + chunk]
        marks = ",".join("?" * len(part))
        for r in conn.execute(
                f"SELECT {ROW_COLUMNS} FROM executions WHERE id IN ({marks}) ORDER BY id DESC",  # noqa: S608
                part):
            rows.append(ExecutionRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], (r[8] or "")[:4000],
                                     r[9], r[10]))
    return rows


def versions_by_id(workspace: Workspace, ids: Iterable[int], chunk: int = 900) -> list[tuple[int, int, str]]:
    wanted = sorted(set(ids))
    found: list[tuple[int, int, str]] = []
    conn = workspace.store.conn
    for start in range(0, len(wanted), chunk):
        part = wanted[start:start + chunk]
        marks = ",".join("?" * len(part))
        found.extend(conn.execute(
            f"SELECT id, version, status FROM executions WHERE id IN ({marks})", part).fetchall())  # noqa: S608
    return [(r[0], r[1], r[2]) for r in found]


class ExecutionLoader:
    """One thread that answers requests in order and hands each result to ``deliver``."""

    def __init__(self, workspace: Workspace, deliver: Callable[[LoadResult], None]) -> None:
        self.workspace = workspace
        self.deliver = deliver
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="flowlink-executions-loader", daemon=True)
        self._thread.start()

    def submit(self, request: Any) -> None:
        self._queue.put(request)

    def stop(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            request = self._queue.get()
            if request is None:
                return
            try:
                result = run_request(self.workspace, request)
            except Exception as exc:  # noqa: BLE001 - shown in the window, not fatal
                log.exception("loading executions failed")
                result = LoadResult(request, [], error=str(exc))
            try:
                self.deliver(result)
            except RuntimeError:  # the model is gone
                return


class _Delivery(QObject):
    arrived = Signal(object)


# -- model ---------------------------------------------------------------------------------


def format_time(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def format_short_time(ts: float | None, today: date | None = None) -> str:
    """The time alone today, the day and minute this year, the date before that."""
    if ts is None:
        return ""
    moment = datetime.fromtimestamp(ts)
    today = today or date.today()
    if moment.date() == today:
        return moment.strftime("%H:%M:%S")
    if moment.year == today.year:
        return moment.strftime("%b %d %H:%M")
    return moment.strftime("%Y-%m-%d %H:%M")


def summary_line(message: str) -> str:
    """One line for the table: the exception line of a traceback, else the first line."""
    text = message.strip()
    if text.startswith("Traceback (most recent call last)"):
        lines = [line for line in text.splitlines() if line.strip()]
        if lines:
            return lines[-1].strip()[:300]
    return text.split("\n", 1)[0][:300]


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ExecutionsModel(QAbstractTableModel):
    """Executions newest first; ``fetchMore`` pages backwards, live changes come in through
    ``apply_changes`` (ids from the engine, or "the store changed" from the watcher)."""

    loading_changed = Signal(bool)
    page_loaded = Signal(int)  # rows appended
    rows_inserted_at_top = Signal(object)  # list of ids
    rows_refreshed = Signal(object)  # list of ids whose row changed
    load_failed = Signal(str)

    def __init__(self, workspace: Workspace, parent: QObject | None = None, *,
                 page_size: int = PAGE_SIZE, threaded: bool = True) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.page_size = page_size
        self._rows: list[ExecutionRow] = []
        # id -> position; row = position - _first_position (prepending lowers _first_position),
        # so finding a row stays O(1) however rows arrive.
        self._positions: dict[int, int] = {}
        self._first_position = 0
        self._filter = ExecutionFilter()
        self._generation = 0
        self._exhausted = False
        self._first_page_applied = False
        self._page_in_flight = False
        self._top_in_flight = False
        self._top_dirty = False
        self._refresh_in_flight = False
        self._refresh_pending: set[int] = set()
        self._unseen_ids: set[int] = set()
        self._unseen_store = False
        self._closed = False
        self._loader: ExecutionLoader | None = None
        if threaded:
            self._delivery = _Delivery(self)
            self._delivery.arrived.connect(self._apply, Qt.ConnectionType.QueuedConnection)
            self._loader = ExecutionLoader(workspace, self._delivery.arrived.emit)

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop the loader thread (before the workspace is closed)."""
        self._closed = True
        if self._loader is not None:
            self._loader.stop()
            self._loader = None

    @property
    def loading(self) -> bool:
        return self._page_in_flight

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    @property
    def filter(self) -> ExecutionFilter:
        return self._filter

    def set_filter(self, new_filter: ExecutionFilter) -> None:
        if new_filter == self._filter:
            return
        self._filter = new_filter
        self.reload()

    def reload(self) -> None:
        """Start again from the newest row (the only place the model resets)."""
        self.beginResetModel()
        self._rows = []
        self._positions = {}
        self._first_position = 0
        self._generation += 1
        self._exhausted = False
        self._first_page_applied = False
        self._page_in_flight = False
        self._top_in_flight = False
        self._top_dirty = False
        self._refresh_in_flight = False
        self._refresh_pending.clear()
        self._unseen_ids.clear()
        self._unseen_store = False
        self.endResetModel()
        self._request_page()

    # -- Qt model API ------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def canFetchMore(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> bool:  # noqa: B008, N802
        return not parent.isValid() and not self._exhausted and not self._page_in_flight and not self._closed

    def fetchMore(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> None:  # noqa: B008, N802
        if self.canFetchMore(parent):
            self._request_page()

    # No flags() override: QAbstractTableModel's (enabled, selectable, never has children) is
    # what this table needs, and each Python override costs a GIL round trip per painted cell.

    def index(self, row: int, column: int,
              parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        # One Python call instead of Qt's hasIndex calling rowCount and columnCount for each cell.
        if parent.isValid() or not 0 <= row < len(self._rows) or not 0 <= column < len(COLUMNS):
            return QModelIndex()
        return self.createIndex(row, column)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(COLUMNS):
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section]
            if role == Qt.ItemDataRole.TextAlignmentRole and section in (COL_ID, COL_DURATION):
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        return self._value(self._rows[index.row()], index.column(), role)

    def multiData(self, index: QModelIndex | QPersistentModelIndex, span: QModelRoleDataSpan) -> None:  # noqa: N802
        """Every role a delegate asks for, in one Python call.

        Qt's default asks data() once per role (seven per painted cell): each call from C++
        into Python takes the GIL again, and while link syncers or the engine run Python on
        other threads each of those hand-overs can wait. One call per cell keeps painting
        the table quick during a sync storm."""
        valid = index.isValid() and 0 <= index.row() < len(self._rows)
        row = self._rows[index.row()] if valid else None
        column = index.column()
        for i in range(len(span)):
            role_data = span[i]
            value = None if row is None else self._value(row, column, role_data.role())
            if value is None:
                role_data.clearData()
            else:
                role_data.setData(value)

    def _value(self, row: ExecutionRow, column: int, role: int) -> Any:
        if role == _DISPLAY:
            return self._display(row, column)
        if role == _ID:
            return row.id
        if role == _STATUS:
            return row.status
        if role == _DECORATION and column == COL_STATUS:
            return status_icon(row.status)
        if role == _TOOLTIP:
            if column == COL_MESSAGE and row.message:
                return row.message[:2000]
            if column == COL_STATUS:
                return row.status
            if column == COL_STARTED:
                return format_time(row.started_at) or None
            if column == COL_ENDED:
                return format_time(row.ended_at) or None
        if role == _ALIGNMENT and column in (COL_ID, COL_DURATION):
            return _RIGHT
        return None

    def _display(self, row: ExecutionRow, column: int) -> str:
        if column == COL_ID:
            return str(row.id)
        if column == COL_FLOW:
            return row.flow
        if column == COL_NAME:
            return row.name
        if column == COL_STATUS:
            return status_label(row.status)
        if column == COL_WORKSPACE:
            return row.workspace or self.workspace.name
        if column == COL_STARTED:
            return format_short_time(row.started_at)
        if column == COL_ENDED:
            return format_short_time(row.ended_at)
        if column == COL_DURATION:
            if row.started_at is None or row.ended_at is None:
                return ""
            return format_duration(max(0.0, row.ended_at - row.started_at))
        if column == COL_MESSAGE:
            return summary_line(row.message)
        return ""

    # -- lookups -----------------------------------------------------------------------

    def row_of(self, execution_id: int) -> int | None:
        """Row of a loaded execution, or None."""
        position = self._positions.get(execution_id)
        return None if position is None else position - self._first_position

    def execution_id(self, row: int) -> int | None:
        return self._rows[row].id if 0 <= row < len(self._rows) else None

    def row_data(self, row: int) -> ExecutionRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    @property
    def top_id(self) -> int:
        return self._rows[0].id if self._rows else 0

    # -- live changes ------------------------------------------------------------------

    def apply_changes(self, ids: Iterable[int] = (), store_changed: bool = False) -> None:
        """Bring loaded rows up to date and insert executions newer than the top row."""
        if self._closed:
            return
        ids = set(ids)
        if self._page_in_flight:
            # Rows of the page in flight were read before these changes: re-read them later.
            self._unseen_ids |= ids
            self._unseen_store = self._unseen_store or store_changed
        refresh = {i for i in ids if self.row_of(i) is not None}
        if store_changed:
            active = [r.id for r in self._rows if not r.terminal]
            refresh.update(active[:MAX_REFRESH_ACTIVE])
        if refresh:
            self._request_refresh(refresh)
        if store_changed or any(i > self.top_id for i in ids):
            self.request_top()

    def request_top(self) -> None:
        """Look for executions newer than the top row (they are inserted at row 0)."""
        if self._closed:
            return
        if not self._first_page_applied or self._top_in_flight:
            self._top_dirty = True
            return
        self._top_in_flight = True
        self._top_dirty = False
        self._submit(TopRequest(self._generation, self._filter, self.top_id))

    # -- requests and results ------------------------------------------------------------

    def _request_page(self) -> None:
        if self._page_in_flight or self._exhausted or self._closed:
            return
        self._page_in_flight = True
        before = self._rows[-1].id if self._rows else None
        self.loading_changed.emit(True)
        self._submit(PageRequest(self._generation, self._filter, before, self.page_size))

    def _request_refresh(self, ids: set[int]) -> None:
        if self._refresh_in_flight:
            self._refresh_pending |= ids
            return
        self._refresh_in_flight = True
        known = {}
        for execution_id in ids:
            row = self.row_of(execution_id)
            if row is not None:
                known[execution_id] = self._rows[row]
        self._submit(RefreshRequest(self._generation, frozenset(ids), known))

    def _submit(self, request: Any) -> None:
        if self._loader is not None:
            self._loader.submit(request)
            return
        try:
            result = run_request(self.workspace, request)
        except Exception as exc:  # noqa: BLE001
            log.exception("loading executions failed")
            result = LoadResult(request, [], error=str(exc))
        self._apply(result)

    @Slot(object)
    def _apply(self, result: LoadResult) -> None:
        if self._closed or result.request.generation != self._generation:
            return
        request = result.request
        if isinstance(request, PageRequest):
            self._apply_page(result)
        elif isinstance(request, TopRequest):
            self._apply_top(result)
        elif isinstance(request, RefreshRequest):
            self._apply_refresh(result)

    def _apply_page(self, result: LoadResult) -> None:
        self._page_in_flight = False
        if result.error is not None:
            self.loading_changed.emit(False)
            self.load_failed.emit(result.error)
            return
        bottom = self._rows[-1].id if self._rows else None
        rows = [r for r in result.rows if bottom is None or r.id < bottom]
        if rows:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(rows) - 1)
            base = self._first_position + first
            self._positions.update((r.id, base + i) for i, r in enumerate(rows))
            self._rows.extend(rows)
            self.endInsertRows()
        self._exhausted = result.exhausted
        first_page = not self._first_page_applied
        self._first_page_applied = True
        self.loading_changed.emit(False)
        self.page_loaded.emit(len(rows))
        if self._unseen_ids or self._unseen_store:
            ids, store = set(self._unseen_ids), self._unseen_store
            self._unseen_ids.clear()
            self._unseen_store = False
            self.apply_changes(ids, store)
        if first_page and self._top_dirty:
            self.request_top()

    def _apply_top(self, result: LoadResult) -> None:
        self._top_in_flight = False
        if result.error is not None:
            self.load_failed.emit(result.error)
        elif result.exhausted:
            log.info("more than %d new executions at once: reloading the table", MAX_LIVE_INSERT)
            self.reload()
            return
        else:
            top = self.top_id
            rows = [r for r in result.rows if r.id > top]
            if rows:
                self.beginInsertRows(QModelIndex(), 0, len(rows) - 1)
                self._first_position -= len(rows)
                self._positions.update((r.id, self._first_position + i) for i, r in enumerate(rows))
                self._rows[0:0] = rows
                self.endInsertRows()
                self.rows_inserted_at_top.emit([r.id for r in rows])
        if self._top_dirty:
            self.request_top()

    def _apply_refresh(self, result: LoadResult) -> None:
        self._refresh_in_flight = False
        changed: list[int] = []
        first = last = None
        for fresh in result.rows:
            row = self.row_of(fresh.id)
            if row is None or self._rows[row] == fresh:
                continue
            self._rows[row] = fresh
            changed.append(fresh.id)
            first = row if first is None else min(first, row)
            last = row if last is None else max(last, row)
        if first is not None and last is not None:
            self.dataChanged.emit(self.index(first, 0), self.index(last, len(COLUMNS) - 1))
            self.rows_refreshed.emit(changed)
        if self._refresh_pending:
            pending = {i for i in self._refresh_pending if self.row_of(i) is not None}
            self._refresh_pending.clear()
            if pending:
                self._request_refresh(pending)
