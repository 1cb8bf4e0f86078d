"""The desktop app (PySide6). Nothing outside this package imports Qt.

PySide6-Essentials 6.12.0 on CPython 3.11 drops references to the singletons that
Python 3.12 made immortal: to ``None`` each time a wrapped C++ method returns nothing
(``QLabel.setText``, ``beginInsertRows``, ``QSyntaxHighlighter.setFormat``, ...), and
to ``True`` each time a signal calls a Python slot. On 3.12+ that is harmless; on 3.11
these objects start with a few thousand references and the process aborts with
"none_dealloc" or "bool_dealloc" within seconds of use. ``guard_singleton_refcounts``
detects the fault and gives the singletons the effectively unbounded reference count
that 3.12 gives them. It does nothing on a PySide6 without the fault or on 3.12+.
"""

from __future__ import annotations

import sys

GUARD = 1 << 48
SINGLETONS = (None, True, False, Ellipsis, NotImplemented)
guard_applied = False


def _pyside_drops_singletons() -> bool:
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        fired = Signal()

    probe = _Probe()
    probe.fired.connect(lambda: None)
    before = (sys.getrefcount(None), sys.getrefcount(True))
    for _ in range(64):
        probe.setObjectName("probe")
        probe.fired.emit()
    after = (sys.getrefcount(None), sys.getrefcount(True))
    return any(b - a >= 32 for b, a in zip(before, after, strict=True))


def guard_singleton_refcounts() -> bool:
    """True when the guard is (now) in place."""
    global guard_applied
    if guard_applied:
        return True
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    if not _pyside_drops_singletons():
        return False
    import ctypes

    for singleton in SINGLETONS:
        ctypes.c_ssize_t.from_address(id(singleton)).value += GUARD
    guard_applied = True
    return True


guard_singleton_refcounts()
