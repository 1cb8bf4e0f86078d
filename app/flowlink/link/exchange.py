"""Both ends of an exchange, independent of HTTP: build, check and apply envelopes.

``LinkExchange`` is used by the endpoint (answering requests) and by the
syncers (making requests). Applying an envelope is one SQLite transaction:
the peer's ack prunes our outbox, the messages above our recorded ``in_seq``
take effect, and ``in_seq`` moves with them (PROTOCOL.md section 6), so a
redelivery after a crash or a lost response has no second effect.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flowlink.link.checks import CheckFailure, PeerView, check_request, check_response
from flowlink.link.envelope import Envelope, new_envelope, parse_time
from flowlink.link.signing import Signer, Verifier
from flowlink.link.strict_json import MAX_BODY_BYTES
from flowlink.workspace import outbox
from flowlink.workspace.links import SyncConfig
from flowlink.workspace.records import ENDED_ERROR, PENDING, TERMINAL
from flowlink.workspace.store import now
from flowlink.workspace.workspace import Workspace

log = logging.getLogger(__name__)

SEEN_KEEP_SECONDS = 900  # PROTOCOL.md asks for at least 600
BATCH_MESSAGES = 2000
BATCH_BYTES = MAX_BODY_BYTES - 64 * 1024  # room for the envelope around the messages

AppliedListener = Callable[[list[int], list[int], bool], None]


@dataclass
class Applied:
    changed: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    started: bool = False
    applied: int = 0


class LinkExchange:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.listeners: list[AppliedListener] = []
        self._keys_lock = threading.Lock()
        self._signers: dict[tuple[str, str], Signer] = {}
        self._verifiers: dict[tuple[str, str], Verifier] = {}
        self._last_prune = 0.0
        # Links whose messages this process is pushing successfully right now (its own
        # Remote URL works): the peer's long polls need not carry them a second time.
        self.pushing: dict[str, bool] = {}

    # -- keys ----------------------------------------------------------------

    def signer(self, config: SyncConfig) -> Signer:
        kid = config.own_key_id or self.ws.key_id
        with self._keys_lock:
            signer = self._signers.get((config.name, kid))
        if signer is None:
            signer = Signer(self.ws.links.own_private_key(config))
            with self._keys_lock:
                self._signers[(config.name, kid)] = signer
        return signer

    def verifier(self, config: SyncConfig) -> Verifier:
        with self._keys_lock:
            verifier = self._verifiers.get((config.name, config.remote_key_id))
        if verifier is None:
            verifier = Verifier(self.ws.links.remote_public_key(config))
            with self._keys_lock:
                self._verifiers[(config.name, config.remote_key_id)] = verifier
        return verifier

    def peer_view(self, name: str) -> PeerView | None:
        config = self.ws.links.find(name)
        if config is None:
            return None
        if not config.enabled:
            # The disabled check comes before the signature: no key is needed.
            return PeerView(name=name, enabled=False, verifier=None)  # type: ignore[arg-type]
        return PeerView(name=name, enabled=True, verifier=self.verifier(config))

    # -- replay protection ----------------------------------------------------

    def seen(self, peer: str, envelope_id: str) -> bool:
        """True if ``envelope_id`` came from ``peer`` before; else record it (durably)."""
        t = now()
        with self.ws.store.transaction() as tx:
            cur = tx.execute(
                "INSERT INTO seen_envelopes (peer, id, seen_at) VALUES (?, ?, ?) "
                "ON CONFLICT (peer, id) DO NOTHING",
                (peer, envelope_id, t),
            )
            if t - self._last_prune > 60:
                self._last_prune = t
                tx.execute("DELETE FROM seen_envelopes WHERE seen_at < ?", (t - SEEN_KEEP_SECONDS,))
        return cur.rowcount == 0

    # -- outgoing ---------------------------------------------------------------

    def in_seq(self, link: str) -> int:
        row = self.ws.store.conn.execute("SELECT in_seq FROM link_state WHERE name = ?", (link,)).fetchone()
        return 0 if row is None else int(row[0])

    def queued(self, link: str) -> int:
        return self.ws.store.conn.execute("SELECT count(*) FROM outbox WHERE link = ?", (link,)).fetchone()[0]

    def has_pending(self, link: str, above: int = 0) -> bool:
        return self.ws.store.conn.execute(
            "SELECT 1 FROM outbox WHERE link = ? AND seq > ? LIMIT 1", (link, above)
        ).fetchone() is not None

    def pending_messages(self, link: str, above: int = 0) -> tuple[list[dict[str, Any]], bool]:
        """Queued messages above seq ``above``, in order, as many as fit one envelope.
        Returns them and whether more are left behind."""
        rows = self.ws.store.conn.execute(
            "SELECT body FROM outbox WHERE link = ? AND seq > ? ORDER BY seq LIMIT ?",
            (link, above, BATCH_MESSAGES + 1),
        ).fetchall()
        messages: list[dict[str, Any]] = []
        size = 0
        for row in rows[:BATCH_MESSAGES]:
            size += len(row[0]) + 1
            if size > BATCH_BYTES and messages:
                return messages, True
            messages.append(json.loads(row[0]))
        return messages, len(rows) > BATCH_MESSAGES

    def build_request(self, config: SyncConfig, *, wait: int, send: bool = True
                      ) -> tuple[Envelope, bytes, str, int]:
        messages = self.pending_messages(config.name)[0] if send else []
        envelope = new_envelope(
            self.ws.name, config.name, messages=messages, ack=self.in_seq(config.name),
            controls=config.controls, wait=wait,
        )
        body = envelope.to_bytes()
        return envelope, body, self.signer(config).sign(body), len(messages)

    def build_response(self, config: SyncConfig, request: Envelope) -> tuple[bytes, str]:
        messages, _more = self.pending_messages(config.name, above=request.ack)
        envelope = new_envelope(
            self.ws.name, config.name, messages=messages, ack=self.in_seq(config.name),
            controls=config.controls, in_reply_to=request.id,
        )
        body = envelope.to_bytes()
        return body, self.signer(config).sign(body)

    # -- checks -----------------------------------------------------------------

    def check_request(self, path_name: str, body: bytes, signature: str | None) -> Envelope:
        _peer, envelope = check_request(
            path_name=path_name, body=body, signature=signature, own_name=self.ws.name,
            lookup=self.peer_view, now=datetime.now(UTC), seen=self.seen,
        )
        return envelope

    def check_response(self, config: SyncConfig, request: Envelope, body: bytes,
                       signature: str | None) -> Envelope:
        return check_response(
            body=body, signature=signature, verifier=self.verifier(config), own_name=self.ws.name,
            peer_name=config.name, request_id=request.id, now=datetime.now(UTC), seen=self.seen,
        )

    # -- applying ---------------------------------------------------------------

    def apply(self, link: str, envelope: Envelope, *, inbound: bool) -> Applied:
        """Apply a checked envelope from ``link`` in one transaction.

        ``inbound``: the peer reached us (a request to our endpoint) rather than
        answering us; recorded so the status can tell which path works.
        """
        result = Applied()
        config = self.ws.links.find(link)
        if config is None:
            raise CheckFailure("unknown_link", f"This workspace has no Synch Config named '{link}'.")
        if not config.enabled:
            # Disabled means no exchange either way, including answers to a long poll
            # that was already in flight when the link was disabled.
            raise CheckFailure("link_disabled", f"The link '{link}' is disabled in this workspace.")
        with self.ws.store.transaction() as tx:
            tx.execute("INSERT INTO link_state (name) VALUES (?) ON CONFLICT (name) DO NOTHING", (link,))
            tx.execute("DELETE FROM outbox WHERE link = ? AND seq <= ?", (link, envelope.ack))
            in_seq = tx.execute("SELECT in_seq FROM link_state WHERE name = ?", (link,)).fetchone()[0]
            for message in envelope.messages:
                seq = message["seq"]
                if seq <= in_seq:
                    continue  # applied before: redelivery has no second effect
                if seq != in_seq + 1:
                    break  # a gap: wait for the sender to resend from our ack
                self._apply_message(tx, config, envelope, message, result)
                in_seq = seq
                result.applied += 1
            stamp = "last_inbound" if inbound else "last_success"
            tx.execute(
                f"UPDATE link_state SET in_seq = ?, {stamp} = ? WHERE name = ?",  # noqa: S608 - fixed names
                (in_seq, now(), link),
            )
            self.ws.changed(tx, result.changed)
        self.ws.notify_outbox()
        if result.changed or result.started:
            for listener in list(self.listeners):
                try:
                    listener(result.changed, result.ended, result.started)
                except Exception:  # noqa: BLE001 - a listener must not break the exchange
                    log.exception("link listener failed")
        return result

    def _apply_message(self, tx: Any, config: SyncConfig, envelope: Envelope,
                       message: dict[str, Any], result: Applied) -> None:
        kind = message["type"]
        if kind == "execution.start":
            self._apply_start(tx, config, envelope, message, result)
        elif kind == "execution.update":
            self._apply_update(tx, config, message, result)
        elif kind == "execution.cancel":
            row = tx.execute(
                "SELECT execution_id FROM remote_requests WHERE link = ? AND request_id = ?",
                (config.name, message["request_id"]),
            ).fetchone()
            if row is not None:
                tx.execute(
                    "UPDATE executions SET cancel_requested = 1 WHERE id = ? AND status NOT IN (?, ?, ?)",
                    (row[0], *TERMINAL),
                )
                result.started = True  # wakes the engine, which carries out the cancel

    def _apply_start(self, tx: Any, config: SyncConfig, envelope: Envelope,
                     message: dict[str, Any], result: Applied) -> None:
        request_id = message["request_id"]
        existing = tx.execute(
            "SELECT execution_id FROM remote_requests WHERE link = ? AND request_id = ?",
            (config.name, request_id),
        ).fetchone()
        if existing is not None:
            # A repeated start: start nothing, answer with the execution's state.
            row = tx.execute("SELECT * FROM executions WHERE id = ?", (existing[0],)).fetchone()
            if row is not None:
                outbox.enqueue(tx, config.name, {
                    "type": "execution.update", "request_id": request_id,
                    "execution": outbox.execution_message(row),
                    "listed": config.send_all_executions,
                })
            return
        flow = message["flow"]
        refusal = None
        if not envelope.controls:
            refusal = (f"'{config.name}' may not start flows in '{self.ws.name}': its Synch Config "
                       f"for '{self.ws.name}' has no Remote URL, so it does not control this workspace.")
        elif tx.execute("SELECT 1 FROM flows WHERE name = ?", (flow,)).fetchone() is None:
            refusal = f"There is no flow '{flow}' in workspace '{self.ws.name}'."
        elif not config.allows(flow):
            refusal = (f"The link from '{config.name}' may not run flow '{flow}' in '{self.ws.name}' "
                       f"(its Allowed flows are: {', '.join(config.allow_flows) or 'none'}).")
        parent = message.get("parent") or {}
        t = now()
        cur = tx.execute(
            "INSERT INTO executions (flow, name, status, message, inputs, request_id, listed, "
            "started_by, created_at, ended_at, origin_link, origin_request) "
            "VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)",
            (
                flow,
                message.get("name") or flow,
                PENDING if refusal is None else ENDED_ERROR,
                refusal,
                json.dumps(message["inputs"]),
                request_id,
                f"link:{config.name}" + (f" (execution {parent.get('id')})" if parent else ""),
                t,
                None if refusal is None else t,
                config.name,
                request_id,
            ),
        )
        execution_id = int(cur.lastrowid)
        tx.execute(
            "INSERT INTO remote_requests (link, request_id, execution_id) VALUES (?, ?, ?)",
            (config.name, request_id, execution_id),
        )
        result.changed.append(execution_id)
        result.started = True

    def _apply_update(self, tx: Any, config: SyncConfig, message: dict[str, Any],
                      result: Applied) -> None:
        link = config.name
        proxy = tx.execute(
            "SELECT id, remote_id FROM executions WHERE request_id = ? AND workspace = ?",
            (message["request_id"], link),
        ).fetchone()
        if proxy is None:
            return  # not a request of ours (or the caller's record is gone)
        ex = message["execution"]
        listed = bool(message["listed"])
        if ex["parent_id"] is None:
            target = proxy["id"]
            if proxy["remote_id"] is None:
                tx.execute("UPDATE executions SET remote_id = ? WHERE id = ?", (_remote_id(ex["id"]), target))
        else:
            row = tx.execute(
                "SELECT id FROM executions WHERE workspace = ? AND remote_id = ?", (link, _remote_id(ex["id"]))
            ).fetchone()
            if row is None:
                parent = tx.execute(
                    "SELECT id FROM executions WHERE workspace = ? AND remote_id = ?",
                    (link, _remote_id(ex["parent_id"])),
                ).fetchone()
                cur = tx.execute(
                    "INSERT INTO executions (flow, name, status, parent_id, workspace, remote_id, "
                    "listed, started_by, created_at) VALUES (?, ?, 'PENDING', ?, ?, ?, ?, ?, ?)",
                    (ex["flow"], ex["name"] or ex["flow"], parent[0] if parent else proxy["id"], link,
                     _remote_id(ex["id"]), int(listed), f"link:{link}",
                     _ts(ex["created_at"]) or now()),
                )
                target = int(cur.lastrowid)
            else:
                target = row[0]
        current = tx.execute(
            "SELECT status, remote_version FROM executions WHERE id = ?", (target,)
        ).fetchone()
        if current["status"] in TERMINAL or ex["version"] <= current["remote_version"]:
            return  # terminal states absorb; older versions are stale
        tx.execute(
            "UPDATE executions SET status = ?, message = ?, outputs = ?, name = ?, started_at = ?, "
            "ended_at = ?, remote_version = ?, listed = max(listed, ?), version = version + 1 "
            "WHERE id = ?",
            (ex["status"], ex["message"], json.dumps(ex["outputs"]), ex["name"] or ex["flow"],
             _ts(ex["started_at"]), _ts(ex["ended_at"]), ex["version"], int(listed), target),
        )
        result.changed.append(target)
        if ex["status"] in TERMINAL:
            result.ended.append(target)

    # -- starting and cancelling from this side -----------------------------------

    def start_remote(self, parent_id: int, link: str, flow: str, inputs: dict[str, Any],
                     name: str | None) -> int:
        """Record the caller's child for a flow in ``link`` and queue execution.start, atomically."""
        import uuid

        from flowlink.errors import FlowlinkError

        config = self.ws.links.find(link)
        if config is None:
            raise FlowlinkError(
                f"cannot run '{flow}' in workspace '{link}': there is no link to a workspace named "
                f"'{link}' (set one up with 'flowlink link add {link}')"
            )
        if not config.enabled:
            raise FlowlinkError(f"cannot run '{flow}' in workspace '{link}': the link to {link} is disabled")
        if not config.controls:
            raise FlowlinkError(
                f"cannot run '{flow}' in workspace '{link}': this workspace does not control '{link}' "
                "(its Synch Config has no Remote URL); the other workspace controls this one"
            )
        request_id = str(uuid.uuid4())
        _check_sendable(flow, inputs, name)
        with self.ws.store.transaction() as tx:
            parent = tx.execute("SELECT name FROM executions WHERE id = ?", (parent_id,)).fetchone()
            cur = tx.execute(
                "INSERT INTO executions (flow, name, status, inputs, parent_id, workspace, request_id, "
                "listed, started_by, created_at) VALUES (?, ?, 'PENDING', ?, ?, ?, ?, 0, ?, ?)",
                (flow, name or flow, json.dumps(inputs), parent_id, link, request_id,
                 f"execution:{parent_id}", now()),
            )
            child = int(cur.lastrowid)
            message: dict[str, Any] = {"type": "execution.start", "request_id": request_id,
                                       "flow": flow, "inputs": inputs}
            if name:
                message["name"] = name
            message["parent"] = {"id": parent_id, "name": parent[0] if parent else ""}
            outbox.enqueue(tx, link, message)
            self.ws._queued_links.add(link)
        self.ws.notify_outbox()
        return child

    def cancel_remote(self, execution_id: int) -> None:
        row = self.ws.store.conn.execute(
            "SELECT workspace, request_id FROM executions WHERE id = ?", (execution_id,)
        ).fetchone()
        if row is None or row["workspace"] is None or row["request_id"] is None:
            return  # a listed descendant: cancelling its root cancels it
        with self.ws.store.transaction() as tx:
            if tx.execute("SELECT 1 FROM links WHERE name = ?", (row["workspace"],)).fetchone() is None:
                return
            outbox.enqueue(tx, row["workspace"], {"type": "execution.cancel", "request_id": row["request_id"]})
            self.ws._queued_links.add(row["workspace"])
        self.ws.notify_outbox()


def _check_sendable(flow: str, inputs: dict[str, Any], name: str | None) -> None:
    """Refuse, in the calling flow, a start the peer would refuse (it would block the outbox)."""
    from flowlink.errors import ValidationError
    from flowlink.link.envelope import MESSAGE_MAX_DEPTH, BadEnvelope, validate_message
    from flowlink.link.strict_json import dumps_canonical, json_depth

    message: dict[str, Any] = {"seq": 1, "type": "execution.start",
                               "request_id": "00000000-0000-4000-8000-000000000000",
                               "flow": flow, "inputs": inputs}
    if name:
        message["name"] = name
    try:
        validate_message(message)
        size = len(dumps_canonical(inputs))
    except (BadEnvelope, TypeError, ValueError) as exc:
        raise ValidationError("inputs", f"cannot send this start over the link: {exc}") from None
    if json_depth(message) > MESSAGE_MAX_DEPTH:
        raise ValidationError("inputs", f"inputs nest deeper than a link carries ({MESSAGE_MAX_DEPTH - 2} levels)")
    if size > BATCH_BYTES // 2:
        raise ValidationError("inputs", "inputs larger than 2 MiB cannot be sent over a link; pass a file name instead")


def _remote_id(value: int | str) -> int | str:
    """The peer's execution id as stored (ints stay ints; the protocol allows strings)."""
    return value


def _ts(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_time(value, "time").timestamp()
    except ValueError:
        return time.time()
