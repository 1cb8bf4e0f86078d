"""The Flows page: editor, highlighting, save refused at the error line, New/Remove, Run."""

from __future__ import annotations

from guihelpers import HELLO_FLOW, add_flow
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QMessageBox

from flowlink.gui.code_editor import LIGHT_THEME, CodeEditor
from flowlink.gui.executions_model import ID_ROLE
from flowlink.gui.flows_page import FlowsPage
from flowlink.gui.main_window import EXECUTIONS
from flowlink.workspace.records import ENDED_SUCCESS

BROKEN = """def handler(system, this):
    x = 1
    if x == 1
        return this.success("never")
"""


def no_runner(flow, inputs):  # the page must not run anything in these tests
    raise AssertionError("nothing should run")


def test_save_refuses_syntax_error_and_moves_cursor_to_its_line(workspace, qtbot):
    add_flow(workspace, "hello", HELLO_FLOW)
    page = FlowsPage(workspace, no_runner)
    qtbot.addWidget(page)
    page.open_flow("hello")
    page.editor.setPlainText(BROKEN)
    page.editor.moveCursor(page.editor.textCursor().MoveOperation.Start)

    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)

    assert page.error_label.isVisibleTo(page)
    assert "line 3" in page.error_label.text()
    assert page.editor.current_line() == 3
    assert page.editor.error_line == 3
    assert workspace.get_flow("hello") == add_flow_source(HELLO_FLOW)  # nothing was saved
    # Fixing the line and saving again stores the flow and clears the mark.
    page.editor.setPlainText(BROKEN.replace("if x == 1\n", "if x == 1:\n"))
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    assert not page.error_label.isVisibleTo(page)
    assert page.editor.error_line is None
    assert "if x == 1:" in workspace.get_flow("hello")


def add_flow_source(source: str) -> str:
    import textwrap

    return textwrap.dedent(source).lstrip()


def test_new_flow_needs_a_handler_and_a_fresh_name(workspace, qtbot):
    add_flow(workspace, "hello", HELLO_FLOW)
    page = FlowsPage(workspace, no_runner)
    qtbot.addWidget(page)
    qtbot.mouseClick(page.new_button, Qt.MouseButton.LeftButton)
    assert not page.name_edit.isReadOnly() and page.run_button.isEnabled() is False
    qtbot.keyClicks(page.name_edit, "hello")
    assert not page.save()
    assert "already a flow named 'hello'" in page.error_label.text()
    page.name_edit.clear()
    qtbot.keyClicks(page.name_edit, "second")
    page.editor.setPlainText("def main():\n    pass\n")
    assert not page.save()
    assert "does not define 'def handler" in page.error_label.text()
    assert not workspace.flow_exists("second")
    page.editor.setPlainText("def handler(system, this):\n    return this.success('ok')\n")
    assert page.save()
    assert workspace.flow_exists("second")
    assert page.names.stringList() == ["hello", "second"]


def test_search_filters_the_list(workspace, qtbot):
    for name in ("alpha-import", "beta-export", "alpha-clean"):
        add_flow(workspace, name, HELLO_FLOW)
    page = FlowsPage(workspace, no_runner)
    qtbot.addWidget(page)
    qtbot.keyClicks(page.search, "ALPHA")
    shown = [page.proxy.index(r, 0).data() for r in range(page.proxy.rowCount())]
    assert shown == ["alpha-clean", "alpha-import"]


def test_remove_asks_first(workspace, qtbot, monkeypatch):
    add_flow(workspace, "keep", HELLO_FLOW)
    add_flow(workspace, "drop", HELLO_FLOW)
    page = FlowsPage(workspace, no_runner)
    qtbot.addWidget(page)
    page.open_flow("drop")
    answers = iter([QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes])
    asked: list[str] = []
    # The confirmation is a modal QMessageBox: answer it by patching, as a user would click.
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: (asked.append(a[2]), next(answers))[1])
    page.remove_current()
    assert workspace.flow_exists("drop")
    page.remove_current()
    assert not workspace.flow_exists("drop") and workspace.flow_exists("keep")
    assert len(asked) == 2 and "drop" in asked[0]
    assert page.current == "keep"


def test_highlighter_colours_python(qtbot):
    editor = CodeEditor()
    qtbot.addWidget(editor)
    editor.setPlainText('def handler(system, this):  # entry point\n    return "x" + str(42)\n'
                        'text = """first\n# still a string\n"""\n')
    editor.highlighter.rehighlight()

    def color_at(line: int, column: int) -> str:
        block = editor.document().findBlockByNumber(line)
        for fmt in block.layout().formats():
            if fmt.start <= column < fmt.start + fmt.length:
                return fmt.format.foreground().color().name()
        return ""

    theme = {name: QColor(color).name() for name, (color, _bold) in LIGHT_THEME.items()}
    assert color_at(0, 0) == theme["keyword"]  # def
    assert color_at(0, 4) == theme["definition"]  # handler
    assert color_at(0, 30) == theme["comment"]
    assert color_at(1, 4) == theme["keyword"]  # return
    assert color_at(1, 11) == theme["string"]
    assert color_at(1, 17) == theme["builtin"]  # str
    assert color_at(1, 21) == theme["number"]
    assert color_at(3, 2) == theme["string"]  # inside the triple-quoted string, not a comment
    assert color_at(2, 0) == ""


def test_line_number_gutter_grows_with_the_text(qtbot):
    editor = CodeEditor()
    qtbot.addWidget(editor)
    editor.setPlainText("x = 1\n" * 5)
    narrow = editor.line_number_width()
    editor.setPlainText("x = 1\n" * 12_000)
    assert editor.line_number_width() > narrow > 0
    assert editor.viewportMargins().left() == editor.line_number_width()


def test_run_from_flows_page_selects_the_new_execution(desktop, workspace, qtbot):
    add_flow(workspace, "hello", HELLO_FLOW)
    window = desktop.window
    window.show_page("Flows")
    window.flows.reload()
    window.flows.open_flow("hello")

    qtbot.mouseClick(window.flows.run_button, Qt.MouseButton.LeftButton)
    dialog = window.flows.run_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.editor.setPlainText('{"name": ')
    qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    assert dialog.isVisible() and "Not valid JSON" in dialog.error_label.text()
    dialog.editor.setPlainText("[1, 2]")
    qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    assert dialog.isVisible() and "must be a JSON object" in dialog.error_label.text()
    assert workspace.count_executions() == 0
    dialog.editor.setPlainText('{"name": "Ada"}')
    qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)

    assert window.current_page() == EXECUTIONS
    [execution] = workspace.list_executions()
    page = window.executions

    def selected() -> bool:
        index = page.view.selectionModel().currentIndex()
        return index.isValid() and page.model.data(index, ID_ROLE) == execution.id

    qtbot.waitUntil(selected, timeout=10_000)
    qtbot.waitUntil(lambda: workspace.get_execution(execution.id).status == ENDED_SUCCESS, timeout=20_000)
    qtbot.waitUntil(lambda: page.details.fields["status"].text() == "Success", timeout=10_000)
    assert execution.inputs == {"name": "Ada"}
    assert '"greeting": "Hello, Ada"' in page.details.outputs_view.toPlainText()
    qtbot.waitUntil(lambda: "hello Ada" in page.details.log_view.toPlainText(), timeout=10_000)
