"""The engine with real worker processes and a real SQLite file."""

from __future__ import annotations

import threading

import pytest

from flowlink.engine.engine import Engine
from flowlink.errors import NotFoundError
from workspace_fixtures import add_flow, run_flow

CHILD = """
def handler(system, this, inputs):
    if inputs.get('fail'):
        raise RuntimeError('child failed on purpose')
    this.save(output_value={'double': inputs['x'] * 2})
"""


def test_child_success_returns_outputs(workspace, engine):
    add_flow(workspace, "child", CHILD)
    add_flow(workspace, "parent", """
        def handler(system, this):
            child = this.flow('child', x=21)
            this.set_output('got', child.get('output_value')['double'])
            return this.success('done')
    """)
    ex = run_flow(engine, "parent")
    assert ex.status == "ENDED_SUCCESS", ex.message
    assert ex.message == "done"
    assert ex.outputs == {"got": 42}
    [child] = workspace.children(ex.id)
    assert child.flow == "child" and child.status == "ENDED_SUCCESS"
    assert child.inputs == {"x": 21}
    assert child.parent_id == ex.id


def test_child_failure_raises_dependency_failed(workspace, engine):
    add_flow(workspace, "child", CHILD)
    add_flow(workspace, "parent", """
        import flow_api
        def handler(system, this):
            try:
                this.flow('child', x=1, fail=True)
            except flow_api.DependencyFailedError as exc:
                return this.error('caught: ' + str(exc))
            return this.success('not reached')
    """)
    ex = run_flow(engine, "parent")
    assert ex.status == "ENDED_ERROR"
    assert ex.message.startswith("caught: child execution")
    assert "child failed on purpose" in ex.message


def test_uncaught_child_failure_ends_parent_with_traceback(workspace, engine):
    add_flow(workspace, "child", CHILD)
    add_flow(workspace, "parent", """
        def handler(system, this):
            this.flow('child', x=1, fail=True)
    """)
    ex = run_flow(engine, "parent")
    assert ex.status == "ENDED_ERROR"
    assert "Traceback" in ex.message and "DependencyFailedError" in ex.message
    assert "this.flow('child', x=1, fail=True)" in ex.message  # the script's own line is shown


def test_wait_false_and_wait_for(workspace, engine):
    add_flow(workspace, "child", CHILD)
    add_flow(workspace, "parent", """
        def handler(system, this):
            children = [this.flow('child', wait=False, x=i) for i in range(5)]
            this.wait_for(*children)
            this.save(output_value={'sum': sum(c.get('output_value')['double'] for c in children)})
    """)
    ex = run_flow(engine, "parent")
    assert ex.status == "ENDED_SUCCESS", ex.message
    assert ex.outputs == {"sum": 2 * (0 + 1 + 2 + 3 + 4)}
    assert len(workspace.children(ex.id)) == 5


def test_inputs_via_get_and_third_parameter(workspace, engine):
    add_flow(workspace, "echo", """
        def handler(system, this, inputs):
            assert this.get('input_value') == inputs
            this.save(output_value=dict(inputs), name='renamed', message='m')
    """)
    ex = run_flow(engine, "echo", {"a": [1, 2], "b": "x"})
    assert ex.status == "ENDED_SUCCESS", ex.message
    assert ex.outputs == {"a": [1, 2], "b": "x"}
    assert ex.name == "renamed"


def test_settings_and_files_from_a_flow(workspace, engine):
    workspace.set_setting("greeting", {"text": "hi"})
    workspace.put_file("in.bin", b"\x00\x01binary")
    add_flow(workspace, "io", """
        import flow_api
        def handler(system, this):
            text = system.setting('greeting').get('value')['text']
            system.setting('counter').save(value=7)
            data = system.file('in.bin').get_bytes_content()
            system.file('out.txt').save_text_content(text + ' ' + str(len(data)))
            assert not system.setting('missing').exists()
            try:
                system.file('nope').get_text_content()
            except flow_api.ResourceNotFoundError:
                pass
            else:
                raise AssertionError('missing file did not raise')
            this.set_output('env', system.get_env_name())
    """)
    ex = run_flow(engine, "io")
    assert ex.status == "ENDED_SUCCESS", ex.message
    assert workspace.get_setting("counter") == 7
    assert workspace.get_file("out.txt") == b"hi 8"
    assert ex.outputs == {"env": "test-ws"}


def test_print_stderr_and_log_are_kept_with_times(workspace, engine):
    add_flow(workspace, "chatty", """
        import sys
        def handler(system, this):
            print('to stdout')
            print('to stderr', file=sys.stderr)
            this.log('logged', n=3)
    """)
    ex = run_flow(engine, "chatty")
    lines = workspace.logs(ex.id)
    assert [(line.stream, line.text) for line in lines] == [
        ("stdout", "to stdout"), ("stderr", "to stderr"), ("log", "logged n=3"),
    ]
    assert all(ex.created_at <= line.ts <= ex.ended_at for line in lines)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("raise ValueError('boom')", "ValueError: boom"),
        ("import sys; sys.exit(3)", "sys.exit(3)"),
        ("import os; os._exit(7)", "exited with code 7"),
        ("import ctypes; ctypes.string_at(0)", "killed by signal SIGSEGV"),
    ],
)
def test_a_crashing_flow_ends_in_error_and_engine_keeps_serving(workspace, engine, body, expected):
    add_flow(workspace, "crash", f"def handler(system, this):\n    {body}\n")
    add_flow(workspace, "ok", "def handler(system, this):\n    pass\n")
    ex = run_flow(engine, "crash")
    assert ex.status == "ENDED_ERROR"
    assert expected in ex.message
    assert run_flow(engine, "ok").status == "ENDED_SUCCESS"


def test_success_error_and_end(workspace, engine):
    add_flow(workspace, "ends", """
        def handler(system, this, inputs):
            how = inputs['how']
            if how == 'success':
                this.success('fine')
            elif how == 'error':
                this.error('bad')
            else:
                this.end('ENDED_CANCELLED', 'gave up')
            raise AssertionError('not reached')
    """)
    ok = run_flow(engine, "ends", {"how": "success"})
    assert (ok.status, ok.message) == ("ENDED_SUCCESS", "fine")
    err = run_flow(engine, "ends", {"how": "error"})
    assert (err.status, err.message) == ("ENDED_ERROR", "bad")
    cancelled = run_flow(engine, "ends", {"how": "end"})
    assert (cancelled.status, cancelled.message) == ("ENDED_CANCELLED", "gave up")


def test_cancel_a_running_tree(workspace, engine):
    add_flow(workspace, "spin", """
        def handler(system, this):
            while True:
                pass
    """)
    add_flow(workspace, "parent", """
        def handler(system, this):
            this.flow('spin')
    """)
    parent_id = engine.submit("parent")
    done = threading.Event()

    def child_running(ids):
        for c in workspace.children(parent_id):
            if c.status == "RUNNING":
                done.set()

    engine.listeners.append(child_running)
    assert done.wait(20), "the child never started"
    engine.cancel(parent_id)
    assert engine.wait_ended([parent_id], 20)
    parent = workspace.get_execution(parent_id)
    [child] = workspace.children(parent_id)
    assert parent.status == "ENDED_CANCELLED"
    assert child.status == "ENDED_CANCELLED"


def test_max_runtime(workspace, engine):
    add_flow(workspace, "slow", "def handler(system, this):\n    this.sleep(60)\n")
    ex = run_flow(engine, "slow", max_runtime=0.3)
    assert ex.status == "ENDED_ERROR"
    assert "TimeoutExceededError" in ex.message


def test_max_runtime_on_child(workspace, engine):
    add_flow(workspace, "slow", "def handler(system, this):\n    this.sleep(60)\n")
    add_flow(workspace, "parent", """
        import flow_api
        def handler(system, this):
            try:
                this.flow('slow', max_runtime=0.2)
            except flow_api.DependencyFailedError as exc:
                this.success(str(exc))
    """)
    ex = run_flow(engine, "parent")
    assert ex.status == "ENDED_SUCCESS"
    assert "TimeoutExceededError" in ex.message


def test_fifty_parents_waiting_on_children_do_not_deadlock(workspace):
    add_flow(workspace, "child", CHILD)
    add_flow(workspace, "parent", """
        def handler(system, this, inputs):
            this.flow('child', x=inputs['i'])
    """)
    eng = Engine(workspace, parallelism=2)
    eng.start()
    try:
        ids = [eng.submit("parent", {"i": i}) for i in range(50)]
        assert eng.wait_ended(ids, 120)
    finally:
        eng.stop()
    statuses = {workspace.get_execution(i).status for i in ids}
    assert statuses == {"ENDED_SUCCESS"}


def test_parallelism_limit_is_respected(workspace):
    add_flow(workspace, "nap", "def handler(system, this):\n    this.sleep(0.2)\n")
    eng = Engine(workspace, parallelism=2)
    seen: list[int] = []

    def count_running(ids):
        rows = workspace.store.conn.execute(
            "SELECT count(*) FROM executions WHERE status = 'RUNNING'").fetchone()
        seen.append(rows[0])

    eng.listeners.append(count_running)
    eng.start()
    try:
        ids = [eng.submit("nap") for _ in range(6)]
        assert eng.wait_ended(ids, 60)
    finally:
        eng.stop()
    assert max(seen) == 2


def test_remote_workspace_without_links_fails_clearly(workspace, engine):
    add_flow(workspace, "caller", """
        def handler(system, this):
            this.flow('x', remote_workspace_name='other')
    """)
    ex = run_flow(engine, "caller")
    assert ex.status == "ENDED_ERROR"
    assert "cannot run 'x' in workspace 'other'" in ex.message


def test_unknown_flow_child_raises_resource_not_found(workspace, engine):
    add_flow(workspace, "caller", """
        import flow_api
        def handler(system, this):
            try:
                this.flow('does-not-exist')
            except flow_api.ResourceNotFoundError as exc:
                this.success(str(exc))
    """)
    ex = run_flow(engine, "caller")
    assert ex.status == "ENDED_SUCCESS"
    assert "There is no flow 'does-not-exist'" in ex.message


def test_submit_unknown_flow_is_refused(workspace, engine):
    with pytest.raises(NotFoundError, match="There is no flow 'ghost'"):
        engine.submit("ghost")


def test_pending_left_by_a_dead_owner_run_and_running_ones_end(workspace):
    add_flow(workspace, "ok", "def handler(system, this):\n    pass\n")
    stale = workspace.create_execution("ok")
    workspace.store.conn.execute("UPDATE executions SET status='RUNNING' WHERE id=?", (stale,))
    pending = workspace.create_execution("ok")
    eng = Engine(workspace)
    eng.start()
    try:
        assert eng.wait_ended([pending, stale], 30)
    finally:
        eng.stop()
    assert workspace.get_execution(stale).status == "ENDED_ERROR"
    assert workspace.get_execution(stale).message == "workspace restarted"
    assert workspace.get_execution(pending).status == "ENDED_SUCCESS"


def test_system_execution_and_child_cancel(workspace, engine):
    add_flow(workspace, "spin", "def handler(system, this):\n    this.sleep(60)\n")
    add_flow(workspace, "parent", """
        import flow_api
        def handler(system, this):
            child = this.flow('spin', wait=False)
            same = system.execution(child.id)
            same.cancel()
            try:
                this.wait_for(child)
            except flow_api.DependencyFailedError:
                this.success(child.get('status'))
    """)
    ex = run_flow(engine, "parent")
    assert (ex.status, ex.message) == ("ENDED_SUCCESS", "ENDED_CANCELLED")
