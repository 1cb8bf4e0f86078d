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
    """As a user pastes: through the clipboard and Ctrl+V (keys cannot be typed line by line)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication

    QGuiApplication.clipboard().setText(text)
    widget.setFocus()
    qtbot.keyClick(widget, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)


def tick(qtbot, checkbox) -> None:
    """Click a check box on its indicator, as a user does (its centre may be empty space)."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QStyle, QStyleOptionButton

    option = QStyleOptionButton()
    checkbox.initStyleOption(option)
    box = checkbox.style().subElementRect(QStyle.SubElement.SE_CheckBoxIndicator, option, checkbox)
    qtbot.mouseClick(checkbox, Qt.MouseButton.LeftButton, pos=box.center())
