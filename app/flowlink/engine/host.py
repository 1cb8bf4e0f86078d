"""Who runs the engine for a data dir: this process if it can take the owner lock,
otherwise the process that holds it (the desktop app, `flowlink serve`, or a
background engine), to which work is handed through the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flowlink.engine.engine import Engine, recover
from flowlink.workspace.ownership import OwnerLock, current_owner
from flowlink.workspace.workspace import Workspace

POLL_SECONDS = 0.05


class EngineHost:
    def __init__(self, workspace: Workspace, kind: str) -> None:
        self.workspace = workspace
        self.kind = kind

    def owner(self) -> dict[str, Any] | None:
        return current_owner(self.workspace.data_dir)

    def _all_ended(self, ids: list[int]) -> bool:
        return all(self.workspace.get_execution(i).terminal for i in ids)

    def run_until_ended(
        self,
        ids: list[int],
        timeout: float | None = None,
        on_handoff: Callable[[dict[str, Any]], None] | None = None,
    ) -> bool:
        """Make sure ``ids`` run, here or in the owning process; True when all ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        told = False
        while True:
            lock = OwnerLock.try_acquire(self.workspace.data_dir, self.kind)
            if lock is not None:
                try:
                    return self._run_here(ids, deadline)
                finally:
                    lock.release()
            owner = self.owner()
            if owner is not None and not told and on_handoff is not None:
                on_handoff(owner)
                told = True
            # Another process runs the engine: follow the store until the work ends,
            # or until that process goes away and this one can take over.
            version = -1
            while True:
                current = self.workspace.store.data_version()
                if current != version:
                    version = current
                    if self._all_ended(ids):
                        return True
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                if self.owner() is None:
                    break
                time.sleep(POLL_SECONDS)

    def _run_here(self, ids: list[int], deadline: float | None) -> bool:
        engine = Engine(self.workspace)
        engine.start()
        try:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ended = engine.wait_ended(ids, remaining)
            if ended:
                # Children started with wait=False may still run; they end here too
                # rather than being cut off when this process exits.
                while engine.busy:
                    time.sleep(POLL_SECONDS)
            return ended
        finally:
            engine.stop()

    def run_until_idle(self, idle_seconds: float) -> bool:
        lock = OwnerLock.try_acquire(self.workspace.data_dir, self.kind)
        if lock is None:
            return False  # someone else runs the engine: nothing to do
        engine = Engine(self.workspace)
        try:
            engine.start()
            idle_since = time.monotonic()
            while time.monotonic() - idle_since < idle_seconds:
                if engine.busy:
                    idle_since = time.monotonic()
                time.sleep(POLL_SECONDS)
        finally:
            engine.stop()
            lock.release()
        return True

    def cancel(self, execution_id: int, timeout: float = 10.0) -> None:
        ws = self.workspace
        ws.get_execution(execution_id)
        lock = OwnerLock.try_acquire(ws.data_dir, self.kind)
        if lock is not None:
            try:
                recover(ws)
                ws.cancel_unowned(execution_id)
            finally:
                lock.release()
            return
        ws.request_cancel(execution_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ws.get_execution(execution_id).terminal:
                return
            time.sleep(POLL_SECONDS)
