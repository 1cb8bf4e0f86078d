"""The main window: pages, closing with and without a tray, remembered layout, ownership."""

from __future__ import annotations

import pytest
from guihelpers import GATED_FLOW, HELLO_FLOW, add_flow
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox, QSystemTrayIcon

from flowlink.engine.engine import Engine
from flowlink.gui.desktop import DesktopApp
from flowlink.gui.executions_model import COL_FLOW, COL_ID, COL_STATUS
from flowlink.gui.main_window import PAGES, MainWindow
from flowlink.workspace.ownership import OwnerLock, current_owner
from flowlink.workspace.records import ENDED_CANCELLED, ENDED_SUCCESS, PENDING


def test_window_title_and_pages(desktop, workspace):
    window = desktop.window
    assert window.windowTitle() == f"Flowlink — {workspace.name}"
    assert [window.nav.item(i).text() for i in range(window.nav.count())] == list(PAGES)
    for name in PAGES:
        window.show_page(name)
        assert window.current_page() == name and window.stack.currentWidget() is window.pages[name]
    assert not window.banner.isVisible()
    assert window.this_workspace.form.value("name") == workspace.name
    assert window.this_workspace.form.value("data_dir") == str(workspace.data_dir)
    assert window.this_workspace.form.value("public_key") == f"RSA, key id {workspace.key_id}"
    assert window.this_workspace.form.value("engine").startswith("Flows run in this window")


def test_closing_without_a_tray_asks_and_quits(desktop, qtbot, monkeypatch):
    window = desktop.window
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: False))
    questions: list[str] = []
    answer = QMessageBox.StandardButton.No

    def ask(parent, title, text, *args, **kwargs):
        questions.append(title)
        return answer

    # "Quit Flowlink?" is a modal QMessageBox: the test answers it by patching question().
    monkeypatch.setattr(QMessageBox, "question", ask)
    quits: list[bool] = []
    desktop.quit_requested.connect(lambda: quits.append(True))
    window.close()
    assert questions == ["Quit Flowlink?"] and window.isVisible() and quits == []
    answer = QMessageBox.StandardButton.Yes
    window.close()
    assert questions == ["Quit Flowlink?"] * 2
    assert quits == [True] and not window.isVisible()


@pytest.mark.xdist_group("tray")  # tray icons of one display share the tray: one at a time
def test_closing_with_a_tray_hides_to_it(workspace, engine, qtbot, monkeypatch):
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: True))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: pytest.fail("must not ask"))
    app = DesktopApp(workspace, engine=engine)
    window = app.start()
    try:
        assert app.tray is not None and app.tray.isVisible()
        told: list[str] = []
        # A real balloon (under Xvfb + trayer) would linger over the tray for other tests.
        monkeypatch.setattr(app.tray, "supportsMessages", lambda: True)
        monkeypatch.setattr(app.tray, "showMessage", lambda title, *a: told.append(title))
        window.show()
        quits: list[bool] = []
        app.quit_requested.connect(lambda: quits.append(True))
        window.close()
        assert not window.isVisible() and quits == []
        assert told == ["Flowlink keeps running"]
        app.tray.show_action.trigger()
        assert window.isVisible()
        app.tray.quit_action.trigger()  # nothing runs, so no question either
        assert quits == [True]
    finally:
        app.shutdown()
        window.deleteLater()


def test_geometry_and_columns_are_remembered(workspace, engine, qtbot):
    first = MainWindow(workspace, lambda f, i: 0, lambda i: None, threaded=False)
    first.resize(780, 520)  # fits the 800x600 offscreen screen
    header = first.executions.view.horizontalHeader()
    header.moveSection(header.visualIndex(COL_FLOW), 0)
    header.resizeSection(COL_STATUS, 222)
    first.show_page("Settings")
    first.save_state()
    first.close_models()
    first.deleteLater()
    assert QSettings().value("executions/header") is not None
    assert b"secret" not in bytes(QSettings().value("executions/header"))

    second = MainWindow(workspace, lambda f, i: 0, lambda i: None, threaded=False)
    second.restore_state()
    try:
        header = second.executions.view.horizontalHeader()
        assert header.visualIndex(COL_FLOW) == 0
        assert header.sectionSize(COL_STATUS) == 222
        assert second.current_page() == "Settings"
        assert (second.width(), second.height()) == (780, 520)
    finally:
        second.close_models()
        second.deleteLater()


def test_viewer_mode_hands_runs_to_the_owner_and_follows_it(workspace, qtbot):
    """Another process (here: a lock held as 'serve' and an engine of the test) owns the workspace."""
    add_flow(workspace, "gated", GATED_FLOW)
    lock = OwnerLock.try_acquire(workspace.data_dir, "serve")
    assert lock is not None
    owner_engine = Engine(workspace, parallelism=2)
    app = DesktopApp(workspace, use_tray=False)
    window = app.start()
    try:
        assert not app.is_owner
        assert window.banner.isVisibleTo(window)
        assert window.banner.text() == (
            f"This workspace is run by serve (pid {current_owner(workspace.data_dir)['pid']}); "
            "runs you start here are handed to it.")
        execution_id = app.run_flow("gated", {})
        assert workspace.get_execution(execution_id).status == PENDING
        page = window.executions
        qtbot.waitUntil(lambda: page.model.row_of(execution_id) is not None, timeout=10_000)
        owner_engine.start()  # the owner picks the run up; this window only watches the store
        row = page.model.row_of(execution_id)
        qtbot.waitUntil(lambda: page.model.data(page.model.index(row, COL_STATUS)) == "Running", timeout=15_000)
        app.cancel(execution_id)  # a viewer asks the owner to cancel
        qtbot.waitUntil(lambda: page.model.data(page.model.index(row, COL_STATUS)) == "Cancelled", timeout=15_000)
        assert workspace.get_execution(execution_id).status == ENDED_CANCELLED
    finally:
        owner_engine.stop()
        lock.release()
    try:
        # The owner went away: the window takes over and runs flows itself.
        app._takeover.setInterval(50)
        with qtbot.waitSignal(app.ownership_changed, timeout=10_000):
            pass
        assert app.is_owner and not window.banner.isVisibleTo(window)
        assert current_owner(workspace.data_dir)["kind"] == "desktop"
        add_flow(workspace, "hello", HELLO_FLOW)
        execution_id = app.run_flow("hello", {})
        qtbot.waitUntil(lambda: workspace.get_execution(execution_id).status == ENDED_SUCCESS, timeout=20_000)
        page = window.executions
        qtbot.waitUntil(lambda: page.model.row_of(execution_id) == 0
                        and page.model.data(page.model.index(0, COL_STATUS)) == "Success", timeout=10_000)
        assert page.model.data(page.model.index(0, COL_ID)) == str(execution_id)
    finally:
        app.shutdown()
        window.deleteLater()
    assert current_owner(workspace.data_dir) is None, "quitting released the owner lock"
