"""Settings (JSON, validated) and Files pages."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from flowlink.gui.resources_pages import FilesPage, SettingsPage


def test_settings_json_is_validated_before_saving(workspace, qtbot):
    workspace.set_setting("smtp", {"host": "mail", "port": 25})
    page = SettingsPage(workspace)
    qtbot.addWidget(page)
    assert page.current_name() == "smtp"
    assert '"port": 25' in page.editor.toPlainText()
    page.editor.setPlainText('{\n  "host": "mail",\n  "port": 25,\n}')
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    assert "Not valid JSON" in page.error_label.text() and "line 4" in page.error_label.text()
    assert page.editor.textCursor().blockNumber() + 1 == 4
    assert workspace.get_setting("smtp") == {"host": "mail", "port": 25}
    page.editor.setPlainText('{"host": "mail", "port": 587}')
    assert not page.error_label.isVisible()
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    assert workspace.get_setting("smtp") == {"host": "mail", "port": 587}


def test_settings_new_and_remove(workspace, qtbot, monkeypatch):
    page = SettingsPage(workspace)
    qtbot.addWidget(page)
    assert not page.name_edit.isReadOnly()  # empty workspace: ready for a new one
    page.name_edit.setText("")
    page.editor.setPlainText("[1, 2]")
    assert not page.save()
    assert "not a valid setting name" in page.error_label.text()
    page.name_edit.setText("regions")
    page.editor.setPlainText('["north", "south"]')
    assert page.save()
    assert workspace.get_setting("regions") == ["north", "south"]
    assert page.current_name() == "regions" and page.name_edit.isReadOnly()
    # The confirmation box is answered by patching QMessageBox.question.
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    page.remove_current()
    assert workspace.list_settings() == []


def test_files_add_view_save_as_remove(workspace, qtbot, monkeypatch, tmp_path):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("first line\nsecond line\n")
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)))
    page = FilesPage(workspace)
    qtbot.addWidget(page)
    assert not page.save_as_button.isEnabled()

    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(text_file), ""))
    qtbot.mouseClick(page.add_button, Qt.MouseButton.LeftButton)
    assert workspace.get_file("notes.txt") == text_file.read_bytes()
    assert page.preview.toPlainText() == "first line\nsecond line\n"
    assert "text" in page.info.text()

    assert page.add_file(binary)
    assert page.current_name() == "blob.bin"
    assert "binary" in page.info.text() and page.preview.toPlainText() == ""

    out = tmp_path / "out.bin"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    qtbot.mouseClick(page.save_as_button, Qt.MouseButton.LeftButton)
    assert out.read_bytes() == bytes(range(256))

    answers = iter([QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes])
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: next(answers))
    text_file.write_text("changed\n")
    assert not page.add_file(text_file)  # "replace?" answered No
    assert workspace.get_file("notes.txt") == b"first line\nsecond line\n"
    page.select("notes.txt")
    qtbot.mouseClick(page.remove_button, Qt.MouseButton.LeftButton)  # "remove?" answered Yes
    assert workspace.list_files() == ["blob.bin"]
