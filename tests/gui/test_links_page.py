"""The Links page as a user uses it: Add, Edit and Remove through the Synch Config form;
states from the link reports; read-only for users who are not organization admins."""

from __future__ import annotations

import time

import pytest
from guihelpers import paste
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from flowlink.gui.links_page import (
    COL_LAST,
    COL_NAME,
    COL_QUEUED_OUT,
    COL_RECEIVED,
    COL_STATE,
    COL_URL,
    LinksPage,
)
from flowlink.link.syncer import LinkStatus
from flowlink.workspace import identity
from flowlink.workspace.links import SyncConfigChange
from flowlink.workspace.workspace import Workspace


@pytest.fixture(scope="module")
def peer_key():
    key = identity.generate_private_key(2048)
    return {"public": identity.public_key_to_pem(key.public_key()), "kid": identity.key_id(key.public_key())}


def cell(page: LinksPage, name: str, column: int) -> str | None:
    row = page.model.row_named(name)
    return None if row is None else page.model.index(row, column).data()


def save(qtbot, form) -> None:
    with qtbot.waitSignal(form.saved, timeout=20_000):
        qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)


def test_add_edit_remove_through_the_form(desktop, workspace, qtbot, peer_key, monkeypatch):
    window = desktop.window
    window.show_page("Links")
    page = window.links
    assert page.stack.currentWidget() is page.empty
    assert page.add_button.isEnabled() and not page.edit_button.isEnabled()
    assert not page.remove_button.isEnabled()

    # Add: the form in a dialog, typed and pasted into as a user does.
    qtbot.mouseClick(page.add_button, Qt.MouseButton.LeftButton)
    dialog = page.dialog
    assert dialog is not None and dialog.isVisible()
    form = dialog.form
    url = f"https://127.0.0.1:8443/api/latest/sync_config/{workspace.name}/sync"
    qtbot.keyClicks(form.name_edit, "intranet")
    qtbot.keyClicks(form.remote_url, url)
    paste(qtbot, form.remote_key.edit, peer_key["public"])
    with qtbot.waitSignal(page.links_changed, check_params_cb=lambda name: name == "intranet", timeout=20_000):
        save(qtbot, form)
    assert form.status.text().startswith("Saved."), form.status.text()
    qtbot.waitUntil(lambda: cell(page, "intranet", COL_URL) == url, timeout=10_000)
    assert page.stack.currentWidget() is page.view
    assert page.selected_name() == "intranet"  # the saved link is selected
    # The worker reports the state the store records (this window runs flows, not links).
    qtbot.waitUntil(lambda: cell(page, "intranet", COL_STATE) == "synced", timeout=10_000)
    assert cell(page, "intranet", COL_LAST) == "never"
    dialog.reject()
    qtbot.waitUntil(lambda: page.dialog is None)

    # Edit: the dialog opens on the saved config; keys show only their key id.
    page.select("intranet")
    qtbot.mouseClick(page.edit_button, Qt.MouseButton.LeftButton)
    form = page.dialog.form
    assert form.name_edit.isReadOnly() and form.remote_url.text() == url
    assert f"key id {peer_key['kid']}" in form.remote_key.stored.text()
    new_url = url.replace("8443", "9443")
    form.remote_url.clear()
    qtbot.keyClicks(form.remote_url, new_url)
    form.sync_interval.clear()
    qtbot.keyClicks(form.sync_interval, "30")
    with qtbot.waitSignal(page.links_changed, timeout=20_000):
        save(qtbot, form)
    qtbot.waitUntil(lambda: cell(page, "intranet", COL_URL) == new_url, timeout=10_000)
    assert workspace.links.get("intranet").sync_interval == 30
    page.dialog.reject()

    # Remove asks first; No keeps the link, Yes removes it (in the background).
    answers = iter([QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes])
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: (asked.append(a[2]), next(answers))[1])
    page.select("intranet")
    qtbot.mouseClick(page.remove_button, Qt.MouseButton.LeftButton)
    assert workspace.links.find("intranet") is not None and cell(page, "intranet", COL_NAME) == "intranet"
    with qtbot.waitSignal(page.links_changed, timeout=20_000):
        qtbot.mouseClick(page.remove_button, Qt.MouseButton.LeftButton)
    assert len(asked) == 2 and "'intranet'" in asked[0]
    qtbot.waitUntil(lambda: page.model.rowCount() == 0, timeout=10_000)
    assert workspace.links.find("intranet") is None
    assert page.stack.currentWidget() is page.empty


def test_rows_show_state_last_exchange_and_queues(workspace, qtbot):
    page = LinksPage(workspace)
    qtbot.addWidget(page)
    when = time.time() - 30
    page.set_statuses({
        "b": LinkStatus("b", "error", "401: bad signature", last_success=when - 10, last_inbound=when,
                        queued_out=4, received=9),
        "c": LinkStatus("c", "disabled", "The link is disabled."),
    })
    assert [r.name for r in page.model.links()] == ["b", "c"]
    assert cell(page, "b", COL_STATE) == "error: 401: bad signature"
    assert cell(page, "b", COL_QUEUED_OUT) == "4" and cell(page, "b", COL_RECEIVED) == "9"
    assert cell(page, "b", COL_LAST) == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
    assert cell(page, "c", COL_STATE) == "disabled: The link is disabled."
    assert not page.model.index(0, COL_STATE).data(Qt.ItemDataRole.DecorationRole).isNull()
    page.set_sync_available(False, "Links are synced by serve (pid 42).")
    assert not page.sync_button.isEnabled() and page.sync_button.toolTip() == "Links are synced by serve (pid 42)."


def test_read_only_for_users_who_are_not_admins(workspace, qtbot, peer_key, monkeypatch):
    workspace.links.add("intranet", SyncConfigChange(remote_public_key=peer_key["public"]))
    workspace.add_user("bob", "user")
    bob = Workspace.open(workspace.data_dir, acting_user="bob")
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: pytest.fail("nothing to confirm"))
    try:
        page = LinksPage(bob)
        qtbot.addWidget(page)
        page.show()
        qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=10_000)
        reason = "Only an organization admin can add, change or remove links; you are 'bob'."
        assert page.note.isVisible() and page.note.text().startswith(reason)
        page.select("intranet")
        for button in (page.add_button, page.remove_button):
            assert not button.isEnabled() and button.toolTip() == reason
        assert page.add_link() is None and not page.remove_selected()
        assert page.edit_button.text() == "View…" and page.edit_button.isEnabled()
        qtbot.mouseClick(page.edit_button, Qt.MouseButton.LeftButton)
        form = page.dialog.form
        assert page.dialog.windowTitle().endswith("(read-only)")
        assert form.read_only and not form.save_button.isEnabled() and form.remote_url.isReadOnly()
        page.dialog.reject()
        assert bob.links.find("intranet") is not None
    finally:
        bob.close()
