"""Exactly one process executes the flows of a data dir: the holder of its owner lock.

The lock is an OS file lock, so it is released when the holder dies, however it
dies; nothing stale is left to clean up. The holder writes who it is into the
lock file so other processes can say whom they handed work to.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

LOCK_NAME = "owner.lock"

if sys.platform == "win32":  # pragma: no cover - exercised by the Windows build only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class OwnerLock:
    """Held by the process that runs the engine for a data dir."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def try_acquire(cls, data_dir: Path, kind: str) -> OwnerLock | None:
        path = Path(data_dir) / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if not _try_lock(fd):
            os.close(fd)
            return None
        info = json.dumps({"pid": os.getpid(), "kind": kind}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, info, 0) if hasattr(os, "pwrite") else os.write(fd, info)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            _unlock(self._fd)
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def current_owner(data_dir: Path) -> dict[str, Any] | None:
    """Who holds the owner lock now (``{"pid", "kind"}``), or None when nobody does."""
    path = Path(data_dir) / LOCK_NAME
    if not path.exists():
        return None
    probe = OwnerLock.try_acquire(data_dir, "probe")
    if probe is not None:
        probe.release()
        return None
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    return {"pid": info.get("pid"), "kind": info.get("kind", "flowlink")}
