"""ExecutionsModel: Qt's model contract, live updates without resets, paging at scale."""

from __future__ import annotations

import time

import pytest
from guihelpers import GATED_FLOW, HELLO_FLOW, MILLION, add_flow
from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt
from PySide6.QtWidgets import QTableView

from flowlink.gui.executions_model import (
    COL_ID,
    COL_MESSAGE,
    COL_STATUS,
    COL_WORKSPACE,
    ID_ROLE,
    ExecutionFilter,
    ExecutionsModel,
)
from flowlink.gui.feed import ChangeFeed
from flowlink.workspace.records import ENDED_ERROR, ENDED_SUCCESS, RUNNING
from flowlink.workspace.workspace import Workspace


class Spy:
    """Counts a model's resets and remembers its inserts and data changes."""

    def __init__(self, model: ExecutionsModel) -> None:
        self.resets = 0
        self.inserted: list[tuple[int, int]] = []
        self.changed: list[tuple[int, int]] = []
        model.modelReset.connect(self._reset)
        model.rowsInserted.connect(lambda _p, first, last: self.inserted.append((first, last)))
        model.dataChanged.connect(lambda a, b, _roles=(): self.changed.append((a.row(), b.row())))

    def _reset(self) -> None:
        self.resets += 1


@pytest.fixture
def live_model(workspace, engine, qtbot):
    """A threaded model fed by the engine's listener, as in the app."""
    model = ExecutionsModel(workspace)
    feed = ChangeFeed()
    engine.listeners.append(feed.engine_listener)
    feed.changed.connect(lambda batch: model.apply_changes(batch.ids, batch.store))
    yield model
    engine.listeners.remove(feed.engine_listener)
    model.close()


def ids_of(model: ExecutionsModel) -> list[int]:
    return [model.data(model.index(r, COL_ID), ID_ROLE) for r in range(model.rowCount())]


def test_model_tester_python_checks_every_change(workspace, qtmodeltester):
    for i in range(450):
        workspace.create_execution("x", {"i": i}, workspace="remote-a")
    model = ExecutionsModel(workspace, threaded=False, page_size=200)
    model.reload()
    assert model.rowCount() == 200
    model.fetchMore(QModelIndex())
    assert model.rowCount() == 400
    qtmodeltester.check(model, force_py=True)  # asserts on every signal from now on (and fetches)
    assert model.rowCount() == 450 and not model.canFetchMore(QModelIndex())
    newest = workspace.create_execution("x", {}, workspace="remote-a")
    model.apply_changes([newest])
    assert ids_of(model)[0] == newest
    model.apply_changes([], store_changed=True)
    model.set_filter(ExecutionFilter(text="nothing matches this"))
    assert model.rowCount() == 0 and not model.canFetchMore(QModelIndex())
    model.close()


@pytest.mark.qt_log_level_fail("WARNING")
def test_model_tester_qt_checks_threaded_model(workspace, engine, qtbot, qtmodeltester):
    add_flow(workspace, "hello", HELLO_FLOW)
    model = ExecutionsModel(workspace, page_size=5)
    qtmodeltester.check(model)  # Qt's C++ tester: failures are warnings, which fail this test
    model.reload()
    for _ in range(7):
        engine.submit("hello", {})
    qtbot.waitUntil(lambda: engine.wait_ended(list(range(1, 8)), 0))
    model.apply_changes(range(1, 8), store_changed=True)
    qtbot.waitUntil(lambda: model.rowCount() == 7 and model.data(model.index(0, COL_STATUS)) == "Success")
    model.close()


def test_live_update_refreshes_row_in_place(workspace, engine, live_model, qtbot):
    add_flow(workspace, "gated", GATED_FLOW)
    model = live_model
    model.reload()
    execution_id = engine.submit("gated", {})
    qtbot.waitUntil(lambda: model.row_of(execution_id) is not None
                    and model.data(model.index(model.row_of(execution_id), COL_STATUS)) == "Running")
    row = model.row_of(execution_id)
    spy = Spy(model)
    with qtbot.waitSignal(model.rows_refreshed, timeout=10_000,
                          check_params_cb=lambda ids: execution_id in ids):
        workspace.set_setting("go", True)
    qtbot.waitUntil(lambda: model.data(model.index(row, COL_STATUS)) == "Success")
    assert model.row_of(execution_id) == row
    assert model.data(model.index(row, COL_MESSAGE)) == "went"
    assert spy.resets == 0
    assert any(first <= row <= last for first, last in spy.changed)
    assert workspace.get_execution(execution_id).status == ENDED_SUCCESS


def test_new_execution_inserted_at_top_keeps_selection(workspace, engine, live_model, qtbot):
    add_flow(workspace, "hello", HELLO_FLOW)
    first = [engine.submit("hello", {"name": str(i)}) for i in range(3)]
    assert engine.wait_ended(first, 30)
    model = live_model
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    model.reload()
    qtbot.waitUntil(lambda: model.rowCount() == 3)
    selected = first[1]
    view.selectionModel().setCurrentIndex(
        model.index(model.row_of(selected), 0),
        QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
    spy = Spy(model)

    with qtbot.waitSignal(model.rows_inserted_at_top, timeout=10_000):
        newest = engine.submit("hello", {"name": "new"})
    qtbot.waitUntil(lambda: ids_of(model)[0] == newest)
    assert spy.resets == 0
    assert spy.inserted and spy.inserted[0][0] == 0
    assert ids_of(model) == [newest, *sorted(first, reverse=True)]
    rows = view.selectionModel().selectedRows()
    assert [model.data(r, ID_ROLE) for r in rows] == [selected]
    assert model.data(view.selectionModel().currentIndex(), ID_ROLE) == selected


def test_changes_seen_while_a_page_is_loading_are_not_lost(workspace, qtbot):
    ids = [workspace.create_execution("x", {}, workspace="far") for _ in range(3)]
    model = ExecutionsModel(workspace)
    model.reload()  # the page query is in flight on the loader thread
    model.apply_changes([ids[0]], store_changed=True)
    later = workspace.create_execution("x", {}, workspace="far")
    model.apply_changes([later])
    qtbot.waitUntil(lambda: ids_of(model) == [later, *reversed(ids)])
    model.close()


def test_columns_show_workspace_status_and_first_message_line(workspace, engine, qtbot):
    add_flow(workspace, "boom", """
        def handler(system, this):
            raise ValueError("first line")
    """)
    execution_id = engine.submit("boom", {})
    remote = workspace.create_execution("elsewhere", {}, workspace="laptop-b")
    assert engine.wait_ended([execution_id], 30)
    model = ExecutionsModel(workspace, threaded=False)
    model.reload()
    local_row, remote_row = model.row_of(execution_id), model.row_of(remote)
    assert model.data(model.index(local_row, COL_WORKSPACE)) == workspace.name
    assert model.data(model.index(remote_row, COL_WORKSPACE)) == "laptop-b"
    assert model.data(model.index(local_row, COL_STATUS)) == "Error"
    assert not model.data(model.index(local_row, COL_STATUS), Qt.ItemDataRole.DecorationRole).isNull()
    message = model.data(model.index(local_row, COL_MESSAGE))
    assert "\n" not in message and message
    assert workspace.get_execution(execution_id).status == ENDED_ERROR
    assert "\n" in workspace.get_execution(execution_id).message
    model.close()


# -- a million executions ------------------------------------------------------------------


@pytest.mark.xdist_group("million")
def test_million_rows_open_with_one_page(million_store, qtbot):
    ws = Workspace.open(million_store, "alice")
    model = ExecutionsModel(ws)
    view = QTableView()
    qtbot.addWidget(view)
    view.resize(900, 500)
    view.setModel(model)
    view.show()
    started = time.perf_counter()
    model.reload()
    qtbot.waitUntil(lambda: model.rowCount() > 0, timeout=5000)
    first_page = time.perf_counter() - started
    try:
        assert model.rowCount() == model.page_size == 200
        assert first_page < 1.0, f"the first page took {first_page:.2f} s"
        assert ids_of(model)[0] == MILLION
        assert model.canFetchMore(QModelIndex())
        # Scrolling to the end asks for one more page, not for the rest of the table.
        for pages in (2, 3, 4):
            view.scrollToBottom()
            qtbot.waitUntil(lambda n=pages: model.rowCount() == n * 200, timeout=5000)
        assert model.rowCount() == 800 < MILLION
        assert ids_of(model)[-1] == MILLION - 799
    finally:
        model.close()
        ws.close()


@pytest.mark.xdist_group("million")
def test_million_rows_slow_filter_runs_off_the_gui_thread(million_store, qtbot):
    ws = Workspace.open(million_store, "alice")
    model = ExecutionsModel(ws)
    try:
        model.reload()
        qtbot.waitUntil(lambda: model.rowCount() == 200, timeout=5000)
        started = time.perf_counter()
        with qtbot.waitSignal(model.page_loaded, timeout=10_000):
            model.set_filter(ExecutionFilter(text="matches no row at all"))
            returned = time.perf_counter() - started
        # The filter scans the whole table (hundreds of ms); the GUI thread only queued it.
        assert returned < 0.05, f"set_filter blocked the GUI thread for {returned * 1000:.0f} ms"
        assert model.rowCount() == 0 and model.exhausted
        model.set_filter(ExecutionFilter(status=RUNNING))
        qtbot.waitUntil(lambda: model.exhausted, timeout=5000)
        assert model.rowCount() == 0
        with qtbot.waitSignal(model.page_loaded, timeout=5000):
            model.set_filter(ExecutionFilter(status=ENDED_ERROR, workspace="remote-b"))
        assert model.rowCount() == 200
        assert all(model.row_data(r).status == ENDED_ERROR and model.row_data(r).workspace == "remote-b"
                   for r in range(model.rowCount()))
    finally:
        model.close()
        ws.close()


def test_painting_asks_python_once_per_cell_and_shows_what_data_says(workspace, qtbot, monkeypatch):
    """The delegate gets every role through multiData (one GIL round trip per cell, not seven)."""
    from PySide6.QtWidgets import QStyleOptionViewItem

    calls = {"data": 0, "multiData": 0}
    for name in calls:  # patched before the model exists: PySide looks its overrides up once
        original = getattr(ExecutionsModel, name)

        def counting(self, *args, _original=original, _name=name):
            calls[_name] += 1
            return _original(self, *args)

        monkeypatch.setattr(ExecutionsModel, name, counting)
    workspace.create_execution("x", {}, workspace="remote-a")
    model = ExecutionsModel(workspace, threaded=False)
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.resize(900, 300)
    view.show()
    qtbot.waitExposed(view)
    qtbot.waitUntil(lambda: model.rowCount() == 1)
    calls.update(data=0, multiData=0)
    view.viewport().repaint()
    cells = model.rowCount() * model.columnCount()
    assert cells == 9 and calls["multiData"] >= cells and calls["data"] == 0, calls
    for column in range(model.columnCount()):
        index = model.index(0, column)
        option = QStyleOptionViewItem()
        view.itemDelegate().initStyleOption(option, index)
        assert option.text == (model.data(index) or "")
        assert option.text or column not in (COL_ID, COL_STATUS, COL_WORKSPACE)
        assert option.icon.isNull() == (model.data(index, Qt.ItemDataRole.DecorationRole) is None)
    option = QStyleOptionViewItem()
    view.itemDelegate().initStyleOption(option, model.index(0, COL_ID))
    assert option.displayAlignment & Qt.AlignmentFlag.AlignRight
    assert model.index(5, 0) == QModelIndex() and not model.index(0, 99).isValid()
    model.close()
