"""GUI tests: offscreen Qt unless a display is set (CI: Xvfb with a tray host).

QSettings go to a temporary folder so tests never read or write the user's layout.
"""

from __future__ import annotations

import os

if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from guihelpers import MILLION  # noqa: E402

import flowlink.gui  # noqa: E402, F401 - guards None/True refcounts (PySide6 6.12.0 on 3.11) before Qt is used


@pytest.fixture(scope="session", autouse=True)
def _isolated_qsettings(tmp_path_factory: pytest.TempPathFactory) -> None:
    from PySide6.QtCore import QSettings

    folder = str(tmp_path_factory.mktemp("qsettings"))
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, folder)
        QSettings.setPath(fmt, QSettings.Scope.SystemScope, folder)


@pytest.fixture
def desktop(workspace, engine, qtbot):
    """The whole window on the test workspace, with the test's engine (no tray)."""
    from flowlink.gui.desktop import DesktopApp

    app = DesktopApp(workspace, engine=engine, use_tray=False)
    window = app.start()
    # Not qtbot.addWidget: pytest-qt would close it before shutdown, and without a tray
    # closing asks "Quit Flowlink?" in a modal box.
    window.show()
    qtbot.waitExposed(window)
    yield app
    app.shutdown()
    window.deleteLater()


@pytest.fixture
def quiet_manager(monkeypatch):
    """The LinkManager re-reads its configs every second by itself; with this fixture only the
    test (and the SyncWorker's reload) make it report or restart syncers."""
    from flowlink.link import syncer

    monkeypatch.setattr(syncer, "CONFIG_POLL_SECONDS", 3600)


@pytest.fixture
def owner_desktop(qtbot):
    """A factory: the whole window running a workspace itself (Runtime: engine + link syncers)."""
    from flowlink.gui.desktop import DesktopApp

    apps = []

    def start(ws, *, use_tray: bool = False, show: bool = True):
        app = DesktopApp(ws, use_tray=use_tray, parallelism=2)
        with qtbot.waitSignal(app.links_started, timeout=20_000):
            window = app.start()
        assert app.is_owner and app.runtime is not None
        apps.append(app)
        if show:
            window.show()
            qtbot.waitExposed(window)
        return app

    yield start
    for app in apps:
        app.shutdown()
        if app.window is not None:
            app.window.deleteLater()


@pytest.fixture(scope="session")
def million_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with 1 000 000 executions, built once per test session (about 3 s)."""
    from flowlink.gui.demo import bulk_executions
    from flowlink.workspace.workspace import Workspace

    data_dir = tmp_path_factory.mktemp("million") / "ws"
    started = time.perf_counter()
    ws = Workspace.init(data_dir, "big", admin="alice")
    bulk_executions(ws, MILLION)
    ws.close()
    built = time.perf_counter() - started
    print(f"built the 1,000,000-row store in {built:.1f} s")
    return data_dir
