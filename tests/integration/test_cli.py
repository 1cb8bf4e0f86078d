"""The real `flowlink` command, each call a new process on a real data dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowlink.workspace.ownership import current_owner
from flowlink.workspace.workspace import Workspace
from workspace_fixtures import cli_env, flowlink

PARENT = """\
import flow_api
def handler(system, this):
    child = this.flow('child', x=20)
    system.file('result.txt').save_text_content(str(child.get('output_value')['y']))
    print('parent done')
    return this.success('child said %s' % child.get('output_value')['y'])
"""
CHILD = """\
def handler(system, this, inputs):
    this.save(output_value={'y': inputs['x'] + 1})
"""


def wait_until(condition, timeout: float = 20.0, what: str = "condition") -> None:
    """Poll a condition with a bound: for state that lives in another process."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    r = flowlink(d, "init", "--name", "demo", user="alice")
    assert r.returncode == 0, r.stderr
    return d


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def add(data_dir: Path, tmp_path: Path, name: str, source: str) -> None:
    r = flowlink(data_dir, "flow", "add", name, str(write(tmp_path, f"{name}.py", source)))
    assert r.returncode == 0, r.stderr


def test_version_is_fast_and_does_not_import_qt():
    code = ("import sys, runpy; sys.argv=['flowlink','--version']\n"
            "try:\n runpy.run_module('flowlink', run_name='__main__')\n"
            "except SystemExit: pass\n"
            "print('QT' if any(m.startswith('PySide6') for m in sys.modules) else 'NOQT')\n"
            "print('HTTPX' if 'httpx' in sys.modules else 'NOHTTPX')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert "flowlink 0.1.0" in out.stdout
    assert "NOQT" in out.stdout and "NOHTTPX" in out.stdout


def test_init_refuses_bad_names_and_existing_workspace(tmp_path, data_dir):
    r = flowlink(tmp_path / "x", "init", "--name", "Bad_Name")
    assert r.returncode == 2
    assert "not a valid workspace name" in r.stderr and "lowercase" in r.stderr
    assert not (tmp_path / "x" / "workspace.db").exists()
    r = flowlink(data_dir, "init", "--name", "again")
    assert r.returncode == 2 and "already exists" in r.stderr


def test_init_makes_the_os_user_admin(data_dir):
    r = flowlink(data_dir, "users", "list")
    assert r.returncode == 0
    assert "alice" in r.stdout and "organization_admin" in r.stdout


def test_commands_on_a_missing_workspace_say_how_to_create_one(tmp_path):
    r = flowlink(tmp_path / "nothing", "flow", "list")
    assert r.returncode == 2
    assert "flowlink init --name NAME" in r.stderr


def test_flow_add_list_show_remove(tmp_path, data_dir):
    add(data_dir, tmp_path, "child", CHILD)
    assert flowlink(data_dir, "flow", "list").stdout.split() == ["child"]
    assert flowlink(data_dir, "flow", "show", "child").stdout == CHILD
    assert flowlink(data_dir, "flow", "remove", "child").returncode == 0
    assert flowlink(data_dir, "flow", "list").stdout.split() == []
    r = flowlink(data_dir, "flow", "show", "child")
    assert r.returncode == 2 and "There is no flow 'child'" in r.stderr


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def handler(system, this):\n    x = (\n", "line 2"),
        ("def handle(system, this):\n    pass\n", "does not define 'def handler"),
        ("async def handler(system, this):\n    pass\n", "not async"),
    ],
)
def test_flow_add_refuses_bad_scripts_and_saves_nothing(tmp_path, data_dir, source, message):
    r = flowlink(data_dir, "flow", "add", "bad", str(write(tmp_path, "bad.py", source)))
    assert r.returncode == 2
    assert message in r.stderr and "Nothing was saved" in r.stderr
    assert flowlink(data_dir, "flow", "list").stdout.split() == []


def test_flow_add_missing_file(tmp_path, data_dir):
    r = flowlink(data_dir, "flow", "add", "x", str(tmp_path / "missing.py"))
    assert r.returncode == 2 and "cannot read" in r.stderr


def test_settings_and_files(tmp_path, data_dir):
    assert flowlink(data_dir, "setting", "set", "cfg", '{"a": [1, 2]}').returncode == 0
    assert json.loads(flowlink(data_dir, "setting", "get", "cfg").stdout) == {"a": [1, 2]}
    r = flowlink(data_dir, "setting", "set", "cfg", "{not json")
    assert r.returncode == 2 and "not valid JSON" in r.stderr
    r = flowlink(data_dir, "setting", "get", "nope")
    assert r.returncode == 2 and "There is no setting 'nope'" in r.stderr
    payload = bytes(range(256))
    src = tmp_path / "blob.bin"
    src.write_bytes(payload)
    assert flowlink(data_dir, "file", "put", "blob", str(src)).returncode == 0
    out = tmp_path / "copy.bin"
    assert flowlink(data_dir, "file", "get", "blob", "--output", str(out)).returncode == 0
    assert out.read_bytes() == payload
    r = flowlink(data_dir, "file", "get", "nope")
    assert r.returncode == 2 and "There is no file 'nope'" in r.stderr


def test_run_waits_and_prints_the_execution(tmp_path, data_dir):
    add(data_dir, tmp_path, "child", CHILD)
    add(data_dir, tmp_path, "parent", PARENT)
    r = flowlink(data_dir, "run", "parent")
    assert r.returncode == 0, r.stderr
    ex = json.loads(r.stdout)
    for key in ("id", "flow", "name", "status", "message", "inputs", "outputs", "created_at",
                "started_at", "ended_at", "parent_id", "workspace"):
        assert key in ex
    assert ex["status"] == "ENDED_SUCCESS"
    assert ex["message"] == "child said 21"
    assert ex["workspace"] == "demo"
    assert flowlink(data_dir, "file", "get", "result.txt").stdout == "21"
    shown = json.loads(flowlink(data_dir, "execution", "show", str(ex["id"]), "--json").stdout)
    assert [line["text"] for line in shown["log"]] == ["parent done"]
    assert [c["flow"] for c in shown["children"]] == ["child"]
    listed = json.loads(flowlink(data_dir, "executions", "--json").stdout)
    assert [e["flow"] for e in listed] == ["child", "parent"]  # newest first


def test_run_inputs_parse_json_where_they_parse(tmp_path, data_dir):
    add(data_dir, tmp_path, "echo", "def handler(system, this, inputs):\n"
        "    this.save(output_value=inputs)\n")
    r = flowlink(data_dir, "run", "echo", "--input", "n=3", "--input", "s=hello",
                 "--input", 'l=[1,"a"]', "--inputs-json", '{"o": {"k": true}}')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["outputs"] == {"n": 3, "s": "hello", "l": [1, "a"], "o": {"k": True}}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "novalue"], "KEY=VALUE"),
        (["--inputs-json", "[1]"], "JSON object"),
        (["--inputs-json", "{bad"], "not valid JSON"),
        (["--max-runtime", "-1"], "positive"),
    ],
)
def test_run_refuses_bad_inputs(tmp_path, data_dir, args, message):
    add(data_dir, tmp_path, "echo", "def handler(system, this):\n    pass\n")
    r = flowlink(data_dir, "run", "echo", *args)
    assert r.returncode == 2 and message in r.stderr
    assert json.loads(flowlink(data_dir, "executions", "--json").stdout) == []


def test_run_of_a_failing_flow_exits_1(tmp_path, data_dir):
    add(data_dir, tmp_path, "boom", "def handler(system, this):\n    raise KeyError('k')\n")
    r = flowlink(data_dir, "run", "boom")
    assert r.returncode == 1
    ex = json.loads(r.stdout)
    assert ex["status"] == "ENDED_ERROR" and "KeyError" in ex["message"]


def test_run_unknown_flow(data_dir):
    r = flowlink(data_dir, "run", "ghost")
    assert r.returncode == 2 and "There is no flow 'ghost'" in r.stderr


def test_executions_filters_and_limit(tmp_path, data_dir):
    add(data_dir, tmp_path, "ok", "def handler(system, this):\n    pass\n")
    add(data_dir, tmp_path, "bad", "def handler(system, this):\n    this.error('no')\n")
    for flow in ("ok", "bad", "ok"):
        flowlink(data_dir, "run", flow)
    rows = json.loads(flowlink(data_dir, "executions", "--json", "--status", "ENDED_ERROR").stdout)
    assert [r["flow"] for r in rows] == ["bad"]
    rows = json.loads(flowlink(data_dir, "executions", "--json", "--flow", "ok").stdout)
    assert len(rows) == 2
    rows = json.loads(flowlink(data_dir, "executions", "--json", "--limit", "1").stdout)
    assert len(rows) == 1 and rows[0]["flow"] == "ok"
    r = flowlink(data_dir, "executions", "--status", "DONE")
    assert r.returncode == 2 and "not a status" in r.stderr
    table = flowlink(data_dir, "executions").stdout
    assert table.splitlines()[0].split()[:3] == ["ID", "STATUS", "FLOW"]


def test_no_wait_runs_in_a_background_engine(tmp_path, data_dir):
    add(data_dir, tmp_path, "ok", "def handler(system, this):\n    this.success('bg')\n")
    r = flowlink(data_dir, "run", "ok", "--no-wait")
    assert r.returncode == 0
    execution_id = int(r.stdout)
    ws = Workspace.open(data_dir)
    try:
        wait_until(lambda: ws.get_execution(execution_id).terminal, what="background run")
        assert ws.get_execution(execution_id).message == "bg"
    finally:
        ws.close()


def start_owner(data_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowlink", "engine", "--idle-exit", "600", "--data-dir", str(data_dir)],
        env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    wait_until(lambda: (current_owner(data_dir) or {}).get("pid") == proc.pid, what="owner lock")
    return proc


def test_run_hands_off_to_the_process_that_owns_the_workspace(tmp_path, data_dir):
    add(data_dir, tmp_path, "who", "import os\ndef handler(system, this):\n"
        "    this.save(output_value={'forkserver': os.getppid()})\n")
    owner = start_owner(data_dir)
    try:
        r = flowlink(data_dir, "run", "who")
        assert r.returncode == 0, r.stderr
        assert f"another Flowlink process (background, pid {owner.pid})" in r.stderr
        forkserver = json.loads(r.stdout)["outputs"]["forkserver"]
        # The worker's parent is the owner's forkserver, whose parent is the owner.
        stat = Path(f"/proc/{forkserver}/stat").read_text()
        assert int(stat.rsplit(")", 1)[1].split()[1]) == owner.pid
    finally:
        owner.terminate()
        owner.wait(20)


def test_cancel_through_the_owner(tmp_path, data_dir):
    add(data_dir, tmp_path, "spin", "def handler(system, this):\n    this.flow('inner')\n")
    add(data_dir, tmp_path, "inner", "def handler(system, this):\n    while True: pass\n")
    owner = start_owner(data_dir)
    ws = Workspace.open(data_dir)
    try:
        execution_id = int(flowlink(data_dir, "run", "spin", "--no-wait").stdout)
        wait_until(lambda: any(c.status == "RUNNING" for c in ws.children(execution_id)),
                   what="the inner flow to run")
        r = flowlink(data_dir, "execution", "cancel", str(execution_id))
        assert r.returncode == 0, r.stderr
        assert "ENDED_CANCELLED" in r.stdout
        assert {c.status for c in ws.children(execution_id)} == {"ENDED_CANCELLED"}
    finally:
        ws.close()
        owner.terminate()
        owner.wait(20)


def test_cancel_pending_without_an_owner(tmp_path, data_dir):
    add(data_dir, tmp_path, "ok", "def handler(system, this):\n    pass\n")
    ws = Workspace.open(data_dir)
    try:
        execution_id = ws.create_execution("ok")
        r = flowlink(data_dir, "execution", "cancel", str(execution_id))
        assert r.returncode == 0, r.stderr
        assert ws.get_execution(execution_id).status == "ENDED_CANCELLED"
        r = flowlink(data_dir, "execution", "cancel", "99999")
        assert r.returncode == 2 and "There is no execution 99999" in r.stderr
    finally:
        ws.close()


def test_sigkill_of_the_engine_mid_run_is_recovered(tmp_path, data_dir):
    add(data_dir, tmp_path, "spin", "import os\ndef handler(system, this):\n"
        "    system.setting('pid').save(value=os.getpid())\n    while True: pass\n")
    add(data_dir, tmp_path, "ok", "def handler(system, this):\n    pass\n")
    owner = start_owner(data_dir)
    ws = Workspace.open(data_dir)
    try:
        execution_id = int(flowlink(data_dir, "run", "spin", "--no-wait").stdout)
        wait_until(lambda: ws.setting_exists("pid"), what="the flow to start")
        worker_pid = ws.get_setting("pid")
        owner.send_signal(signal.SIGKILL)
        owner.wait(20)

        def worker_gone() -> bool:
            try:
                os.kill(worker_pid, 0)
            except ProcessLookupError:
                return True
            state = Path(f"/proc/{worker_pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            return state == "Z"

        wait_until(worker_gone, what="the orphaned worker to die")
        assert ws.get_execution(execution_id).status == "RUNNING"  # nobody has looked yet
        r = flowlink(data_dir, "run", "ok")
        assert r.returncode == 0, r.stderr
        ex = ws.get_execution(execution_id)
        assert (ex.status, ex.message) == ("ENDED_ERROR", "workspace restarted")
    finally:
        ws.close()
        if owner.poll() is None:
            owner.kill()


def test_users_roles_and_last_admin(data_dir):
    assert flowlink(data_dir, "users", "add", "bob", "--role", "user", user="alice").returncode == 0
    r = flowlink(data_dir, "users", "add", "carol", user="bob")
    assert r.returncode == 2 and "Only an organization admin" in r.stderr
    r = flowlink(data_dir, "users", "remove", "alice", user="alice")
    assert r.returncode == 2 and "last organization admin" in r.stderr
    assert "alice" in flowlink(data_dir, "users", "list").stdout
