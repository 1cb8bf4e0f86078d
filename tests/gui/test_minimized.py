"""--minimized: start hidden in the tray where one exists; without a tray the window shows anyway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from PySide6.QtWidgets import QSystemTrayIcon

import flowlink.gui.app
from flowlink import cli
from flowlink.workspace.ownership import current_owner


def test_the_flag_reaches_run_app(tmp_path, monkeypatch):
    calls: list[tuple] = []
    monkeypatch.setattr(flowlink.gui.app, "run_app",
                        lambda data_dir, user, start_minimized=False: calls.append((data_dir, user, start_minimized)) or 0)
    assert cli.main(["--data-dir", str(tmp_path / "ws"), "--minimized"]) == 0
    assert cli.main(["--data-dir", str(tmp_path / "ws"), "--as", "bob"]) == 0
    assert calls == [(tmp_path / "ws", None, True), (tmp_path / "ws", "bob", False)]


@pytest.mark.xdist_group("tray")  # tray icons of one display share the tray: one at a time
def test_minimized_start_hides_in_the_tray_or_shows_without_one(workspace, qtbot, tmp_path):
    data_dir = workspace.data_dir
    workspace.close()
    env = dict(os.environ)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    if not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    process = subprocess.Popen([sys.executable, "-m", "flowlink", "--data-dir", str(data_dir), "--minimized"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log_file = data_dir / "logs" / "flowlink.log"

    def decided() -> bool:
        text = log_file.read_text() if log_file.exists() else ""
        return process.poll() is not None or "started minimized" in text or "window shown" in text

    try:
        qtbot.waitUntil(decided, timeout=30_000)
        assert process.poll() is None, process.stdout.read().decode(errors="replace")
        text = log_file.read_text()
        if QSystemTrayIcon.isSystemTrayAvailable():
            assert "started minimized in the system tray" in text and "window shown" not in text
        else:
            assert "no system tray to start minimized in: showing the window" in text and "window shown" in text
        qtbot.waitUntil(lambda: (current_owner(data_dir) or {}).get("pid") == process.pid, timeout=10_000)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert "Flowlink stopped (exit code 0)" in log_file.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
