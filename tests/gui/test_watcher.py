"""StoreWatcher (Qt-free) and ChangeFeed (its bridge into Qt)."""

from __future__ import annotations

import threading

from flowlink.gui.feed import ChangeBatch, ChangeFeed
from flowlink.workspace.store import Store
from flowlink.workspace.watcher import StoreWatcher
from flowlink.workspace.workspace import Workspace


def test_watcher_sees_commits_from_another_process_connection(workspace):
    other = Workspace.open(workspace.data_dir, "alice")  # its own Store: as another process would
    watcher = StoreWatcher(workspace.store, interval=0.01)
    seen = threading.Event()
    calls: list[tuple] = []

    def listener(*args):
        calls.append(args)
        seen.set()

    watcher.listeners.append(listener)
    watcher.start()
    try:
        assert not seen.wait(0.1), "nothing was committed yet"
        other.set_setting("x", 1)
        assert seen.wait(5), "a commit of another connection was not noticed"
        assert calls[0] == ()
        seen.clear()
        workspace.set_setting("y", 2)  # same Store, another thread's connection: noticed too
        assert seen.wait(5)
    finally:
        watcher.stop()
        other.close()
    assert not watcher.running


def test_watcher_survives_a_failing_listener_and_stops(workspace):
    watcher = StoreWatcher(workspace.store, interval=0.01)
    seen = threading.Event()
    watcher.listeners.append(lambda: 1 / 0)
    watcher.listeners.append(seen.set)
    watcher.start()
    workspace.set_setting("x", 1)
    assert seen.wait(5)
    watcher.stop()
    seen.clear()
    workspace.set_setting("x", 2)
    assert not seen.wait(0.2), "a stopped watcher still reported"


def test_watcher_rejects_a_useless_interval(workspace):
    import pytest

    with pytest.raises(ValueError):
        StoreWatcher(workspace.store, interval=0)
    assert isinstance(workspace.store, Store)


def test_feed_merges_calls_from_foreign_threads_into_one_batch(qtbot):
    feed = ChangeFeed(delay_ms=30)
    batches: list[ChangeBatch] = []
    feed.changed.connect(batches.append)
    threads = [threading.Thread(target=feed.engine_listener, args=([i, i + 100],)) for i in range(5)]
    threads.append(threading.Thread(target=feed.store_listener))
    with qtbot.waitSignal(feed.changed, timeout=5000):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(batches) == 1
    assert batches[0].ids == frozenset(list(range(5)) + list(range(100, 105)))
    assert batches[0].store is True


def test_feed_batches_less_often_while_changes_keep_coming(qtbot):
    """A storm gets fewer, larger batches (each repaints the table); a quiet feed answers at once."""
    import time

    feed = ChangeFeed(delay_ms=10, busy_delay_ms=400)
    with qtbot.waitSignal(feed.changed, timeout=5000):
        started = time.monotonic()
        feed.post([1])
    quiet = time.monotonic() - started
    with qtbot.waitSignal(feed.changed, timeout=5000) as busy_batch:
        started = time.monotonic()
        feed.post([2])
        feed.post([3])
    busy = time.monotonic() - started
    assert busy_batch.args[0].ids == frozenset({2, 3})
    assert busy >= 0.3 > quiet, (quiet, busy)  # Qt's coarse timers may fire 5 % early
