"""A running workspace: engine, link syncers and (when it listens) the HTTPS endpoint.

``Runtime`` wires the parts; ``Host`` decides whether this process runs them
(it takes the data dir's owner lock) or hands work to the process that does.
`flowlink serve`, the desktop app and CLI runs all use these, so a remote call
started from any of them syncs the same way. No Qt here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowlink.engine.engine import Engine, recover
from flowlink.workspace.ownership import OwnerLock, current_owner
from flowlink.workspace.workspace import Workspace

log = logging.getLogger(__name__)
POLL_SECONDS = 0.05


class Runtime:
    def __init__(
        self,
        workspace: Workspace,
        *,
        listen: tuple[str, int] | None = None,
        tls_files: tuple[Path, Path] | None = None,
        parallelism: int | None = None,
    ) -> None:
        self.workspace = workspace
        self.engine = Engine(workspace, parallelism=parallelism)
        self.listen = listen
        self.tls_files = tls_files
        self.links: Any = None
        self.endpoint: Any = None

    def start(self) -> None:
        from flowlink.link.syncer import LinkManager

        self.links = LinkManager(self.workspace)
        self.engine.remote = self.links.remote_runner()
        self.links.exchange.listeners.append(self.engine.external_changes)
        self.engine.start()
        self.links.start()
        if self.listen is not None:
            self.start_endpoint(*self.listen)

    def start_endpoint(self, host: str, port: int) -> str:
        from flowlink.link.endpoint import LinkEndpoint

        if self.tls_files is not None:
            cert, key = self.tls_files
        else:
            if self.workspace.server_certificate_needs_renewal():
                self.workspace.renew_server_certificate()
            cert, key = self.workspace.server_tls_files()
        self.endpoint = LinkEndpoint(self.links.exchange, host, port, cert, key)
        self.endpoint.start()
        return self.endpoint.url

    def stop_endpoint(self) -> None:
        if self.endpoint is not None:
            self.endpoint.stop()
            self.endpoint = None

    def stop(self) -> None:
        self.stop_endpoint()
        if self.links is not None:
            self.links.stop()
        self.engine.stop()


class Host:
    """Runs the workspace in this process when no other process owns the data dir."""

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
            # Another process runs the workspace: follow the store until the work ends,
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
        runtime = Runtime(self.workspace)
        runtime.start()
        try:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ended = runtime.engine.wait_ended(ids, remaining)
            if ended:
                # Children started with wait=False may still run; they end here too
                # rather than being cut off when this process exits.
                while runtime.engine.busy:
                    time.sleep(POLL_SECONDS)
            return ended
        finally:
            runtime.stop()

    def run_until_idle(self, idle_seconds: float) -> bool:
        lock = OwnerLock.try_acquire(self.workspace.data_dir, self.kind)
        if lock is None:
            return False  # someone else runs the workspace: nothing to do
        runtime = Runtime(self.workspace)
        try:
            runtime.start()
            idle_since = time.monotonic()
            while time.monotonic() - idle_since < idle_seconds:
                if runtime.engine.busy:
                    idle_since = time.monotonic()
                time.sleep(POLL_SECONDS)
        finally:
            runtime.stop()
            lock.release()
        return True

    def cancel(self, execution_id: int, timeout: float = 10.0) -> None:
        ws = self.workspace
        ws.get_execution(execution_id)
        lock = OwnerLock.try_acquire(ws.data_dir, self.kind)
        if lock is not None:
            try:
                recover(ws)
                from flowlink.link.exchange import LinkExchange

                exchange = LinkExchange(ws)
                for ex_id in [execution_id, *ws.descendants(execution_id)]:
                    exchange.cancel_remote(ex_id)  # queued; sent by the next process that syncs
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
