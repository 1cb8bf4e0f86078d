"""End to end: the window runs workspace A, a real `flowlink serve` process is workspace B.

The link is made through the Synch Config form on A (and on B with the CLI, without a URL:
B only answers). A flow run from A's Flows page calls a flow in B; its remote child shows up
in A's executions table with Workspace = b, and a remote failure is notified.
"""

from __future__ import annotations

import json

import pytest
from guihelpers import add_flow, paste
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTreeWidgetItemIterator

from flowlink.gui.executions_model import COL_FLOW, COL_STATUS, COL_WORKSPACE
from flowlink.workspace.records import ENDED_ERROR, ENDED_SUCCESS
from pair_fixtures import Peer

CALLER = """
def handler(system, this, inputs):
    child = this.flow(inputs.get('flow', 'x'), remote_workspace_name='b', text=inputs.get('text', 'hi'))
    this.save(output_value={'remote': child.get('output_value'), 'workspace': child.get('workspace')})
"""
X = """\
def handler(system, this, inputs):
    this.log('echoing ' + inputs['text'])
    this.save(output_value={'echo': inputs['text'].upper()})
"""
FAIL = """\
def handler(system, this, inputs):
    raise RuntimeError('disk on fire')
"""


@pytest.fixture
def peer_b(tmp_path, workspace):
    b = Peer("b", tmp_path / "b")
    b.init()
    b.add_flow("x", X)
    b.add_flow("fail", FAIL)
    a_pub = tmp_path / "a.pub"
    a_pub.write_text(workspace.public_key_pem)
    # B answers only (no URL): A's window initiates every exchange.
    b.cli("link", "add", workspace.name, "--remote-public-key", str(a_pub), "--send-all-executions")
    b.serve()
    yield b
    assert b.stop() == 0, "B did not stop cleanly"


def model_rows(page) -> list[tuple[str, str, str]]:
    model = page.model
    return [(model.index(r, COL_FLOW).data(), model.index(r, COL_WORKSPACE).data(),
             model.index(r, COL_STATUS).data()) for r in range(model.rowCount())]


def tree_rows(tree) -> list[tuple[str, str, str]]:
    found = []
    iterator = QTreeWidgetItemIterator(tree)
    while iterator.value():
        item = iterator.value()
        found.append((item.text(1), item.text(3), item.text(2)))
        iterator += 1
    return found


@pytest.mark.xdist_group("link-e2e")
def test_window_links_to_a_serve_process_and_runs_a_flow_there(workspace, peer_b, owner_desktop, qtbot,
                                                              quiet_manager):
    # peer_b before owner_desktop: the window stops first, so B never vanishes under its syncers.
    add_flow(workspace, "caller", CALLER)
    app = owner_desktop(workspace)
    window = app.window

    # The link, made through the form on A as a user makes it.
    window.show_page("Links")
    page = window.links
    qtbot.mouseClick(page.add_button, Qt.MouseButton.LeftButton)
    form = page.dialog.form
    qtbot.keyClicks(form.name_edit, "b")
    qtbot.keyClicks(form.remote_url, peer_b.sync_url(workspace.name))
    paste(qtbot, form.ca_cert, peer_b.files["ca"].read_text())
    paste(qtbot, form.remote_key.edit, peer_b.files["pub"].read_text())
    with qtbot.waitSignal(form.saved, timeout=20_000):
        qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)
    # Saving reloads the link syncers (quiet_manager: only the SyncWorker's reload can start one).
    qtbot.waitUntil(lambda: "b" in app.runtime.links.syncers, timeout=10_000)
    with qtbot.waitSignal(form.tested, timeout=20_000) as tested:
        qtbot.mouseClick(form.test_button, Qt.MouseButton.LeftButton)
    assert tested.args[0].startswith("OK in "), tested.args[0]
    page.dialog.reject()

    # A flow run from the Flows page calls a flow in B.
    window.show_page("Flows")
    window.flows.reload()
    window.flows.open_flow("caller")
    qtbot.mouseClick(window.flows.run_button, Qt.MouseButton.LeftButton)
    dialog = window.flows.run_dialog
    dialog.editor.setPlainText(json.dumps({"flow": "x", "text": "over the link"}))
    qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    [caller] = workspace.list_executions(flow="caller")
    qtbot.waitUntil(lambda: workspace.get_execution(caller.id).terminal, timeout=60_000)
    ended = workspace.get_execution(caller.id)
    assert ended.status == ENDED_SUCCESS, ended.message
    assert ended.outputs == {"remote": {"echo": "OVER THE LINK"}, "workspace": "b"}

    # Its remote child: in the executions table (B sends all executions) and under the caller.
    executions = window.executions
    assert window.current_page() == "Executions"
    qtbot.waitUntil(lambda: {("x", "b", "Success"), ("caller", workspace.name, "Success")}
                    <= set(model_rows(executions)), timeout=20_000)
    executions.select_execution(caller.id)
    qtbot.waitUntil(lambda: ("x", "b", "Success") in tree_rows(executions.details.children_tree), timeout=20_000)
    [ran_in_b] = [e for e in peer_b.executions() if e["flow"] == "x"]
    assert ran_in_b["status"] == "ENDED_SUCCESS" and ran_in_b["inputs"] == {"text": "over the link"}
    qtbot.waitUntil(lambda: app.link_statuses["b"].state == "synced" and bool(app.link_statuses["b"].last_success),
                    timeout=10_000)
    assert page.model.index(0, 0).data() == "b" and page.model.index(0, 1).data() == "synced"

    # A remote execution that fails is notified (once), as is nothing else.
    notes: list[tuple[str, str]] = []
    app.notifier.notified.connect(lambda title, text: notes.append((title, text)))
    failing = app.run_flow("caller", {"flow": "fail"})
    qtbot.waitUntil(lambda: workspace.get_execution(failing).status == ENDED_ERROR, timeout=60_000)
    qtbot.waitUntil(lambda: bool(notes), timeout=20_000)
    assert notes[0][0] == "fail failed in b" and "disk on fire" in notes[0][1], notes
    assert len(notes) == 1
