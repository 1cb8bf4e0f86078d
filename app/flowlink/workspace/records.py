"""Executions: the record, its statuses, and its rows in the store."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PENDING = "PENDING"
RUNNING = "RUNNING"
WAITING = "WAITING"
PAUSED = "PAUSED"
ENDED_SUCCESS = "ENDED_SUCCESS"
ENDED_ERROR = "ENDED_ERROR"
ENDED_CANCELLED = "ENDED_CANCELLED"

STATUSES = (PENDING, RUNNING, WAITING, PAUSED, ENDED_SUCCESS, ENDED_ERROR, ENDED_CANCELLED)
TERMINAL = frozenset({ENDED_SUCCESS, ENDED_ERROR, ENDED_CANCELLED})
ACTIVE = frozenset({RUNNING, WAITING, PAUSED})


def is_terminal(status: str) -> bool:
    return status in TERMINAL


def iso(ts: float | None) -> str | None:
    """RFC 3339 UTC with milliseconds, as PROTOCOL.md writes times."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Execution:
    id: int
    flow: str
    name: str
    status: str
    message: str | None
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    parent_id: int | None
    workspace: str | None  # None: runs here; else the linked workspace that runs it
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    version: int = 1
    remote_id: int | None = None
    request_id: str | None = None
    listed: bool = True
    started_by: str | None = None
    max_runtime: float | None = None
    cancel_requested: bool = False
    origin_link: str | None = None  # the link whose request started this tree, if any
    origin_request: str | None = None
    remote_version: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at
        return None if end is None else max(0.0, end - self.started_at)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Execution:
        return cls(
            id=row["id"],
            flow=row["flow"],
            name=row["name"],
            status=row["status"],
            message=row["message"],
            inputs=json.loads(row["inputs"]),
            outputs=json.loads(row["outputs"]),
            parent_id=row["parent_id"],
            workspace=row["workspace"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            version=row["version"],
            remote_id=row["remote_id"],
            request_id=row["request_id"],
            listed=bool(row["listed"]),
            started_by=row["started_by"],
            max_runtime=row["max_runtime"],
            cancel_requested=bool(row["cancel_requested"]),
            origin_link=row["origin_link"],
            origin_request=row["origin_request"],
            remote_version=row["remote_version"],
        )

    def to_json(self, local_name: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "flow": self.flow,
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "parent_id": self.parent_id,
            "workspace": self.workspace or local_name,
        }


@dataclass
class LogLine:
    ts: float
    stream: str
    text: str
