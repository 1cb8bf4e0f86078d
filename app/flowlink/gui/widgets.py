"""Small widgets shared by the pages: inline error line, JSON editing, monospace text."""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontDatabase, QTextCursor
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QWidget


def monospace_font() -> QFont:
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)


class ErrorLabel(QLabel):
    """A sentence shown beside what caused it, hidden while there is nothing to say."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setStyleSheet("color: #c92a2a;")
        self.setObjectName("errorLabel")
        self.hide()

    def show_error(self, message: str) -> None:
        self.setText(message)
        self.show()

    def clear_error(self) -> None:
        self.clear()
        self.hide()


def move_cursor_to(edit: QPlainTextEdit, line: int, column: int = 1) -> None:
    """Put the caret at 1-based ``line``/``column`` and make it visible."""
    document = edit.document()
    block = document.findBlockByNumber(max(0, min(line - 1, document.blockCount() - 1)))
    cursor = QTextCursor(block)
    cursor.movePosition(QTextCursor.MoveOperation.Right, QTextCursor.MoveMode.MoveAnchor,
                        max(0, min(column - 1, block.length() - 1)))
    edit.setTextCursor(cursor)
    edit.centerCursor()
    edit.setFocus()


def parse_json(text: str) -> tuple[Any, str | None, int | None, int | None]:
    """(value, error sentence, line, column) of a JSON text."""
    try:
        return json.loads(text), None, None, None
    except json.JSONDecodeError as exc:
        return None, f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.", exc.lineno, exc.colno


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
