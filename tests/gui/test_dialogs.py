"""First-run dialog, unexpected-error dialog and the excepthook, logging."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QDialog

from flowlink.gui.app import ExceptionReporter, setup_logging
from flowlink.gui.dialogs import ErrorDialog, FirstRunDialog, RunDialog
from flowlink.workspace.workspace import Workspace


def test_first_run_dialog_validates_the_name_inline_then_creates(tmp_path, qtbot):
    data_dir = tmp_path / "fresh"
    dialog = FirstRunDialog(data_dir, "carol")
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.name_edit.clear()
    qtbot.keyClicks(dialog.name_edit, "My Desk")
    qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
    assert dialog.error_label.isVisible()
    assert "'My Desk' is not a valid workspace name" in dialog.error_label.text()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert not Workspace.exists(data_dir)

    qtbot.keyClicks(dialog.name_edit, "x")  # typing hides the old error
    assert not dialog.error_label.isVisible()
    dialog.name_edit.clear()
    qtbot.keyClicks(dialog.name_edit, "my-desk")
    with qtbot.waitSignal(dialog.accepted, timeout=30_000):
        qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
    ws = dialog.workspace
    try:
        assert ws is not None and ws.name == "my-desk" and Workspace.exists(data_dir)
        assert ws.is_admin and ws.acting_user == "carol"
        assert ws.key_id
    finally:
        ws.close()


def test_first_run_dialog_shows_why_init_failed(tmp_path, qtbot):
    data_dir = tmp_path / "taken"
    Workspace.init(data_dir, "already", admin="alice").close()
    dialog = FirstRunDialog(data_dir, "alice")
    qtbot.addWidget(dialog)
    dialog.name_edit.setText("another")
    dialog.accept()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=30_000)
    assert "A workspace already exists" in dialog.error_label.text()
    assert dialog.workspace is None and dialog.result() != QDialog.DialogCode.Accepted


def test_run_dialog_accepts_only_an_object(qtbot):
    dialog = RunDialog("greet")
    qtbot.addWidget(dialog)
    for text, error in (("{", "Not valid JSON"), ("3", "not a number"), ('"x"', "not a string"),
                        ("null", "not null")):
        dialog.editor.setPlainText(text)
        dialog.accept()
        assert error in dialog.error_label.text(), text
        assert dialog.inputs is None
    dialog.editor.setPlainText("  ")
    dialog.accept()
    assert dialog.inputs == {}


def test_error_dialog_opens_the_log_folder(tmp_path, qtbot, monkeypatch):
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    dialog = ErrorDialog("ValueError: boom", "Traceback ...", tmp_path / "logs")
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.details.isVisible()
    qtbot.mouseClick(dialog.details_button, Qt.MouseButton.LeftButton)
    assert dialog.details.isVisible()
    qtbot.mouseClick(dialog.open_logs_button, Qt.MouseButton.LeftButton)
    assert opened == [str(tmp_path / "logs")]
    assert (tmp_path / "logs").is_dir()


def test_excepthook_logs_to_the_rotating_file_and_shows_the_dialog(tmp_path, qtbot):
    handler = setup_logging(tmp_path / "logs")
    try:
        reporter = ExceptionReporter(tmp_path / "logs")
        try:
            raise RuntimeError("the disk caught fire")
        except RuntimeError:
            reporter(*sys.exc_info())
        [dialog] = reporter.dialogs  # deletes itself on close: not handed to qtbot
        assert dialog.isVisible()
        assert dialog.message_label.text() == "RuntimeError: the disk caught fire"
        assert "Traceback" in dialog.details.toPlainText()
        dialog.reject()
        assert reporter.dialogs == []
        qtbot.waitUntil(lambda: not shiboken6.isValid(dialog))  # WA_DeleteOnClose
        handler.flush()
        text = (tmp_path / "logs" / "flowlink.log").read_text()
        assert "unexpected error" in text and "RuntimeError: the disk caught fire" in text
        assert isinstance(handler, logging.handlers.RotatingFileHandler)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


FIRST_RUN_THEN_LEAVE = """
import os, signal, sys
from pathlib import Path
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from flowlink.gui.app import ensure_application, run_app

app = ensure_application()

def window_shown():
    return any(w.isVisible() and w.windowTitle().startswith("Flowlink") for w in app.topLevelWidgets())

def leave():
    dialog = QApplication.activeModalWidget()
    if sys.argv[2] == "create" and window_shown():
        os.kill(os.getpid(), signal.SIGTERM)
    elif dialog is None:
        QTimer.singleShot(20, leave)
    elif sys.argv[2] == "cancel":
        dialog.reject()
    elif sys.argv[2] == "create":
        if not dialog.busy:
            dialog.name_edit.setText("made-here")
            dialog.accept()
        QTimer.singleShot(20, leave)
    else:
        os.kill(os.getpid(), signal.SIGTERM)

QTimer.singleShot(20, leave)
print("exit code", run_app(Path(sys.argv[1]), None))
"""


@pytest.mark.parametrize("how", ["cancel", "sigterm", "create"])
def test_leaving_the_first_run_dialog_exits_cleanly(tmp_path, how):
    """Cancel or SIGTERM: nothing created, exit 0; create: the window opens, SIGTERM quits it."""
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"))
    if not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    result = subprocess.run([sys.executable, "-c", FIRST_RUN_THEN_LEAVE, str(tmp_path / "ws"), how],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "exit code 0"
    assert "deleted directly" not in result.stderr
    if how == "create":
        ws = Workspace.open(tmp_path / "ws")
        assert ws.name == "made-here"
        ws.close()
        assert "Flowlink stopped (exit code 0)" in (tmp_path / "ws" / "logs" / "flowlink.log").read_text()
    else:
        assert not Workspace.exists(tmp_path / "ws")
