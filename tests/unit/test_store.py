"""The SQLite store: WAL, migrations, refusing files it must not touch."""

from __future__ import annotations

import sqlite3

import pytest

from flowlink.errors import WorkspaceError
from flowlink.workspace.store import SCHEMA_VERSION, Store
from flowlink.workspace.workspace import Workspace


def test_new_store_is_wal_and_migrated(tmp_path):
    store = Store(tmp_path / "w.db", create=True)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    indexes = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"executions_by_status", "executions_by_flow", "executions_by_parent"} <= indexes
    store.close()


def test_missing_file_is_not_created_without_create(tmp_path):
    with pytest.raises(WorkspaceError, match="flowlink init"):
        Store(tmp_path / "absent.db")
    assert not (tmp_path / "absent.db").exists()


def test_newer_schema_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "w.db"
    Store(path, create=True).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(WorkspaceError) as info:
        Store(path)
    assert str(path) in str(info.value) and "newer Flowlink" in str(info.value)
    assert path.read_bytes() == before


def test_corrupt_file_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "w.db"
    path.write_bytes(b"this is not a database" * 100)
    before = path.read_bytes()
    with pytest.raises(WorkspaceError) as info:
        Store(path)
    assert str(path) in str(info.value) and "left untouched" in str(info.value)
    assert path.read_bytes() == before


def test_transaction_rolls_back_on_error(tmp_path):
    store = Store(tmp_path / "w.db", create=True)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.execute("INSERT INTO meta (key, value) VALUES ('a', 'b')")
        raise RuntimeError("boom")
    assert store.get_meta("a") is None
    store.close()


def test_data_version_sees_other_connections(tmp_path):
    ws = Workspace.init(tmp_path / "ws", "a")
    other = Workspace.open(tmp_path / "ws")
    before = ws.store.data_version()
    other.set_setting("x", 1)
    assert ws.store.data_version() != before
    other.close()
    ws.close()


def test_keyset_paging_lists_newest_first(tmp_path):
    ws = Workspace.init(tmp_path / "ws", "a")
    ws.add_flow("f", "def handler(system, this):\n    pass\n")
    ids = [ws.create_execution("f") for _ in range(7)]
    page1 = ws.list_executions(limit=3)
    page2 = ws.list_executions(limit=3, before_id=page1[-1].id)
    assert [e.id for e in page1 + page2] == ids[::-1][:6]
    ws.close()
