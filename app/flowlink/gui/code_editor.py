"""A plain-text editor for flow scripts: Python highlighting, line numbers, error line mark."""

from __future__ import annotations

import builtins
import keyword
import re

from PySide6.QtCore import QRect, QRegularExpression, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QKeyEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QResizeEvent,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextFormat,
)
from PySide6.QtWidgets import QPlainTextEdit, QTextEdit, QWidget

from flowlink.gui.widgets import monospace_font

# Block states carry an open triple-quoted string across lines.
NORMAL, IN_TRIPLE_SINGLE, IN_TRIPLE_DOUBLE = -1, 1, 2

LIGHT_THEME = {
    "keyword": ("#8839ef", True),
    "builtin": ("#1e66f5", False),
    "string": ("#40a02b", False),
    "comment": ("#7c7f93", False),
    "number": ("#fe640b", False),
    "definition": ("#d20f39", True),
    "decorator": ("#df8e1d", False),
    "self": ("#ea76cb", False),
}
DARK_THEME = {
    "keyword": ("#cba6f7", True),
    "builtin": ("#89b4fa", False),
    "string": ("#a6e3a1", False),
    "comment": ("#9399b2", False),
    "number": ("#fab387", False),
    "definition": ("#f38ba8", True),
    "decorator": ("#f9e2af", False),
    "self": ("#f5c2e7", False),
}


def _is_dark(widget_or_palette: QPalette) -> bool:
    return widget_or_palette.color(QPalette.ColorRole.Base).lightness() < 128


class PythonHighlighter(QSyntaxHighlighter):
    """Keywords, builtins, strings (triple-quoted across lines), comments, numbers,
    the names after def/class, decorators and self."""

    def __init__(self, document: QTextDocument, dark: bool = False) -> None:
        super().__init__(document)
        theme = DARK_THEME if dark else LIGHT_THEME
        self.formats: dict[str, QTextCharFormat] = {}
        for name, (color, bold) in theme.items():
            fmt = QTextCharFormat()
            fmt.setForeground(QColor(color))
            if bold:
                fmt.setFontWeight(QFont.Weight.Bold)
            if name == "comment":
                fmt.setFontItalic(True)
            self.formats[name] = fmt
        words = sorted(set(keyword.kwlist) | set(getattr(keyword, "softkwlist", [])) - {"_"})
        names = sorted(n for n in dir(builtins) if not n.startswith("_") and n not in words)
        self.rules: list[tuple[QRegularExpression, str, int]] = [
            (QRegularExpression(r"\b(?:" + "|".join(names) + r")\b"), "builtin", 0),
            (QRegularExpression(r"\b(?:" + "|".join(map(re.escape, words)) + r")\b"), "keyword", 0),
            (QRegularExpression(r"\b(?:self|cls|this|system)\b"), "self", 0),
            (QRegularExpression(
                r"\b(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|"
                r"(?:\d[\d_]*\.?[\d_]*(?:[eE][+-]?\d+)?|\.\d[\d_]*(?:[eE][+-]?\d+)?)[jJ]?)\b"), "number", 0),
            (QRegularExpression(r"^\s*@[\w.]+"), "decorator", 0),
            (QRegularExpression(r"\b(?:def|class)\s+(\w+)"), "definition", 1),
        ]
        # One pass for strings and comments, left to right, so a '#' in a string is no comment.
        self.string_or_comment = QRegularExpression(
            r"'''|\"\"\"|#[^\n]*|[rRbBuUfF]{0,2}'(?:[^'\\\n]|\\.)*'?|[rRbBuUfF]{0,2}\"(?:[^\"\\\n]|\\.)*\"?"
        )

    def highlightBlock(self, text: str) -> None:  # noqa: N802 - Qt's name
        for expression, name, group in self.rules:
            matches = expression.globalMatch(text)
            while matches.hasNext():
                match = matches.next()
                self.setFormat(match.capturedStart(group), match.capturedLength(group), self.formats[name])
        self.setCurrentBlockState(NORMAL)
        start = 0
        previous = self.previousBlockState()
        if previous in (IN_TRIPLE_SINGLE, IN_TRIPLE_DOUBLE):
            start = self._continue_triple(text, 0, "'''" if previous == IN_TRIPLE_SINGLE else '"""')
            if start < 0:
                return
        while start < len(text):
            match = self.string_or_comment.match(text, start)
            if not match.hasMatch():
                return
            token = match.captured(0)
            begin = match.capturedStart(0)
            if token in ("'''", '"""'):
                # A prefix such as r or f right before the quotes belongs to the string.
                prefix = len(re.search(r"[rRbBuUfF]{0,2}$", text[:begin]).group(0))
                start = self._continue_triple(text, begin + 3, token, begin - prefix)
                if start < 0:
                    return
                continue
            self.setFormat(begin, len(token), self.formats["comment" if token.startswith("#") else "string"])
            start = begin + max(1, len(token))

    def _continue_triple(self, text: str, search_from: int, quote: str, begin: int = 0) -> int:
        """Colour a triple-quoted string from ``begin``; the index after it, or -1 if still open."""
        end = text.find(quote, search_from)
        if end < 0:
            self.setFormat(begin, len(text) - begin, self.formats["string"])
            self.setCurrentBlockState(IN_TRIPLE_SINGLE if quote == "'''" else IN_TRIPLE_DOUBLE)
            return -1
        end += 3
        self.setFormat(begin, end - begin, self.formats["string"])
        return end


class LineNumberArea(QWidget):
    def __init__(self, editor: CodeEditor) -> None:
        super().__init__(editor)
        self.editor = editor

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(self.editor.line_number_width(), 0)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        self.editor.paint_line_numbers(event)


class CodeEditor(QPlainTextEdit):
    """QPlainTextEdit with a line-number gutter, Python highlighting and an error-line mark."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFont(monospace_font())
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setTabStopDistance(self.fontMetrics().horizontalAdvance(" ") * 4)
        self.line_numbers = LineNumberArea(self)
        self.highlighter = PythonHighlighter(self.document(), dark=_is_dark(self.palette()))
        self.error_line: int | None = None
        self.blockCountChanged.connect(self._update_margin)
        self.updateRequest.connect(self._update_line_numbers)
        self.cursorPositionChanged.connect(self._update_selections)
        self._update_margin()
        self._update_selections()

    # -- gutter -------------------------------------------------------------------------

    def line_number_width(self) -> int:
        digits = max(3, len(str(self.blockCount())))
        return 12 + self.fontMetrics().horizontalAdvance("9") * digits

    def _update_margin(self, _count: int = 0) -> None:
        self.setViewportMargins(self.line_number_width(), 0, 0, 0)

    def _update_line_numbers(self, rect: QRect, dy: int) -> None:
        if dy:
            self.line_numbers.scroll(0, dy)
        else:
            self.line_numbers.update(0, rect.y(), self.line_numbers.width(), rect.height())
        if rect.contains(self.viewport().rect()):
            self._update_margin()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        contents = self.contentsRect()
        self.line_numbers.setGeometry(QRect(contents.left(), contents.top(), self.line_number_width(),
                                            contents.height()))

    def paint_line_numbers(self, event: QPaintEvent) -> None:
        painter = QPainter(self.line_numbers)
        palette = self.palette()
        painter.fillRect(event.rect(), palette.color(QPalette.ColorRole.AlternateBase))
        block = self.firstVisibleBlock()
        number = block.blockNumber()
        top = round(self.blockBoundingGeometry(block).translated(self.contentOffset()).top())
        bottom = top + round(self.blockBoundingRect(block).height())
        current = self.textCursor().blockNumber()
        dim = palette.color(QPalette.ColorRole.PlaceholderText)
        width = self.line_numbers.width() - 6
        height = self.fontMetrics().height()
        while block.isValid() and top <= event.rect().bottom():
            if block.isVisible() and bottom >= event.rect().top():
                if self.error_line == number + 1:
                    painter.setPen(QColor("#e03131"))
                elif number == current:
                    painter.setPen(palette.color(QPalette.ColorRole.Text))
                else:
                    painter.setPen(dim)
                painter.drawText(0, top, width, height, Qt.AlignmentFlag.AlignRight, str(number + 1))
            block = block.next()
            top = bottom
            bottom = top + round(self.blockBoundingRect(block).height())
            number += 1
        painter.end()

    # -- marks --------------------------------------------------------------------------

    def set_error_line(self, line: int | None) -> None:
        self.error_line = line
        self._update_selections()
        self.line_numbers.update()

    def _update_selections(self) -> None:
        selections = []
        if not self.isReadOnly():
            current = QTextEdit.ExtraSelection()
            color = self.palette().color(QPalette.ColorRole.Highlight)
            color.setAlpha(28)
            current.format.setBackground(color)
            current.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
            current.cursor = self.textCursor()
            current.cursor.clearSelection()
            selections.append(current)
        if self.error_line is not None:
            block = self.document().findBlockByNumber(self.error_line - 1)
            if block.isValid():
                mark = QTextEdit.ExtraSelection()
                mark.format.setBackground(QColor(224, 49, 49, 60))
                mark.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
                mark.cursor = QTextCursor(block)
                selections.append(mark)
        self.setExtraSelections(selections)
        self.line_numbers.update()

    def current_line(self) -> int:
        return self.textCursor().blockNumber() + 1

    # -- typing -------------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        """Tab indents with four spaces; Enter keeps the indentation (and adds one after ':')."""
        if event.key() == Qt.Key.Key_Tab and not event.modifiers():
            self.insertPlainText("    ")
            return
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not event.modifiers():
            line = self.textCursor().block().text()[: self.textCursor().positionInBlock()]
            indent = re.match(r"\s*", line).group(0)
            if line.rstrip().endswith(":"):
                indent += "    "
            super().keyPressEvent(event)
            self.insertPlainText(indent)
            return
        super().keyPressEvent(event)
