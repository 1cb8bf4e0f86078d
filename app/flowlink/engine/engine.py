"""Runs flow scripts, each execution in a worker process of its own.

One engine thread owns every state change of executions: it schedules PENDING
executions into free slots, answers the workers' flow_api calls, and ends
executions whose worker exits, is killed or runs out of time. Workers come
ready-made from a spawner thread (forked from a pre-loaded forkserver), so
starting a flow costs a pipe write, not an interpreter start.
"""

from __future__ import annotations

import base64
import json
import logging
import multiprocessing
import os
import queue
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as mp_wait
from typing import Any

from flowlink.engine.spawning import worker_context
from flowlink.errors import FlowlinkError, NotFoundError, ValidationError
from flowlink.workspace.records import (
    ENDED_CANCELLED,
    ENDED_ERROR,
    PAUSED,
    PENDING,
    RUNNING,
    TERMINAL,
    WAITING,
)
from flowlink.workspace.store import describe_error, now
from flowlink.workspace.workspace import Workspace

log = logging.getLogger(__name__)

RESTARTED = "workspace restarted"
STOPPED = "workspace stopped while this execution was running"
POLL_SECONDS = 0.05
SPARE_WORKERS = 2
MAX_LOG_LINE = 16 * 1024

ChangeListener = Callable[[list[int]], None]


class RemoteRunner:
    """What the link layer plugs in to run a child in another workspace."""

    def start(self, parent_id: int, remote: str, flow: str, inputs: dict[str, Any],
              name: str | None) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def cancel(self, execution_id: int) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class NoLinks(RemoteRunner):
    def start(self, parent_id: int, remote: str, flow: str, inputs: dict[str, Any],
              name: str | None) -> int:
        raise FlowlinkError(
            f"cannot run '{flow}' in workspace '{remote}': this Flowlink process has no "
            "workspace links; set one up with 'flowlink link add' and run it under 'flowlink serve' "
            "or the desktop app"
        )

    def cancel(self, execution_id: int) -> None:
        pass


@dataclass
class WorkerHandle:
    process: multiprocessing.process.BaseProcess
    conn: Connection

    def kill(self) -> None:
        if self.process.is_alive():
            try:
                self.process.kill()
            except (OSError, ValueError):
                pass


@dataclass
class WaitRequest:
    seq: int
    ids: list[int]
    deadline: float | None


@dataclass
class Running:
    execution_id: int
    worker: WorkerHandle
    deadline: float | None
    max_runtime: float | None
    holds_slot: bool = True
    waiting: WaitRequest | None = None
    ended: bool = False
    logs: list[tuple[float, str, str]] = field(default_factory=list)
    unhandled: list[bytes] = field(default_factory=list)  # kept while the database refuses writes


class Spawner:
    """Keeps a few idle workers started ahead of need, off the engine thread."""

    def __init__(self, spares: int) -> None:
        self.ctx, self.process_class = worker_context()
        self.ready: queue.Queue[WorkerHandle] = queue.Queue()
        self.spares = spares
        self.wanted = threading.Semaphore(spares)
        self.stopping = False
        self.on_ready: Callable[[], None] = lambda: None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="flowlink-spawner", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        from flowlink.engine.worker import worker_main

        while True:
            self.wanted.acquire()
            if self.stopping:
                return
            try:
                parent, child = self.ctx.Pipe(duplex=True)
                process = self.process_class(target=worker_main, args=(child,), daemon=True)
                process.start()
                child.close()
            except BaseException as exc:  # noqa: BLE001 - reported to the engine
                self.error = exc
                self.on_ready()
                return
            self.ready.put(WorkerHandle(process, parent))
            self.on_ready()

    def take(self) -> WorkerHandle | None:
        try:
            handle = self.ready.get_nowait()
        except queue.Empty:
            return None
        self.wanted.release()
        return handle

    def stop(self) -> None:
        self.stopping = True
        self.wanted.release()
        self.thread.join(timeout=10)
        while True:
            try:
                handle = self.ready.get_nowait()
            except queue.Empty:
                break
            handle.conn.close()
            handle.process.join(timeout=2)
            handle.kill()


class Engine:
    def __init__(self, workspace: Workspace, *, parallelism: int | None = None) -> None:
        self.workspace = workspace
        self.parallelism = parallelism or 2 * (os.cpu_count() or 1)
        self.remote: RemoteRunner = NoLinks()
        self.listeners: list[ChangeListener] = []
        self._running: dict[int, Running] = {}
        self._by_conn: dict[Connection, Running] = {}
        self._waiters: dict[int, set[int]] = {}  # child id -> ids of parents waiting on it
        self._changed: set[int] = set()
        self._ended = threading.Condition()
        self._generation = 0
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = False
        self._dirty = True
        self._data_version = -1
        self._spawner = Spawner(min(SPARE_WORKERS, self.parallelism))
        self._spawner.on_ready = self.wake
        self._thread = threading.Thread(target=self._loop, name="flowlink-engine", daemon=True)
        self._started = threading.Event()
        self._fatal: BaseException | None = None
        self._external: queue.Queue[tuple[list[int], list[int]]] = queue.Queue()

    # -- public API (any thread) ------------------------------------------

    def start(self) -> None:
        self.recover()
        self._spawner.start()
        self._thread.start()
        self._started.wait()

    def stop(self, timeout: float = 10.0) -> None:
        if not self._thread.is_alive():
            self._spawner.stop()
            return
        self._stopping = True
        self.wake()
        self._thread.join(timeout)
        self._spawner.stop()

    def wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # the buffer is full of wake-ups already

    def submit(self, flow: str, inputs: dict[str, Any] | None = None, **kwargs: Any) -> int:
        execution_id = self.workspace.create_execution(flow, inputs, **kwargs)
        self._dirty = True
        self.wake()
        return execution_id

    def cancel(self, execution_id: int) -> None:
        self.workspace.request_cancel(execution_id)
        self._dirty = True
        self.wake()

    def external_changes(self, changed: list[int], ended: list[int], started: bool) -> None:
        """Another thread (the link layer) changed executions: resume waiters, run new work."""
        self._external.put((list(changed), list(ended)))
        if started:
            self._dirty = True
        self.wake()

    def wait_ended(self, ids: list[int], timeout: float | None = None) -> bool:
        """Block until all ``ids`` are terminal (True) or the timeout passes (False).

        The store is read outside the condition's lock, so a waiter never holds up
        the engine thread's notifications.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        remaining_ids = set(ids)
        while True:
            with self._ended:
                generation = self._generation
            remaining_ids -= self._terminal_among(remaining_ids)
            if not remaining_ids:
                return True
            if self._fatal is not None:
                raise FlowlinkError(f"the engine stopped: {self._fatal}")
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            with self._ended:
                if self._generation == generation:
                    self._ended.wait(POLL_SECONDS if remaining is None else min(remaining, 0.5))

    def _terminal_among(self, ids: set[int]) -> set[int]:
        found: set[int] = set()
        pending = list(ids)
        conn = self.workspace.store.conn
        for start in range(0, len(pending), 500):
            chunk = pending[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT id FROM executions WHERE id IN ({marks}) AND status IN (?, ?, ?)",  # noqa: S608
                [*chunk, *TERMINAL],
            )
            found.update(r[0] for r in rows)
        return found

    @property
    def busy(self) -> bool:
        return bool(self._running) or self._has_pending()

    def _has_pending(self) -> bool:
        row = self.workspace.store.conn.execute(
            "SELECT 1 FROM executions WHERE status = ? AND workspace IS NULL LIMIT 1", (PENDING,)
        ).fetchone()
        return row is not None

    def recover(self) -> list[int]:
        ids = recover(self.workspace)
        if ids:
            self._notify(ids)
        return ids

    # -- engine thread ----------------------------------------------------

    def _loop(self) -> None:
        self._started.set()
        failing = 0
        try:
            while not self._stopping:
                try:
                    self._tick()
                    failing = 0
                except sqlite3.Error as exc:
                    # The database refuses writes for now (read-only, disk full): what the
                    # workers said stays unhandled, and is handled once it can be written.
                    failing += 1
                    if failing == 1 or failing % 30 == 0:
                        log.warning("engine: %s", describe_error(exc, self.workspace.store.path))
                    deadline = time.monotonic() + min(2.0, 0.05 * 2 ** min(failing, 6))
                    while not self._stopping and time.monotonic() < deadline:
                        time.sleep(0.05)
        except BaseException as exc:  # noqa: BLE001 - reported through wait_ended
            log.exception("engine loop failed")
            self._fatal = exc
        finally:
            self._shutdown()

    def _tick(self) -> None:
        for run in list(self._running.values()):
            if run.unhandled:
                self._drain(run)
        self._poll_external()
        self._schedule()
        waitables: list[Any] = [self._wake_r]
        for run in self._running.values():
            waitables.append(run.worker.conn)
            waitables.append(run.worker.process.sentinel)
        ready = mp_wait(waitables, timeout=self._timeout())
        sentinels: list[int] = []
        for obj in ready:
            if obj is self._wake_r:
                try:
                    while self._wake_r.recv(4096):
                        pass
                except (BlockingIOError, OSError):
                    pass
                self._dirty = True
            elif isinstance(obj, int):
                sentinels.append(obj)
            else:
                run = self._by_conn.get(obj)
                if run is not None:
                    self._drain(run)
        for sentinel in sentinels:
            for run in list(self._running.values()):
                if run.worker.process.sentinel == sentinel:
                    self._drain(run)
                    self._worker_exited(run)
        self._apply_external()
        self._check_deadlines()
        self._flush()

    def _apply_external(self) -> None:
        while True:
            try:
                changed, ended = self._external.get_nowait()
            except queue.Empty:
                return
            self._changed.update(changed)
            for execution_id in ended:
                self._resume_waiters(execution_id)

    def _timeout(self) -> float:
        timeout = POLL_SECONDS
        t = time.monotonic()
        for run in self._running.values():
            for deadline in (run.deadline, run.waiting.deadline if run.waiting else None):
                if deadline is not None:
                    timeout = min(timeout, max(0.0, deadline - t))
        return timeout

    def _poll_external(self) -> None:
        version = self.workspace.store.data_version()
        if version != self._data_version:
            self._data_version = version
            self._dirty = True
            store = self.workspace.store
            for row in store.conn.execute(
                "SELECT id FROM executions WHERE cancel_requested = 1"
            ).fetchall():
                self._cancel_tree(row[0])

    def _slots_used(self) -> int:
        return sum(1 for r in self._running.values() if r.holds_slot)

    def _schedule(self) -> None:
        if not self._dirty:
            return
        if self._spawner.error is not None:
            raise FlowlinkError(f"cannot start worker processes: {self._spawner.error}")
        free = self.parallelism - self._slots_used()
        if free <= 0:
            return
        rows = self.workspace.store.conn.execute(
            "SELECT id, flow, inputs, max_runtime FROM executions "
            "WHERE status = ? AND workspace IS NULL ORDER BY id LIMIT ?",
            (PENDING, free),
        ).fetchall()
        self._dirty = False
        for row in rows:
            worker = self._spawner.take()
            if worker is None:
                self._dirty = True  # the spawner wakes us when one is ready
                return
            self._dispatch(row["id"], row["flow"], row["inputs"], row["max_runtime"], worker)

    def _dispatch(self, execution_id: int, flow: str, inputs: str, max_runtime: float | None,
                  worker: WorkerHandle) -> None:
        try:
            source = self.workspace.get_flow(flow)
        except NotFoundError:
            worker.conn.close()
            self._end(execution_id, ENDED_ERROR, f"the flow '{flow}' no longer exists")
            return
        started = now()
        try:
            with self.workspace.store.transaction() as tx:
                cur = tx.execute(
                    "UPDATE executions SET status = ?, started_at = ?, version = version + 1 "
                    "WHERE id = ? AND status = ?",
                    (RUNNING, started, execution_id, PENDING),
                )
                if cur.rowcount == 0:
                    worker.conn.close()
                    return
                self.workspace.changed(tx, [execution_id])
        except sqlite3.Error:
            worker.conn.close()
            self._dirty = True  # schedule it again once the database takes writes
            raise
        self.workspace.notify_outbox()
        run = Running(
            execution_id=execution_id,
            worker=worker,
            deadline=None if max_runtime is None else time.monotonic() + max_runtime,
            max_runtime=max_runtime,
        )
        self._running[execution_id] = run
        self._by_conn[worker.conn] = run
        job = {
            "op": "run",
            "id": execution_id,
            "flow": flow,
            "source": source,
            "inputs": json.loads(inputs),
        }
        try:
            worker.conn.send_bytes(json.dumps(job).encode())
        except OSError:
            pass  # the sentinel reports the dead worker
        self._changed.add(execution_id)

    def _drain(self, run: Running) -> None:
        conn = run.worker.conn
        try:
            while run.unhandled:
                self._handle(run, run.unhandled[0])
                run.unhandled.pop(0)
            while not conn.closed and conn.poll():
                run.unhandled.append(conn.recv_bytes())
                self._handle(run, run.unhandled[0])
                run.unhandled.pop(0)
        except (EOFError, OSError):
            pass
        except ValueError:  # malformed JSON: the flow wrote garbage into our pipe
            run.unhandled.clear()
            self._end(run.execution_id, ENDED_ERROR, "the worker sent a malformed message")
            run.worker.kill()

    def _handle(self, run: Running, raw: bytes) -> None:
        message = json.loads(raw)
        op = message.get("op")
        if op == "log":
            text = str(message.get("text", ""))[:MAX_LOG_LINE]
            run.logs.append((float(message.get("ts") or now()), str(message.get("stream")), text))
        elif op == "done":
            self._end(run.execution_id, message.get("status", ENDED_ERROR), message.get("message"))
        elif op == "call":
            self._call(run, message)

    def _reply(self, run: Running, seq: int, value: Any = None, error: BaseException | None = None) -> None:
        if error is None:
            reply = {"seq": seq, "ok": True, "value": value}
        else:
            reply = {"seq": seq, "ok": False, "error": _error_name(error), "message": str(error)}
        try:
            run.worker.conn.send_bytes(json.dumps(reply).encode())
        except OSError:
            pass

    def _call(self, run: Running, message: dict[str, Any]) -> None:
        seq = message.get("seq", 0)
        method = message.get("method")
        args = message.get("args") or {}
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            self._reply(run, seq, error=ValidationError("method", f"unknown call {method!r}"))
            return
        try:
            result = handler(run, seq, **args)
        except (FlowlinkError, TypeError, ValueError, KeyError) as exc:
            self._reply(run, seq, error=exc)
            return
        if result is not _DEFERRED:
            self._reply(run, seq, result)

    # -- flow_api calls ---------------------------------------------------

    def _api_get(self, run: Running, seq: int, id: int, field: str) -> Any:  # noqa: A002
        ex = self.workspace.get_execution(id)
        if field == "workspace":
            return ex.workspace or self.workspace.name
        return getattr(ex, field)

    def _api_save(self, run: Running, seq: int, id: int, fields: dict[str, Any]) -> None:  # noqa: A002
        sets, args = [], []
        if "output_value" in fields:
            sets.append("outputs = ?")
            args.append(json.dumps(fields["output_value"]))
        if "message" in fields:
            sets.append("message = ?")
            args.append(None if fields["message"] is None else str(fields["message"]))
        if "name" in fields:
            sets.append("name = ?")
            args.append(str(fields["name"]))
        if sets:
            self._update(id, ", ".join(sets), args)

    def _api_set_output(self, run: Running, seq: int, id: int, key: str, value: Any) -> None:  # noqa: A002
        ex = self.workspace.get_execution(id)
        outputs = dict(ex.outputs)
        outputs[key] = value
        self._update(id, "outputs = ?", [json.dumps(outputs)])

    def _api_log(self, run: Running, seq: int, id: int, text: str) -> None:  # noqa: A002
        run.logs.append((now(), "log", str(text)[:MAX_LOG_LINE]))

    def _api_cancel(self, run: Running, seq: int, id: int) -> None:  # noqa: A002
        self.workspace.get_execution(id)
        self._cancel_tree(id)

    def _api_flow(self, run: Running, seq: int, parent: int, flow: str, inputs: dict[str, Any],
                  name: str | None, remote: str | None, max_runtime: float | None) -> int:
        if not isinstance(inputs, dict):
            raise ValidationError("inputs", "inputs must be a dict")
        if remote:
            child = self.remote.start(parent, remote, flow, inputs, name)
        else:
            child = self.workspace.create_execution(
                flow, inputs, name=name, parent_id=parent, max_runtime=max_runtime,
                started_by=f"execution:{parent}",
            )
            self._dirty = True
        self._changed.add(child)
        return child

    def _api_wait(self, run: Running, seq: int, id: int, ids: list[int],  # noqa: A002
                  timeout: float | None) -> Any:
        ids = [int(i) for i in ids]
        for child in ids:
            self.workspace.get_execution(child)
        if self._all_ended(ids):
            return self._wait_result(ids)
        run.waiting = WaitRequest(
            seq=seq, ids=ids, deadline=None if timeout is None else time.monotonic() + timeout
        )
        run.holds_slot = False
        self._dirty = True
        for child in ids:
            self._waiters.setdefault(child, set()).add(run.execution_id)
        self._set_status(run.execution_id, WAITING)
        return _DEFERRED

    def _api_end(self, run: Running, seq: int, id: int, status: str, message: str | None) -> None:  # noqa: A002
        if status not in TERMINAL:
            raise ValidationError("status", f"{status!r} is not an end status; use one of {', '.join(sorted(TERMINAL))}")
        self._end(id, status, message)

    def _api_setting_get(self, run: Running, seq: int, name: str) -> Any:
        return self.workspace.get_setting(name)

    def _api_setting_exists(self, run: Running, seq: int, name: str) -> bool:
        return self.workspace.setting_exists(name)

    def _api_setting_save(self, run: Running, seq: int, name: str, value: Any) -> None:
        self.workspace.set_setting(name, value)

    def _api_file_get(self, run: Running, seq: int, name: str) -> str:
        return base64.b64encode(self.workspace.get_file(name)).decode()

    def _api_file_exists(self, run: Running, seq: int, name: str) -> bool:
        return self.workspace.file_exists(name)

    def _api_file_save(self, run: Running, seq: int, name: str, content: str) -> None:
        self.workspace.put_file(name, base64.b64decode(content))

    def _api_flow_exists(self, run: Running, seq: int, name: str) -> bool:
        return self.workspace.flow_exists(name)

    def _api_flow_source(self, run: Running, seq: int, name: str) -> str:
        return self.workspace.get_flow(name)

    def _api_execution_exists(self, run: Running, seq: int, id: int) -> bool:  # noqa: A002
        return self.workspace.find_execution(id) is not None

    def _api_env_name(self, run: Running, seq: int) -> str:
        return self.workspace.name

    # -- state changes ----------------------------------------------------

    def _update(self, execution_id: int, sets: str, args: list[Any]) -> None:
        with self.workspace.store.transaction() as tx:
            tx.execute(
                f"UPDATE executions SET {sets}, version = version + 1 WHERE id = ?",  # noqa: S608 - fixed column names
                [*args, execution_id],
            )
            self.workspace.changed(tx, [execution_id])
        self.workspace.notify_outbox()
        self._changed.add(execution_id)

    def _set_status(self, execution_id: int, status: str) -> None:
        """Move a live execution between non-terminal states; ended ones stay ended.

        Only shown, never waited on: when the database refuses the write, the execution
        goes on (a wait must not hang, nor be answered twice, for want of a status)."""
        try:
            with self.workspace.store.transaction() as tx:
                tx.execute(
                    "UPDATE executions SET status = ?, version = version + 1 "
                    "WHERE id = ? AND status NOT IN (?, ?, ?)",
                    (status, execution_id, *TERMINAL),
                )
                self.workspace.changed(tx, [execution_id])
        except sqlite3.Error as exc:
            log.warning("engine: execution %s stays shown as it was: %s", execution_id,
                        describe_error(exc, self.workspace.store.path))
            return
        self.workspace.notify_outbox()
        self._changed.add(execution_id)

    def _all_ended(self, ids: list[int]) -> bool:
        marks = ",".join("?" * len(ids))
        rows = self.workspace.store.conn.execute(
            f"SELECT count(*) FROM executions WHERE id IN ({marks}) AND status IN (?, ?, ?)",  # noqa: S608
            [*ids, *TERMINAL],
        ).fetchone()
        return rows[0] == len(set(ids))

    def _wait_result(self, ids: list[int]) -> list[dict[str, Any]]:
        result = []
        for child in ids:
            ex = self.workspace.get_execution(child)
            result.append({"id": ex.id, "flow": ex.flow, "status": ex.status, "message": ex.message})
        return result

    def _end(self, execution_id: int, status: str, message: str | None) -> bool:
        """Make an execution terminal (once; later ends are ignored) and wake its waiters."""
        with self.workspace.store.transaction() as tx:
            cur = tx.execute(
                "UPDATE executions SET status = ?, message = ?, ended_at = ?, cancel_requested = 0, "
                "version = version + 1 WHERE id = ? AND status NOT IN (?, ?, ?)",
                (status, message, now(), execution_id, *TERMINAL),
            )
            run = self._running.get(execution_id)
            if run is not None:
                self._write_logs(tx, run)
            if cur.rowcount:
                self.workspace.changed(tx, [execution_id])
        self.workspace.notify_outbox()
        if cur.rowcount == 0:
            return False
        self._changed.add(execution_id)
        if run is not None:
            run.ended = True
        self._resume_waiters(execution_id)
        return True

    def _resume_waiters(self, child_id: int) -> None:
        for parent_id in self._waiters.pop(child_id, set()):
            parent = self._running.get(parent_id)
            if parent is None or parent.waiting is None:
                continue
            if self._all_ended(parent.waiting.ids):
                self._finish_wait(parent, self._wait_result(parent.waiting.ids))

    def _finish_wait(self, parent: Running, result: Any, error: BaseException | None = None) -> None:
        assert parent.waiting is not None
        seq, ids = parent.waiting.seq, parent.waiting.ids
        parent.waiting = None
        parent.holds_slot = True
        for child in ids:
            waiting = self._waiters.get(child)
            if waiting is not None:
                waiting.discard(parent.execution_id)
                if not waiting:
                    del self._waiters[child]
        if not parent.ended:
            self._set_status(parent.execution_id, RUNNING)
        self._reply(parent, seq, result, error)

    def _cancel_tree(self, execution_id: int) -> None:
        ids = [execution_id, *self.workspace.descendants(execution_id)]
        for ex_id in ids:
            ex = self.workspace.find_execution(ex_id)
            if ex is None:
                continue
            if ex.terminal:
                if ex.cancel_requested:
                    self._update(ex_id, "cancel_requested = ?", [0])
                continue
            if ex.workspace is not None:
                self.remote.cancel(ex_id)
            self._end(ex_id, ENDED_CANCELLED, "cancelled")
            run = self._running.get(ex_id)
            if run is not None:
                run.worker.kill()

    def _worker_exited(self, run: Running) -> None:
        process = run.worker.process
        process.join(timeout=5)
        if not run.ended:
            code = process.exitcode
            if code is not None and code < 0:
                try:
                    how = f"was killed by signal {signal.Signals(-code).name}"
                except ValueError:
                    how = f"was killed by signal {-code}"
            else:
                how = f"exited with code {code}"
            self._end(run.execution_id, ENDED_ERROR, f"the worker process {how} before the flow ended")
        self._forget(run)

    def _forget(self, run: Running) -> None:
        self._running.pop(run.execution_id, None)
        self._by_conn.pop(run.worker.conn, None)
        if run.logs:
            with self.workspace.store.transaction() as tx:
                self._write_logs(tx, run)
        try:
            run.worker.conn.close()
        except OSError:
            pass
        try:
            run.worker.process.close()
        except ValueError:
            pass
        self._dirty = True

    def _check_deadlines(self) -> None:
        t = time.monotonic()
        for run in list(self._running.values()):
            if run.deadline is not None and t >= run.deadline and not run.ended:
                self._end(
                    run.execution_id,
                    ENDED_ERROR,
                    f"TimeoutExceededError: the execution ran longer than its max runtime of "
                    f"{run.max_runtime:g} s",
                )
                run.worker.kill()
            if run.waiting is not None and run.waiting.deadline is not None and t >= run.waiting.deadline:
                from flow_api import TimeoutExceededError

                self._finish_wait(
                    run, None, TimeoutExceededError("the children did not end within the timeout")
                )

    def _write_logs(self, tx: Any, run: Running) -> None:
        if run.logs:
            tx.executemany(
                "INSERT INTO execution_logs (execution_id, ts, stream, text) VALUES (?, ?, ?, ?)",
                [(run.execution_id, ts, stream, text) for ts, stream, text in run.logs],
            )
            run.logs.clear()
            self._changed.add(run.execution_id)

    def _flush(self) -> None:
        pending_logs = [r for r in self._running.values() if r.logs]
        if pending_logs:
            with self.workspace.store.transaction() as tx:
                for run in pending_logs:
                    self._write_logs(tx, run)
        if self._changed:
            changed = sorted(self._changed)
            self._changed.clear()
            self._notify(changed)

    def _notify(self, ids: list[int]) -> None:
        with self._ended:
            self._generation += 1
            self._ended.notify_all()
        for listener in list(self.listeners):
            try:
                listener(ids)
            except Exception:  # noqa: BLE001 - a broken listener must not stop the engine
                log.exception("execution listener failed")

    def _shutdown(self) -> None:
        for run in list(self._running.values()):
            if not run.ended:
                self._end(run.execution_id, ENDED_ERROR, STOPPED)
            run.worker.kill()
            run.worker.process.join(timeout=5)
            self._forget(run)
        try:
            self._flush()
        except Exception:  # noqa: BLE001
            log.exception("final flush failed")
        self._wake_r.close()
        self._wake_w.close()
        with self._ended:
            self._ended.notify_all()


def recover(workspace: Workspace) -> list[int]:
    """End what a dead owner left RUNNING/WAITING: nothing runs it any more.

    Only the owner-lock holder may call this.
    """
    with workspace.store.transaction() as tx:
        ids = [
            r[0]
            for r in tx.execute(
                "SELECT id FROM executions WHERE status IN (?, ?, ?) AND workspace IS NULL",
                (RUNNING, WAITING, PAUSED),
            )
        ]
        for ex_id in ids:
            tx.execute(
                "UPDATE executions SET status = ?, message = ?, ended_at = ?, "
                "version = version + 1 WHERE id = ?",
                (ENDED_ERROR, RESTARTED, now(), ex_id),
            )
        workspace.changed(tx, ids)
    workspace.notify_outbox()
    if ids:
        log.info("ended %d executions left running by a previous process", len(ids))
    return ids


class _Deferred:
    pass


_DEFERRED = _Deferred()


def _error_name(error: BaseException) -> str:
    import flow_api

    if isinstance(error, flow_api.FlowApiError):
        return type(error).__name__
    if isinstance(error, NotFoundError):
        return "ResourceNotFoundError"
    if isinstance(error, PermissionError) or type(error).__name__ == "PermissionDeniedError":
        return "PermissionDenied"
    if isinstance(error, ValidationError | TypeError | ValueError | KeyError):
        return "InvalidInputError"
    return "FlowApiError"
