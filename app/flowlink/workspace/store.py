"""SQLite persistence of a workspace: one file, WAL mode, numbered migrations.

Every thread gets its own connection (sqlite3 connections are not shared
across threads); a write of one state change is one ``transaction()``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flowlink.errors import WorkspaceError

# Each entry moves the schema from version i to i+1. Never edit a released one:
# append a new migration instead.
MIGRATIONS: list[str] = [
    # 1: the local workspace
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('organization_admin', 'user')),
        created_at REAL NOT NULL
    );
    CREATE TABLE flows (name TEXT PRIMARY KEY, source TEXT NOT NULL, updated_at REAL NOT NULL);
    CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL);
    CREATE TABLE files (name TEXT PRIMARY KEY, content BLOB NOT NULL, updated_at REAL NOT NULL);
    CREATE TABLE executions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        flow TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        message TEXT,
        inputs TEXT NOT NULL DEFAULT '{}',
        outputs TEXT NOT NULL DEFAULT '{}',
        parent_id INTEGER,
        workspace TEXT,
        remote_id INTEGER,
        request_id TEXT,
        listed INTEGER NOT NULL DEFAULT 1,
        started_by TEXT,
        max_runtime REAL,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        started_at REAL,
        ended_at REAL,
        version INTEGER NOT NULL DEFAULT 1
    );
    CREATE INDEX executions_by_status ON executions (status, id);
    CREATE INDEX executions_by_flow ON executions (flow, id);
    CREATE INDEX executions_by_parent ON executions (parent_id);
    CREATE INDEX executions_by_workspace ON executions (workspace, id);
    CREATE INDEX executions_cancel_requested ON executions (cancel_requested)
        WHERE cancel_requested = 1;
    CREATE TABLE execution_logs (
        id INTEGER PRIMARY KEY,
        execution_id INTEGER NOT NULL,
        ts REAL NOT NULL,
        stream TEXT NOT NULL,
        text TEXT NOT NULL
    );
    CREATE INDEX execution_logs_by_execution ON execution_logs (execution_id, id);
    """,
    # 2: Synch Configs (key material lives in the SecretStore; only key ids here)
    """
    CREATE TABLE links (
        name TEXT PRIMARY KEY,
        enabled INTEGER NOT NULL,
        remote_url TEXT,
        ca_cert TEXT,
        verify_ssl INTEGER NOT NULL,
        own_key_id TEXT,
        remote_key_id TEXT NOT NULL,
        send_all_executions INTEGER NOT NULL,
        sync_interval INTEGER,
        allow_flows TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # 3: the link's transactional outbox and inbox (PROTOCOL.md section 6)
    """
    ALTER TABLE executions ADD COLUMN origin_link TEXT;
    ALTER TABLE executions ADD COLUMN origin_request TEXT;
    ALTER TABLE executions ADD COLUMN remote_version INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX executions_by_request ON executions (request_id) WHERE request_id IS NOT NULL;
    CREATE INDEX executions_by_remote ON executions (workspace, remote_id) WHERE remote_id IS NOT NULL;
    CREATE TABLE link_state (
        name TEXT PRIMARY KEY,
        out_seq INTEGER NOT NULL DEFAULT 0,
        in_seq INTEGER NOT NULL DEFAULT 0,
        last_success REAL,
        last_inbound REAL,
        last_error TEXT,
        last_error_at REAL,
        direct_ok INTEGER
    );
    CREATE TABLE outbox (
        link TEXT NOT NULL,
        seq INTEGER NOT NULL,
        body TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (link, seq)
    );
    CREATE TABLE seen_envelopes (
        peer TEXT NOT NULL,
        id TEXT NOT NULL,
        seen_at REAL NOT NULL,
        PRIMARY KEY (peer, id)
    );
    CREATE INDEX seen_envelopes_by_time ON seen_envelopes (seen_at);
    CREATE TABLE remote_requests (
        link TEXT NOT NULL,
        request_id TEXT NOT NULL,
        execution_id INTEGER NOT NULL,
        PRIMARY KEY (link, request_id)
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


class Store:
    """One workspace database file."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise WorkspaceError(
                f"There is no workspace database at {self.path}; "
                "create one with 'flowlink init --name NAME'."
            )
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._migrate()

    # -- connections -------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA foreign_keys = ON")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise WorkspaceError(
                    f"The workspace database {self.path} cannot use WAL mode "
                    f"(journal mode is {mode}); move the data folder to a local disk."
                )
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as exc:
            raise self._unusable(exc) from None
        return conn

    def _unusable(self, exc: BaseException) -> WorkspaceError:
        return WorkspaceError(
            f"The workspace database {self.path} cannot be opened ({exc}); it was left "
            "untouched. Restore it from a backup or point --data-dir at another folder."
        )

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT on this thread's connection (nested calls join)."""
        conn = self.conn
        if conn.in_transaction:
            yield conn
            return
        # Writers of this process take turns here rather than in SQLite's busy handler,
        # which backs off in sleeps of up to 100 ms: far too slow for the link's round trips.
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def data_version(self) -> int:
        """Changes whenever another connection (any thread or process) commits."""
        return self.conn.execute("PRAGMA data_version").fetchone()[0]

    # -- schema ------------------------------------------------------------

    def _migrate(self) -> None:
        try:
            conn = self.conn
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise WorkspaceError(
                    f"The workspace database {self.path} was written by a newer Flowlink "
                    f"(schema {version}, this version knows up to {SCHEMA_VERSION}); "
                    "install the newer Flowlink to open it. The file was left untouched."
                )
            # Sanity probe: reading the schema fails fast on a corrupt file.
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            for number in range(version, SCHEMA_VERSION):
                with self.transaction() as tx:
                    for statement in _split_sql(MIGRATIONS[number]):
                        tx.execute(statement)
                    tx.execute(f"PRAGMA user_version = {number + 1}")
        except sqlite3.DatabaseError as exc:
            self.close()
            raise self._unusable(exc) from None

    # -- meta --------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit our transaction)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


def now() -> float:
    return time.time()


def describe_error(exc: sqlite3.Error, path: Path | None = None) -> str:
    """One sentence for a database failure that may pass (read-only, disk full, I/O),
    naming the file when ``path`` is given (not in what goes to a linked workspace)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    database = "the workspace database" + (f" {path}" if path is not None else "")
    if name.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
        return (f"The workspace database{f' {path}' if path is not None else ''} cannot be "
                f"written ({text}): make its file, folder and disk writable again. Nothing was "
                "lost; Flowlink retries.")
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return (f"The disk holding {database} is full ({text}): free some space. Nothing was "
                "lost; Flowlink retries.")
    return f"The workspace database{f' {path}' if path is not None else ''} failed ({text}). Nothing was lost; Flowlink retries."
