"""This workspace: listening for linked workspaces (on/off, remembered in the workspace store),
Start at login / minimized (flowlink.autostart), the notifications switch."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from guihelpers import tick
from PySide6.QtCore import QSettings

from flowlink import autostart
from flowlink.gui.notifications import SETTING, Notifier
from flowlink.gui.workspace_page import WorkspacePage
from flowlink.workspace.workspace import Workspace


def health(url: str) -> int:
    return httpx.get(f"{url}/api/latest/health", verify=False, timeout=5).status_code  # noqa: S501 - self-signed, 127.0.0.1


def test_listening_on_and_off_is_remembered_in_the_workspace_store(workspace, owner_desktop, qtbot):
    app = owner_desktop(workspace)
    page = app.window.this_workspace
    app.window.show_page("This workspace")
    box = page.listen
    qtbot.waitUntil(lambda: box.enabled.isEnabled(), timeout=10_000)
    assert not box.enabled.isChecked() and box.state.text() == "Off."
    assert workspace.store.get_meta("listen") is None, "off by default, and nothing stored until asked"

    box.port.setValue(0)  # any free port
    tick(qtbot, box.enabled)
    qtbot.waitUntil(lambda: page.listening_url is not None, timeout=20_000)
    url = page.listening_url
    assert url.startswith("https://127.0.0.1:") and box.enabled.isChecked()
    assert f"{url}/api/latest/sync_config/{workspace.name}/sync" in box.state.text()
    assert not box.port.isEnabled() and not box.host.isEnabled()
    assert health(url) == 200
    assert json.loads(workspace.store.get_meta("listen")) == {"enabled": True, "host": "127.0.0.1", "port": 0}
    assert json.loads((workspace.data_dir / "endpoint.json").read_text()) == {"url": url}

    tick(qtbot, box.enabled)
    qtbot.waitUntil(lambda: page.listening_url is None and box.state.text() == "Off.", timeout=20_000)
    with pytest.raises(httpx.ConnectError):
        health(url)
    assert json.loads(workspace.store.get_meta("listen"))["enabled"] is False
    assert not (workspace.data_dir / "endpoint.json").exists()

    # A port someone else holds: said beside the switch, and the switch goes back off.
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        box.port.setValue(taken.getsockname()[1])
        tick(qtbot, box.enabled)
        qtbot.waitUntil(lambda: box.error.isVisible(), timeout=20_000)
        assert box.error.text().startswith(f"Cannot listen on 127.0.0.1:{taken.getsockname()[1]}:")
        assert not box.enabled.isChecked() and box.enabled.isEnabled() and page.listening_url is None
    finally:
        taken.close()

    # On again, quit: the endpoint stops with the app; the next start listens by itself.
    box.port.setValue(0)
    tick(qtbot, box.enabled)
    qtbot.waitUntil(lambda: page.listening_url is not None, timeout=20_000)
    url = page.listening_url
    app.shutdown()
    with pytest.raises(httpx.ConnectError):
        health(url)
    again = owner_desktop(workspace)
    page = again.window.this_workspace
    qtbot.waitUntil(lambda: page.listening_url is not None, timeout=20_000)
    assert page.listen.enabled.isChecked() and health(page.listening_url) == 200


def test_only_the_running_admin_window_may_listen(workspace, desktop, owner_desktop, qtbot):
    # A window that does not run the links (here: an engine of the test) says why it cannot.
    box = desktop.window.this_workspace.listen
    assert not box.enabled.isEnabled()
    assert box.enabled.toolTip() == "This window runs flows but not the links."
    desktop.shutdown()
    workspace.add_user("bob", "user")
    bob = Workspace.open(workspace.data_dir, acting_user="bob")
    try:
        app = owner_desktop(bob)
        box = app.window.this_workspace.listen
        assert not box.enabled.isEnabled()
        assert box.state.text() == "Only an organization admin can switch listening on or off."
    finally:
        app.shutdown()
        bob.close()


def test_start_at_login_and_minimized(workspace, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    page = WorkspacePage(workspace)
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: page.start_at_login.isEnabled(), timeout=10_000)
    assert not page.start_at_login.isChecked() and not page.start_minimized.isEnabled()

    with qtbot.waitSignal(page.autostart_changed, check_params_cb=lambda on, mini: on and not mini, timeout=10_000):
        tick(qtbot, page.start_at_login)
    entry = autostart.desktop_entry_path()
    assert entry == tmp_path / "config" / "autostart" / "flowlink.desktop"
    assert autostart.is_enabled() and not autostart.starts_minimized()
    assert str(workspace.data_dir) in entry.read_text() and "--minimized" not in entry.read_text()
    assert page.start_minimized.isEnabled()

    with qtbot.waitSignal(page.autostart_changed, check_params_cb=lambda on, mini: on and mini, timeout=10_000):
        tick(qtbot, page.start_minimized)
    assert autostart.starts_minimized() and "--minimized" in entry.read_text()

    with qtbot.waitSignal(page.autostart_changed, check_params_cb=lambda on, mini: not on, timeout=10_000):
        tick(qtbot, page.start_at_login)
    assert not autostart.is_enabled() and not entry.exists()
    assert not page.start_minimized.isEnabled()

    # A new page reads what is there now.
    autostart.enable(start_minimized=True)
    again = WorkspacePage(workspace)
    qtbot.addWidget(again)
    qtbot.waitUntil(lambda: again.start_at_login.isEnabled(), timeout=10_000)
    assert again.start_at_login.isChecked() and again.start_minimized.isChecked()


def test_notifications_switch_is_remembered(desktop, workspace, qtbot):
    page = desktop.window.this_workspace
    assert page.notify.isChecked() and desktop.notifier.enabled
    tick(qtbot, page.notify)
    assert not desktop.notifier.enabled
    assert QSettings().value(SETTING) in (False, "false")
    assert not Notifier(workspace).enabled
    assert not desktop.notifier.notify("Link to b failed", "refused")
    tick(qtbot, page.notify)
    assert desktop.notifier.enabled and Notifier(workspace).enabled
