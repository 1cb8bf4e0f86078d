"""The transactional outbox of workspace links (PROTOCOL.md section 6).

Every state change of an execution that belongs to a tree started by a linked
workspace queues an ``execution.update`` for that workspace *in the same
transaction* as the change. This lives in the workspace layer, not in the link
layer, so whichever process changes an execution (desktop, serve or a CLI run)
queues the update; the link layer only ships what is queued.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from flowlink.workspace.records import iso

MAX_MESSAGE_CHARS = 64 * 1024
MAX_OUTPUTS_BYTES = 1024 * 1024
MAX_NAME_CHARS = 1000  # what a peer accepts (PROTOCOL.md envelope shape)
MAX_OUTPUTS_DEPTH = 24  # the envelope may nest 32 levels; the update wraps outputs in 5


def json_depth(value: Any) -> int:
    """Nesting depth of containers (iterative: hostile data cannot exhaust the stack)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item)
    return deepest


def enqueue(tx: sqlite3.Connection, link: str, message: dict[str, Any]) -> int:
    """Give ``message`` the link's next seq and queue it; returns the seq."""
    tx.execute("INSERT INTO link_state (name) VALUES (?) ON CONFLICT (name) DO NOTHING", (link,))
    seq = tx.execute(
        "UPDATE link_state SET out_seq = out_seq + 1 WHERE name = ? RETURNING out_seq", (link,)
    ).fetchone()[0]
    body = dict(message)
    body["seq"] = seq
    tx.execute(
        "INSERT INTO outbox (link, seq, body, created_at) VALUES (?, ?, ?, strftime('%s','now'))",
        (link, seq, json.dumps(body, ensure_ascii=False)),
    )
    return seq


def execution_message(row: sqlite3.Row) -> dict[str, Any]:
    """The ``execution`` object of an update, bounded so one update always fits an envelope."""
    message = row["message"]
    if message is not None and len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 40] + "\n… (message cut at 64 KiB)"
    outputs_text = row["outputs"]
    # A message the peer would refuse would block the outbox for good: bound it here.
    if len(outputs_text.encode()) > MAX_OUTPUTS_BYTES:
        outputs: dict[str, Any] = {"_flowlink": "outputs larger than 1 MiB are not sent over a link"}
    else:
        outputs = json.loads(outputs_text)
        if json_depth(outputs) > MAX_OUTPUTS_DEPTH:
            outputs = {"_flowlink": f"outputs nested deeper than {MAX_OUTPUTS_DEPTH} levels are not sent over a link"}
    return {
        "id": row["id"],
        "flow": row["flow"],
        "name": row["name"][:MAX_NAME_CHARS],
        "status": row["status"],
        "message": message,
        "outputs": outputs,
        "parent_id": row["parent_id"] if row["request_id"] is None else None,
        "created_at": iso(row["created_at"]),
        "started_at": iso(row["started_at"]),
        "ended_at": iso(row["ended_at"]),
        "version": row["version"],
    }


def queue_updates(tx: sqlite3.Connection, ids: list[int]) -> list[str]:
    """Queue updates for the executions among ``ids`` that a link started; returns the links."""
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    rows = tx.execute(
        f"SELECT e.*, l.send_all_executions AS send_all FROM executions e "  # noqa: S608 - placeholders only
        f"JOIN links l ON l.name = e.origin_link "
        f"WHERE e.id IN ({marks}) AND e.origin_link IS NOT NULL AND e.workspace IS NULL",
        ids,
    ).fetchall()
    links: list[str] = []
    for row in rows:
        is_root = row["request_id"] is not None
        send_all = bool(row["send_all"])
        if not (is_root or send_all):
            continue
        enqueue(
            tx,
            row["origin_link"],
            {
                "type": "execution.update",
                "request_id": row["origin_request"],
                "execution": execution_message(row),
                "listed": send_all,
            },
        )
        links.append(row["origin_link"])
    return links
