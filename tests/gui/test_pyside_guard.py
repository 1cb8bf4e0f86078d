"""The app survives PySide6 builds that drop references to None and True (6.12.0 on 3.11)."""

from __future__ import annotations

import subprocess
import sys

import flowlink.gui

STRESS = """
import os, sys
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
{guard}
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QLabel

class Ticker(QObject):
    ticked = Signal(bool)

app = QApplication([])
label = QLabel()
ticker = Ticker()
ticker.ticked.connect(lambda on: None)
for i in range(30_000):
    label.setText("x")  # returns nothing
    ticker.ticked.emit(i % 2 == 0)  # calls a Python slot
print("alive")
"""


def run(guard: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", STRESS.format(guard=guard)], capture_output=True,
                          text=True, timeout=120)


def test_thirty_thousand_qt_calls_do_not_abort_the_app():
    result = run("import flowlink.gui")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "alive"


def test_guard_is_applied_exactly_when_pyside_has_the_fault():
    unguarded = run("")
    faulty = unguarded.returncode != 0
    if faulty:
        assert "dealloc" in unguarded.stderr  # none_dealloc / bool_dealloc
    assert flowlink.gui.guard_applied == faulty
    if faulty:
        assert sys.getrefcount(None) > flowlink.gui.GUARD // 2
        assert sys.getrefcount(True) > flowlink.gui.GUARD // 2
