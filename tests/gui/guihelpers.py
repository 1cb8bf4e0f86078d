"""Flows and helpers shared by the GUI tests."""

from __future__ import annotations

import textwrap

# tests/conftest.py's require_real: 'conftest' names tests/gui/conftest.py in this folder, so
# take it from the module that imported it from the root conftest.
from keyring_fixture import require_real  # noqa: F401

GATED_FLOW = """
def handler(system, this):
    this.log("waiting for the go setting")
    while not system.setting("go").exists():
        this.sleep(0.02)
    this.log("going")
    return this.success("went")
"""

HELLO_FLOW = """
def handler(system, this, inputs):
    name = inputs.get("name", "world")
    this.log("hello " + name)
    this.save(output_value={"greeting": "Hello, " + name})
    return this.success("greeted " + name)
"""

MILLION = 1_000_000


def add_flow(workspace, name: str, source: str) -> None:
    workspace.add_flow(name, textwrap.dedent(source).lstrip())


def paste(qtbot, widget, text: str) -> None:
    """What Ctrl+V does, without the system clipboard.

    Under Xvfb the clipboard is one for the whole display, so parallel test workers
    overwrote each other's text between "copy" and "paste". This hands the widget the
    same thing its paste() would: QLineEdit.insert(text), or QPlainTextEdit's
    insertFromMimeData (where the form's size check sits).
    """
    from PySide6.QtCore import QMimeData
    from PySide6.QtWidgets import QLineEdit

    widget.setFocus()
    if isinstance(widget, QLineEdit):
        widget.insert(text)
    else:
        mime = QMimeData()
        mime.setText(text)
        widget.insertFromMimeData(mime)
    qtbot.wait(0)  # let the text-changed signals run, as after a key press


def tick(qtbot, checkbox) -> None:
    """Click a check box on its indicator, as a user does (its centre may be empty space)."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QStyle, QStyleOptionButton

    option = QStyleOptionButton()
    checkbox.initStyleOption(option)
    box = checkbox.style().subElementRect(QStyle.SubElement.SE_CheckBoxIndicator, option, checkbox)
    qtbot.mouseClick(checkbox, Qt.MouseButton.LeftButton, pos=box.center())
