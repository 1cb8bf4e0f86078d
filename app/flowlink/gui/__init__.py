"""The desktop app (PySide6). Nothing outside this package imports Qt.

PySide6-Essentials 6.12.0 on CPython 3.11 drops a reference to ``None`` each time a
wrapped C++ method returns nothing (``QLabel.setText``, ``beginInsertRows``,
``QSyntaxHighlighter.setFormat``, ...) or returns an empty QVariant as None. Python
3.12 made None immortal, so it does not matter there; on 3.11 None starts with a few
thousand references and the process aborts with "none_dealloc: deallocating None"
within seconds of use. ``guard_none_refcount`` detects that and gives None the
effectively unbounded reference count that 3.12 gives it. It does nothing on a
PySide6 without the fault or on Python 3.12+.
"""

from __future__ import annotations

import sys

NONE_GUARD = 1 << 48
none_guard_applied = False


def _pyside_drops_none() -> bool:
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(64):
        probe.setObjectName("probe")
    return before - sys.getrefcount(None) >= 32


def guard_none_refcount() -> bool:
    """True when the guard is (now) in place."""
    global none_guard_applied
    if none_guard_applied:
        return True
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    if not _pyside_drops_none():
        return False
    import ctypes

    ctypes.c_ssize_t.from_address(id(None)).value += NONE_GUARD
    none_guard_applied = True
    return True


guard_none_refcount()
