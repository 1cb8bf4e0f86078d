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
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QWidget

from flowlink.gui.demo import populate
from flowlink.gui.desktop import DesktopApp
from flowlink.gui.dialogs import FirstRunDialog
from flowlink.gui.main_window import PAGES

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


def test_screenshot_of_every_page(workspace, engine, qtbot, out_dir):
    ids = populate(workspace, engine)
    app = DesktopApp(workspace, engine=engine, use_tray=False)
    window = app.start()
    # Rendered without a platform window, so the size is ours whatever the screen is.
    window.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
    window.show()
    window.resize(*SIZE)
    try:
        page = window.executions
        total = len(workspace.list_executions(limit=100))
        qtbot.waitUntil(lambda: page.model.rowCount() == total, timeout=10_000)
        report = ids[2]
        page.select_execution(report)
        page.details.tabs.setCurrentIndex(4)  # the children of the nightly report
        window.flows.open_flow("nightly-report")
        window.settings_page.select("smtp")
        window.files.select("report-template.md")
        written = {}
        for name in PAGES:
            window.show_page(name)
            written[name] = save(window, out_dir / page_file(name))
        window.show_page("Executions")
        page.select_execution(ids[1])
        page.details.tabs.setCurrentIndex(3)
        qtbot.waitUntil(lambda: "connecting to the invoice service" in page.details.log_view.toPlainText())
        written["execution log"] = save(window, out_dir / "execution-log.png")
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
    assert {p.name for p in out_dir.glob("*.png")} >= {page_file(n) for n in PAGES}
