"""Renders each page with demo data into PNGs (the README shows docs/screenshots/).

By default the PNGs go to the test's temporary folder. To refresh the committed ones
(under Xvfb, so fonts and style are the real ones):

    FLOWLINK_UPDATE_SCREENSHOTS=1 xvfb-run -a -s "-screen 0 1280x800x24" \\
        .venv/bin/python -m pytest -q tests/gui/test_screenshots.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from guihelpers import add_flow
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QWidget

from flowlink.gui.demo import populate
from flowlink.gui.desktop import DesktopApp
from flowlink.gui.dialogs import FirstRunDialog
from flowlink.gui.links_page import COL_STATE
from flowlink.gui.main_window import PAGES
from flowlink.workspace import identity
from flowlink.workspace.links import SyncConfigChange
from flowlink.workspace.records import ENDED_SUCCESS
from pair_fixtures import Peer

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SIZE = (1180, 760)


def page_file(name: str) -> str:
    return name.lower().replace(" ", "-") + ".png"


def distinct_colours(image: QImage, limit: int = 64) -> int:
    seen = set()
    step_x, step_y = max(1, image.width() // 97), max(1, image.height() // 89)
    for x in range(0, image.width(), step_x):
        for y in range(0, image.height(), step_y):
            seen.add(image.pixel(x, y))
            if len(seen) >= limit:
                return len(seen)
    return len(seen)


def save(widget: QWidget, path: Path) -> QImage:
    QApplication.processEvents()
    assert widget.grab().save(str(path)), f"could not write {path}"
    image = QImage(str(path))
    assert not image.isNull()
    return image


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    if os.environ.get("FLOWLINK_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        return DOCS
    return tmp_path


STOCK_CHECK = """
def handler(system, this, inputs):
    levels = this.flow('stock-levels', remote_workspace_name='laptop-b', site=inputs.get('site', 'depot-1'))
    this.save(output_value=levels.get('output_value'))
    return this.success('stock checked on laptop-b')
"""
STOCK_LEVELS = """\
def handler(system, this, inputs):
    this.log('counting pallets at ' + inputs['site'])
    this.save(output_value={'site': inputs['site'], 'pallets': 42})
"""


@pytest.fixture
def laptop_b(tmp_path, workspace):
    """A real linked workspace: `flowlink serve` on 127.0.0.1, answering this one."""
    peer = Peer("laptop-b", tmp_path / "laptop-b")
    peer.init()
    peer.add_flow("stock-levels", STOCK_LEVELS)
    key = tmp_path / "ws.pub"
    key.write_text(workspace.public_key_pem)
    peer.cli("link", "add", workspace.name, "--remote-public-key", str(key), "--send-all-executions")
    peer.serve()
    yield peer
    peer.stop()


def test_screenshot_of_every_page(workspace, laptop_b, qtbot, out_dir):
    # Real links: one to a running workspace, one whose other side is down, one that only answers.
    workspace.links.add("laptop-b", SyncConfigChange(
        remote_url=laptop_b.sync_url(workspace.name), ca_cert=laptop_b.files["ca"].read_text(),
        remote_public_key=laptop_b.files["pub"].read_text(), allow_flows="stock-*"))
    other = identity.public_key_to_pem(identity.generate_private_key(2048).public_key())
    workspace.links.add("nas", SyncConfigChange(
        remote_url=f"https://127.0.0.1:9/api/latest/sync_config/{workspace.name}/sync",
        remote_public_key=other, sync_interval=300))
    workspace.links.add("intranet", SyncConfigChange(remote_public_key=other))
    add_flow(workspace, "stock-check", STOCK_CHECK)
    app = DesktopApp(workspace, use_tray=False, parallelism=4)
    with qtbot.waitSignal(app.links_started, timeout=20_000):
        window = app.start()
    # Rendered without a platform window, so the size is ours whatever the screen is.
    window.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
    window.show()
    window.resize(*SIZE)
    try:
        ids = populate(workspace, app.engine)
        checked = app.run_flow("stock-check", {"site": "depot-1"})
        qtbot.waitUntil(lambda: workspace.get_execution(checked).terminal, timeout=60_000)
        assert workspace.get_execution(checked).status == ENDED_SUCCESS, workspace.get_execution(checked).message
        page = window.executions
        total = len(workspace.list_executions(limit=100))
        qtbot.waitUntil(lambda: page.model.rowCount() == total, timeout=10_000)
        report = ids[2]
        page.select_execution(report)
        page.details.tabs.setCurrentIndex(4)  # the children of the nightly report
        window.flows.reload()
        window.flows.open_flow("nightly-report")
        window.settings_page.select("smtp")
        window.files.select("report-template.md")
        links = window.links

        def link_states() -> dict[str, str]:
            return {name: status.state for name, status in app.link_statuses.items()}

        qtbot.waitUntil(lambda: link_states() == {"laptop-b": "synced", "nas": "error", "intranet": "answers only"}
                        and bool(app.link_statuses["laptop-b"].last_success), timeout=30_000)
        written = {}
        for name in PAGES:
            window.show_page(name)
            if name == "Links":
                qtbot.waitUntil(lambda: links.model.rowCount() == 3, timeout=10_000)
                links.select("nas")  # the one in error: its sentence in full below the table
                assert links.details.text().startswith("nas: error: Cannot connect to https://127.0.0.1:9")
                assert links.model.index(links.model.row_named("nas"), COL_STATE).data().startswith("error: Cannot connect to https://127.0.0.1:9")
            written[name] = save(window, out_dir / page_file(name))
        window.show_page("Executions")
        page.select_execution(ids[1])
        page.details.tabs.setCurrentIndex(3)
        qtbot.waitUntil(lambda: "connecting to the invoice service" in page.details.log_view.toPlainText())
        written["execution log"] = save(window, out_dir / "execution-log.png")

        window.show_page("Links")
        links.select("laptop-b")
        dialog = links.edit_selected()
        assert dialog is not None
        dialog.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
        dialog.resize(760, 740)
        form = dialog.form
        qtbot.waitUntil(lambda: "Stored in" in form.remote_key.stored.text(), timeout=10_000)
        written["synch config"] = save(dialog, out_dir / "synch-config.png")
        dialog.reject()
    finally:
        app.shutdown()
        window.deleteLater()

    dialog = FirstRunDialog(workspace.data_dir.parent / "new-one", "alice")
    qtbot.addWidget(dialog)
    dialog.name_edit.setText("My Laptop")
    dialog.accept()  # shows the inline error
    dialog.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
    dialog.show()
    written["first run"] = save(dialog, out_dir / "first-run.png")

    for name, image in written.items():
        assert image.width() >= 400 and image.height() >= 200, name
        assert distinct_colours(image) > 8, f"the {name} screenshot looks blank"
    assert {p.name for p in out_dir.glob("*.png")} >= {page_file(n) for n in PAGES} | {"synch-config.png"}
