"""The worker process side: runs one flow script, talks to the engine over a pipe.

A worker is started ahead of time from the forkserver (which has this module and
flow_api pre-imported), sits idle until the engine hands it one job, runs it and
exits. Messages are JSON (never pickle): the engine does not trust worker data.
"""

from __future__ import annotations

import inspect
import io
import json
import linecache
import os
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

import flow_api

# Loaded once in the forkserver (this module is preloaded there), not in every worker.
if sys.platform.startswith("linux"):
    import ctypes

    try:
        _LIBC: Any = ctypes.CDLL(None, use_errno=True)
    except OSError:
        _LIBC = None
else:
    _LIBC = None


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, default=_fallback).encode()


def _fallback(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


class PipeBridge(flow_api._Bridge):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.seq = 0

    def send(self, message: dict[str, Any]) -> None:
        with self.lock:
            self.conn.send_bytes(encode(message))

    def call(self, method: str, **kwargs: Any) -> Any:
        with self.lock:
            self.seq += 1
            self.conn.send_bytes(
                encode({"op": "call", "seq": self.seq, "method": method, "args": kwargs})
            )
            reply = json.loads(self.conn.recv_bytes())
        if reply.get("ok"):
            return reply.get("value")
        error = flow_api.ERRORS.get(reply.get("error", ""), flow_api.FlowApiError)
        raise error(reply.get("message", "the workspace refused the call"))


class LogStream(io.TextIOBase):
    """stdout/stderr of the flow: every complete line becomes a log line with its time."""

    def __init__(self, bridge: PipeBridge, stream: str) -> None:
        self.bridge = bridge
        self.stream = stream
        self.buffer_text = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.buffer_text += text
        while "\n" in self.buffer_text:
            line, self.buffer_text = self.buffer_text.split("\n", 1)
            self._emit(line)
        if len(self.buffer_text) > 64 * 1024:
            self._emit(self.buffer_text)
            self.buffer_text = ""
        return len(text)

    def flush(self) -> None:
        if self.buffer_text:
            self._emit(self.buffer_text)
            self.buffer_text = ""

    def _emit(self, line: str) -> None:
        self.bridge.send({"op": "log", "stream": self.stream, "text": line, "ts": time.time()})


def _format_error(exc: BaseException, filename: str) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    # Keep the frames from the flow script on; the worker's own frames mean nothing to users.
    for index, frame in enumerate(frames):
        if frame.filename == filename:
            frames = frames[index:]
            break
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines).rstrip()


def run_job(bridge: PipeBridge, job: dict[str, Any]) -> tuple[str, str | None]:
    filename = f"<flow {job['flow']}>"
    this = flow_api.Execution(job["id"], is_this=True)
    system = flow_api.System()
    try:
        namespace: dict[str, Any] = {"__name__": f"flow_{job['id']}", "__file__": filename}
        # linecache lets tracebacks show the script's own lines.
        linecache.cache[filename] = (
            len(job["source"]),
            None,
            job["source"].splitlines(keepends=True),
            filename,
        )
        exec(compile(job["source"], filename, "exec"), namespace)  # noqa: S102 - running the flow is the point
        handler = namespace.get("handler")
        if not callable(handler):
            return "ENDED_ERROR", "the flow script does not define handler(system, this)"
        params = inspect.signature(handler).parameters
        if len(params) >= 3:
            handler(system, this, job["inputs"])
        else:
            handler(system, this)
    except flow_api.ExecutionEnded as ended:
        return ended.status, ended.message
    except SystemExit as exc:
        return (
            "ENDED_ERROR",
            f"the flow called sys.exit({exc.code!r}); return from handler or use "
            "this.success()/this.error() to end an execution",
        )
    except BaseException as exc:  # noqa: BLE001 - any failure of user code ends the execution
        return "ENDED_ERROR", _format_error(exc, filename)
    return "ENDED_SUCCESS", None


def _die_with_parent() -> None:
    """A worker must not outlive its workspace: SIGKILL it when the forkserver dies.

    The forkserver itself exits when the engine process dies (however it dies),
    so a killed workspace leaves no flow running on. Linux only; elsewhere the
    engine's pipe closing is noticed at the worker's next flow_api call.
    """
    try:
        # Every forkserver child inherits the write end of the pipe that keeps the
        # forkserver alive; a spinning worker holding it would keep the forkserver,
        # and so itself, alive after the engine died.
        from multiprocessing import forkserver

        alive = forkserver._forkserver._forkserver_alive_fd
        if alive is not None:
            os.close(alive)
            forkserver._forkserver._forkserver_alive_fd = None
    except (AttributeError, OSError):
        pass
    if _LIBC is not None:
        parent = os.getppid()
        try:
            pr_set_pdeathsig = 1
            _LIBC.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)


def worker_main(conn: Connection) -> None:
    """Entry point of a worker process."""
    _die_with_parent()
    try:
        job = json.loads(conn.recv_bytes())
    except (EOFError, OSError):
        return  # the engine stopped before it needed this spare worker
    bridge = PipeBridge(conn)
    flow_api._bridge = bridge
    out, err = LogStream(bridge, "stdout"), LogStream(bridge, "stderr")
    sys.stdout, sys.stderr = out, err  # type: ignore[assignment]
    status, message = run_job(bridge, job)
    try:
        out.flush()
        err.flush()
        bridge.send({"op": "done", "status": status, "message": message})
    except (OSError, EOFError):
        pass
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
