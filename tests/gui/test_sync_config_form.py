"""The Synch Config form as a user uses it: typing, saving, reopening, refusals, roles."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from guihelpers import paste, require_real
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from flowlink.gui.sync_config_form import SyncConfigForm, normalize_pem
from flowlink.workspace import identity
from flowlink.workspace.workspace import Workspace


@pytest.fixture(scope="module")
def peer_keys():
    key = identity.generate_private_key(2048)
    return {
        "public": identity.public_key_to_pem(key.public_key()),
        "kid": identity.key_id(key.public_key()),
        "private": identity.private_key_to_pem(identity.generate_private_key(2048)),
    }


def every_text(form: QWidget) -> str:
    """All the text any widget of the form holds or shows."""
    texts = []
    for child in form.findChildren(QWidget):
        for getter in ("text", "toPlainText", "displayText", "placeholderText", "toolTip"):
            method = getattr(child, getter, None)
            if callable(method):
                try:
                    texts.append(str(method()))
                except TypeError:
                    pass
    return "\n".join(texts)


def key_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def open_form(qtbot, ws: Workspace, name: str | None = None) -> SyncConfigForm:
    form = SyncConfigForm(ws, name)
    qtbot.addWidget(form)
    form.show()
    return form


def save(qtbot, form: SyncConfigForm) -> None:
    with qtbot.waitSignal(form.busy_changed, check_params_cb=lambda busy: busy is False, timeout=20000):
        qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)


def fill(qtbot, form: SyncConfigForm, ws: Workspace, peer_keys: dict) -> None:
    qtbot.keyClicks(form.name_edit, "intranet")
    qtbot.keyClicks(form.remote_url, f"https://127.0.0.1:8443/api/latest/sync_config/{ws.name}/sync")
    paste(qtbot, form.remote_key.edit, peer_keys["public"])
    qtbot.keyClicks(form.sync_interval, "30")
    form.allow_flows.clear()
    qtbot.keyClicks(form.allow_flows, "collect_*, report")
    form.send_all.setChecked(True)


def test_add_save_reopen_shows_only_key_ids(qtbot, workspace, peer_keys):
    form = open_form(qtbot, workspace)
    fill(qtbot, form, workspace, peer_keys)
    assert form.remote_key.edit.displayText() != form.remote_key.edit.text()  # masked while typed
    save(qtbot, form)
    assert form.status.text().startswith("Saved."), form.status.text()
    config = workspace.links.get("intranet")
    assert config.remote_key_id == peer_keys["kid"]
    assert config.sync_interval == 30 and config.allow_flows == ["collect_*", "report"]
    assert config.send_all_executions and config.remote_url.endswith(f"/{workspace.name}/sync")
    # The form forgot the key at once, and a new form never had it.
    for shown in (form, open_form(qtbot, workspace, "intranet")):
        text = every_text(shown)
        assert "BEGIN PUBLIC KEY" not in text
        assert not any(line in text for line in key_lines(peer_keys["public"]))
        assert f"key id {peer_keys['kid']}" in shown.remote_key.stored.text()
        assert f"key id {workspace.key_id}" in shown.own_key.stored.text()


def test_every_error_is_shown_beside_its_field_and_nothing_is_saved(qtbot, workspace, peer_keys, tmp_path):
    form = open_form(qtbot, workspace)
    qtbot.keyClicks(form.name_edit, "Bad Name")
    qtbot.keyClicks(form.remote_url, "http://example.com/api/latest/sync_config/other/sync")
    qtbot.keyClicks(form.ca_cert, "not a certificate")
    paste(qtbot, form.own_key.edit, peer_keys["public"])  # a public key where a private one goes
    paste(qtbot, form.remote_key.edit, peer_keys["private"])  # and the other way round
    qtbot.keyClicks(form.sync_interval, "abc")
    form.allow_flows.clear()
    qtbot.keyClicks(form.allow_flows, "coll[ect")
    files_before = sorted(os.listdir(workspace.data_dir / "secrets"))
    save(qtbot, form)
    expected = {
        "name": "not a valid workspace name",
        "remote_url": "Remote URL",
        "ca_cert": "CA certificate",
        "own_private_key": "public key",
        "remote_public_key": "private key",
        "sync_interval": "whole number",
        "allow_flows": "unbalanced",
    }
    for field, words in expected.items():
        label = form.errors[field]
        assert label.isVisible(), f"no error shown beside {field}"
        assert words.lower() in label.text().lower(), (field, label.text())
    assert "Nothing was saved" in form.status.text()
    assert workspace.links.list() == []
    assert sorted(os.listdir(workspace.data_dir / "secrets")) == files_before
    assert not any(line in every_text(form).replace(form.own_key.edit.text(), "")
                   .replace(form.remote_key.edit.text(), "") for line in key_lines(peer_keys["private"]))


def test_non_admin_sees_the_form_read_only_with_a_reason(qtbot, workspace, peer_keys, tmp_path):
    form = open_form(qtbot, workspace)
    fill(qtbot, form, workspace, peer_keys)
    save(qtbot, form)
    workspace.add_user("bob", "user")
    bob = Workspace.open(workspace.data_dir, acting_user="bob")
    try:
        view = open_form(qtbot, bob, "intranet")
        assert view.read_only_note.isVisible()
        assert "Only an organization admin can change workspace links" in view.read_only_note.text()
        assert not view.save_button.isEnabled()
        assert view.remote_url.isReadOnly() and not view.own_key.edit.isEnabled()
        before = bob.links.get("intranet")
        view.save()  # even if called, nothing changes
        assert bob.links.get("intranet") == before
    finally:
        bob.close()


def test_generate_new_own_key_and_switch_back_to_the_workspace_key(qtbot, workspace, peer_keys):
    form = open_form(qtbot, workspace)
    fill(qtbot, form, workspace, peer_keys)
    qtbot.mouseClick(form.own_key.generate, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: form.own_key.stored.text().startswith("New key"), timeout=20000)
    assert form.copy_public.isEnabled()
    kid = re.search(r"key id ([0-9a-f]{64})", form.own_key.stored.text()).group(1)
    save(qtbot, form)
    assert workspace.links.get("intranet").own_key_id == kid != workspace.key_id
    assert "PRIVATE KEY" not in every_text(form)
    form.own_key.workspace_key.click()
    save(qtbot, form)
    assert workspace.links.get("intranet").own_key_id is None


def test_test_link_reports_in_words(qtbot, workspace, peer_keys):
    form = open_form(qtbot, workspace)
    fill(qtbot, form, workspace, peer_keys)
    form.remote_url.clear()
    qtbot.keyClicks(form.remote_url, f"https://127.0.0.1:9/api/latest/sync_config/{workspace.name}/sync")
    save(qtbot, form)
    with qtbot.waitSignal(form.tested, timeout=20000) as blocker:
        form.test_button.click()
    assert blocker.args[0].startswith("Cannot connect to https://127.0.0.1:9")


def test_pem_without_line_breaks_is_rebuilt(peer_keys):
    flat = peer_keys["public"].replace("\n", " ")
    assert normalize_pem(flat) == peer_keys["public"]
    assert normalize_pem("no pem here") == "no pem here"


@pytest.mark.keyring
def test_keys_saved_through_the_form_land_in_the_real_keyring(qtbot, tmp_path, peer_keys,
                                                              session_keyring, monkeypatch):
    monkeypatch.setenv("FLOWLINK_SECRET_STORE", "keyring")
    ws = Workspace.init(tmp_path / "kr", "kr", admin="alice", secret_store="keyring")
    try:
        form = open_form(qtbot, ws)
        fill(qtbot, form, ws, peer_keys)
        save(qtbot, form)
        assert form.status.text().startswith("Saved."), form.status.text()
        qtbot.waitUntil(lambda: "Secret Service" in form.remote_key.stored.text(), timeout=10000)
        require_real(shutil.which("secret-tool") is not None, "secret-tool (libsecret-tools)")
        out = subprocess.run(["secret-tool", "search", "--all", "service", f"flowlink/{ws.id}"],
                             capture_output=True, text=True, timeout=20)
        assert "remote public key of link intranet" in out.stdout + out.stderr
        assert not (tmp_path / "kr" / "secrets").exists()
    finally:
        ws.close()
