"""One window per data dir: a second launch raises the first and exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from flowlink.gui.app import run_app
from flowlink.gui.single_instance import SingleInstance, server_name
from flowlink.workspace.ownership import current_owner


def test_names_differ_per_data_dir_and_are_stable(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert server_name(a) == server_name(tmp_path / "x" / ".." / "a")
    assert server_name(a) != server_name(b)
    assert "/" not in server_name(a) and len(server_name(a)) < 40


def test_second_instance_asks_the_first_to_raise(tmp_path, qtbot):
    first = SingleInstance(tmp_path / "ws")
    assert first.listen()
    try:
        second = SingleInstance(tmp_path / "ws")
        with qtbot.waitSignal(first.raise_requested, timeout=5000):
            assert second.signal_running()
        assert not SingleInstance(tmp_path / "other").signal_running(200)
    finally:
        first.close()


def test_a_stale_socket_is_taken_over(tmp_path, qtbot):
    if sys.platform == "win32":
        pytest.skip("named pipes leave nothing behind")
    import socket

    from PySide6.QtCore import QDir

    # What a crashed instance leaves: the socket file, with nobody listening on it.
    path = os.path.join(QDir.tempPath(), server_name(tmp_path / "ws"))
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(path)
    leftover.close()
    assert os.path.exists(path)
    fresh = SingleInstance(tmp_path / "ws")
    try:
        assert not fresh.signal_running(200)
        assert fresh.listen()
        with qtbot.waitSignal(fresh.raise_requested, timeout=5000):
            assert SingleInstance(tmp_path / "ws").signal_running()
    finally:
        fresh.close()


def test_run_app_returns_at_once_when_the_window_is_open(workspace, qtbot):
    first = SingleInstance(workspace.data_dir)
    assert first.listen()
    try:
        started = time.monotonic()
        with qtbot.waitSignal(first.raise_requested, timeout=5000):
            code = run_app(workspace.data_dir, "alice")
        assert code == 0
        assert time.monotonic() - started < 2.0
        assert current_owner(workspace.data_dir) is None, "the second launch must not run the engine"
    finally:
        first.close()


@pytest.mark.xdist_group("tray")  # tray icons of one display share the tray: one at a time
def test_real_second_launch_raises_the_running_app(workspace, qtbot, tmp_path):
    """The whole app in another process; this process is the second launch."""
    data_dir = workspace.data_dir
    workspace.close()
    env = dict(os.environ)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")  # its QSettings stay in the test folder
    if not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    process = subprocess.Popen([sys.executable, "-m", "flowlink", "--data-dir", str(data_dir)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        qtbot.waitUntil(lambda: process.poll() is not None
                        or (current_owner(data_dir) or {}).get("kind") == "desktop", timeout=30_000)
        assert process.poll() is None, process.stdout.read().decode(errors="replace")
        assert current_owner(data_dir)["pid"] == process.pid
        log_file = data_dir / "logs" / "flowlink.log"
        started = time.monotonic()
        assert run_app(data_dir, None) == 0
        assert time.monotonic() - started < 3.0
        qtbot.waitUntil(lambda: "another launch asked to raise the window" in log_file.read_text(), timeout=10_000)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert current_owner(data_dir) is None
        assert "Flowlink stopped (exit code 0)" in log_file.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
