"""SyncWorker: the LinkManager on its own thread, its reports reaching the tray, the Links page
and notifications on the GUI thread; pause, resume, Sync now and reload done off the GUI thread."""

from __future__ import annotations

import shutil
import threading
import time

import pytest
from guihelpers import require_real
from PySide6.QtCore import QThread
from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from flowlink.gui.icons import ERROR, PAUSED_STATE, STATE_COLORS, SYNCED, SYNCING
from flowlink.gui.links_page import COL_QUEUED_OUT, COL_RECEIVED, COL_STATE
from flowlink.link.syncer import LinkManager, LinkStatus
from flowlink.workspace import identity
from flowlink.workspace.links import SyncConfigChange

REFUSED = "Cannot connect to https://127.0.0.1:9: connection refused. Is the other workspace running?"
# (state of laptop-b, sentence, queued out) and what the tray shows with 'intranet' answering beside it
STEPS = (
    ("synced", "", 0, SYNCED),
    ("syncing", "", 3, SYNCING),
    ("error", REFUSED, 3, ERROR),
    ("synced", "", 0, SYNCED),
)


def report(app, statuses: dict[str, LinkStatus]) -> None:
    """As the LinkManager reports: its listeners, called on one of its threads."""
    manager = app.runtime.links
    thread = threading.Thread(target=lambda: [listener(statuses) for listener in list(manager.listeners)])
    thread.start()
    thread.join()


def step_statuses(state: str, sentence: str, queued: int) -> dict[str, LinkStatus]:
    return {
        "intranet": LinkStatus("intranet", "answers only", "No Remote URL: this side only answers.",
                               last_inbound=time.time() - 60, received=12),
        "laptop-b": LinkStatus("laptop-b", state, sentence, last_success=time.time() - 5,
                               queued_out=queued, received=7, last_error=sentence or None),
    }


def follow_the_steps(app, qtbot, on_screen=None) -> list[tuple[str, str]]:
    tray = app.tray
    notes: list[tuple[str, str]] = []
    app.notifier.notified.connect(lambda title, text: notes.append((title, text)))
    threads: list[bool] = []
    gui = QApplication.instance().thread()
    app.statuses_changed.connect(lambda _s: threads.append(QThread.currentThread() is gui))
    page = app.window.links
    for state, sentence, queued, shown in STEPS:
        report(app, step_statuses(state, sentence, queued))
        qtbot.waitUntil(lambda s=shown: tray.state == s, timeout=10_000)
        words = state + (f": {sentence}" if sentence else "")
        assert f"laptop-b: {words}" in tray.toolTip().splitlines()
        assert "intranet: synced: No Remote URL: this side only answers." in tray.toolTip().splitlines()
        row = page.model.row_named("laptop-b")
        assert page.model.index(row, COL_STATE).data() == words
        assert page.model.index(row, COL_QUEUED_OUT).data() == str(queued)
        assert page.model.index(row, COL_RECEIVED).data() == "7"
        if on_screen is not None:
            on_screen(shown)
    assert threads and all(threads), "statuses must be delivered on the GUI thread"
    return notes


@pytest.mark.xdist_group("tray")
def test_tray_follows_a_link_synced_syncing_error_synced(workspace, owner_desktop, qtbot, monkeypatch,
                                                          quiet_manager):
    """Offscreen there is no tray: the icon object is made anyway to follow its state."""
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: True))
    app = owner_desktop(workspace, use_tray=True)
    monkeypatch.setattr(app.tray, "showMessage", lambda *a: None)
    notes = follow_the_steps(app, qtbot)
    assert notes == [("Link to laptop-b failed", REFUSED)]  # once, when it fell into error
    app.notifier.set_enabled(False)
    report(app, step_statuses("error", "refused again", 0))
    qtbot.waitUntil(lambda: app.tray.state == ERROR, timeout=10_000)
    assert len(notes) == 1, "switched off: no notification"


@pytest.mark.xdist_group("tray")  # tray icons of one display share the tray: one at a time
def test_real_tray_follows_a_link_through_the_sync_worker(workspace, owner_desktop, qtbot, monkeypatch,
                                                          quiet_manager):
    """Under Xvfb with a tray host (trayer): the icon in the tray changes with the link."""
    require_real(QSystemTrayIcon.isSystemTrayAvailable() and shutil.which("trayer") is not None,
                 "a system tray (Xvfb + trayer)")
    app = owner_desktop(workspace, use_tray=True, show=False)
    tray = app.tray
    monkeypatch.setattr(tray, "showMessage", lambda *a: None)  # a balloon over the icon changes its pixels
    qtbot.waitUntil(lambda: not tray.geometry().isEmpty(), timeout=10_000)
    screen = QGuiApplication.primaryScreen()

    def badges_in_tray() -> set[str]:
        area = tray.geometry()
        image = screen.grabWindow(0, area.x(), area.y(), area.width(), area.height()).toImage()
        colours = {image.pixel(x, y) for x in range(image.width()) for y in range(image.height())}
        found = set()
        for state in (SYNCED, SYNCING, ERROR, PAUSED_STATE):
            badge = QColor(STATE_COLORS[state])
            for rgb in colours:
                c = QColor(rgb)
                if abs(c.red() - badge.red()) + abs(c.green() - badge.green()) + abs(c.blue() - badge.blue()) < 40:
                    found.add(state)
                    break
        return found

    def on_screen(state: str) -> None:
        qtbot.waitUntil(lambda: badges_in_tray() == {state}, timeout=10_000)

    follow_the_steps(app, qtbot, on_screen)


@pytest.mark.xdist_group("tray")
def test_tray_menu_pauses_resumes_and_syncs_on_the_worker_thread(workspace, owner_desktop, qtbot,
                                                                 monkeypatch, quiet_manager):
    gui_ident = threading.get_ident()
    calls: list[tuple[str, bool]] = []
    for method in ("start", "reload", "set_paused", "sync_now", "stop"):
        original = getattr(LinkManager, method)

        def wrapper(self, *args, _original=original, _name=method, **kwargs):
            calls.append((_name, threading.get_ident() == gui_ident))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(LinkManager, method, wrapper)
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: True))
    app = owner_desktop(workspace, use_tray=True)
    tray = app.tray
    monkeypatch.setattr(tray, "showMessage", lambda *a: None)

    # A link saved by someone else (another process, the CLI): reload makes the syncers match.
    key = identity.generate_private_key(2048)
    workspace.links.add("laptop-b", SyncConfigChange(remote_public_key=identity.public_key_to_pem(key.public_key())))
    assert "laptop-b" not in app.link_statuses
    app.sync.reload()
    qtbot.waitUntil(lambda: "laptop-b" in app.link_statuses, timeout=10_000)
    assert app.link_statuses["laptop-b"].state == "answers only" and tray.state == SYNCED

    tray.pause_action.trigger()
    qtbot.waitUntil(lambda: app.link_statuses["laptop-b"].state == "paused", timeout=10_000)
    assert tray.state == PAUSED_STATE and tray.pause_action.text() == "Resume sync"
    page = app.window.links
    qtbot.waitUntil(lambda: page.model.index(0, COL_STATE).data() == "paused: Sync is paused.", timeout=10_000)
    tray.pause_action.trigger()
    qtbot.waitUntil(lambda: app.link_statuses["laptop-b"].state == "answers only", timeout=10_000)
    assert tray.state == SYNCED and tray.pause_action.text() == "Pause sync"
    tray.sync_action.trigger()
    qtbot.waitUntil(lambda: ("sync_now", False) in calls, timeout=10_000)
    calls.remove(("sync_now", False))
    page.select("laptop-b")
    with qtbot.waitSignal(page.sync_now_requested, check_params_cb=lambda name: name == "laptop-b"):
        page.sync_button.click()
    qtbot.waitUntil(lambda: ("sync_now", False) in calls, timeout=10_000)

    app.shutdown()
    names = [name for name, _ in calls]
    assert names[0] == "start" and {"reload", "set_paused", "sync_now"} <= set(names) and names[-1] == "stop"
    on_gui = [name for name, gui in calls if gui]
    assert on_gui == [], f"LinkManager.{on_gui} ran on the GUI thread"
    assert not app.sync.thread.isRunning()


def test_a_viewer_shows_the_link_states_the_owner_records(workspace, qtbot):
    """Another process runs the links (here: a LinkManager of the test holding the lock as serve);
    the window reads what it records, off the GUI thread, when the store changes."""
    from flowlink.gui.desktop import DesktopApp
    from flowlink.workspace.ownership import OwnerLock

    key = identity.generate_private_key(2048)
    workspace.links.add("nas", SyncConfigChange(
        remote_url=f"https://127.0.0.1:9/api/latest/sync_config/{workspace.name}/sync",
        remote_public_key=identity.public_key_to_pem(key.public_key())))
    lock = OwnerLock.try_acquire(workspace.data_dir, "serve")
    app = DesktopApp(workspace, use_tray=False)
    window = app.start()
    owner = LinkManager(workspace)
    try:
        assert not app.is_owner and app.runtime is None
        page = window.links
        assert not page.sync_button.isEnabled() and page.sync_button.toolTip().startswith("Links are synced by serve")
        assert window.this_workspace.listen.state.text().startswith("Links and listening are run by serve")
        owner.start()
        qtbot.waitUntil(lambda: (page.model.index(0, COL_STATE).data() or "").startswith(
            "error: Cannot connect to https://127.0.0.1:9"), timeout=20_000)
    finally:
        owner.stop()
        app.shutdown()
        window.deleteLater()
        lock.release()
